//! The optional parts of the contract, as a store reports them.

/// Which optional parts of the contract a store implements, from
/// [`crate::Interface::capabilities`].
///
/// Everything else in the contract is mandatory. The [`Default`] is [`Capabilities::none`], so a
/// store (or a wrapper) that does not report its capabilities is never assumed to have one.
/// Build a value with [`Capabilities::all`] or [`Capabilities::none`] and the `with_*` methods:
/// the struct is `#[non_exhaustive]` so that capabilities can be added without breaking
/// backends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// Keys written with a TTL are deleted by the store when it expires, as ordinary deletes
    /// with a revision and a watch event of their own.
    pub ttl: bool,
    /// Watches that ask for progress ([`crate::WatchRequest::progress_notify`]) get
    /// [`crate::WatchEvent::Progress`] events from time to time while idle.
    pub progress_notify: bool,
    /// [`crate::Interface::compact`] discards history older than the revision it is given.
    pub compaction: bool,
    /// [`crate::Interface::request_progress`] makes every idle watch that asked for progress
    /// report it promptly (etcd's `RequestProgress`): a watch cache learns it is current
    /// without waiting for the periodic progress event.
    pub progress_requests: bool,
    /// [`crate::Interface::write_batch`] commits several conditional writes atomically at one
    /// revision.
    pub atomic_batches: bool,
}

impl Capabilities {
    /// No optional capability.
    pub const fn none() -> Self {
        Capabilities {
            ttl: false,
            progress_notify: false,
            compaction: false,
            progress_requests: false,
            atomic_batches: false,
        }
    }

    /// Every optional capability this version of the contract defines.
    pub const fn all() -> Self {
        Capabilities {
            ttl: true,
            progress_notify: true,
            compaction: true,
            progress_requests: true,
            atomic_batches: true,
        }
    }

    /// These capabilities, with [`Capabilities::ttl`] set to `ttl`.
    pub const fn with_ttl(mut self, ttl: bool) -> Self {
        self.ttl = ttl;
        self
    }

    /// These capabilities, with [`Capabilities::progress_notify`] set to `progress_notify`.
    pub const fn with_progress_notify(mut self, progress_notify: bool) -> Self {
        self.progress_notify = progress_notify;
        self
    }

    /// These capabilities, with [`Capabilities::compaction`] set to `compaction`.
    pub const fn with_compaction(mut self, compaction: bool) -> Self {
        self.compaction = compaction;
        self
    }

    /// These capabilities, with [`Capabilities::atomic_batches`] set to `atomic_batches`.
    pub const fn with_atomic_batches(mut self, atomic_batches: bool) -> Self {
        self.atomic_batches = atomic_batches;
        self
    }

    /// These capabilities, with [`Capabilities::progress_requests`] set to `progress_requests`.
    pub const fn with_progress_requests(mut self, progress_requests: bool) -> Self {
        self.progress_requests = progress_requests;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Capabilities;

    #[test]
    fn the_default_claims_nothing() {
        assert_eq!(Capabilities::default(), Capabilities::none());
        assert_eq!(
            Capabilities::none()
                .with_ttl(true)
                .with_progress_notify(true)
                .with_compaction(true)
                .with_progress_requests(true)
                .with_atomic_batches(true),
            Capabilities::all()
        );
        assert!(!Capabilities::all().with_compaction(false).compaction);
    }
}
