//! Progress on request, fanned out to a store's watches: the backend kit's way to implement
//! [`crate::Interface::request_progress`] (the [`crate::WatchHub`] and the etcd backend use it).

use tokio::sync::watch;

/// Where a store's progress requests are announced; every watch that wants progress events
/// holds a [`ProgressSubscription`].
#[derive(Debug)]
pub struct ProgressRequests {
    epoch: watch::Sender<u64>,
}

impl Default for ProgressRequests {
    fn default() -> Self {
        ProgressRequests {
            epoch: watch::channel(0).0,
        }
    }
}

impl ProgressRequests {
    /// Announces a request to every subscription.
    pub fn request(&self) {
        self.epoch
            .send_modify(|epoch| *epoch = epoch.wrapping_add(1));
    }

    /// A subscription for a watch; one that does not want progress (`wants` false) never
    /// sees a request.
    pub fn subscribe(&self, wants: bool) -> ProgressSubscription {
        ProgressSubscription(wants.then(|| self.epoch.subscribe()))
    }
}

/// One watch's view of its store's progress requests.
#[derive(Debug)]
pub struct ProgressSubscription(Option<watch::Receiver<u64>>);

impl ProgressSubscription {
    /// Resolves at the next request made after the last one seen; never, for a watch that
    /// does not want progress or once the store is gone.
    pub async fn requested(&mut self) {
        if let Some(receiver) = &mut self.0 {
            if receiver.changed().await.is_ok() {
                return;
            }
        }
        std::future::pending().await
    }
}
