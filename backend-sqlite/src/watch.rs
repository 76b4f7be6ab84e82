//! Watches: the shared [`storage_api::WatchHub`] fans committed events out; this module gives
//! it the log to replay what a watch missed before it registered.

use std::sync::Arc;

use async_trait::async_trait;
use storage_api::{HistoryPage, HistoryRead, Result, WatchHistory};

use crate::reader::{self, ReaderPool};

/// The `log` table as a watch history, read on the reader pool.
pub(crate) struct LogHistory {
    pub(crate) readers: Arc<ReaderPool>,
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
        let filter = read.filter.clone();
        self.readers
            .read(move |tx| reader::history(tx, &filter, after, until, budget as u64))
            .await
    }
}
