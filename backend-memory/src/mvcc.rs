//! The versioned key space: every version of every key since the compaction revision, and the
//! log of events used to replay watches. Pure data structure, no locking and no async.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use bytes::Bytes;
use storage_api::{
    BatchWrite, Error, HistoryPage, KeyValue, Precondition, RangeRequest, RangeResponse, Result,
    Revision, WatchEvent,
};

/// One version of a key; `value: None` is a tombstone written by a delete.
#[derive(Clone, Debug)]
struct Version {
    mod_revision: Revision,
    create_revision: Revision,
    value: Option<Bytes>,
}

/// The MVCC state of one store.
#[derive(Debug, Default)]
pub(crate) struct Mvcc {
    revision: Revision,
    compacted: Revision,
    /// Versions of each key in ascending `mod_revision` order, never empty.
    keys: BTreeMap<String, Vec<Version>>,
    /// Every event with a revision above `compacted`, in revision order.
    log: VecDeque<WatchEvent>,
}

impl Mvcc {
    pub(crate) fn revision(&self) -> Revision {
        self.revision
    }

    pub(crate) fn compacted(&self) -> Revision {
        self.compacted
    }

    /// The live value of `key` at the latest revision.
    pub(crate) fn latest(&self, key: &str) -> Option<KeyValue> {
        let versions = self.keys.get(key)?;
        to_kv(key, versions.last()?)
    }

    fn check_read_revision(&self, revision: Revision) -> Result<()> {
        if revision < self.compacted {
            return Err(Error::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        if revision > self.revision {
            return Err(Error::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        Ok(())
    }

    /// `key` at `revision` (latest when `None`), with the revision the read was served at.
    pub(crate) fn get(
        &self,
        key: &str,
        revision: Option<Revision>,
    ) -> Result<(Revision, Option<KeyValue>)> {
        let at = revision.unwrap_or(self.revision);
        self.check_read_revision(at)?;
        let kv = self
            .keys
            .get(key)
            .and_then(|versions| version_at(key, versions, at));
        Ok((at, kv))
    }

    pub(crate) fn range(&self, request: &RangeRequest) -> Result<RangeResponse> {
        let at = request.revision.unwrap_or(self.revision);
        self.check_read_revision(at)?;
        let start = match &request.start {
            Some(start) if start.as_str() > request.prefix.as_str() => start.as_str(),
            _ => request.prefix.as_str(),
        };
        let limit = match request.limit {
            Some(0) | None => usize::MAX,
            Some(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        };
        let mut response = RangeResponse {
            revision: at,
            ..RangeResponse::default()
        };
        let live = self
            .keys
            .range::<str, _>((Bound::Included(start), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(request.prefix.as_str()))
            .filter_map(|(key, versions)| version_at(key, versions, at));
        for kv in live {
            response.count += 1;
            if request.count_only {
                continue;
            }
            if response.kvs.len() < limit {
                response.kvs.push(kv);
            } else {
                response.more = true;
            }
        }
        if request.count_only {
            response.more = false;
        }
        Ok(response)
    }

    /// The current value of `key` if `precondition` holds for it.
    fn check_precondition(&self, key: &str, precondition: Precondition) -> Result<KeyValue> {
        let current = self.latest(key).ok_or_else(|| Error::NotFound {
            key: key.to_owned(),
        })?;
        match precondition {
            Precondition::ModRevision(expected) if expected != current.mod_revision => {
                Err(Error::Conflict {
                    key: key.to_owned(),
                    expected,
                    current: Box::new(current),
                })
            }
            _ => Ok(current),
        }
    }

    pub(crate) fn create(&mut self, key: &str, value: Bytes) -> Result<WatchEvent> {
        if self.latest(key).is_some() {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let revision = self.revision + 1;
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
        };
        Ok(self.append(WatchEvent::Put { kv, prev: None }))
    }

    pub(crate) fn update(
        &mut self,
        key: &str,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<WatchEvent> {
        let prev = self.check_precondition(key, precondition)?;
        let revision = self.revision + 1;
        let kv = KeyValue {
            key: key.to_owned(),
            value,
            create_revision: prev.create_revision,
            mod_revision: revision,
        };
        Ok(self.append(WatchEvent::Put {
            kv,
            prev: Some(prev),
        }))
    }

    pub(crate) fn delete(&mut self, key: &str, precondition: Precondition) -> Result<WatchEvent> {
        let prev = self.check_precondition(key, precondition)?;
        let revision = self.revision + 1;
        Ok(self.append(WatchEvent::Delete {
            key: key.to_owned(),
            revision,
            prev,
        }))
    }

    /// Applies every write of a validated batch at the next revision, or none of them when an
    /// expectation does not hold.
    pub(crate) fn apply_batch(&mut self, writes: Vec<BatchWrite>) -> Result<Vec<WatchEvent>> {
        let revision = self.revision + 1;
        let mut events = Vec::with_capacity(writes.len());
        for write in writes {
            let live = self.latest(write.key());
            write.check(live.as_ref())?;
            events.push(match (write, live) {
                (BatchWrite::Put { key, value, .. }, prev) => WatchEvent::Put {
                    kv: KeyValue {
                        key,
                        value,
                        create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                        mod_revision: revision,
                    },
                    prev,
                },
                (BatchWrite::Delete { key, .. }, Some(prev)) => WatchEvent::Delete {
                    key,
                    revision,
                    prev,
                },
                (BatchWrite::Delete { key, .. }, None) => return Err(Error::NotFound { key }),
            });
        }
        for event in &events {
            self.append(event.clone());
        }
        Ok(events)
    }

    /// Records a write event at the next revision and returns it.
    fn append(&mut self, event: WatchEvent) -> WatchEvent {
        let version = match &event {
            WatchEvent::Put { kv, .. } => Version {
                mod_revision: kv.mod_revision,
                create_revision: kv.create_revision,
                value: Some(kv.value.clone()),
            },
            WatchEvent::Delete { revision, prev, .. } => Version {
                mod_revision: *revision,
                create_revision: prev.create_revision,
                value: None,
            },
            WatchEvent::Progress { .. } => return event,
        };
        self.revision = version.mod_revision;
        let key = event.key().unwrap_or_default().to_owned();
        self.keys.entry(key).or_default().push(version);
        self.log.push_back(event.clone());
        event
    }

    /// The events in `(after, until]` for which `matches` holds, from the log, scanning at
    /// most `budget` entries.
    pub(crate) fn events_between(
        &self,
        after: Revision,
        until: Revision,
        budget: usize,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<HistoryPage> {
        if after < self.compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted: self.compacted,
            });
        }
        let first = self.log.partition_point(|event| event.revision() <= after);
        let mut page = HistoryPage {
            events: Vec::new(),
            scanned_to: until,
        };
        let mut last = after;
        for (scanned, event) in self.log.range(first..).enumerate() {
            let revision = event.revision();
            if revision > until {
                break;
            }
            // Pages end between revisions, never inside one.
            if scanned >= budget && revision != last {
                page.scanned_to = last;
                break;
            }
            last = revision;
            if event.key().is_some_and(&mut matches) {
                page.events.push(event.clone());
            }
        }
        Ok(page)
    }

    /// Discards versions and events that no read at `revision` or later can see.
    pub(crate) fn compact(&mut self, revision: Revision) -> Result<()> {
        if revision <= self.compacted {
            return Err(Error::Compacted {
                requested: revision,
                compacted: self.compacted,
            });
        }
        if revision > self.revision {
            return Err(Error::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        self.keys.retain(|_, versions| {
            let visible = versions.partition_point(|v| v.mod_revision <= revision);
            // Keep the version visible at `revision` only if it is a live value.
            let keep_from = match visible.checked_sub(1) {
                Some(i) if versions[i].value.is_some() => i,
                _ => visible,
            };
            versions.drain(..keep_from);
            !versions.is_empty()
        });
        let dropped = self
            .log
            .partition_point(|event| event.revision() <= revision);
        self.log.drain(..dropped);
        self.compacted = revision;
        Ok(())
    }
}

fn to_kv(key: &str, version: &Version) -> Option<KeyValue> {
    Some(KeyValue {
        key: key.to_owned(),
        value: version.value.clone()?,
        create_revision: version.create_revision,
        mod_revision: version.mod_revision,
    })
}

fn version_at(key: &str, versions: &[Version], revision: Revision) -> Option<KeyValue> {
    let visible = versions.partition_point(|v| v.mod_revision <= revision);
    to_kv(key, versions.get(visible.checked_sub(1)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn compaction_keeps_the_version_visible_at_the_compaction_revision() {
        let mut m = Mvcc::default();
        m.create("/a", bytes("1")).unwrap();
        m.update("/a", bytes("2"), Precondition::None).unwrap();
        m.create("/b", bytes("x")).unwrap();
        m.delete("/b", Precondition::None).unwrap();
        m.compact(4).unwrap();
        assert_eq!(m.get("/a", Some(4)).unwrap().1.unwrap().value, bytes("2"));
        assert!(m.get("/b", Some(4)).unwrap().1.is_none());
        assert!(
            !m.keys.contains_key("/b"),
            "tombstones at or below the compaction revision go"
        );
        assert_eq!(m.keys["/a"].len(), 1, "superseded versions go");
        assert!(matches!(m.get("/a", Some(3)), Err(Error::Compacted { .. })));
        assert!(m.log.is_empty());
    }
}
