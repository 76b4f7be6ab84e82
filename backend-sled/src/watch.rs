//! Watches: the shared [`storage_api::WatchHub`] fans committed events out; this module gives
//! it the log to replay what a watch missed before it registered.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use storage_api::{Error, HistoryPage, HistoryRead, Result, WatchHistory};

use crate::read;
use crate::store::Shared;

/// The sled log as a watch history. Weak, so that a forgotten watch stream does not keep the
/// database (and its file lock) open.
pub(crate) struct LogHistory {
    pub(crate) shared: Weak<Shared>,
}

#[async_trait]
impl WatchHistory for LogHistory {
    async fn read(&self, read: HistoryRead<'_>) -> Result<HistoryPage> {
        let HistoryRead {
            after,
            until,
            budget,
            ..
        } = read;
        let shared: Arc<Shared> = self
            .shared
            .upgrade()
            .ok_or_else(|| Error::unavailable("the sled store was closed"))?;
        let filter = read.filter.clone();
        let (events, scanned_to) = tokio::task::spawn_blocking(move || {
            read::events(&shared, &filter, after, until, budget)
        })
        .await
        .map_err(|e| Error::internal_from("sled watch history read failed", e))??;
        Ok(HistoryPage { events, scanned_to })
    }
}
