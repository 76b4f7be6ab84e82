//! Connection options and the `etcd://` storage URL.

use std::time::Duration;

use storage_api::{Error, Result};

/// The key kube-apiserver's compactor uses to coordinate several API servers (upstream
/// `staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go`, `compact`). It lives outside
/// every store prefix.
pub const DEFAULT_COMPACT_REV_KEY: &str = "compact_rev_key";

/// How to reach etcd and how the store behaves on it.
///
/// Build one with [`EtcdOptions::new`] or parse a storage URL with [`EtcdOptions::from_url`], then
/// pass it to [`crate::EtcdStore::connect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Client endpoints, `host:port` or `http://host:port`. Requests are balanced over them and
    /// fail over to the remaining ones when a member goes down.
    pub endpoints: Vec<String>,
    /// Every key of the store is stored under this prefix (for example `/registry`), which is
    /// hidden from results. Empty means the whole keyspace. Must not end with `/`.
    pub prefix: String,
    /// Upper bound on one request (including retries of reads); past it the request fails with
    /// [`Error::Unavailable`]. URL option `timeout`.
    pub request_timeout: Duration,
    /// Upper bound on establishing a connection to one endpoint. URL option `connect-timeout`.
    pub connect_timeout: Duration,
    /// How long a broken watch keeps trying to resume on another member before it ends with
    /// [`Error::Unavailable`]. URL option `watch-resume-timeout`.
    pub watch_resume_timeout: Duration,
    /// Upper bound on the window in which writes with the same TTL share one lease; the window is
    /// also at most 5% of the TTL (kube-apiserver's lease manager). URL option `lease-reuse`.
    pub lease_reuse_duration: Duration,
    /// How many writes may attach to one lease before a new one is granted. URL option
    /// `lease-max-objects`.
    pub lease_max_objects: u64,
    /// Run the periodic, multi-server-safe compactor with this interval (`None`: no compactor).
    /// URL option `compaction-interval` (`0` disables it).
    pub compaction_interval: Option<Duration>,
    /// The key the periodic compactor compares-and-swaps. URL option `compact-key`.
    pub compact_rev_key: String,
}

impl EtcdOptions {
    /// Options for `endpoints` and `prefix` with the defaults: 5 s request timeout, 2 s connect
    /// timeout, 30 s watch resume timeout, 60 s lease reuse window, 1000 keys per lease, no
    /// compactor.
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>) -> Self {
        EtcdOptions {
            endpoints,
            prefix: prefix.into(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            watch_resume_timeout: Duration::from_secs(30),
            lease_reuse_duration: Duration::from_secs(60),
            lease_max_objects: 1000,
            compaction_interval: None,
            compact_rev_key: DEFAULT_COMPACT_REV_KEY.to_owned(),
        }
    }

    /// Parses `etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?options]`.
    ///
    /// The prefix is the path with its leading `/` kept and trailing `/`s removed
    /// (`etcd://127.0.0.1:2379/registry` stores `/pods/a` as `/registry/pods/a`; no path means
    /// the whole keyspace). Options, `&`-separated `name=value`: `timeout`, `connect-timeout`,
    /// `watch-resume-timeout`, `lease-reuse`, `compaction-interval` (durations such as `500ms`,
    /// `5s`, `5m`, `1h`, or a number of seconds), `lease-max-objects` (a count) and
    /// `compact-key` (a key). Anything else is [`Error::InvalidArgument`].
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("etcd://").ok_or_else(|| {
            Error::InvalidArgument(format!("etcd URL {url:?} must start with etcd://"))
        })?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (hosts, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "etcd URL {url:?} names no endpoint (etcd://HOST:PORT[,HOST:PORT...]/PREFIX)"
            )));
        }
        for endpoint in &endpoints {
            let port = endpoint.rsplit_once(':').map(|(_, port)| port);
            if port.is_none_or(|p| p.parse::<u16>().is_err()) {
                return Err(Error::InvalidArgument(format!(
                    "etcd endpoint {endpoint:?} in {url:?} must be HOST:PORT"
                )));
            }
        }
        let prefix = path.trim_end_matches('/');
        storage_api::validate_prefix(prefix)?;
        let mut options = EtcdOptions::new(endpoints, prefix);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').ok_or_else(|| {
                Error::InvalidArgument(format!("etcd URL option {pair:?} must be name=value"))
            })?;
            match name {
                "timeout" => options.request_timeout = parse_duration(name, value)?,
                "connect-timeout" => options.connect_timeout = parse_duration(name, value)?,
                "watch-resume-timeout" => {
                    options.watch_resume_timeout = parse_duration(name, value)?
                }
                "lease-reuse" => options.lease_reuse_duration = parse_duration(name, value)?,
                "compaction-interval" => {
                    let interval = parse_duration(name, value)?;
                    options.compaction_interval = (!interval.is_zero()).then_some(interval);
                }
                "lease-max-objects" => {
                    options.lease_max_objects = value.parse().map_err(|_| {
                        Error::InvalidArgument(format!(
                            "etcd URL option lease-max-objects={value:?} is not a count"
                        ))
                    })?
                }
                "compact-key" if !value.is_empty() => options.compact_rev_key = value.to_owned(),
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown or empty etcd URL option {name:?} (known: timeout, \
                         connect-timeout, watch-resume-timeout, lease-reuse, lease-max-objects, \
                         compaction-interval, compact-key)"
                    )));
                }
            }
        }
        if options.request_timeout.is_zero() || options.connect_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "etcd timeouts must be greater than zero".to_owned(),
            ));
        }
        Ok(options)
    }
}

/// Parses `500ms`, `5s`, `5m`, `1h` or a bare number of seconds (fractions allowed).
fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    let bad = || {
        Error::InvalidArgument(format!(
            "etcd URL option {name}={value:?} is not a duration (like 500ms, 5s, 5m, 1h)"
        ))
    };
    let (number, unit_secs) = if let Some(n) = value.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = value.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (value, 1.0)
    };
    let number: f64 = number.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(number * unit_secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints_prefix_and_options() {
        let o = EtcdOptions::from_url(
            "etcd://127.0.0.1:2379,localhost:22379/registry/?timeout=500ms&compaction-interval=5m&lease-max-objects=7&compact-key=ck",
        )
        .unwrap();
        assert_eq!(o.endpoints, vec!["127.0.0.1:2379", "localhost:22379"]);
        assert_eq!(o.prefix, "/registry");
        assert_eq!(o.request_timeout, Duration::from_millis(500));
        assert_eq!(o.compaction_interval, Some(Duration::from_secs(300)));
        assert_eq!(o.lease_max_objects, 7);
        assert_eq!(o.compact_rev_key, "ck");

        let o = EtcdOptions::from_url("etcd://h:1").unwrap();
        assert_eq!(o.prefix, "");
        assert_eq!(o.compaction_interval, None);
        assert_eq!(o.compact_rev_key, DEFAULT_COMPACT_REV_KEY);
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "http://h:1/x",
            "etcd:///x",
            "etcd://h/x",
            "etcd://h:notaport/x",
            "etcd://h:1/x?nope=1",
            "etcd://h:1/x?timeout=fast",
            "etcd://h:1/x?timeout=0",
            "etcd://h:1/a/../b",
        ] {
            let err = EtcdOptions::from_url(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err:?}");
        }
    }
}
