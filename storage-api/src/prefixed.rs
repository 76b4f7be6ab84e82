//! A layer that gives one user of a shared store its own key space.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::batch::BatchWrite;
use crate::capabilities::Capabilities;
use crate::error::{Error, Result};
use crate::interface::Interface;
use crate::types::{
    DeleteResponse, GetResponse, KeyValue, Precondition, RangeRequest, RangeResponse, Revision,
    Ttl, WatchEvent, WatchRequest, WatchStream,
};

/// Wraps a store so that every key is stored under `prefix`, and hides the prefix in results.
///
/// Several users (API servers, tests, tenants) can share one backend this way. Revisions stay
/// global to the inner store: a write through one `Prefixed` moves every user's revision, as it
/// does in etcd. Compaction is global too.
#[derive(Clone, Debug)]
pub struct Prefixed {
    inner: Arc<dyn Interface>,
    prefix: String,
}

impl Prefixed {
    /// Wraps `inner`, storing every key under `prefix` (for example `/tenant-a`). The prefix must
    /// not end with `/` when the keys passed in start with one, or keys would contain `//`.
    pub fn new(inner: Arc<dyn Interface>, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        crate::key::validate_prefix(&prefix)?;
        Ok(Prefixed { inner, prefix })
    }

    /// The prefix this layer adds.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn outer_key(&self, key: &str) -> Result<String> {
        crate::key::validate_key(key)?;
        Ok(format!("{}{}", self.prefix, key))
    }

    fn strip(&self, mut kv: KeyValue) -> Result<KeyValue> {
        kv.key = strip_prefix(&self.prefix, kv.key)?;
        Ok(kv)
    }
}

fn strip_prefix(prefix: &str, key: String) -> Result<String> {
    match key.strip_prefix(prefix) {
        Some(inner) => Ok(inner.to_owned()),
        None => Err(Error::internal(format!(
            "key {key:?} returned by the inner store lacks the prefix {prefix:?}"
        ))),
    }
}

fn strip_event(prefix: &str, event: WatchEvent) -> Result<WatchEvent> {
    Ok(match event {
        WatchEvent::Put { mut kv, prev } => {
            kv.key = strip_prefix(prefix, kv.key)?;
            let prev = match prev {
                Some(mut p) => {
                    p.key = strip_prefix(prefix, p.key)?;
                    Some(p)
                }
                None => None,
            };
            WatchEvent::Put { kv, prev }
        }
        WatchEvent::Delete {
            key,
            revision,
            mut prev,
        } => {
            prev.key = strip_prefix(prefix, prev.key)?;
            WatchEvent::Delete {
                key: strip_prefix(prefix, key)?,
                revision,
                prev,
            }
        }
        progress @ WatchEvent::Progress { .. } => progress,
    })
}

#[async_trait]
impl Interface for Prefixed {
    async fn create(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<Revision> {
        let key = self.outer_key(key)?;
        self.inner
            .create(&key, value, ttl)
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
        ttl: Ttl,
    ) -> Result<Revision> {
        let key = self.outer_key(key)?;
        self.inner
            .update(&key, value, precondition, ttl)
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<DeleteResponse> {
        let key = self.outer_key(key)?;
        let response = self
            .inner
            .delete(&key, precondition)
            .await
            .map_err(|e| self.strip_error(e))?;
        Ok(DeleteResponse {
            revision: response.revision,
            prev: self.strip(response.prev)?,
        })
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        let key = self.outer_key(key)?;
        let response = self
            .inner
            .get(&key, revision)
            .await
            .map_err(|e| self.strip_error(e))?;
        Ok(GetResponse {
            revision: response.revision,
            kv: response.kv.map(|kv| self.strip(kv)).transpose()?,
        })
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        crate::key::validate_prefix(&request.prefix)?;
        let request = RangeRequest {
            prefix: format!("{}{}", self.prefix, request.prefix),
            start: request.start.map(|s| format!("{}{}", self.prefix, s)),
            ..request
        };
        let response = self.inner.range(request).await?;
        Ok(RangeResponse {
            kvs: response
                .kvs
                .into_iter()
                .map(|kv| self.strip(kv))
                .collect::<Result<_>>()?,
            ..response
        })
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        if request.prefix {
            crate::key::validate_prefix(&request.key)?;
        } else {
            crate::key::validate_key(&request.key)?;
        }
        let request = WatchRequest {
            key: format!("{}{}", self.prefix, request.key),
            ..request
        };
        let inner = self.inner.watch(request).await?;
        let prefix = self.prefix.clone();
        Ok(Box::pin(inner.map(move |item| {
            item.and_then(|event| strip_event(&prefix, event))
        })))
    }

    async fn write_batch(&self, writes: Vec<BatchWrite>) -> Result<Revision> {
        let writes = writes
            .into_iter()
            .map(|write| {
                Ok(match write {
                    BatchWrite::Put { key, value, expect } => BatchWrite::Put {
                        key: self.outer_key(&key)?,
                        value,
                        expect,
                    },
                    BatchWrite::Delete { key, mod_revision } => BatchWrite::Delete {
                        key: self.outer_key(&key)?,
                        mod_revision,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.inner
            .write_batch(writes)
            .await
            .map_err(|e| self.strip_error(e))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.compacted_revision().await
    }

    async fn ready(&self) -> Result<()> {
        self.inner.ready().await
    }

    async fn request_progress(&self) -> Result<()> {
        self.inner.request_progress().await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

impl Prefixed {
    fn strip_error(&self, error: Error) -> Error {
        match error {
            Error::NotFound { key } => Error::NotFound {
                key: strip_or_keep(&self.prefix, key),
            },
            Error::AlreadyExists { key } => Error::AlreadyExists {
                key: strip_or_keep(&self.prefix, key),
            },
            Error::Conflict {
                key,
                expected,
                mut current,
            } => {
                current.key = strip_or_keep(&self.prefix, std::mem::take(&mut current.key));
                Error::Conflict {
                    key: strip_or_keep(&self.prefix, key),
                    expected,
                    current,
                }
            }
            other => other,
        }
    }
}

fn strip_or_keep(prefix: &str, key: String) -> String {
    match key.strip_prefix(prefix) {
        Some(inner) => inner.to_owned(),
        None => key,
    }
}
