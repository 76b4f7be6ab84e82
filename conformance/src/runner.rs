//! Turns cases into `libtest-mimic` trials, or runs them directly for meta-tests.

use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use storage_api::{Capabilities, Interface};

use crate::harness::{Capability, Harness};

/// How long one case may take before it fails as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// The body of a case: gets a fresh store and the layer to test over it, fails with a message
/// that says what was expected.
pub type CaseFn =
    Arc<dyn Fn(Arc<dyn Interface>, Layer) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// What object-level cases run their objects through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layer {
    /// `object_storage::Storage` directly over the store.
    #[default]
    Storage,
    /// `object_storage::WatchCache` in front of that `Storage`.
    WatchCache,
}

/// What a case body takes: the fresh store, or something built from it and the layer.
pub trait CaseInput: Send + 'static {
    /// Builds the input from a fresh store and the layer the case runs with.
    fn from_store(store: Arc<dyn Interface>, layer: Layer) -> Self;
}

impl CaseInput for Arc<dyn Interface> {
    fn from_store(store: Arc<dyn Interface>, _: Layer) -> Self {
        store
    }
}

/// One conformance case.
#[derive(Clone)]
pub struct Case {
    /// The name below the backend's, such as `kv::watch::replay_from_revision`.
    pub name: String,
    /// Capabilities the case needs; it is ignored on backends without them.
    pub needs: &'static [Capability],
    /// The case itself.
    pub body: CaseFn,
    /// The layer the case runs its objects through.
    pub layer: Layer,
    /// A layer the case does not apply to, and why: its variant of that layer is reported
    /// ignored with the reason.
    pub not_for: Option<(Layer, &'static str)>,
}

impl Case {
    /// A case from a name, the capabilities it needs and its body. Table-driven upstream tests
    /// become one case per row by capturing the row in `body`.
    pub fn new<F, I, Fut>(name: impl Into<String>, needs: &'static [Capability], body: F) -> Self
    where
        F: Fn(I) -> Fut + Send + Sync + 'static,
        I: CaseInput,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Case {
            name: name.into(),
            needs,
            body: Arc::new(move |store, layer| Box::pin(body(I::from_store(store, layer)))),
            layer: Layer::Storage,
            not_for: None,
        }
    }

    /// This case, marked as not applying to the watch cache, for `reason`.
    pub fn not_for_watch_cache(mut self, reason: &'static str) -> Self {
        self.not_for = Some((Layer::WatchCache, reason));
        self
    }

    /// This case, marked as applying only to the watch cache, for `reason`.
    pub fn only_for_watch_cache(mut self, reason: &'static str) -> Self {
        self.not_for = Some((Layer::Storage, reason));
        self
    }

    /// This case run through `layer`, named `<prefix>::<name>`.
    pub fn through(mut self, layer: Layer, prefix: &str) -> Self {
        self.name = format!("{prefix}::{}", self.name);
        self.layer = layer;
        self
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .field("layer", &self.layer)
            .finish()
    }
}

/// Every case of the suite, in a stable order.
pub fn cases() -> Vec<Case> {
    let mut all = crate::kv::cases();
    all.extend(crate::model::cases());
    all.extend(crate::k8s::cases());
    all
}

/// The outcome of one case run through [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseOutcome {
    /// The case passed.
    Passed,
    /// The case failed, with the reason.
    Failed(String),
    /// The case needs a capability the store does not report, with the reason.
    Ignored(String),
}

/// Runs every case as a `libtest-mimic` trial with the command-line arguments of the test
/// binary, and returns the process exit code (failure if any trial failed).
///
/// The first trial that needs a capability opens one store (see [`Harness`]) to read its
/// [`Interface::capabilities`], once for the whole run: cases that need a capability the store
/// lacks report *ignored* with the reason and never open a store of their own. If that store
/// cannot be opened, those cases fail with the reason. Listing (`--list`) opens no store.
pub fn run<H: Harness>(harness: H) -> ExitCode {
    run_all(vec![Arc::new(harness)])
}

/// [`run`] for several backends in one test binary: every case once per harness, each named
/// after its harness, with the capabilities of each read once.
pub fn run_all(harnesses: Vec<Arc<dyn Harness>>) -> ExitCode {
    let arguments = Arguments::from_args();
    let mut trials = Vec::new();
    for harness in harnesses {
        let capabilities = Arc::new(OnceLock::new());
        trials.extend(cases().into_iter().map(|case| {
            let name = format!("{}::{}", harness.name(), case.name);
            let harness = harness.clone();
            let capabilities = capabilities.clone();
            Trial::ignorable_test(name, move || {
                let outcome = match not_runnable(harness.as_ref(), &case, &capabilities) {
                    Some(outcome) => outcome,
                    None => run_case(harness.as_ref(), case),
                };
                completion(outcome)
            })
        }));
    }
    libtest_mimic::run(&arguments, trials).exit_code()
}

/// Runs the cases whose name contains `filter`, one after the other, and returns each outcome.
/// Meant for tests of the suite itself (planted faults must make cases fail). Capabilities are
/// read as in [`run`].
pub fn check<H: Harness>(harness: &H, filter: &str) -> Vec<(String, CaseOutcome)> {
    let capabilities = OnceLock::new();
    cases()
        .into_iter()
        .filter(|case| case.name.contains(filter))
        .map(|case| {
            let name = case.name.clone();
            let outcome = match not_runnable(harness, &case, &capabilities) {
                Some(outcome) => outcome,
                None => run_case(harness, case),
            };
            (name, outcome)
        })
        .collect()
}

fn completion(outcome: CaseOutcome) -> Result<Completion, Failed> {
    match outcome {
        CaseOutcome::Passed => Ok(Completion::Completed),
        CaseOutcome::Ignored(reason) => Ok(Completion::ignored_with(reason)),
        CaseOutcome::Failed(message) => Err(Failed::from(message)),
    }
}

/// The outcome of a case decided without running it: ignored when it needs a capability the
/// store lacks, failed when the capabilities could not be read. `None` when it must run. The
/// capabilities are read (once, into `capabilities`) only for a case that needs one.
fn not_runnable<H: Harness + ?Sized>(
    harness: &H,
    case: &Case,
    capabilities: &OnceLock<Result<Capabilities, String>>,
) -> Option<CaseOutcome> {
    if let Some((layer, reason)) = case.not_for.filter(|(layer, _)| *layer == case.layer) {
        let through = match layer {
            Layer::Storage => "Storage alone",
            Layer::WatchCache => "the watch cache",
        };
        return Some(CaseOutcome::Ignored(format!(
            "not run through {through}: {reason}"
        )));
    }
    if case.needs.is_empty() {
        return None;
    }
    let backend = harness.name();
    let capabilities = match capabilities.get_or_init(|| store_capabilities(harness)) {
        Ok(capabilities) => *capabilities,
        Err(message) => {
            return Some(CaseOutcome::Failed(format!(
                "cannot read the capabilities of backend {backend}: {message}"
            )));
        }
    };
    case.needs
        .iter()
        .find(|capability| !capability.is_in(capabilities))
        .map(|missing| {
            CaseOutcome::Ignored(format!(
                "backend {backend} lacks the {} capability",
                missing.name()
            ))
        })
}

/// Opens one store in a runtime of its own, reads what it reports from
/// [`Interface::capabilities`] and drops it (inside the runtime, as its background tasks may
/// need one to shut down).
fn store_capabilities<H: Harness + ?Sized>(harness: &H) -> Result<Capabilities, String> {
    let runtime = runtime()?;
    let capabilities = runtime.block_on(async {
        let open = AssertUnwindSafe(harness.open()).catch_unwind();
        match tokio::time::timeout(CASE_TIMEOUT, open).await {
            Err(_) => Err(format!(
                "opening a store did not finish within {CASE_TIMEOUT:?}"
            )),
            Ok(Err(panic)) => Err(format!("opening a store panicked: {}", panic_text(&panic))),
            Ok(Ok(Err(error))) => Err(format!("{:#}", error.context("opening a store"))),
            Ok(Ok(Ok(store))) => Ok(store.capabilities()),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    capabilities
}

/// The multi-threaded runtime each trial (and the capability read) runs in.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start a Tokio runtime: {error}"))
}

/// Runs one case on a fresh store in its own multi-threaded runtime.
fn run_case<H: Harness + ?Sized>(harness: &H, case: Case) -> CaseOutcome {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(message) => return CaseOutcome::Failed(message),
    };
    let outcome = runtime.block_on(async {
        let body = async {
            let store = harness
                .open()
                .await
                .map_err(|e| e.context("opening a fresh store"))?;
            (case.body)(store, case.layer).await
        };
        match tokio::time::timeout(CASE_TIMEOUT, AssertUnwindSafe(body).catch_unwind()).await {
            Err(_) => CaseOutcome::Failed(format!("case did not finish within {CASE_TIMEOUT:?}")),
            Ok(Err(panic)) => CaseOutcome::Failed(format!("case panicked: {}", panic_text(&panic))),
            Ok(Ok(Err(error))) => CaseOutcome::Failed(format!("{error:#}")),
            Ok(Ok(Ok(()))) => CaseOutcome::Passed,
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    outcome
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
