//! bbolt's file format, as much of it as etcd snapshots need: a writer that lays out buckets of
//! sorted keys once, page by page, and a reader that walks any file bbolt wrote.
//!
//! The layout is bbolt's v1.3 (`page.go`, `db.go`, `bucket.go`, `node.go` in etcd-io/bbolt).
//! bbolt writes it in the machine's byte order; this module reads and writes it little-endian,
//! as on amd64, arm64 and ppc64le (a big-endian file fails the magic-number check):
//! - every page starts with a 16-byte header: page id (u64), flags (u16: branch 0x01, leaf
//!   0x02, meta 0x04, freelist 0x10), element count (u16) and how many pages follow it as
//!   overflow (u32);
//! - pages 0 and 1 hold the meta (magic, version 2, page size, root bucket, freelist page, the
//!   high-water page id, transaction id, FNV-1a checksum); the one with the higher transaction
//!   id and a valid checksum is current;
//! - a leaf element is 16 bytes (flags, offset of the key from the element, key and value
//!   sizes), a branch element 16 bytes (offset, key size, child page id); keys and values
//!   follow the elements;
//! - a bucket is a leaf element flagged 0x01 whose value is the bucket's root page id and
//!   sequence, followed, for an inline bucket (root 0), by the bucket's single leaf page.
//!
//! The writer never produces inline buckets except empty ones, fills pages completely (a file
//! written once and then only read needs no room to grow; bbolt rebalances nodes as it writes
//! later) and frees no page, so its freelist is empty.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// The page size of written files: bbolt's default on Linux.
pub(crate) const PAGE_SIZE: usize = 4096;
const PAGE_HEADER: usize = 16;
/// Both element kinds are 16 bytes.
const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// Leaf element flag: the value is a nested bucket.
const BUCKET_LEAF: u32 = 0x01;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
/// Bytes of the meta covered by its checksum (everything before the checksum).
const META_CHECKSUMMED: usize = 56;
/// A bucket value: root page id and sequence.
const BUCKET_HEADER: usize = 16;
/// Deeper page trees than this are taken for a cycle: bbolt's trees of 4 KiB pages are a few
/// levels deep even for terabytes.
const MAX_DEPTH: usize = 64;
/// Smallest page size the reader accepts (bbolt uses the OS page size).
const MIN_PAGE_SIZE: usize = 512;
/// Largest page size the reader accepts.
const MAX_PAGE_SIZE: usize = 1 << 20;

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// One element of a page being written.
struct Element {
    flags: u32,
    key: Vec<u8>,
    /// A leaf's value, or a branch's child page id.
    value: Vec<u8>,
}

/// A page's worth of elements being gathered.
#[derive(Default)]
struct Node {
    elements: Vec<Element>,
    /// The page bytes these elements take, header included.
    size: usize,
}

impl Node {
    fn new() -> Node {
        Node {
            elements: Vec::new(),
            size: PAGE_HEADER,
        }
    }

    /// Whether `element` still fits on one page; a lone leaf element always "fits" and spills
    /// into overflow pages. A branch page takes at least two children (bbolt's
    /// `minKeysPerPage`), so every branch level is smaller than the one below it, however long
    /// the keys.
    fn fits(&self, element: &Element, branch: bool) -> bool {
        let minimum = if branch { 2 } else { 1 };
        self.elements.len() < minimum || self.size + entry_size(element, branch) <= PAGE_SIZE
    }

    fn push(&mut self, element: Element, branch: bool) {
        self.size += entry_size(&element, branch);
        self.elements.push(element);
    }
}

fn entry_size(element: &Element, branch: bool) -> usize {
    // A branch element stores its child's id in the element itself, not after the key.
    ELEMENT + element.key.len() + if branch { 0 } else { element.value.len() }
}

/// How a written bucket is rooted.
enum Root {
    /// No keys: written inline as an empty leaf, as bbolt writes an empty bucket.
    Empty,
    /// The page id of the root page.
    Page(u64),
}

/// Writes a bbolt file of top-level buckets, each given once with its keys in ascending order.
///
/// Pages are written in order as buckets fill them; [`BoltWriter::finish`] writes the root
/// bucket and then the meta and freelist pages at the start of the file.
pub(crate) struct BoltWriter<W> {
    out: W,
    next_page: u64,
    buckets: Vec<(Vec<u8>, Root)>,
}

impl<W: Write + Seek> BoltWriter<W> {
    /// Starts a file on `out`, positioned at its start.
    pub(crate) fn new(mut out: W) -> io::Result<BoltWriter<W>> {
        // Meta 0, meta 1 and the freelist, written last.
        out.write_all(&[0; 3 * PAGE_SIZE])?;
        Ok(BoltWriter {
            out,
            next_page: 3,
            buckets: Vec::new(),
        })
    }

    /// Writes the bucket `name` holding `entries`, which must come in strictly ascending key
    /// order (an `InvalidInput` error otherwise).
    pub(crate) fn bucket(
        &mut self,
        name: &[u8],
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> io::Result<()> {
        if self.buckets.iter().any(|(written, _)| written == name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bucket {:?} written twice", String::from_utf8_lossy(name)),
            ));
        }
        let elements = entries.into_iter().map(|(key, value)| Element {
            flags: 0,
            key,
            value,
        });
        let root = match self.tree(elements)? {
            Some(page) => Root::Page(page),
            None => Root::Empty,
        };
        self.buckets.push((name.to_vec(), root));
        Ok(())
    }

    /// Writes the root bucket and the meta and freelist pages; returns the output and the
    /// file's length in bytes.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        let mut buckets = std::mem::take(&mut self.buckets);
        buckets.sort_by(|a, b| a.0.cmp(&b.0));
        let elements = buckets.into_iter().map(|(name, root)| {
            let mut value = Vec::with_capacity(BUCKET_HEADER + PAGE_HEADER);
            match root {
                Root::Page(page) => {
                    value.extend_from_slice(&page.to_le_bytes());
                    value.extend_from_slice(&0_u64.to_le_bytes());
                }
                Root::Empty => {
                    value.extend_from_slice(&[0; BUCKET_HEADER]);
                    value.extend_from_slice(&page_header(0, LEAF_PAGE, 0, 0));
                }
            }
            Element {
                flags: BUCKET_LEAF,
                key: name,
                value,
            }
        });
        let root = match self.tree(elements)? {
            Some(page) => page,
            None => self.write_node(&Node::new(), false)?,
        };
        let high_water = self.next_page;
        self.out.seek(SeekFrom::Start(0))?;
        for txid in 0..2_u64 {
            let mut page = vec![0; PAGE_SIZE];
            page[..PAGE_HEADER].copy_from_slice(&page_header(txid, META_PAGE, 0, 0));
            let meta = &mut page[PAGE_HEADER..PAGE_HEADER + META_CHECKSUMMED + 8];
            meta[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            meta[4..8].copy_from_slice(&VERSION.to_le_bytes());
            meta[8..12].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
            // flags (12..16) stay 0.
            meta[16..24].copy_from_slice(&root.to_le_bytes());
            // The root bucket's sequence (24..32) stays 0.
            meta[32..40].copy_from_slice(&2_u64.to_le_bytes());
            meta[40..48].copy_from_slice(&high_water.to_le_bytes());
            meta[48..56].copy_from_slice(&txid.to_le_bytes());
            let checksum = fnv1a64(&meta[..META_CHECKSUMMED]);
            meta[56..64].copy_from_slice(&checksum.to_le_bytes());
            self.out.write_all(&page)?;
        }
        let mut freelist = vec![0; PAGE_SIZE];
        freelist[..PAGE_HEADER].copy_from_slice(&page_header(2, FREELIST_PAGE, 0, 0));
        self.out.write_all(&freelist)?;
        self.out.flush()?;
        Ok((self.out, high_water * PAGE_SIZE as u64))
    }

    /// Writes a B+tree of `elements` (ascending keys): leaves, then branch levels up to one
    /// root. Returns the root page, or `None` when there are no elements.
    fn tree(&mut self, elements: impl Iterator<Item = Element>) -> io::Result<Option<u64>> {
        let mut level = self.level(elements, false)?;
        while level.len() > 1 {
            let children = level.into_iter().map(|(first_key, page)| Element {
                flags: 0,
                key: first_key,
                value: page.to_le_bytes().to_vec(),
            });
            level = self.level(children, true)?;
        }
        Ok(level.pop().map(|(_, page)| page))
    }

    /// Packs `elements` into pages of one level; returns each page's first key and id.
    fn level(
        &mut self,
        elements: impl Iterator<Item = Element>,
        branch: bool,
    ) -> io::Result<Vec<(Vec<u8>, u64)>> {
        let mut pages = Vec::new();
        let mut node = Node::new();
        // The last key of the pages already written.
        let mut written_last: Option<Vec<u8>> = None;
        for element in elements {
            let previous = node
                .elements
                .last()
                .map(|last| &last.key)
                .or(written_last.as_ref());
            if previous.is_some_and(|previous| *previous >= element.key) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "bucket keys must be given in strictly ascending order",
                ));
            }
            if !node.fits(&element, branch) {
                let full = std::mem::replace(&mut node, Node::new());
                written_last = full.elements.last().map(|last| last.key.clone());
                pages.push(self.flush(full, branch)?);
            }
            node.push(element, branch);
        }
        if !node.elements.is_empty() {
            pages.push(self.flush(node, branch)?);
        }
        Ok(pages)
    }

    fn flush(&mut self, node: Node, branch: bool) -> io::Result<(Vec<u8>, u64)> {
        let page = self.write_node(&node, branch)?;
        let first_key = node
            .elements
            .into_iter()
            .next()
            .map(|element| element.key)
            .unwrap_or_default();
        Ok((first_key, page))
    }

    /// Writes one node as a page (with overflow pages when it is larger) at the next free
    /// page id, which is always where the output stands.
    fn write_node(&mut self, node: &Node, branch: bool) -> io::Result<u64> {
        let pages = node.size.div_ceil(PAGE_SIZE).max(1);
        let mut bytes = vec![0; pages * PAGE_SIZE];
        let id = self.next_page;
        let count = u16::try_from(node.elements.len())
            .map_err(|_| invalid("more elements than a page can count"))?;
        let overflow =
            u32::try_from(pages - 1).map_err(|_| invalid("a value too large for bbolt"))?;
        let flags = if branch { BRANCH_PAGE } else { LEAF_PAGE };
        bytes[..PAGE_HEADER].copy_from_slice(&page_header(id, flags, count, overflow));
        let mut data = PAGE_HEADER + node.elements.len() * ELEMENT;
        for (index, element) in node.elements.iter().enumerate() {
            let at = PAGE_HEADER + index * ELEMENT;
            let pos = u32::try_from(data - at).map_err(|_| invalid("page too large"))?;
            let key_len = u32::try_from(element.key.len()).map_err(|_| invalid("key too large"))?;
            let slot = &mut bytes[at..at + ELEMENT];
            if branch {
                slot[0..4].copy_from_slice(&pos.to_le_bytes());
                slot[4..8].copy_from_slice(&key_len.to_le_bytes());
                slot[8..16].copy_from_slice(&element.value);
            } else {
                let value_len =
                    u32::try_from(element.value.len()).map_err(|_| invalid("value too large"))?;
                slot[0..4].copy_from_slice(&element.flags.to_le_bytes());
                slot[4..8].copy_from_slice(&pos.to_le_bytes());
                slot[8..12].copy_from_slice(&key_len.to_le_bytes());
                slot[12..16].copy_from_slice(&value_len.to_le_bytes());
            }
            bytes[data..data + element.key.len()].copy_from_slice(&element.key);
            data += element.key.len();
            if !branch {
                bytes[data..data + element.value.len()].copy_from_slice(&element.value);
                data += element.value.len();
            }
        }
        self.out.write_all(&bytes)?;
        self.next_page += pages as u64;
        Ok(id)
    }
}

fn page_header(id: u64, flags: u16, count: u16, overflow: u32) -> [u8; PAGE_HEADER] {
    let mut header = [0; PAGE_HEADER];
    header[0..8].copy_from_slice(&id.to_le_bytes());
    header[8..10].copy_from_slice(&flags.to_le_bytes());
    header[10..12].copy_from_slice(&count.to_le_bytes());
    header[12..16].copy_from_slice(&overflow.to_le_bytes());
    header
}

/// bbolt's meta checksum: 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A bucket found by [`BoltReader::bucket`].
#[derive(Debug)]
pub(crate) enum Bucket {
    /// Rooted at this page.
    Page(u64),
    /// Stored inline in its parent: these bytes are its only leaf page.
    Inline(Vec<u8>),
}

/// Reads a bbolt file written by bbolt (or [`BoltWriter`]), checking every offset it follows:
/// a damaged file is an `InvalidData` error, never a panic or an endless walk.
#[derive(Debug)]
pub(crate) struct BoltReader<'f> {
    file: &'f File,
    page_size: usize,
    root: u64,
    high_water: u64,
}

impl<'f> BoltReader<'f> {
    /// Reads the current meta page of `file`.
    pub(crate) fn open(file: &'f File) -> io::Result<BoltReader<'f>> {
        let first = read_meta(file, 0)?;
        // As bbolt does, a damaged first meta page leaves the default page size to find the
        // second by.
        let second_at = first.as_ref().map_or(PAGE_SIZE, |meta| meta.page_size);
        let second = read_meta(file, second_at as u64)?;
        let meta = match (first, second) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(meta), Err(_)) | (Err(_), Ok(meta)) => meta,
            (Err(problem), Err(_)) => {
                return Err(invalid(format!("not a bbolt database: {problem}")));
            }
        };
        let pages = file.metadata()?.len() / meta.page_size as u64;
        if meta.high_water > pages {
            return Err(invalid(format!(
                "the meta counts {} pages, the file holds {pages}: it is truncated",
                meta.high_water
            )));
        }
        Ok(BoltReader {
            file,
            page_size: meta.page_size,
            root: meta.root,
            high_water: meta.high_water,
        })
    }

    /// The top-level bucket `name`, if there is one.
    pub(crate) fn bucket(&self, name: &[u8]) -> io::Result<Option<Bucket>> {
        let mut found = None;
        self.for_each(&Bucket::Page(self.root), |key, value, flags| {
            if flags & BUCKET_LEAF != 0 && key == name {
                found = Some(open_bucket(value)?);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Calls `visit` with every key, value and element flags of `bucket`, in key order.
    pub(crate) fn for_each(
        &self,
        bucket: &Bucket,
        mut visit: impl FnMut(&[u8], &[u8], u32) -> io::Result<()>,
    ) -> io::Result<()> {
        match bucket {
            Bucket::Page(root) => self.walk(*root, 0, &mut HashSet::new(), &mut visit),
            Bucket::Inline(page) => visit_page(
                page,
                &mut |child| {
                    Err(invalid(format!(
                        "an inline bucket refers to page {child}: inline buckets are one leaf"
                    )))
                },
                &mut visit,
            ),
        }
    }

    fn walk(
        &self,
        id: u64,
        depth: usize,
        seen: &mut HashSet<u64>,
        visit: &mut impl FnMut(&[u8], &[u8], u32) -> io::Result<()>,
    ) -> io::Result<()> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!(
                "page {id} is more than {MAX_DEPTH} levels deep"
            )));
        }
        if !seen.insert(id) {
            return Err(invalid(format!(
                "page {id} is reached twice: the page tree has a cycle or a shared page"
            )));
        }
        let page = self.page(id)?;
        let mut children = Vec::new();
        visit_page(
            &page,
            &mut |child| {
                children.push(child);
                Ok(())
            },
            visit,
        )?;
        for child in children {
            self.walk(child, depth + 1, seen, visit)?;
        }
        Ok(())
    }

    /// Page `id` with its overflow pages.
    fn page(&self, id: u64) -> io::Result<Vec<u8>> {
        if id < 2 || id >= self.high_water {
            return Err(invalid(format!(
                "a bucket refers to page {id}, outside the data pages 2..{}",
                self.high_water
            )));
        }
        // Cannot overflow: `id` is below `high_water`, which the file's length bounds.
        let offset = id * self.page_size as u64;
        let truncated = |error: io::Error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                invalid(format!(
                    "page {id} lies past the end of the file: the file is truncated"
                ))
            } else {
                error
            }
        };
        let mut header = [0; PAGE_HEADER];
        self.file
            .read_exact_at(&mut header, offset)
            .map_err(truncated)?;
        let claimed = u64::from_le_bytes(header[0..8].try_into().map_err(|_| invalid("header"))?);
        if claimed != id {
            return Err(invalid(format!("page {id} says it is page {claimed}")));
        }
        let overflow = u64::from(u32::from_le_bytes(
            header[12..16].try_into().map_err(|_| invalid("header"))?,
        ));
        if overflow >= self.high_water - id {
            return Err(invalid(format!(
                "page {id} overflows past the last page {}",
                self.high_water - 1
            )));
        }
        let len = usize::try_from((overflow + 1) * self.page_size as u64)
            .map_err(|_| invalid(format!("page {id} is too large")))?;
        let mut page = vec![0; len];
        self.file
            .read_exact_at(&mut page, offset)
            .map_err(truncated)?;
        Ok(page)
    }
}

/// The current-meta candidates of one meta page.
struct Meta {
    page_size: usize,
    root: u64,
    high_water: u64,
    txid: u64,
}

/// Reads the meta of the page at `offset`; the inner error says why it is not valid.
fn read_meta(file: &File, offset: u64) -> io::Result<Result<Meta, String>> {
    let mut bytes = [0; PAGE_HEADER + META_CHECKSUMMED + 8];
    if let Err(error) = file.read_exact_at(&mut bytes, offset) {
        return if error.kind() == io::ErrorKind::UnexpectedEof {
            Ok(Err("the file is shorter than its meta pages".into()))
        } else {
            Err(error)
        };
    }
    let meta = &bytes[PAGE_HEADER..];
    let u32_at =
        |at: usize| u32::from_le_bytes([meta[at], meta[at + 1], meta[at + 2], meta[at + 3]]);
    let u64_at = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&meta[at..at + 8]);
        u64::from_le_bytes(word)
    };
    if u32_at(0) != MAGIC {
        return Ok(Err("no bbolt magic number".into()));
    }
    if u32_at(4) != VERSION {
        return Ok(Err(format!("bbolt format version {} (not 2)", u32_at(4))));
    }
    if u64_at(56) != fnv1a64(&meta[..META_CHECKSUMMED]) {
        return Ok(Err("meta page checksum mismatch".into()));
    }
    let page_size = u32_at(8) as usize;
    if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
        return Ok(Err(format!("page size {page_size}")));
    }
    Ok(Ok(Meta {
        page_size,
        root: u64_at(16),
        high_water: u64_at(40),
        txid: u64_at(48),
    }))
}

/// A bucket from its value in the parent bucket.
fn open_bucket(value: &[u8]) -> io::Result<Bucket> {
    let root = value
        .get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| invalid("a bucket value shorter than its header"))?;
    if root == 0 {
        Ok(Bucket::Inline(
            value[BUCKET_HEADER.min(value.len())..].to_vec(),
        ))
    } else {
        Ok(Bucket::Page(root))
    }
}

/// Visits a page: each child of a branch page, or each element of a leaf page.
fn visit_page(
    page: &[u8],
    child: &mut impl FnMut(u64) -> io::Result<()>,
    element: &mut impl FnMut(&[u8], &[u8], u32) -> io::Result<()>,
) -> io::Result<()> {
    let field = |at: usize, len: usize| -> io::Result<&[u8]> {
        page.get(at..at + len)
            .ok_or_else(|| invalid(format!("a page element at byte {at} runs past its page")))
    };
    let u16_at = |at: usize| -> io::Result<u16> {
        let bytes = field(at, 2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    };
    let u32_at = |at: usize| -> io::Result<usize> {
        let bytes = field(at, 4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    };
    let flags = u16_at(8)?;
    let count = usize::from(u16_at(10)?);
    for index in 0..count {
        let at = PAGE_HEADER + index * ELEMENT;
        match flags {
            LEAF_PAGE => {
                let element_flags = u32_at(at)? as u32;
                let key_at = at + u32_at(at + 4)?;
                let key_len = u32_at(at + 8)?;
                let value_len = u32_at(at + 12)?;
                let key = field(key_at, key_len)?;
                let value = field(key_at + key_len, value_len)?;
                element(key, value, element_flags)?;
            }
            BRANCH_PAGE => {
                let bytes = field(at + 8, 8)?;
                let mut id = [0; 8];
                id.copy_from_slice(bytes);
                child(u64::from_le_bytes(id))?;
            }
            other => {
                return Err(invalid(format!(
                    "a bucket page has flags {other:#x}, neither branch nor leaf"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entries = Vec<(Vec<u8>, Vec<u8>)>;

    fn written(buckets: &[(&[u8], Entries)]) -> File {
        let mut writer = BoltWriter::new(tempfile::tempfile().unwrap()).unwrap();
        for (name, entries) in buckets {
            writer.bucket(name, entries.clone()).unwrap();
        }
        let (file, len) = writer.finish().unwrap();
        assert_eq!(file.metadata().unwrap().len(), len);
        file
    }

    fn read_back(file: &File, name: &[u8]) -> Option<Entries> {
        let reader = BoltReader::open(file).unwrap();
        let bucket = reader.bucket(name).unwrap()?;
        let mut entries = Vec::new();
        reader
            .for_each(&bucket, |key, value, _| {
                entries.push((key.to_vec(), value.to_vec()));
                Ok(())
            })
            .unwrap();
        Some(entries)
    }

    #[test]
    fn buckets_of_every_shape_read_back_as_written() {
        // Enough keys for two branch levels, values spanning overflow pages, an empty bucket.
        let many: Entries = (0..60_000_u32)
            .map(|i| (format!("key/{i:08}").into_bytes(), i.to_be_bytes().to_vec()))
            .collect();
        let large: Entries = (0..5_u8)
            .map(|i| (vec![i, 0, 1], vec![i; PAGE_SIZE * usize::from(i) + 100]))
            .collect();
        let file = written(&[
            (b"many", many.clone()),
            (b"empty", Vec::new()),
            (b"large", large.clone()),
        ]);
        assert_eq!(read_back(&file, b"many"), Some(many));
        assert_eq!(read_back(&file, b"large"), Some(large));
        assert_eq!(read_back(&file, b"empty"), Some(Vec::new()));
        assert_eq!(read_back(&file, b"missing"), None);
    }

    #[test]
    fn unsorted_keys_and_twice_written_buckets_are_refused() {
        let mut writer = BoltWriter::new(tempfile::tempfile().unwrap()).unwrap();
        let unsorted = vec![(b"b".to_vec(), Vec::new()), (b"a".to_vec(), Vec::new())];
        assert!(writer.bucket(b"x", unsorted).is_err());
        // Out of order across a page boundary.
        let mut across: Entries = (0..1_000_u32)
            .map(|i| (i.to_be_bytes().to_vec(), vec![0; 100]))
            .collect();
        across.push((vec![0], Vec::new()));
        assert!(writer.bucket(b"z", across).is_err());
        writer.bucket(b"y", Vec::new()).unwrap();
        assert!(writer.bucket(b"y", Vec::new()).is_err());
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let entries: Entries = (0..2_000_u32)
            .map(|i| (i.to_be_bytes().to_vec(), vec![7; 40]))
            .collect();
        let file = written(&[(b"data", entries)]);
        let len = file.metadata().unwrap().len();
        // Flip bytes of every data page header and element, one at a time, and read.
        let mut original = vec![0; usize::try_from(len).unwrap()];
        file.read_exact_at(&mut original, 0).unwrap();
        for offset in (0..original.len()).step_by(97) {
            let mut damaged = original.clone();
            damaged[offset] ^= 0xff;
            let copy = tempfile::tempfile().unwrap();
            copy.write_all_at(&damaged, 0).unwrap();
            if let Ok(reader) = BoltReader::open(&copy) {
                if let Ok(Some(bucket)) = reader.bucket(b"data") {
                    let _ = reader.for_each(&bucket, |_, _, _| Ok(()));
                }
            }
        }
        // A branch page pointing at itself is a cycle, reported as one.
        let mut cyclic = original.clone();
        let reader = BoltReader::open(&file).unwrap();
        let Some(Bucket::Page(root)) = reader.bucket(b"data").unwrap() else {
            panic!("the bucket is not rooted at a page");
        };
        let root_at = usize::try_from(root).unwrap() * PAGE_SIZE;
        assert_eq!(
            u16::from_le_bytes([cyclic[root_at + 8], cyclic[root_at + 9]]),
            BRANCH_PAGE
        );
        cyclic[root_at + PAGE_HEADER + 8..root_at + PAGE_HEADER + 16]
            .copy_from_slice(&root.to_le_bytes());
        let copy = tempfile::tempfile().unwrap();
        copy.write_all_at(&cyclic, 0).unwrap();
        let reader = BoltReader::open(&copy).unwrap();
        let bucket = reader.bucket(b"data").unwrap().unwrap();
        let error = reader.for_each(&bucket, |_, _, _| Ok(())).unwrap_err();
        assert!(error.to_string().contains("cycle"), "{error}");
        // A meta claiming more pages than the file holds (with a valid checksum).
        let mut inflated = original.clone();
        let meta = &mut inflated[PAGE_SIZE + PAGE_HEADER..PAGE_SIZE + PAGE_HEADER + 64];
        meta[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        meta[48..56].copy_from_slice(&9_u64.to_le_bytes());
        let checksum = fnv1a64(&meta[..META_CHECKSUMMED]);
        meta[56..64].copy_from_slice(&checksum.to_le_bytes());
        let copy = tempfile::tempfile().unwrap();
        copy.write_all_at(&inflated, 0).unwrap();
        let error = BoltReader::open(&copy).unwrap_err();
        assert!(error.to_string().contains("truncated"), "{error}");
        // A huge overflow count on a data page.
        let mut overflowing = original.clone();
        let leaf_at = 3 * PAGE_SIZE;
        overflowing[leaf_at + 12..leaf_at + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        let copy = tempfile::tempfile().unwrap();
        copy.write_all_at(&overflowing, 0).unwrap();
        let reader = BoltReader::open(&copy).unwrap();
        let bucket = reader.bucket(b"data").unwrap().unwrap();
        assert!(reader.for_each(&bucket, |_, _, _| Ok(())).is_err());
        // An inline bucket flagged as a branch.
        let mut branchy = Vec::new();
        branchy.extend_from_slice(&page_header(0, BRANCH_PAGE, 1, 0));
        branchy.extend_from_slice(&[0; 8]);
        branchy.extend_from_slice(&7_u64.to_le_bytes());
        let reader = BoltReader::open(&file).unwrap();
        assert!(
            reader
                .for_each(&Bucket::Inline(branchy), |_, _, _| Ok(()))
                .is_err()
        );
        // Long keys still make a tree that ends in one root.
        let long: Entries = (0..50_u32)
            .map(|i| {
                let mut key = vec![b'k'; 3000];
                key.extend_from_slice(&i.to_be_bytes());
                (key, vec![1])
            })
            .collect();
        let file = written(&[(b"long", long.clone())]);
        assert_eq!(read_back(&file, b"long"), Some(long));
        // Not a bbolt file at all.
        let plain = tempfile::tempfile().unwrap();
        plain.write_all_at(b"hello", 0).unwrap();
        assert!(BoltReader::open(&plain).is_err());
    }
}
