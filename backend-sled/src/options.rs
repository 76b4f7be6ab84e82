//! Store options and their `sled://PATH?name=value&...` URL form.

use std::time::Duration;

use storage_api::{Error, Result};

/// When a write is acknowledged, relative to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `sync=fsync` (default). Before a write is acknowledged, sled's log buffers are written
    /// (`Db::flush`) and then the database file is `fsync`ed, which also covers file-size
    /// metadata and the drive's write cache that sled 0.34's own `sync_file_range` does not.
    /// An acknowledged write survives a process crash and, for values stored inline, power loss.
    /// Values larger than sled's blob threshold are written by sled to separate blob files that
    /// sled 0.34 never fsyncs; those survive a process crash, not necessarily power loss.
    #[default]
    Fsync,
    /// `sync=flush`. Sled's `Db::flush` before acknowledging: the write has reached the kernel
    /// and survives a crash of this process, but sled 0.34 on Linux only issues
    /// `sync_file_range`, so a power loss or kernel crash may lose recent writes.
    Flush,
    /// `sync=none`. Acknowledged once committed in memory; sled writes its buffers every
    /// [`SledOptions::flush_every`]. A process crash may lose the writes of that last interval.
    None,
}

/// Options of a [`crate::SledStore`].
///
/// Every field has a URL name, parsed by [`SledOptions::from_query`]. Durations are written as
/// a number with a unit: `500ms`, `2s`, `5m`, `1h`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SledOptions {
    /// `sync`: `fsync` (default), `flush` or `none`; see [`Durability`].
    pub durability: Durability,
    /// `flush_every`: with `sync=none`, how often sled writes its buffers in the background
    /// (default 500ms).
    pub flush_every: Duration,
    /// `cache_bytes`: sled's page cache capacity in bytes (default 256 MiB).
    pub cache_bytes: u64,
    /// `watch_buffer`: events buffered per watcher before a slow watcher is ended with
    /// `Unavailable` (default 1024).
    pub watch_buffer: usize,
    /// `progress_interval`: how often idle watches that asked for progress get a progress event
    /// (default 1s).
    pub progress_interval: Duration,
    /// `history`: the background compactor keeps at least this much history (default 5m).
    pub history: Duration,
    /// `min_history`: and at least this many revisions (default 1000).
    pub min_history: u64,
    /// `compact_interval`: how often the background compactor runs; `0s` turns it off so only
    /// explicit `compact` calls discard history (default 1m).
    pub compact_interval: Duration,
    /// `max_batch`: the most writes committed together in one group commit (default 256).
    pub max_batch: usize,
    /// `rewrite_percent`: sled 0.34 frees a log segment only once at most half of it is live,
    /// so under churn its directory grows far past the bytes it holds. When the directory
    /// occupies more than this percentage of those bytes (keys and values of every tree, live
    /// values and retained history), the writer rewrites it into a fresh directory and swaps it
    /// in; writes wait meanwhile, as for etcd's defragmentation. A freshly written sled
    /// directory already occupies 2-2.7x its contents, so lower settings rewrite at every check.
    /// `0` turns it off (default 400).
    pub rewrite_percent: u32,
    /// `rewrite_min_bytes`: directories smaller than this are never rewritten: sled's fixed
    /// overhead dominates them (default 8 MiB).
    pub rewrite_min_bytes: u64,
    /// `space_check_interval`: how often the writer compares the directory's size with its
    /// contents (default 10s).
    pub space_check_interval: Duration,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            durability: Durability::Fsync,
            flush_every: Duration::from_millis(500),
            cache_bytes: 256 * 1024 * 1024,
            watch_buffer: 1024,
            progress_interval: Duration::from_secs(1),
            history: Duration::from_secs(300),
            min_history: 1000,
            compact_interval: Duration::from_secs(60),
            max_batch: 256,
            rewrite_percent: 400,
            rewrite_min_bytes: 8 * 1024 * 1024,
            space_check_interval: Duration::from_secs(10),
        }
    }
}

impl SledOptions {
    /// Parses the query part of a `sled://PATH?...` URL (without the `?`), starting from the
    /// defaults. An unknown name, a repeated name or a bad value is [`Error::InvalidArgument`]
    /// naming it. The empty string gives the defaults.
    ///
    /// ```
    /// use backend_sled::{Durability, SledOptions};
    /// let options = SledOptions::from_query("sync=flush&watch_buffer=64&history=10m").unwrap();
    /// assert_eq!(options.durability, Durability::Flush);
    /// assert_eq!(options.watch_buffer, 64);
    /// ```
    pub fn from_query(query: &str) -> Result<Self> {
        let mut options = SledOptions::default();
        let mut seen = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').ok_or_else(|| {
                Error::InvalidArgument(format!("sled option {pair:?} has no value (name=value)"))
            })?;
            if seen.contains(&name) {
                return Err(Error::InvalidArgument(format!(
                    "sled option {name:?} given twice"
                )));
            }
            seen.push(name);
            match name {
                "sync" => {
                    options.durability = match value {
                        "fsync" => Durability::Fsync,
                        "flush" => Durability::Flush,
                        "none" => Durability::None,
                        _ => {
                            return Err(Error::InvalidArgument(format!(
                                "sled option sync={value:?}: expected fsync, flush or none"
                            )));
                        }
                    }
                }
                "flush_every" => options.flush_every = positive_duration(name, value)?,
                "cache_bytes" => options.cache_bytes = number(name, value)?,
                "watch_buffer" => options.watch_buffer = positive_usize(name, value)?,
                "progress_interval" => {
                    options.progress_interval = positive_duration(name, value)?;
                }
                "history" => options.history = duration(name, value)?,
                "min_history" => options.min_history = number(name, value)?,
                "compact_interval" => options.compact_interval = duration(name, value)?,
                "max_batch" => options.max_batch = positive_usize(name, value)?,
                "rewrite_percent" => {
                    options.rewrite_percent = match u32::try_from(number(name, value)?) {
                        Ok(percent) if percent == 0 || percent >= 100 => percent,
                        _ => {
                            return Err(Error::InvalidArgument(format!(
                                "sled option {name}={value:?}: expected 0 (off) or a \
                                 percentage of at least 100"
                            )));
                        }
                    };
                }
                "rewrite_min_bytes" => options.rewrite_min_bytes = number(name, value)?,
                "space_check_interval" => {
                    options.space_check_interval = positive_duration(name, value)?;
                }
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown sled option {name:?} (known: sync, flush_every, cache_bytes, \
                         watch_buffer, progress_interval, history, min_history, \
                         compact_interval, max_batch, rewrite_percent, rewrite_min_bytes, \
                         space_check_interval)"
                    )));
                }
            }
        }
        Ok(options)
    }
}

fn number(name: &str, value: &str) -> Result<u64> {
    value.parse().map_err(|_| {
        Error::InvalidArgument(format!(
            "sled option {name}={value:?}: expected a non-negative integer"
        ))
    })
}

fn positive_usize(name: &str, value: &str) -> Result<usize> {
    let n = number(name, value)?;
    match usize::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::InvalidArgument(format!(
            "sled option {name}={value:?}: expected a positive integer"
        ))),
    }
}

fn duration(name: &str, value: &str) -> Result<Duration> {
    let bad = || {
        Error::InvalidArgument(format!(
            "sled option {name}={value:?}: expected a duration such as 500ms, 2s, 5m or 1h"
        ))
    };
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(Duration::from_millis(millis))
}

fn positive_duration(name: &str, value: &str) -> Result<Duration> {
    let d = duration(name, value)?;
    if d.is_zero() {
        return Err(Error::InvalidArgument(format!(
            "sled option {name}={value:?}: must be more than zero"
        )));
    }
    Ok(d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_option() {
        let o = SledOptions::from_query(
            "sync=none&flush_every=250ms&cache_bytes=1024&watch_buffer=8&progress_interval=2s\
             &history=1h&min_history=5&compact_interval=0s&max_batch=4&rewrite_percent=200\
             &rewrite_min_bytes=0&space_check_interval=1s",
        )
        .unwrap();
        assert_eq!(o.durability, Durability::None);
        assert_eq!(o.flush_every, Duration::from_millis(250));
        assert_eq!(o.cache_bytes, 1024);
        assert_eq!(o.watch_buffer, 8);
        assert_eq!(o.progress_interval, Duration::from_secs(2));
        assert_eq!(o.history, Duration::from_secs(3600));
        assert_eq!(o.min_history, 5);
        assert_eq!(o.compact_interval, Duration::ZERO);
        assert_eq!(o.max_batch, 4);
        assert_eq!(o.rewrite_percent, 200);
        assert_eq!(o.rewrite_min_bytes, 0);
        assert_eq!(o.space_check_interval, Duration::from_secs(1));
        assert_eq!(SledOptions::from_query("").unwrap(), SledOptions::default());
    }

    #[test]
    fn rejects_bad_options_by_name() {
        for (query, needle) in [
            ("nope=1", "unknown sled option \"nope\""),
            ("sync=always", "sync=\"always\""),
            ("sync", "has no value"),
            ("history=5", "history=\"5\""),
            ("history=5d", "history=\"5d\""),
            ("watch_buffer=0", "positive"),
            ("progress_interval=0ms", "more than zero"),
            ("sync=none&sync=fsync", "given twice"),
            ("history=99999999999999999999h", "history"),
            ("rewrite_percent=50", "at least 100"),
            ("space_check_interval=0s", "more than zero"),
        ] {
            match SledOptions::from_query(query) {
                Err(Error::InvalidArgument(message)) => {
                    assert!(message.contains(needle), "{query}: {message}");
                }
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
