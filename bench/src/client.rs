//! The operations workloads issue, implemented once per level: the byte-level `Interface`, the
//! object-level `Storage<Pod>` (module `object`) and the raw etcd-client baseline.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use storage_api::{Interface, Precondition, RangeRequest, Revision, WatchEvent, WatchRequest};

/// One event as a watcher of the workload sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The event's revision.
    pub revision: Revision,
    /// The writer's stamp ([`crate::stats::now_stamp`] when the write started).
    pub stamp: u64,
}

/// A stream of watch events; an `Err` item ends it.
pub type SeenStream = BoxStream<'static, Result<Seen>>;

/// A watch or read asked for a revision the store has compacted (HTTP 410 Gone): the caller
/// lists again and watches from there, as a Kubernetes reflector does.
#[derive(Debug)]
pub struct Expired(pub String);

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "expired: {}", self.0)
    }
}

impl std::error::Error for Expired {}

/// Whether `error` is [`Expired`].
pub fn is_expired(error: &anyhow::Error) -> bool {
    error.downcast_ref::<Expired>().is_some()
}

/// `error` as [`Expired`] when the store reports a compacted revision, else as it is.
fn expired_if_compacted(error: storage_api::Error) -> anyhow::Error {
    match error {
        storage_api::Error::Compacted { .. } => anyhow::Error::new(Expired(error.to_string())),
        other => anyhow::Error::from(other),
    }
}

/// What the workloads need from a level of the stack. Keys are short names (`k00000042`); each
/// client places them under its own prefix.
#[async_trait]
pub trait Client: Send + Sync + 'static {
    /// What a client remembers about a key to CAS-update it: a revision, or the last object.
    type Version: Send + Sync + Clone + 'static;

    /// The revision of the write that produced `version`.
    fn revision(version: &Self::Version) -> Revision;

    /// Creates `name` with a value carrying `stamp`.
    async fn create(&self, name: &str, stamp: u64) -> Result<Self::Version>;

    /// Updates `name` if it is still at `version` (compare-and-swap on its revision).
    async fn update(
        &self,
        name: &str,
        version: &Self::Version,
        stamp: u64,
    ) -> Result<Self::Version>;

    /// Deletes `name` if it is still at `version`; returns the revision of the delete when the
    /// level reports it (over HTTP a ConfigMap's DELETE answers a Status without it, as
    /// upstream's does).
    async fn delete(&self, name: &str, version: &Self::Version) -> Result<Option<Revision>>;

    /// Reads `name` at the latest revision.
    async fn get(&self, name: &str) -> Result<()>;

    /// Lists every key, `page_size` per request (0: one request), at the latest revision or an
    /// exact past one, as a consistent snapshot. Returns how many keys it saw.
    async fn list(&self, page_size: u64, revision: Option<Revision>) -> Result<usize>;

    /// Watches every key, from just after `after`, which must be the revision of a write
    /// (at the object and HTTP levels resourceVersion 0 means "the current state, then
    /// changes": ADDED events in key order, not events after revision 0). A compacted `after`
    /// is an [`Expired`] error, when the watch starts or as the stream's item.
    async fn watch(&self, after: Revision) -> Result<SeenStream>;

    /// The store's current revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Discards history before `revision` (an already compacted revision is not an error).
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// A value of `size` bytes (at least 8) starting with `stamp`.
pub fn stamped_value(stamp: u64, size: usize) -> Bytes {
    let mut value = BytesMut::with_capacity(size.max(8));
    value.put_u64_le(stamp);
    value.resize(size.max(8), b'x');
    value.freeze()
}

/// The stamp at the start of a value written by [`stamped_value`] (0 if too short).
pub fn value_stamp(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// The byte-level `Interface`, keys under `prefix`.
#[derive(Debug)]
pub struct KvClient {
    store: Arc<dyn Interface>,
    prefix: String,
    value_size: usize,
}

impl KvClient {
    /// A client writing `value_size`-byte values under `prefix` (which ends with `/`).
    pub fn new(store: Arc<dyn Interface>, prefix: String, value_size: usize) -> Self {
        KvClient {
            store,
            prefix,
            value_size,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

#[async_trait]
impl Client for KvClient {
    type Version = Revision;

    fn revision(version: &Revision) -> Revision {
        *version
    }

    async fn create(&self, name: &str, stamp: u64) -> Result<Revision> {
        Ok(self
            .store
            .create(&self.key(name), stamped_value(stamp, self.value_size), None)
            .await?)
    }

    async fn update(&self, name: &str, version: &Revision, stamp: u64) -> Result<Revision> {
        Ok(self
            .store
            .update(
                &self.key(name),
                stamped_value(stamp, self.value_size),
                Precondition::ModRevision(*version),
                None,
            )
            .await?)
    }

    async fn delete(&self, name: &str, version: &Revision) -> Result<Option<Revision>> {
        let deleted = self
            .store
            .delete(&self.key(name), Precondition::ModRevision(*version))
            .await?;
        Ok(Some(deleted.revision))
    }

    async fn get(&self, name: &str) -> Result<()> {
        let response = self.store.get(&self.key(name), None).await?;
        if response.kv.is_none() {
            bail!("key {name} not found");
        }
        Ok(())
    }

    async fn list(&self, page_size: u64, revision: Option<Revision>) -> Result<usize> {
        let mut request = RangeRequest::prefix(self.prefix.clone());
        request.revision = revision;
        if page_size > 0 {
            request.limit = Some(page_size);
        }
        let mut seen = 0;
        loop {
            let response = self.store.range(request.clone()).await?;
            seen += response.kvs.len();
            if !response.more {
                return Ok(seen);
            }
            let Some(last) = response.kvs.last() else {
                bail!("range reported more keys but returned none");
            };
            // Later pages read the snapshot of the first one, as a continue token does.
            request.revision = Some(response.revision);
            request.start = Some(format!("{}\0", last.key));
        }
    }

    async fn watch(&self, after: Revision) -> Result<SeenStream> {
        let stream = self
            .store
            .watch(WatchRequest::prefix(self.prefix.clone()).after(after))
            .await
            .map_err(expired_if_compacted)?;
        Ok(stream
            .filter_map(|event| async move {
                match event {
                    Ok(WatchEvent::Put { kv, .. }) => Some(Ok(Seen {
                        revision: kv.mod_revision,
                        stamp: value_stamp(&kv.value),
                    })),
                    Ok(WatchEvent::Delete { revision, .. }) => {
                        Some(Ok(Seen { revision, stamp: 0 }))
                    }
                    Ok(WatchEvent::Progress { .. }) => None,
                    Err(error) => Some(Err(expired_if_compacted(error))),
                }
            })
            .boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.store.current_revision().await?)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.store.compact(revision).await {
            Ok(()) | Err(storage_api::Error::Compacted { .. }) => Ok(()),
            Err(error) => Err(error).context("compact"),
        }
    }
}

/// The raw `etcd-client` baseline: the etcd backend's create and update transactions, issued
/// directly on a client connected to the same etcd, keys under the same layout.
#[cfg(feature = "etcd")]
#[derive(Clone)]
pub struct EtcdRawClient {
    client: etcd_client::Client,
    prefix: String,
    value_size: usize,
}

#[cfg(feature = "etcd")]
impl std::fmt::Debug for EtcdRawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdRawClient")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "etcd")]
impl EtcdRawClient {
    /// Connects to `endpoints`; keys go under `prefix` (the full etcd key prefix).
    pub async fn connect(endpoints: &[String], prefix: String, value_size: usize) -> Result<Self> {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(2))
            .with_require_leader(true);
        let client = etcd_client::Client::connect(endpoints, Some(options))
            .await
            .context("connecting the raw etcd client")?;
        Ok(EtcdRawClient {
            client,
            prefix,
            value_size,
        })
    }

    fn key(&self, name: &str) -> Vec<u8> {
        format!("{}{name}", self.prefix).into_bytes()
    }
}

#[cfg(feature = "etcd")]
fn txn_revision(response: &etcd_client::TxnResponse) -> Result<Revision> {
    if !response.succeeded() {
        bail!("etcd transaction compare failed");
    }
    let revision = response
        .header()
        .map(etcd_client::ResponseHeader::revision)
        .context("etcd response without header")?;
    Ok(u64::try_from(revision).unwrap_or(0))
}

#[cfg(feature = "etcd")]
#[async_trait]
impl Client for EtcdRawClient {
    type Version = Revision;

    fn revision(version: &Revision) -> Revision {
        *version
    }

    async fn create(&self, name: &str, stamp: u64) -> Result<Revision> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
        let key = self.key(name);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                stamped_value(stamp, self.value_size).to_vec(),
                None,
            )]);
        let response = self.client.kv_client().txn(txn).await?;
        txn_revision(&response)
    }

    async fn update(&self, name: &str, version: &Revision, stamp: u64) -> Result<Revision> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
        let key = self.key(name);
        let expected = i64::try_from(*version).unwrap_or(-1);
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(key.clone(), CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(
                key.clone(),
                stamped_value(stamp, self.value_size).to_vec(),
                None,
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.client.kv_client().txn(txn).await?;
        txn_revision(&response)
    }

    async fn get(&self, _name: &str) -> Result<()> {
        bail!("the raw etcd baseline measures writes only")
    }

    async fn list(&self, _page_size: u64, _revision: Option<Revision>) -> Result<usize> {
        bail!("the raw etcd baseline measures writes only")
    }

    async fn delete(&self, _name: &str, _version: &Revision) -> Result<Option<Revision>> {
        bail!("the raw etcd baseline measures creates and updates only")
    }

    async fn watch(&self, _after: Revision) -> Result<SeenStream> {
        bail!("the raw etcd baseline measures writes only")
    }

    async fn current_revision(&self) -> Result<Revision> {
        let response = self
            .client
            .kv_client()
            .get(
                self.key(""),
                Some(etcd_client::GetOptions::new().with_count_only()),
            )
            .await?;
        let revision = response
            .header()
            .map(etcd_client::ResponseHeader::revision)
            .context("etcd response without header")?;
        Ok(u64::try_from(revision).unwrap_or(0))
    }

    async fn compact(&self, _revision: Revision) -> Result<()> {
        bail!("the raw etcd baseline measures writes only")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let value = stamped_value(123_456, 64);
        assert_eq!(value.len(), 64);
        assert_eq!(value_stamp(&value), 123_456);
        assert_eq!(stamped_value(1, 0).len(), 8);
        assert_eq!(value_stamp(b"abc"), 0);
    }
}
