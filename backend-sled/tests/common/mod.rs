//! What the backend-sled test files share.

use std::path::Path;
use std::time::{Duration, Instant};

/// Opens the directory with sled itself (no background flusher, which would keep it locked
/// after the drop) once the store closed just before has released its lock, which sled does a
/// moment after the close returns (spacejam/sled#1289).
pub fn open_raw(path: &Path) -> anyhow::Result<sled::Db> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match sled::Config::new().path(path).flush_every_ms(None).open() {
            Ok(db) => return Ok(db),
            Err(error)
                if error.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => return Err(error.into()),
        }
    }
}
