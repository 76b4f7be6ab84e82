//! `GetList`: snapshot reads with resourceVersion rules, selectors, paging and continue tokens.

use storage_api::{RangeRequest, RangeResponse, Revision};

use crate::error::{Result, StorageError};
use crate::options::{ListOptions, ObjectList, ResourceVersionMatch};
use crate::{Storage, directory};
use apimachinery::continue_token::{decode_continue, encode_continue};
use apimachinery::object::Object;
use apimachinery::resource_version::parse_resource_version;

/// The largest page fetched from the store while filtering (Kubernetes' `maxLimit`).
const MAX_PAGE: u64 = 10_000;

const LIST_TOO_OLD: &str = "The resourceVersion for the provided list is too old.";
const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a \
consistent list result. You can start a new list without the continue parameter, or use the \
continue token in this response to retrieve the remainder of the results. Continuing with the \
provided token results in an inconsistent list - objects that were created, modified, or deleted \
between the time the first chunk was returned and now may show up in the list.";
const CONTINUE_TOO_OLD_SHORT: &str = "The provided continue parameter is too old to display a \
consistent list result. You can start a new list without the continue parameter.";

/// Where and how a list reads, from `ValidateListOptions`.
#[derive(Debug)]
pub(crate) struct ListPlan {
    /// Read at this exact revision; `None` reads at the latest.
    pub(crate) revision: Option<Revision>,
    /// First key to read (from a continue token).
    pub(crate) continue_key: Option<String>,
    /// The not-older-than bound to enforce on the result.
    pub(crate) minimum: Revision,
}

impl<K: Object> Storage<K> {
    /// Kubernetes' `GetList` on `key`: a single object (non-recursive) or every object under
    /// `key + "/"` (recursive), with the resourceVersion, resourceVersionMatch, limit and
    /// continue semantics of upstream's etcd3 store (`pkg/storage/etcd3/store.go`, `GetList`,
    /// and `pkg/storage/continue.go`).
    #[tracing::instrument(level = "debug", skip(self, options), fields(rv = %options.resource_version))]
    pub async fn get_list(&self, key: &str, options: &ListOptions) -> Result<ObjectList<K>> {
        let full = self.prepare_key(key)?;
        let key_prefix = if options.recursive {
            directory(full.clone())
        } else {
            full.clone()
        };
        let limit = match options.predicate.limit {
            Some(limit) if limit < 0 => {
                return Err(StorageError::BadRequest(
                    "list limit must not be negative".to_owned(),
                ));
            }
            Some(limit) => limit.unsigned_abs(),
            None => 0,
        };
        let plan = plan(&key_prefix, options, limit)?;
        let list = if options.recursive {
            self.list_recursive(&key_prefix, options, &plan, limit)
                .await?
        } else {
            self.list_single(&full, options, &plan).await?
        };
        if plan.minimum > list.resource_version {
            return Err(StorageError::TooLargeResourceVersion {
                requested: plan.minimum,
                current: list.resource_version,
                retry_after_seconds: 1,
            });
        }
        Ok(list)
    }

    async fn list_single(
        &self,
        full: &str,
        options: &ListOptions,
        plan: &ListPlan,
    ) -> Result<ObjectList<K>> {
        let response = self
            .store
            .get(full, plan.revision)
            .await
            .map_err(|e| list_error(full, e, None))?;
        let mut items = Vec::new();
        if let Some(kv) = response.kv {
            let (object, _, _) = self.codec.decode(&kv)?;
            if self.matches(options, &object) {
                items.push(object);
            }
        }
        Ok(ObjectList {
            items,
            resource_version: response.revision,
            continue_token: None,
            remaining_item_count: None,
        })
    }

    fn matches(&self, options: &ListOptions, object: &K) -> bool {
        let predicate = &options.predicate;
        if predicate.is_empty() {
            return true;
        }
        let (labels, fields) = self.attributes(object);
        predicate.matches(&labels, &fields)
    }

    async fn list_recursive(
        &self,
        key_prefix: &str,
        options: &ListOptions,
        plan: &ListPlan,
        limit: u64,
    ) -> Result<ObjectList<K>> {
        let mut revision = plan.revision;
        let mut start = plan
            .continue_key
            .clone()
            .unwrap_or_else(|| key_prefix.to_owned());
        let mut page = if limit == 0 { None } else { Some(limit) };
        let mut items = Vec::new();
        let mut last_key = None;
        let mut has_more;
        let mut last_count;
        loop {
            let request = RangeRequest {
                prefix: key_prefix.to_owned(),
                start: Some(start.clone()),
                revision,
                limit: page,
                count_only: false,
            };
            let response: RangeResponse = self
                .store
                .range(request)
                .await
                .map_err(|e| list_error(key_prefix, e, plan.continue_key.as_deref()))?;
            revision.get_or_insert(response.revision);
            last_count = response.count;
            has_more = response.more;
            let fetched = response.kvs.len();
            for (index, kv) in response.kvs.into_iter().enumerate() {
                let (object, _, _) = self.codec.decode(&kv)?;
                last_key = Some(kv.key);
                if self.matches(options, &object) {
                    items.push(object);
                }
                if limit > 0 && items.len() as u64 == limit {
                    // A full page with keys still unread in this fetch means more remain.
                    has_more = has_more || index + 1 < fetched;
                    break;
                }
            }
            if (limit > 0 && items.len() as u64 == limit) || !has_more {
                break;
            }
            let Some(last) = &last_key else { break };
            start = format!("{last}\0");
            page = page.map(|size| {
                if size >= MAX_PAGE {
                    size
                } else {
                    (size * 2).min(MAX_PAGE)
                }
            });
        }
        let resource_version = revision.unwrap_or_default();
        let (continue_token, remaining_item_count) = match (&last_key, has_more) {
            (Some(last), true) => {
                let next = format!("{last}\0");
                let token = encode_continue(&next, key_prefix, to_i64(resource_version))
                    .map_err(|e| StorageError::Internal(e.to_string()))?;
                let remaining = options
                    .predicate
                    .is_empty()
                    .then(|| to_i64(last_count).saturating_sub(to_i64(limit)).max(0));
                (Some(token), remaining)
            }
            _ => (None, None),
        };
        Ok(ObjectList {
            items,
            resource_version,
            continue_token,
            remaining_item_count,
        })
    }
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Kubernetes' storage-level `ValidateListOptions`.
pub(crate) fn plan(key_prefix: &str, options: &ListOptions, limit: u64) -> Result<ListPlan> {
    let continue_token = options
        .predicate
        .continue_token
        .as_deref()
        .filter(|t| !t.is_empty());
    if let (true, Some(token)) = (options.recursive, continue_token) {
        let (continue_key, token_revision) = decode_continue(token, key_prefix)
            .map_err(|e| StorageError::BadRequest(format!("invalid continue token: {e}")))?;
        if !options.resource_version.is_empty() && options.resource_version != "0" {
            return Err(StorageError::BadRequest(
                "specifying resource version is not allowed when using continue".to_owned(),
            ));
        }
        let revision = u64::try_from(token_revision).ok().filter(|rv| *rv > 0);
        return Ok(ListPlan {
            revision,
            continue_key: Some(continue_key),
            minimum: 0,
        });
    }
    if options.resource_version.is_empty() {
        return Ok(ListPlan {
            revision: None,
            continue_key: None,
            minimum: 0,
        });
    }
    let requested = parse_resource_version(&options.resource_version)
        .map_err(|e| StorageError::BadRequest(e.to_string()))?;
    let revision = match &options.resource_version_match {
        ResourceVersionMatch::NotOlderThan => None,
        ResourceVersionMatch::Exact => Some(requested).filter(|rv| *rv > 0),
        ResourceVersionMatch::Unset => {
            Some(requested).filter(|rv| options.recursive && limit > 0 && *rv > 0)
        }
        ResourceVersionMatch::Other(value) => {
            return Err(StorageError::BadRequest(format!(
                "unknown ResourceVersionMatch value: {value}"
            )));
        }
    };
    let minimum = if revision.is_some() { 0 } else { requested };
    Ok(ListPlan {
        revision,
        continue_key: None,
        minimum,
    })
}

/// Maps a range error, turning a compacted continue token into the 410 with a fresh
/// inconsistent token.
fn list_error(
    key_prefix: &str,
    error: storage_api::Error,
    continue_key: Option<&str>,
) -> StorageError {
    match (error, continue_key) {
        (storage_api::Error::Compacted { .. }, Some(from)) => {
            match encode_continue(from, key_prefix, -1) {
                Ok(token) => StorageError::Expired {
                    message: CONTINUE_TOO_OLD.to_owned(),
                    continue_token: Some(token),
                },
                Err(_) => StorageError::Expired {
                    message: CONTINUE_TOO_OLD_SHORT.to_owned(),
                    continue_token: None,
                },
            }
        }
        (storage_api::Error::Compacted { .. }, None) => StorageError::Expired {
            message: LIST_TOO_OLD.to_owned(),
            continue_token: None,
        },
        (other, _) => StorageError::from_backend(key_prefix, other),
    }
}
