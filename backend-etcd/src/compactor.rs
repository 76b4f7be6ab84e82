//! The periodic compactor several API servers sharing one etcd can run at once
//! (kube-apiserver's `staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go`, `compactor`
//! and `compact`).
//!
//! Every interval each compactor does one transaction on the dedicated key: if the key's
//! *version* is still the one it saw last time, it writes the current revision into it (which
//! bumps the key's version and the global revision by one) and compacts to the revision it
//! recorded on the previous round, so history is always kept for at least one interval.
//! Otherwise another server won the round: the compactor adopts the key's version and the
//! current revision and tries again next interval. So in each interval at most one server
//! compacts.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

/// Runs until the task is aborted (the store is dropped) or its runtime ends.
pub(crate) async fn run(client: Client, key: String, interval: Duration, timeout: Duration) {
    let mut version = 0;
    let mut revision = 0;
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(timeout, round(&client, &key, version, revision)).await {
            Ok(Ok((next_version, next_revision))) => {
                version = next_version;
                revision = next_revision;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "etcd compaction round failed"),
            Err(_) => tracing::warn!(?timeout, "etcd compaction round timed out"),
        }
    }
}

/// One round: returns the key version and revision to use next time.
pub(crate) async fn round(
    client: &Client,
    key: &str,
    version: i64,
    revision: i64,
) -> Result<(i64, i64), etcd_client::Error> {
    let mut kv = client.kv_client();
    let txn = Txn::new()
        .when([Compare::version(key, CompareOp::Equal, version)])
        .and_then([TxnOp::put(key, revision.to_string(), None)])
        .or_else([TxnOp::get(key, None)]);
    let response = kv.txn(txn).await?;
    let current = response.header().map(|h| h.revision()).unwrap_or(0);
    if !response.succeeded() {
        let seen = match response.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(get)) => get.kvs().first().map(|kv| kv.version()),
            _ => None,
        };
        tracing::debug!(?seen, "another server compacts this round");
        return Ok((seen.unwrap_or(0), current));
    }
    let next_version = version + 1;
    if revision == 0 {
        // The first round only records a revision: nothing was kept for an interval yet.
        return Ok((next_version, current));
    }
    kv.compact(revision, None).await?;
    tracing::info!(revision, "compacted etcd history");
    Ok((next_version, current))
}
