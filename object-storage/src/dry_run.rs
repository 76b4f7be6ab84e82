//! [`DryRun`]: object storage that reads through and writes nothing, as upstream's
//! `DryRunnableStorage` (`pkg/registry/generic/registry/dryrun.go`) does for `dryRun=All`.

use std::sync::Arc;

use apimachinery::object::Object;
use async_trait::async_trait;

use crate::error::{Result, StorageError};
use crate::interface::{ObjectStorage, UpdateFn, ValidateFn};
use crate::options::{GetOptions, ListOptions, ObjectList, Preconditions, ResponseMeta};
use crate::{ObjectWatch, UpdateDecision, UpdateOutcome, check_create_has_no_resource_version};

/// Wraps object storage for dry-run requests: reads go through; a create, delete or update
/// runs every check against the live object (existence, preconditions, the deletion check,
/// the update callback) and answers what the write would have stored, without writing.
pub struct DryRun<K> {
    inner: Arc<dyn ObjectStorage<K>>,
}

impl<K: Object> DryRun<K> {
    /// A dry-run view of `inner`.
    pub fn new(inner: Arc<dyn ObjectStorage<K>>) -> Self {
        DryRun { inner }
    }

    /// The live object at `key`, or `None`.
    async fn live(&self, key: &str) -> Result<Option<K>> {
        let probe = GetOptions {
            ignore_not_found: true,
            resource_version: String::new(),
        };
        self.inner.get(key, &probe).await
    }
}

fn revision_of<K: Object>(object: &K) -> u64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn not_found(key: &str) -> StorageError {
    StorageError::KeyNotFound {
        key: key.to_owned(),
        resource_version: 0,
    }
}

#[async_trait]
impl<K: Object> ObjectStorage<K> for DryRun<K> {
    fn new_object(&self) -> K {
        self.inner.new_object()
    }

    async fn get(&self, key: &str, options: &GetOptions) -> Result<Option<K>> {
        self.inner.get(key, options).await
    }

    async fn get_list(&self, key: &str, options: &ListOptions) -> Result<ObjectList<K>> {
        self.inner.get_list(key, options).await
    }

    async fn watch(&self, key: &str, options: &ListOptions) -> Result<ObjectWatch<K>> {
        self.inner.watch(key, options).await
    }

    /// A resourceVersion on the object is refused as by a real create; an existing object is
    /// `KeyExists`; otherwise the object as given.
    async fn create(&self, key: &str, object: &K, _ttl: u64) -> Result<K> {
        check_create_has_no_resource_version(object)?;
        match self.live(key).await? {
            Some(existing) => Err(StorageError::KeyExists {
                key: key.to_owned(),
                resource_version: revision_of(&existing),
            }),
            None => Ok(object.clone()),
        }
    }

    /// The live object, after the preconditions and the deletion check.
    async fn delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate: &ValidateFn<'_, K>,
        _cached: Option<K>,
    ) -> Result<K> {
        let live = self.live(key).await?.ok_or_else(|| not_found(key))?;
        if let Some(preconditions) = preconditions {
            preconditions.check(key, &live)?;
        }
        validate(&live)?;
        Ok(live)
    }

    /// One run of `update` on the live object (or an empty one at revision 0 when missing and
    /// `ignore_not_found`), after the preconditions; its decision is answered, not carried out.
    async fn guaranteed_update_with(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        update: &mut UpdateFn<'_, K>,
        _cached: Option<K>,
    ) -> Result<UpdateOutcome<K, ()>> {
        let (existing, revision) = match self.live(key).await? {
            Some(object) => {
                if let Some(preconditions) = preconditions {
                    preconditions.check(key, &object)?;
                }
                let revision = revision_of(&object);
                (object, revision)
            }
            None if ignore_not_found => {
                let empty = self.inner.new_object();
                if let Some(preconditions) = preconditions {
                    preconditions.check(key, &empty)?;
                }
                (empty, 0)
            }
            None => return Err(not_found(key)),
        };
        let meta = ResponseMeta {
            ttl: 0,
            resource_version: revision,
        };
        Ok(match update(existing, meta)? {
            UpdateDecision::Write(object, _) => UpdateOutcome::Written(object),
            UpdateDecision::Delete(object) => UpdateOutcome::Deleted(object),
            UpdateDecision::Stop(()) => UpdateOutcome::Stopped(()),
        })
    }

    async fn count(&self, key: &str) -> Result<i64> {
        self.inner.count(key).await
    }
}

impl<K> std::fmt::Debug for DryRun<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DryRun").finish_non_exhaustive()
    }
}
