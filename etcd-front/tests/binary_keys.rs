//! Keys are arbitrary bytes in etcd. The same binary keys (NUL, `\x01`, `.`, `/`, bytes above
//! `0x7f`) are written to a real etcd and to the front over SQLite, then the same ranges,
//! ranged deletes and ranged watches are asked of both: keys, values, versions, counts and
//! `more` must be identical (revisions differ: etcd starts at 1).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backend_etcd::testing::EtcdCluster;
use etcd_client::{Client, DeleteOptions, GetOptions, SortOrder, SortTarget, WatchOptions};
use etcd_front::{EtcdFront, FrontOptions};

/// Bytes the key encoding treats specially, and ordinary ones around them.
const ALPHABET: [u8; 9] = [0x00, 0x01, 0x02, b'-', b'.', b'/', b'a', 0x7f, 0xff];

/// A small deterministic generator (no seed to manage, the same keys every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn key(&mut self, max_len: u64) -> Vec<u8> {
        let len = 1 + self.next() % max_len;
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize])
            .collect()
    }
}

/// What a range returned, without revisions.
type Seen = (Vec<(Vec<u8>, Vec<u8>, i64)>, i64, bool);

async fn range(client: &mut Client, key: &[u8], options: GetOptions) -> Seen {
    let response = client.get(key, Some(options)).await.unwrap();
    (
        response
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.version()))
            .collect(),
        response.count(),
        response.more(),
    )
}

async fn start_front() -> String {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let store = storage::open(&url).await.unwrap();
    let front = EtcdFront::new(store, FrontOptions::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _dir = dir;
        front
            .serve(
                tonic::transport::Server::builder(),
                listener,
                std::future::pending(),
            )
            .await
    });
    endpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_keys_behave_as_in_etcd() {
    let etcd = EtcdCluster::start_single().unwrap();
    let mut etcd = Client::connect(etcd.endpoints(), None).await.unwrap();
    let mut front = Client::connect([start_front().await], None).await.unwrap();

    let mut lcg = Lcg(7);
    let mut keys: Vec<Vec<u8>> = (0..300).map(|_| lcg.key(5)).collect();
    keys.push(vec![0]);
    keys.push(vec![0xff; 4]);
    keys.push(b"/a/../b".to_vec());
    for (i, key) in keys.iter().enumerate() {
        let value = format!("v{}", i % 7);
        etcd.put(key.clone(), value.clone(), None).await.unwrap();
        front.put(key.clone(), value, None).await.unwrap();
    }

    let mut asked = 0;
    for _ in 0..150 {
        let key = lcg.key(3);
        let end = match lcg.next() % 4 {
            0 => Vec::new(),
            1 => vec![0],
            _ => lcg.key(3),
        };
        let limit = [0, 1, 3, 50][(lcg.next() % 4) as usize];
        let build = || {
            let mut options = GetOptions::new().with_limit(limit);
            if !end.is_empty() {
                options = options.with_range(end.clone());
            }
            match lcg_choice(&key, &end) {
                0 => options,
                1 => options.with_keys_only(),
                2 => options.with_count_only(),
                _ => options.with_sort(SortTarget::Key, SortOrder::Descend),
            }
        };
        let want = range(&mut etcd, &key, build()).await;
        let got = range(&mut front, &key, build()).await;
        assert_eq!(got, want, "range {key:?}..{end:?} limit {limit}");
        asked += 1;
    }
    for prefix in [
        vec![0u8],
        vec![0x01],
        vec![b'.'],
        vec![0xff],
        vec![b'/', b'a'],
    ] {
        let options = || GetOptions::new().with_prefix();
        let want = range(&mut etcd, &prefix, options()).await;
        let got = range(&mut front, &prefix, options()).await;
        assert_eq!(got, want, "prefix {prefix:?}");
    }

    // Watches of a binary range see the same keys; a ranged delete deletes the same ones.
    let (from, to) = (vec![0x01u8], vec![b'a']);
    let watch_options = || WatchOptions::new().with_range(to.clone()).with_prev_key();
    let mut etcd_watch = etcd
        .watch(from.clone(), Some(watch_options()))
        .await
        .unwrap();
    let mut front_watch = front
        .watch(from.clone(), Some(watch_options()))
        .await
        .unwrap();
    let delete = || DeleteOptions::new().with_range(to.clone()).with_prev_key();
    let want = etcd.delete(from.clone(), Some(delete())).await.unwrap();
    let got = front.delete(from.clone(), Some(delete())).await.unwrap();
    assert_eq!(got.deleted(), want.deleted());
    let prev = |r: &etcd_client::DeleteResponse| -> Vec<Vec<u8>> {
        r.prev_kvs().iter().map(|kv| kv.key().to_vec()).collect()
    };
    assert_eq!(prev(&got), prev(&want));
    async fn deleted_keys(watch: &mut etcd_client::WatchStream, n: i64) -> Vec<Vec<u8>> {
        let mut seen = Vec::new();
        while (seen.len() as i64) < n {
            let response = tokio::time::timeout(Duration::from_secs(10), watch.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            seen.extend(
                response
                    .events()
                    .iter()
                    .map(|e| e.kv().unwrap().key().to_vec()),
            );
        }
        seen
    }
    let want_events = deleted_keys(&mut etcd_watch, want.deleted()).await;
    let got_events = deleted_keys(&mut front_watch, got.deleted()).await;
    assert_eq!(got_events, want_events);
    let all = || GetOptions::new().with_from_key();
    assert_eq!(
        range(&mut front, &[0], all()).await,
        range(&mut etcd, &[0], all()).await
    );
    assert!(asked > 100 && want.deleted() > 0);
}

/// Varies the read options with the range, deterministically.
fn lcg_choice(key: &[u8], end: &[u8]) -> usize {
    (key.iter()
        .chain(end)
        .map(|&b| usize::from(b))
        .sum::<usize>())
        % 4
}
