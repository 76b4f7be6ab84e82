//! Prints durable create throughput with 1 and with 64 concurrent writers on one store, and
//! their ratio: a quick look at group commit (the benchmark tool is the real measurement).
//!
//! `cargo run -p backend-sqlite --example group_commit [WRITES]`

use std::sync::Arc;
use std::time::Instant;

use backend_sqlite::{SqliteOptions, SqliteStore};
use storage_api::Interface;

async fn rate(store: &Arc<SqliteStore>, writers: usize, writes: usize, tag: &str) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = Arc::clone(store);
            let tag = tag.to_owned();
            tokio::spawn(async move {
                for i in 0..writes / writers {
                    if let Err(error) = store
                        .create(&format!("/{tag}/{w}/{i}"), vec![b'x'; 1024].into(), None)
                        .await
                    {
                        eprintln!("create failed: {error}");
                        return;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    writes as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let writes: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(
        dir.path().join("bench.db"),
        SqliteOptions::default(),
    )?);
    let single = rate(&store, 1, writes / 4, "single").await;
    let before = store.stats().transactions;
    let many = rate(&store, 64, writes, "many").await;
    let transactions = store.stats().transactions - before;
    println!("1 writer:   {single:.0} creates/s");
    println!("64 writers: {many:.0} creates/s ({writes} writes in {transactions} transactions)");
    println!("ratio:      {:.1}x", many / single);
    Ok(())
}
