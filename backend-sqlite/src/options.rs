//! Tuning knobs of the SQLite backend and their URL query form.

use std::time::Duration;

use storage_api::{Error, Result};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=FULL`: the WAL is synced on every commit, so an acknowledged write survives
    /// power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is synced only at checkpoints. An acknowledged write survives
    /// a crash of the process but the last commits may be lost on power loss or an OS crash. The
    /// database is never corrupted either way.
    Normal,
}

impl Synchronous {
    pub(crate) fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Options of [`crate::SqliteStore::open`].
///
/// Start from [`SqliteOptions::default`] and change fields, or parse the query string of a
/// `sqlite://PATH?OPTIONS` URL with [`SqliteOptions::from_query`]. The crate documentation lists
/// the query names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Commit durability. Query: `synchronous=full|normal`. Default `full`.
    pub synchronous: Synchronous,
    /// Whether the store compacts its history by itself. Query: `auto_compaction=true|false`.
    /// Default `true`. Explicit [`storage_api::Interface::compact`] calls work either way.
    pub auto_compaction: bool,
    /// How much history background compaction keeps, in time. Query: `compaction_window=5m`.
    /// Default 5 minutes.
    pub compaction_window: Duration,
    /// The fewest revisions background compaction keeps, whatever the window. Query:
    /// `compaction_min_revisions=1000`. Default 1000.
    pub compaction_min_revisions: u64,
    /// How often background compaction decides whether to compact. Query:
    /// `compaction_interval=10s`. Default 10 seconds.
    pub compaction_interval: Duration,
    /// How many log rows one compaction transaction covers, so that writers never wait long.
    /// Query: `compaction_batch=256`. Default 256.
    pub compaction_batch: u64,
    /// The most write requests committed in one group-commit transaction. Query:
    /// `max_batch=1024`. Default 1024.
    pub max_batch: usize,
    /// Reader connections (reads run concurrently up to this many). Query: `readers=4`.
    /// Default 4.
    pub readers: usize,
    /// Events buffered per watcher before a consumer that does not keep up is ended with
    /// [`Error::Unavailable`]. Query: `watch_buffer=1024`. Default 1024.
    pub watch_buffer: usize,
    /// How often a watch asked for progress notifications gets one. Query:
    /// `progress_interval=1s`. Default 1 second.
    pub progress_interval: Duration,
    /// How many rows the small `current_delta` table may hold (one per key written since the
    /// last fold) before the writer folds it into the key-ordered `current` table in one go
    /// (see the crate's "How it works"). Rewrites of a key that already has a row add none, so
    /// updates of fewer keys than this never fold. Query: `delta_fold_rows=1024`. Default
    /// 1024; 1 folds in every transaction that writes a key new to the delta.
    pub delta_fold_rows: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            auto_compaction: true,
            compaction_window: Duration::from_secs(300),
            compaction_min_revisions: 1000,
            compaction_interval: Duration::from_secs(10),
            compaction_batch: 256,
            max_batch: 1024,
            readers: 4,
            watch_buffer: 1024,
            progress_interval: Duration::from_secs(1),
            delta_fold_rows: 1024,
        }
    }
}

impl SqliteOptions {
    /// Parses URL query options (`synchronous=normal&compaction_window=10m`, with or without the
    /// leading `?`) on top of the defaults.
    ///
    /// Unknown names, repeated names and malformed values fail with
    /// [`Error::InvalidArgument`] naming the option: no option is silently ignored. Durations
    /// are an integer with a unit `ms`, `s`, `m` or `h` (a bare integer means seconds).
    pub fn from_query(query: &str) -> Result<Self> {
        let mut options = SqliteOptions::default();
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').ok_or_else(|| {
                Error::InvalidArgument(format!("sqlite option {pair:?} has no value (name=value)"))
            })?;
            if seen.contains(&name) {
                return Err(Error::InvalidArgument(format!(
                    "sqlite option {name:?} given twice"
                )));
            }
            seen.push(name);
            match name {
                "synchronous" => {
                    options.synchronous = match value.to_ascii_lowercase().as_str() {
                        "full" => Synchronous::Full,
                        "normal" => Synchronous::Normal,
                        _ => {
                            return Err(Error::InvalidArgument(format!(
                                "sqlite option synchronous={value:?}: expected full or normal"
                            )));
                        }
                    }
                }
                "auto_compaction" => options.auto_compaction = parse_bool(name, value)?,
                "compaction_window" => options.compaction_window = parse_duration(name, value)?,
                "compaction_min_revisions" => {
                    options.compaction_min_revisions = parse_int(name, value)?
                }
                "compaction_interval" => {
                    options.compaction_interval = positive(name, parse_duration(name, value)?)?
                }
                "compaction_batch" => {
                    options.compaction_batch = parse_int(name, value)?.max(1);
                }
                "max_batch" => options.max_batch = parse_usize(name, value)?.max(1),
                "readers" => options.readers = parse_usize(name, value)?.max(1),
                "watch_buffer" => options.watch_buffer = parse_usize(name, value)?.max(1),
                "progress_interval" => {
                    options.progress_interval = positive(name, parse_duration(name, value)?)?
                }
                "delta_fold_rows" => options.delta_fold_rows = parse_int(name, value)?.max(1),
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown sqlite option {name:?} (known: synchronous, auto_compaction, \
                         compaction_window, compaction_min_revisions, compaction_interval, \
                         compaction_batch, max_batch, readers, watch_buffer, progress_interval, \
                         delta_fold_rows)"
                    )));
                }
            }
        }
        Ok(options)
    }
}

/// Splits a storage URL `sqlite://PATH?OPTIONS` (or `sqlite:PATH?OPTIONS`) into the database
/// path and its options. `sqlite:///var/lib/db` is the absolute path `/var/lib/db`;
/// `sqlite://state.db` is relative to the working directory.
pub fn parse_url(url: &str) -> Result<(std::path::PathBuf, SqliteOptions)> {
    let rest = url.strip_prefix("sqlite:").ok_or_else(|| {
        Error::InvalidArgument(format!("storage URL {url:?} does not start with sqlite://"))
    })?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "storage URL {url:?} names no database file (sqlite://PATH)"
        )));
    }
    Ok((
        std::path::PathBuf::from(path),
        SqliteOptions::from_query(query)?,
    ))
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err(Error::InvalidArgument(format!(
            "sqlite option {name}={value:?}: expected true or false"
        ))),
    }
}

fn parse_int(name: &str, value: &str) -> Result<u64> {
    value.parse::<u64>().map_err(|_| {
        Error::InvalidArgument(format!(
            "sqlite option {name}={value:?}: expected a non-negative integer"
        ))
    })
}

fn parse_usize(name: &str, value: &str) -> Result<usize> {
    value.parse::<usize>().map_err(|_| {
        Error::InvalidArgument(format!(
            "sqlite option {name}={value:?}: expected a non-negative integer"
        ))
    })
}

fn positive(name: &str, duration: Duration) -> Result<Duration> {
    if duration.is_zero() {
        return Err(Error::InvalidArgument(format!(
            "sqlite option {name} must be greater than zero"
        )));
    }
    Ok(duration)
}

/// Parses `500ms`, `10s`, `5m`, `1h` or a bare number of seconds.
fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    let bad = || {
        Error::InvalidArgument(format!(
            "sqlite option {name}={value:?}: expected a duration such as 500ms, 10s, 5m or 1h"
        ))
    };
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = |factor: u64| number.checked_mul(factor).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => None,
    }
    .ok_or_else(bad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_option() {
        let options = SqliteOptions::from_query(
            "?synchronous=normal&auto_compaction=false&compaction_window=10m&\
             compaction_min_revisions=5&compaction_interval=500ms&compaction_batch=7&\
             max_batch=9&readers=2&watch_buffer=10&progress_interval=2s&delta_fold_rows=64",
        )
        .unwrap();
        assert_eq!(options.delta_fold_rows, 64);
        assert_eq!(options.synchronous, Synchronous::Normal);
        assert!(!options.auto_compaction);
        assert_eq!(options.compaction_window, Duration::from_secs(600));
        assert_eq!(options.compaction_min_revisions, 5);
        assert_eq!(options.compaction_interval, Duration::from_millis(500));
        assert_eq!(options.compaction_batch, 7);
        assert_eq!(options.max_batch, 9);
        assert_eq!(options.readers, 2);
        assert_eq!(options.watch_buffer, 10);
        assert_eq!(options.progress_interval, Duration::from_secs(2));
        assert_eq!(
            SqliteOptions::from_query("").unwrap(),
            SqliteOptions::default()
        );
        assert_eq!(
            SqliteOptions::from_query("compaction_window=0")
                .unwrap()
                .compaction_window,
            Duration::ZERO
        );
    }

    #[test]
    fn parses_urls() {
        let (path, options) = parse_url("sqlite:///var/lib/k.db?synchronous=normal").unwrap();
        assert_eq!(path, std::path::PathBuf::from("/var/lib/k.db"));
        assert_eq!(options.synchronous, Synchronous::Normal);
        let (path, options) = parse_url("sqlite://state.db").unwrap();
        assert_eq!(path, std::path::PathBuf::from("state.db"));
        assert_eq!(options, SqliteOptions::default());
        let (path, _) = parse_url("sqlite:rel/x.db").unwrap();
        assert_eq!(path, std::path::PathBuf::from("rel/x.db"));
        for bad in [
            "sqlite://",
            "sqlite://?readers=1",
            "etcd://x",
            "sqlite://x?bogus=1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            "synchronous=off",
            "nope=1",
            "readers",
            "compaction_window=5x",
            "compaction_window=m",
            "readers=-1",
            "progress_interval=0s",
            "readers=1&readers=2",
        ] {
            let err = SqliteOptions::from_query(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument(_)),
                "{bad:?} gave {err:?}"
            );
        }
    }
}
