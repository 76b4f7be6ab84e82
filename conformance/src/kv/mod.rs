//! Cases for the byte-level KV contract of `storage_api::Interface`.

mod basic;
mod batch;
mod compaction;
mod concurrency;
mod layers;
mod range;
mod ttl;
mod watch;

use std::sync::Arc;

use storage_api::Interface;

use crate::runner::Case;

/// The store a case gets.
pub(crate) type Store = Arc<dyn Interface>;

pub(crate) fn cases() -> Vec<Case> {
    let mut all = Vec::new();
    all.extend(basic::cases());
    all.extend(batch::cases());
    all.extend(range::cases());
    all.extend(watch::cases());
    all.extend(ttl::cases());
    all.extend(compaction::cases());
    all.extend(concurrency::cases());
    all.extend(layers::cases());
    all
}
