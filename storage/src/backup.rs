//! Backups: every key of a store at one revision, in a portable file, taken while the store
//! serves writes; and a new durable store made from such a file.
//!
//! A backup is read through the storage contract (a range at one revision, page by page), so
//! any backend can be backed up, and it holds the keys as the contract returns them: key,
//! value, `create_revision` and `mod_revision`. The file, all integers big-endian:
//!
//! ```text
//! "KSBACKUP" | format 1 (u8) | revision (u64)
//! record*:  1 (u8) | key length (u32) | key | value length (u32) | value
//!                  | create_revision (u64) | mod_revision (u64)
//! trailer:  0 (u8) | record count (u64) | SHA-256 of every byte before it
//! ```
//!
//! [`restore`] writes the records into a new SQLite or sled store and then moves the store's
//! revision far past the backup's and marks everything before it compacted (etcd's
//! `snapshot restore --bump-revision --mark-compacted`): clients that watched or read the old
//! server at any revision get 410 Gone and list again, instead of resuming into a history that
//! is not theirs. Keys get new revisions in the order of their old ones.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use storage_api::{
    BatchBuffer, BatchWrite, Error, Expect, Interface, KeyValue, RangeRequest, Result, Revision,
    Ttl,
};

/// The first bytes of a backup.
pub const MAGIC: &[u8; 8] = b"KSBACKUP";
const FORMAT: u8 = 1;
const RECORD: u8 = 1;
const TRAILER: u8 = 0;
const HASH_LEN: usize = 32;
/// Keys read per page while a backup is taken.
const PAGE: u64 = 500;
/// How far past the backup's revision a restored store starts, as etcd's documentation
/// suggests for `--bump-revision`: more writes than any server makes between a backup and
/// its restore.
pub const REVISION_BUMP: Revision = 1_000_000_000;
/// Largest revision a backup may carry: a restored store starts [`REVISION_BUMP`] past it,
/// and revisions are signed 64-bit numbers in etcd and SQLite.
const MAX_REVISION: Revision = i64::MAX as u64 - REVISION_BUMP;
/// Largest key a backup may hold (the contract's keys are far shorter).
const MAX_KEY: u32 = 1 << 16;
/// A restore writes batches of at most this many bytes or [`BATCH_WRITES`] writes.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_WRITES: usize = 128;

/// Encodes a backup piece by piece, hashing as it goes.
struct Encoder {
    digest: ring::digest::Context,
    count: u64,
}

impl Encoder {
    fn new(revision: Revision) -> (Encoder, Bytes) {
        let mut header = BytesMut::with_capacity(17);
        header.put_slice(MAGIC);
        header.put_u8(FORMAT);
        header.put_u64(revision);
        let mut encoder = Encoder {
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            count: 0,
        };
        encoder.digest.update(&header);
        (encoder, header.freeze())
    }

    fn records(&mut self, kvs: &[KeyValue]) -> Result<Bytes> {
        let mut out = BytesMut::new();
        for kv in kvs {
            let too_large = || Error::internal(format!("key {:?} is too large to back up", kv.key));
            let key_len = u32::try_from(kv.key.len()).map_err(|_| too_large())?;
            let value_len = u32::try_from(kv.value.len()).map_err(|_| too_large())?;
            out.put_u8(RECORD);
            out.put_u32(key_len);
            out.put_slice(kv.key.as_bytes());
            out.put_u32(value_len);
            out.put_slice(&kv.value);
            out.put_u64(kv.create_revision);
            out.put_u64(kv.mod_revision);
            self.count += 1;
        }
        self.digest.update(&out);
        Ok(out.freeze())
    }

    fn trailer(mut self) -> Bytes {
        let mut out = BytesMut::with_capacity(9 + HASH_LEN);
        out.put_u8(TRAILER);
        out.put_u64(self.count);
        self.digest.update(&out);
        out.put_slice(self.digest.finish().as_ref());
        out.freeze()
    }
}

/// A backup of every key of `store` under `prefix` (`""` for all), at the latest revision,
/// as a stream of file pieces. The keys are read page by page at one revision while writes
/// go on; a read error ends the stream with that error, leaving a file whose trailer is
/// missing, which [`verify`] and [`restore`] refuse.
pub fn backup(
    store: Arc<dyn Interface>,
    prefix: String,
) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
    backup_in_pages(store, prefix, PAGE)
}

fn backup_in_pages(
    store: Arc<dyn Interface>,
    prefix: String,
    page_size: u64,
) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
    /// Where the backup stands between pages.
    struct Progress {
        /// `None` before the first page, which fixes the revision.
        encoder: Option<Encoder>,
        request: RangeRequest,
    }
    let start = Progress {
        encoder: None,
        request: RangeRequest::prefix(prefix).limit(page_size),
    };
    futures::stream::unfold(Some(start), move |progress| {
        let store = store.clone();
        async move {
            let Progress { encoder, request } = progress?;
            let page = match store.range(request.clone()).await {
                Ok(page) => page,
                Err(error) => {
                    // The stream ends without a trailer, which the reader refuses; the reason
                    // is only here.
                    if let Error::Compacted { requested, .. } = &error {
                        tracing::warn!(
                            %error,
                            "the store compacted past the backup's revision {requested} before \
                             the backup was read whole: retry it, or keep more history"
                        );
                    } else {
                        tracing::warn!(%error, "the backup stopped");
                    }
                    return Some((Err(error), None));
                }
            };
            let mut out = BytesMut::new();
            let mut encoder = encoder.unwrap_or_else(|| {
                let (encoder, header) = Encoder::new(page.revision);
                tracing::info!(revision = page.revision, "backup started");
                out.extend_from_slice(&header);
                encoder
            });
            match encoder.records(&page.kvs) {
                Ok(records) => out.extend_from_slice(&records),
                Err(error) => return Some((Err(error), None)),
            }
            let next = match page.kvs.last() {
                Some(last) if page.more => Some(Progress {
                    encoder: Some(encoder),
                    request: request.start(format!("{}\0", last.key)).at(page.revision),
                }),
                _ => {
                    tracing::info!(
                        revision = page.revision,
                        keys = encoder.count,
                        "backup done"
                    );
                    out.extend_from_slice(&encoder.trailer());
                    None
                }
            };
            Some((Ok(out.freeze()), next))
        }
    })
}

/// What a backup file holds, as [`verify`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// The revision the keys were read at.
    pub revision: Revision,
    /// How many keys it holds.
    pub keys: u64,
}

/// Reads a backup record by record, checking its hash at the end.
pub struct BackupReader<R> {
    input: R,
    digest: ring::digest::Context,
    count: u64,
    revision: Revision,
    /// Keys come in ascending order, as a range returns them.
    previous_key: Option<String>,
    ended: bool,
}

impl<R: Read> BackupReader<R> {
    /// Reads the header.
    pub fn new(mut input: R) -> io::Result<BackupReader<R>> {
        let mut header = [0; 17];
        input
            .read_exact(&mut header)
            .map_err(|e| eof_is_invalid(e, "the file is shorter than a backup's header"))?;
        if &header[..8] != MAGIC {
            return Err(invalid("it does not start with KSBACKUP"));
        }
        if header[8] != FORMAT {
            return Err(invalid(format!(
                "format {} (this build reads {FORMAT})",
                header[8]
            )));
        }
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        digest.update(&header);
        let revision = u64::from_be_bytes(header[9..17].try_into().unwrap_or_default());
        if revision > MAX_REVISION {
            return Err(invalid(format!(
                "revision {revision} is beyond what a store holds"
            )));
        }
        Ok(BackupReader {
            input,
            digest,
            count: 0,
            revision,
            previous_key: None,
            ended: false,
        })
    }

    /// The revision the backup was taken at.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The next key, or `None` after the trailer, whose count and hash must match.
    pub fn next_record(&mut self) -> io::Result<Option<KeyValue>> {
        if self.ended {
            return Ok(None);
        }
        match self.read_u8()? {
            RECORD => {}
            TRAILER => {
                let count = self.read_u64()?;
                let expected = self.digest.clone().finish();
                let mut hash = [0; HASH_LEN];
                self.input
                    .read_exact(&mut hash)
                    .map_err(|e| eof_is_invalid(e, "the file ends inside its trailer"))?;
                if count != self.count || hash != expected.as_ref() {
                    return Err(invalid(
                        "its SHA-256 or record count does not match its contents: it is damaged",
                    ));
                }
                let mut extra = [0; 1];
                if self.input.read(&mut extra)? != 0 {
                    return Err(invalid("bytes follow its trailer"));
                }
                self.ended = true;
                return Ok(None);
            }
            other => return Err(invalid(format!("record tag {other}"))),
        }
        let key_len = self.read_u32()?;
        if key_len > MAX_KEY {
            return Err(invalid(format!("a key of {key_len} bytes")));
        }
        let key = String::from_utf8(self.read_bytes(key_len)?)
            .map_err(|_| invalid("a key that is not UTF-8"))?;
        let value_len = self.read_u32()?;
        let value = Bytes::from(self.read_bytes(value_len)?);
        let create_revision = self.read_u64()?;
        let mod_revision = self.read_u64()?;
        // What a backup holds by construction; a file that says otherwise is refused before
        // anything is written from it.
        storage_api::validate_key(&key).map_err(|e| invalid(e.to_string()))?;
        if self
            .previous_key
            .as_ref()
            .is_some_and(|previous| *previous >= key)
        {
            return Err(invalid(format!("key {key:?} is out of order")));
        }
        if create_revision > mod_revision || mod_revision > self.revision {
            return Err(invalid(format!(
                "key {key:?} has revisions {create_revision}/{mod_revision} beyond the \
                 backup's {}",
                self.revision
            )));
        }
        self.previous_key = Some(key.clone());
        self.count += 1;
        Ok(Some(KeyValue {
            key,
            value,
            create_revision,
            mod_revision,
        }))
    }

    fn read_bytes(&mut self, len: u32) -> io::Result<Vec<u8>> {
        // Grows as bytes arrive: a damaged length cannot allocate more than the file holds.
        let mut out = Vec::new();
        (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut out)?;
        if out.len() != len as usize {
            return Err(invalid("the file ends inside a record: it is truncated"));
        }
        self.digest.update(&out);
        Ok(out)
    }

    fn read_u8(&mut self) -> io::Result<u8> {
        let mut byte = [0; 1];
        self.input
            .read_exact(&mut byte)
            .map_err(|e| eof_is_invalid(e, "the file ends before its trailer: it is truncated"))?;
        self.digest.update(&byte);
        Ok(byte[0])
    }

    fn read_u32(&mut self) -> io::Result<u32> {
        let bytes = self.read_bytes(4)?;
        Ok(u32::from_be_bytes(bytes.try_into().unwrap_or_default()))
    }

    fn read_u64(&mut self) -> io::Result<u64> {
        let bytes = self.read_bytes(8)?;
        Ok(u64::from_be_bytes(bytes.try_into().unwrap_or_default()))
    }
}

fn invalid(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

fn eof_is_invalid(error: io::Error, reason: &str) -> io::Error {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        invalid(reason)
    } else {
        error
    }
}

/// Reads the whole backup at `path` and checks its hash.
pub fn verify(path: &Path) -> Result<BackupSummary> {
    let mut reader = open_file(path)?;
    while reader
        .next_record()
        .map_err(|e| file_error(path, e))?
        .is_some()
    {}
    Ok(BackupSummary {
        revision: reader.revision,
        keys: reader.count,
    })
}

fn open_file(path: &Path) -> Result<BackupReader<io::BufReader<std::fs::File>>> {
    let file = std::fs::File::open(path).map_err(|e| file_error(path, e))?;
    BackupReader::new(io::BufReader::new(file)).map_err(|e| file_error(path, e))
}

fn file_error(path: &Path, error: io::Error) -> Error {
    if error.kind() == io::ErrorKind::InvalidData {
        Error::InvalidArgument(format!(
            "{} is not a usable backup: {error}",
            path.display()
        ))
    } else {
        Error::unavailable_from(format!("reading the backup {}", path.display()), error)
    }
}

/// What [`restore`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// Keys written.
    pub keys: u64,
    /// How many of them were given a TTL.
    pub with_ttl: u64,
    /// The revision the backup was taken at.
    pub backup_revision: Revision,
    /// The restored store's revision; every revision before it reads as compacted.
    pub revision: Revision,
}

/// Makes the store at `url` (`sqlite://` or `sled://`, which must hold no key yet) from the
/// backup at `path`: the file is verified whole first, then every key is written with the TTL
/// `ttl_for` gives it (a backup records none), in the order of its old `mod_revision`, and the
/// store's revision is set to the backup's plus [`REVISION_BUMP`] with everything before it
/// compacted. Nothing is written when the file is damaged or the store is not empty; a store
/// error part-way leaves a partial store, to be removed before trying again. The backup's
/// records are held in memory while they are sorted by revision.
pub async fn restore(url: &str, path: &Path, ttl_for: impl Fn(&str) -> Ttl) -> Result<Restored> {
    let parsed = crate::StorageUrl::parse(url)?;
    if !matches!(parsed.scheme, "sqlite" | "sled") {
        return Err(Error::InvalidArgument(format!(
            "a backup is restored into a durable store of this machine (sqlite:// or sled://), \
             not {url}"
        )));
    }
    let location = PathBuf::from(parsed.location);
    let owned = path.to_owned();
    let records = tokio::task::spawn_blocking(move || read_all(&owned))
        .await
        .map_err(|e| Error::internal(format!("the backup reader stopped: {e}")))??;
    let (backup_revision, mut kvs) = records;
    let store = crate::open(url).await?;
    let existing = store.range(RangeRequest::prefix("").limit(1)).await?;
    if let Some(kv) = existing.kvs.first() {
        return Err(Error::InvalidArgument(format!(
            "{url} already holds keys (such as {:?}); restore into a new store",
            kv.key
        )));
    }
    kvs.sort_by_key(|kv| kv.mod_revision);
    let keys = kvs.len() as u64;
    let mut with_ttl = 0;
    let batching = store.capabilities().atomic_batches;
    let mut batches = BatchBuffer::new(BATCH_WRITES, BATCH_BYTES);
    for kv in kvs {
        let ttl = ttl_for(&kv.key);
        with_ttl += u64::from(ttl.is_some());
        if ttl.is_some() || !batching {
            // Batches carry no TTL; what is batched so far goes first, to keep the order.
            batches.flush(&*store).await?;
            store.create(&kv.key, kv.value, ttl).await?;
            continue;
        }
        let write = BatchWrite::Put {
            key: kv.key,
            value: kv.value,
            expect: Expect::Absent,
        };
        batches.push(&*store, write).await?;
    }
    batches.flush(&*store).await?;
    let written = store.current_revision().await?;
    // The store must be closed before its files are changed underneath it.
    drop(store);
    let revision = backup_revision.saturating_add(REVISION_BUMP).max(written);
    let scheme = parsed.scheme.to_owned();
    let bumped = tokio::task::spawn_blocking(move || bump_revision(&scheme, &location, revision))
        .await
        .map_err(|e| Error::internal(format!("the revision bump stopped: {e}")))
        .and_then(|bumped| bumped);
    if let Err(error) = bumped {
        // The keys are in, at low revisions: served as it is, the store would reuse revision
        // numbers clients of the old server hold.
        return Err(Error::internal(format!(
            "the keys were written to {url} but its revision could not be moved past the \
             backup's ({error}); remove that store and restore again"
        )));
    }
    Ok(Restored {
        keys,
        with_ttl,
        backup_revision,
        revision,
    })
}

fn read_all(path: &Path) -> Result<(Revision, Vec<KeyValue>)> {
    let mut reader = open_file(path)?;
    let mut kvs = Vec::new();
    while let Some(kv) = reader.next_record().map_err(|e| file_error(path, e))? {
        kvs.push(kv);
    }
    Ok((reader.revision, kvs))
}

fn bump_revision(scheme: &str, location: &Path, revision: Revision) -> Result<()> {
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => backend_sqlite::bump_revision(location, revision),
        #[cfg(feature = "sled")]
        "sled" => backend_sled::bump_revision(location, revision),
        other => {
            let _ = (location, revision);
            Err(Error::InvalidArgument(format!(
                "this build cannot restore into {other}://"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use storage_api::InterfaceExt;

    async fn backup_bytes(store: Arc<dyn Interface>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stream = Box::pin(backup(store, String::new()));
        while let Some(piece) = stream.next().await {
            out.extend_from_slice(&piece.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn backups_read_back_and_damage_is_refused() {
        let store = crate::open("memory://").await.unwrap();
        for i in 0..1_234 {
            store
                .create(&format!("/k/{i:05}"), Bytes::from(vec![7; i % 50]), None)
                .await
                .unwrap();
        }
        let bytes = backup_bytes(store.clone()).await;
        let mut reader = BackupReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.revision(), 1_234);
        let mut read = Vec::new();
        while let Some(kv) = reader.next_record().unwrap() {
            read.push(kv);
        }
        assert_eq!(read, store.list_all("").await.unwrap().1);

        // Any flipped byte, any truncation and anything appended is an error, never a panic.
        let small = crate::open("memory://").await.unwrap();
        for i in 0..40 {
            small
                .create(&format!("/s/{i:02}"), Bytes::from(vec![b'x'; i]), None)
                .await
                .unwrap();
        }
        let bytes = backup_bytes(small).await;
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(
                read_to_end(&damaged).is_err(),
                "flipping byte {at} went unnoticed"
            );
            assert!(
                read_to_end(&bytes[..at]).is_err(),
                "truncation at {at} went unnoticed"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_to_end(&longer).is_err());
    }

    /// Pages read while writes, updates and deletes land between them still hold exactly
    /// the keys of the first page's revision.
    #[tokio::test]
    async fn pages_read_under_writes_hold_one_revision() {
        let store = crate::open("memory://").await.unwrap();
        for i in 0..200 {
            store
                .create(&format!("/k/{i:03}"), Bytes::from("0"), None)
                .await
                .unwrap();
        }
        let mut stream = Box::pin(backup_in_pages(store.clone(), String::new(), 7));
        let mut bytes = Vec::new();
        let mut round = 0;
        while let Some(piece) = stream.next().await {
            bytes.extend_from_slice(&piece.unwrap());
            round += 1;
            let updated = format!("/k/{:03}", (round * 13) % 200);
            let deleted = format!("/k/{:03}", (round * 29) % 200);
            let any = storage_api::Precondition::None;
            let _ = store.update(&updated, Bytes::from("u"), any, None).await;
            let _ = store.delete(&deleted, any).await;
            let new = format!("/new/{round}");
            store.create(&new, Bytes::from("n"), None).await.unwrap();
        }
        assert!(round > 20, "{round} pieces");
        let mut reader = BackupReader::new(&bytes[..]).unwrap();
        let revision = reader.revision();
        let mut read = Vec::new();
        while let Some(kv) = reader.next_record().unwrap() {
            read.push(kv);
        }
        let at_revision = store
            .range(RangeRequest::prefix("").at(revision))
            .await
            .unwrap()
            .kvs;
        assert_eq!(read, at_revision);
        assert!(store.current_revision().await.unwrap() > revision + 20);
    }

    /// A store with updated, deleted and TTL keys, backed up and restored into `url`.
    async fn restores_into(url: &str) {
        let source = crate::open("memory://").await.unwrap();
        for i in 0..300 {
            source
                .create(&format!("/k/{i:03}"), Bytes::from(format!("v{i}")), None)
                .await
                .unwrap();
        }
        for i in (0..300).step_by(7) {
            let key = format!("/k/{i:03}");
            source
                .update(
                    &key,
                    Bytes::from("updated"),
                    storage_api::Precondition::None,
                    None,
                )
                .await
                .unwrap();
        }
        for i in (0..300).step_by(11) {
            let key = format!("/k/{i:03}");
            source
                .delete(&key, storage_api::Precondition::None)
                .await
                .unwrap();
        }
        let hour = std::time::Duration::from_secs(3600);
        source
            .create("/ttl/a", Bytes::from("t"), Some(hour))
            .await
            .unwrap();
        let (revision, expected) = source.list_all("").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("backup");
        std::fs::write(&file, backup_bytes(source).await).unwrap();
        assert_eq!(
            verify(&file).unwrap(),
            BackupSummary {
                revision,
                keys: expected.len() as u64
            }
        );

        let url = url.replace("DIR", &dir.path().display().to_string());
        let ttl_for = |key: &str| key.starts_with("/ttl/").then_some(hour);
        let restored = restore(&url, &file, ttl_for).await.unwrap();
        assert_eq!(restored.keys, expected.len() as u64);
        assert_eq!(restored.backup_revision, revision);
        assert_eq!(restored.revision, revision + REVISION_BUMP);

        let store = crate::open(&url).await.unwrap();
        assert_eq!(store.current_revision().await.unwrap(), restored.revision);
        assert_eq!(store.compacted_revision().await.unwrap(), restored.revision);
        let (at, kvs) = store.list_all("").await.unwrap();
        assert_eq!(at, restored.revision);
        let contents = |kvs: &[KeyValue]| -> Vec<(String, Bytes)> {
            kvs.iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect()
        };
        assert_eq!(contents(&kvs), contents(&expected));
        // Newer keys of the backup are newer here too.
        for a in &expected {
            for b in &expected {
                let here = |key: &str| kvs.iter().find(|kv| kv.key == key).unwrap().mod_revision;
                if a.mod_revision < b.mod_revision {
                    assert!(here(&a.key) <= here(&b.key), "{} and {}", a.key, b.key);
                }
            }
        }
        // Every old revision is compacted: clients list again.
        assert!(matches!(
            store.get("/k/001", Some(revision)).await,
            Err(Error::Compacted { .. })
        ));
        assert!(matches!(
            store
                .watch(storage_api::WatchRequest::prefix("/k/").after(revision))
                .await,
            Err(Error::Compacted { .. })
        ));
        let next = store
            .create("/k/new", Bytes::from("n"), None)
            .await
            .unwrap();
        assert_eq!(next, restored.revision + 1);
        drop(store);
        // A store with keys is not restored into.
        let again = restore(&url, &file, ttl_for).await.unwrap_err();
        assert!(again.to_string().contains("already holds keys"), "{again}");
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backups_restore_into_sqlite() {
        restores_into("sqlite://DIR/restored.db").await;
    }

    #[cfg(feature = "sled")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backups_restore_into_sled() {
        restores_into("sled://DIR/restored").await;
    }

    #[tokio::test]
    async fn only_durable_stores_are_restored_into() {
        let error = restore("memory://", Path::new("/nonexistent"), |_| None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("durable store"), "{error}");
    }

    fn read_to_end(bytes: &[u8]) -> io::Result<u64> {
        let mut reader = BackupReader::new(bytes)?;
        while reader.next_record()?.is_some() {}
        Ok(reader.count)
    }
}
