//! A scripted store for the unit tests of the layers in this crate.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::capabilities::Capabilities;
use crate::error::{Error, Result};
use crate::interface::Interface;
use crate::types::{
    DeleteResponse, GetResponse, Precondition, RangeRequest, RangeResponse, Revision, Ttl,
    WatchRequest, WatchStream,
};

/// What [`Fake::capabilities`] reports: neither the default nor everything, so forwarding shows.
pub(crate) const FAKE_CAPABILITIES: Capabilities = Capabilities::none().with_compaction(true);

/// Answers every call at once with a fixed result, except for a few magic keys: `/fail` makes
/// `create` fail with `AlreadyExists`, `/slow` makes `get` take 20ms and `/hang` never finish.
/// `delete` always fails with `NotFound`.
#[derive(Debug, Default)]
pub(crate) struct Fake;

#[async_trait]
impl Interface for Fake {
    async fn create(&self, key: &str, _value: Bytes, _ttl: Ttl) -> Result<Revision> {
        if key == "/fail" {
            return Err(Error::AlreadyExists { key: key.into() });
        }
        Ok(1)
    }

    async fn update(
        &self,
        _key: &str,
        _value: Bytes,
        _precondition: Precondition,
        _ttl: Ttl,
    ) -> Result<Revision> {
        Ok(2)
    }

    async fn delete(&self, key: &str, _precondition: Precondition) -> Result<DeleteResponse> {
        Err(Error::NotFound { key: key.into() })
    }

    async fn get(&self, key: &str, _revision: Option<Revision>) -> Result<GetResponse> {
        match key {
            "/slow" => tokio::time::sleep(Duration::from_millis(20)).await,
            "/hang" => futures::future::pending::<()>().await,
            _ => {}
        }
        Ok(GetResponse {
            revision: 3,
            kv: None,
        })
    }

    async fn range(&self, _request: RangeRequest) -> Result<RangeResponse> {
        Ok(RangeResponse {
            revision: 4,
            ..RangeResponse::default()
        })
    }

    async fn watch(&self, _request: WatchRequest) -> Result<WatchStream> {
        Ok(Box::pin(futures::stream::empty()))
    }

    async fn compact(&self, _revision: Revision) -> Result<()> {
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(5)
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        Ok(6)
    }

    async fn ready(&self) -> Result<()> {
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        FAKE_CAPABILITIES
    }
}
