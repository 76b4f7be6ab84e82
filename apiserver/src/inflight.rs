//! Limits on requests in flight, as kube-apiserver's `--max-requests-inflight` and
//! `--max-mutating-requests-inflight` (upstream
//! `staging/src/k8s.io/apiserver/pkg/server/filters/maxinflight.go`, `WithMaxInFlightLimit`).
//!
//! Read requests (GET and HEAD) and mutating requests (every other method) each have a pool
//! of slots. A request that finds its pool full is answered at once with 429 TooManyRequests,
//! `Retry-After: 1` and upstream's message, instead of queueing. As upstream:
//! - long-running requests (watches) are exempt, since they hold their connection for as long
//!   as the client watches;
//! - a limit of 0 means no limit.
//!
//! Health checks (`/healthz`, `/livez`, `/readyz`) and `/version` are exempt too, so probes
//! still answer under overload. Upstream's filter answers with a plain-text body; this server
//! answers with a `metav1.Status` (reason `TooManyRequests`, `retryAfterSeconds: 1`), as it
//! does for every error, and the same `Retry-After` header.

use std::sync::Arc;

use apimachinery::status::ApiError;
use axum::http::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// kube-apiserver's default `--max-requests-inflight`.
pub const DEFAULT_MAX_REQUESTS_INFLIGHT: usize = 400;

/// kube-apiserver's default `--max-mutating-requests-inflight`.
pub const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: usize = 200;

/// Upstream's message for a request refused by the limits.
const TOO_MANY: &str = "Too many requests, please try again later.";

/// The read and mutating request pools. Cloning shares the pools.
#[derive(Clone, Debug)]
pub struct InFlightLimits {
    read: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
}

impl Default for InFlightLimits {
    /// kube-apiserver's defaults: 400 read and 200 mutating requests.
    fn default() -> Self {
        InFlightLimits::new(
            DEFAULT_MAX_REQUESTS_INFLIGHT,
            DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
        )
    }
}

/// A slot held by an admitted request until it is dropped. Exempt requests hold none.
#[derive(Debug)]
pub struct InFlightSlot {
    /// Returned to its pool on drop.
    _permit: Option<OwnedSemaphorePermit>,
}

impl InFlightSlot {
    fn held(permit: Option<OwnedSemaphorePermit>) -> Self {
        InFlightSlot { _permit: permit }
    }
}

impl InFlightLimits {
    /// At most `max_read` read and `max_mutating` mutating requests at once; 0 is no limit.
    pub fn new(max_read: usize, max_mutating: usize) -> Self {
        let pool = |max: usize| (max > 0).then(|| Arc::new(Semaphore::new(max)));
        InFlightLimits {
            read: pool(max_read),
            mutating: pool(max_mutating),
        }
    }

    /// No limits at all.
    pub fn unlimited() -> Self {
        InFlightLimits::new(0, 0)
    }

    /// Admits a request, or refuses it with 429 when its pool is full. `exempt` requests (long
    /// running, health checks) always pass and take no slot.
    ///
    /// # Errors
    ///
    /// 429 TooManyRequests with `retryAfterSeconds: 1` when the pool is full.
    pub fn admit(&self, method: &Method, exempt: bool) -> Result<InFlightSlot, ApiError> {
        if exempt {
            return Ok(InFlightSlot::held(None));
        }
        let pool = if method == Method::GET || method == Method::HEAD {
            &self.read
        } else {
            &self.mutating
        };
        match pool {
            None => Ok(InFlightSlot::held(None)),
            Some(pool) => pool
                .clone()
                .try_acquire_owned()
                .map(|permit| InFlightSlot::held(Some(permit)))
                .map_err(|_| ApiError::too_many_requests(TOO_MANY, 1)),
        }
    }
}

/// Whether a request is exempt from the limits: a watch (a GET with `watch=true` or `1`, or of
/// a legacy `/watch/` path), a health check or `/version`.
pub(crate) fn is_exempt(method: &Method, path: &str, query: Option<&str>) -> bool {
    if crate::dispatch::is_public(path) {
        return true;
    }
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    // `/api/<version>/watch/...` or `/apis/<group>/<version>/watch/...`.
    let mut segments = path.trim_start_matches('/').split('/');
    let legacy_watch = match segments.next() {
        Some("api") => segments.nth(1) == Some("watch"),
        Some("apis") => segments.nth(2) == Some("watch"),
        _ => false,
    };
    legacy_watch
        || query.is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair == "watch=true" || pair == "watch=1")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_pools_refuse_with_429_and_free_on_drop() {
        let limits = InFlightLimits::new(1, 1);
        let read = limits.admit(&Method::GET, false).unwrap();
        let error = limits.admit(&Method::GET, false).unwrap_err();
        assert_eq!(
            (error.code, error.reason.as_str()),
            (429, "TooManyRequests")
        );
        assert_eq!(error.message, TOO_MANY);
        assert_eq!(
            error.details.as_ref().and_then(|d| d.retry_after_seconds),
            Some(1)
        );
        // The pools are separate; exempt requests take no slot.
        let write = limits.admit(&Method::POST, false).unwrap();
        assert_eq!(limits.admit(&Method::PUT, false).unwrap_err().code, 429);
        limits.admit(&Method::GET, true).unwrap();
        drop(read);
        limits.admit(&Method::GET, false).unwrap();
        drop(write);
        limits.admit(&Method::DELETE, false).unwrap();
        // 0 is no limit.
        let unlimited = InFlightLimits::unlimited();
        let held: Vec<_> = (0..1000)
            .map(|_| unlimited.admit(&Method::POST, false).unwrap())
            .collect();
        assert_eq!(held.len(), 1000);
    }

    #[test]
    fn watches_and_probes_are_exempt() {
        let list = "/api/v1/namespaces/default/configmaps";
        assert!(is_exempt(&Method::GET, list, Some("watch=true")));
        assert!(is_exempt(&Method::GET, list, Some("limit=5&watch=1")));
        assert!(is_exempt(&Method::GET, "/api/v1/watch/configmaps", None));
        assert!(is_exempt(
            &Method::GET,
            "/apis/apps/v1/watch/deployments",
            None
        ));
        assert!(is_exempt(&Method::GET, "/readyz", None));
        assert!(is_exempt(&Method::POST, "/livez/ping", None));
        assert!(!is_exempt(&Method::GET, list, Some("watch=false")));
        assert!(!is_exempt(&Method::GET, list, None));
        assert!(!is_exempt(&Method::POST, list, Some("watch=true")));
        assert!(!is_exempt(
            &Method::GET,
            "/api/v1/namespaces/watch/configmaps",
            None
        ));
    }
}
