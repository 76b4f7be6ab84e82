//! [`ObjectStorage`]: what the registry Store needs from object storage, as a trait, so that
//! layers (dry run, the watch cache) can stand in front of [`Storage`].

use apimachinery::object::Object;
use async_trait::async_trait;

use futures::StreamExt;

use crate::cache::Shared;
use crate::error::Result;
use crate::options::{
    GetOptions, ListOptions, ObjectList, Preconditions, ResponseMeta, WatchEvent,
};
use crate::{ObjectWatch, Storage, UpdateDecision, UpdateOutcome};

/// A watch whose objects are [`Shared`]: a watch cache hands every watcher the same object,
/// and each encoding of it is made once ([`ObjectStorage::watch_shared`]).
pub type SharedWatch<K> =
    std::pin::Pin<Box<dyn futures::Stream<Item = WatchEvent<Shared<K>>> + Send>>;

/// The decision callback of [`ObjectStorage::guaranteed_update_with`]: a stop carries no value (the
/// caller keeps its reason in the state the callback captures).
pub type UpdateFn<'a, K> = dyn FnMut(K, ResponseMeta) -> Result<UpdateDecision<K, ()>> + Send + 'a;

/// The deletion check of [`ObjectStorage::delete`], run on the object about to be deleted.
pub type ValidateFn<'a, K> = dyn Fn(&K) -> Result<()> + Send + Sync + 'a;

/// Kubernetes' `storage.Interface` for objects of one kind, object-safe. [`Storage`] is the
/// implementation over a byte-level store; [`crate::DryRun`] wraps any implementation and
/// writes nothing. Each method has the contract of the `Storage` method of the same name.
#[async_trait]
pub trait ObjectStorage<K: Object>: Send + Sync {
    /// An empty object of the kind (for create-on-update and bookmarks).
    fn new_object(&self) -> K;

    /// [`Storage::get`].
    async fn get(&self, key: &str, options: &GetOptions) -> Result<Option<K>>;

    /// [`Storage::get_list`].
    async fn get_list(&self, key: &str, options: &ListOptions) -> Result<ObjectList<K>>;

    /// [`Storage::watch`].
    async fn watch(&self, key: &str, options: &ListOptions) -> Result<ObjectWatch<K>>;

    /// [`ObjectStorage::watch`] with shared objects: what a server that encodes each event for
    /// many watchers uses. By default each object of [`ObjectStorage::watch`] is wrapped.
    async fn watch_shared(&self, key: &str, options: &ListOptions) -> Result<SharedWatch<K>> {
        let events = self.watch(key, options).await?;
        Ok(Box::pin(events.map(|event| event.map(Shared::new))))
    }

    /// [`ObjectStorage::get_list`] with shared objects, whose encodings are made once. By
    /// default each object of [`ObjectStorage::get_list`] is wrapped.
    async fn get_list_shared(
        &self,
        key: &str,
        options: &ListOptions,
    ) -> Result<ObjectList<Shared<K>>> {
        let list = self.get_list(key, options).await?;
        Ok(list.map(Shared::new))
    }

    /// [`Storage::create`].
    async fn create(&self, key: &str, object: &K, ttl: u64) -> Result<K>;

    /// [`Storage::delete`].
    async fn delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate: &ValidateFn<'_, K>,
        cached: Option<K>,
    ) -> Result<K>;

    /// [`Storage::guaranteed_update_with`].
    async fn guaranteed_update_with(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        update: &mut UpdateFn<'_, K>,
        cached: Option<K>,
    ) -> Result<UpdateOutcome<K, ()>>;

    /// [`Storage::count`].
    async fn count(&self, key: &str) -> Result<i64>;
}

#[async_trait]
impl<K: Object> ObjectStorage<K> for Storage<K> {
    fn new_object(&self) -> K {
        self.codec().new_object()
    }

    async fn get(&self, key: &str, options: &GetOptions) -> Result<Option<K>> {
        Storage::get(self, key, options).await
    }

    async fn get_list(&self, key: &str, options: &ListOptions) -> Result<ObjectList<K>> {
        Storage::get_list(self, key, options).await
    }

    async fn watch(&self, key: &str, options: &ListOptions) -> Result<ObjectWatch<K>> {
        Storage::watch(self, key, options).await
    }

    async fn create(&self, key: &str, object: &K, ttl: u64) -> Result<K> {
        Storage::create(self, key, object, ttl).await
    }

    async fn delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate: &ValidateFn<'_, K>,
        cached: Option<K>,
    ) -> Result<K> {
        Storage::delete(self, key, preconditions, validate, cached).await
    }

    async fn guaranteed_update_with(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        update: &mut UpdateFn<'_, K>,
        cached: Option<K>,
    ) -> Result<UpdateOutcome<K, ()>> {
        Storage::guaranteed_update_with(self, key, ignore_not_found, preconditions, update, cached)
            .await
    }

    async fn count(&self, key: &str) -> Result<i64> {
        Storage::count(self, key).await
    }
}
