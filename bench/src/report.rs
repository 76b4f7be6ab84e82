//! Ratios, the human table and the key ratios the issues ask for.

use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::Row;

/// A latency in microseconds as `850µs`, `1.25ms` or `2.10s`.
pub fn latency(us: f64) -> String {
    if us < 1.0 {
        format!("{:.0}ns", us * 1000.0)
    } else if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// Sets every row's ratio to its baseline row (see `--baseline`).
pub fn compute_ratios(rows: &mut [Row], baseline: &str) {
    let snapshot: Vec<Row> = rows.to_vec();
    for row in rows.iter_mut() {
        let found = if baseline == "kv" {
            snapshot.iter().find(|b| {
                b.backend == row.backend
                    && b.level == "kv"
                    && b.workload == row.workload
                    && b.concurrency == row.concurrency
            })
        } else {
            let candidates: Vec<&Row> = snapshot.iter().filter(|b| b.backend == baseline).collect();
            candidates
                .iter()
                .find(|b| b.workload == row.workload && b.concurrency == row.concurrency)
                .or_else(|| {
                    candidates
                        .iter()
                        .filter(|b| b.workload == row.workload)
                        .min_by_key(|b| b.concurrency.abs_diff(row.concurrency))
                })
                .or(match candidates.as_slice() {
                    [only] => Some(only),
                    _ => None,
                })
                .copied()
        };
        if let Some(base) = found {
            if base.ops_per_sec > 0.0 {
                row.ratio = Some(row.ops_per_sec / base.ops_per_sec);
                row.ratio_to = Some(base.id());
            }
        }
    }
}

/// One of the comparisons the issues ask for, computed from two rows of the run.
#[derive(Clone, Debug, Serialize)]
pub struct KeyRatio {
    /// What is compared.
    pub name: String,
    /// `numerator ÷ denominator` as row ids.
    pub rows: String,
    /// The ratio of their ops/s.
    pub ratio: f64,
    /// The target, when the issue states one (`>= 5`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether the target is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

/// The comparisons of issues 3, 4 and 9 that this run has both rows for.
pub fn key_ratios(rows: &[Row]) -> Vec<KeyRatio> {
    let find = |id: &str| rows.iter().find(|r| r.id() == id && r.ops_per_sec > 0.0);
    let mut out = Vec::new();
    let mut push = |name: String, num: String, den: String, min: Option<f64>| {
        if let (Some(n), Some(d)) = (find(&num), find(&den)) {
            let ratio = n.ops_per_sec / d.ops_per_sec;
            out.push(KeyRatio {
                name,
                rows: format!("{num} ÷ {den}"),
                ratio,
                target: min.map(|m| format!(">= {m}")),
                met: min.map(|m| ratio >= m),
            });
        }
    };
    let max_c = rows
        .iter()
        .filter(|r| r.backend == "sqlite" && r.workload == "create")
        .map(|r| r.concurrency)
        .max()
        .unwrap_or(64);
    push(
        format!("SQLite group commit: durable creates at {max_c} vs 1 writer"),
        format!("sqlite/kv/create/c{max_c}"),
        "sqlite/kv/create/c1".to_owned(),
        Some(5.0),
    );
    push(
        format!("SQLite vs etcd backend: creates at {max_c}"),
        format!("sqlite/kv/create/c{max_c}"),
        format!("etcd/kv/create/c{max_c}"),
        Some(1.0),
    );
    push(
        "SQLite single-writer creates vs the fsync floor".to_owned(),
        "sqlite/kv/create/c1".to_owned(),
        "fsync/raw/fsync/c1".to_owned(),
        None,
    );
    push(
        "raw rusqlite, 1 insert per txn, vs the fsync floor".to_owned(),
        "sqlite-raw/raw/create/c1".to_owned(),
        "fsync/raw/fsync/c1".to_owned(),
        None,
    );
    push(
        "SQLite backend single-writer creates vs raw rusqlite".to_owned(),
        "sqlite/kv/create/c1".to_owned(),
        "sqlite-raw/raw/create/c1".to_owned(),
        None,
    );
    push(
        format!("SQLite backend creates at {max_c} vs raw rusqlite batches of {max_c}"),
        format!("sqlite/kv/create/c{max_c}"),
        format!("sqlite-raw-batch/raw/create/c{max_c}"),
        None,
    );
    push(
        format!(
            "SQLite backend creates at {max_c} vs raw rusqlite batches of {max_c} with the workload's interleaved keys"
        ),
        format!("sqlite/kv/create/c{max_c}"),
        format!("sqlite-raw-interleaved/raw/create/c{max_c}"),
        None,
    );
    push(
        "raw rusqlite on a writer thread fed by a tokio task vs on the caller's thread, 1 insert per txn"
            .to_owned(),
        "sqlite-raw-thread/raw/create/c1".to_owned(),
        "sqlite-raw/raw/create/c1".to_owned(),
        None,
    );
    push(
        "SQLite backend single-writer creates vs raw rusqlite on a writer thread fed by a tokio task"
            .to_owned(),
        "sqlite/kv/create/c1".to_owned(),
        "sqlite-raw-thread/raw/create/c1".to_owned(),
        None,
    );
    push(
        "SQLite backend fed from one thread (no tokio) vs raw rusqlite, 1 writer".to_owned(),
        "sqlite-direct/kv/create/c1".to_owned(),
        "sqlite-raw/raw/create/c1".to_owned(),
        None,
    );
    push(
        format!("SQLite backend fed from one thread (no tokio) vs raw rusqlite, {max_c} writers"),
        format!("sqlite-direct/kv/create/c{max_c}"),
        format!("sqlite-raw-batch/raw/create/c{max_c}"),
        None,
    );
    push(
        format!("SQLite backend: tokio clients vs one thread, creates at {max_c}"),
        format!("sqlite/kv/create/c{max_c}"),
        format!("sqlite-direct/kv/create/c{max_c}"),
        None,
    );
    for rbac in rows.iter().filter(|r| r.level == "http-rbac") {
        let what = match rbac.workload.as_str() {
            "get" => "GET/s",
            "create" => "creates/s",
            other => other,
        };
        push(
            format!(
                "RBAC on, {}: {what} of a user bound by 1 of 1,000 RoleBindings vs a system:masters member side by side, c{}",
                rbac.backend, rbac.concurrency
            ),
            rbac.id(),
            format!(
                "{}/http-masters/{}/c{}",
                rbac.backend, rbac.workload, rbac.concurrency
            ),
            Some(0.9),
        );
    }
    // The etcd front (issue 16): the same etcd backend on the front over SQLite vs on etcd.
    let mut front_concurrencies: Vec<usize> = rows
        .iter()
        .filter(|r| r.backend == "etcd-front" && r.level == "kv")
        .map(|r| r.concurrency)
        .collect();
    front_concurrencies.sort_unstable();
    front_concurrencies.dedup();
    for workload in ["create", "update"] {
        for &c in &front_concurrencies {
            push(
                format!("etcd backend on etcd-front over SQLite vs on etcd: {workload} at {c}"),
                format!("etcd-front/kv/{workload}/c{c}"),
                format!("etcd/kv/{workload}/c{c}"),
                (workload == "create" && c == max_c).then_some(2.0),
            );
        }
    }
    let mut concurrencies: Vec<usize> = rows
        .iter()
        .filter(|r| r.backend == "etcd-raw")
        .map(|r| r.concurrency)
        .collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    for workload in ["create", "update"] {
        for &c in &concurrencies {
            push(
                format!("etcd backend vs raw etcd-client txn loop: {workload} at {c}"),
                format!("etcd/kv/{workload}/c{c}"),
                format!("etcd-raw/raw/{workload}/c{c}"),
                Some(0.9),
            );
        }
    }
    // The cost of the object layer, and of reading the past, per backend.
    let mut backends: Vec<&str> = Vec::new();
    for row in rows {
        if !backends.contains(&row.backend.as_str()) {
            backends.push(&row.backend);
        }
    }
    for backend in backends {
        let mut seen = Vec::new();
        for row in rows
            .iter()
            .filter(|r| r.backend == backend && (r.level == "object" || r.level == "http"))
        {
            let key = (row.level.clone(), row.workload.clone(), row.concurrency);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            push(
                format!(
                    "{backend}: {} level vs byte level, {} at {}",
                    row.level, row.workload, row.concurrency
                ),
                row.id(),
                format!("{backend}/kv/{}/c{}", row.workload, row.concurrency),
                None,
            );
        }
        for row in rows
            .iter()
            .filter(|r| r.backend == backend && r.workload == "list-past")
        {
            push(
                format!(
                    "{backend}: list at a past revision vs at latest ({}, c{})",
                    row.level, row.concurrency
                ),
                row.id(),
                format!("{backend}/{}/list/c{}", row.level, row.concurrency),
                None,
            );
        }
    }
    out
}

/// The table of rows and the key ratios, for people.
pub fn table(rows: &[Row], baseline: &str, ratios: &[KeyRatio]) -> String {
    let mut out = String::new();
    let header = [
        "backend", "level", "workload", "conc", "ops/s", "p50", "p99", "max", "ratio", "note",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let mut note = r.note.clone();
            if r.errors > 0 {
                let error = r.first_error.as_deref().unwrap_or("");
                note = format!("{} ERRORS (first: {error}); {note}", r.errors);
            }
            [
                r.backend.clone(),
                r.level.clone(),
                r.workload.clone(),
                r.concurrency.to_string(),
                format!("{:.0}", r.ops_per_sec),
                latency(r.p50_us),
                latency(r.p99_us),
                latency(r.max_us),
                r.ratio
                    .map(|x| format!("{x:.3}"))
                    .unwrap_or_else(|| "-".to_owned()),
                note,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (i, cell) in row.iter().enumerate().take(9) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |out: &mut String, row: &[String]| {
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 9 {
                let _ = write!(out, "{cell}");
            } else if (3..=8).contains(&i) {
                let _ = write!(out, "{}{cell}  ", " ".repeat(pad));
            } else {
                let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    let _ = writeln!(
        out,
        "ratio = ops/s ÷ ops/s of the `{baseline}` row (same workload and concurrency where there is one)"
    );
    line(&mut out, &header.map(str::to_owned));
    for row in &cells {
        line(&mut out, row);
    }
    if !ratios.is_empty() {
        out.push_str("\nkey ratios (ops/s ÷ ops/s, same run):\n");
        for r in ratios {
            let verdict = match (&r.target, r.met) {
                (Some(target), Some(true)) => format!("  [target {target}: met]"),
                (Some(target), Some(false)) => format!("  [target {target}: NOT met]"),
                _ => String::new(),
            };
            let _ = writeln!(out, "  {:>8.3}x  {}{verdict}", r.ratio, r.name);
            let _ = writeln!(out, "             ({})", r.rows);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Recorder;
    use std::time::Duration;

    fn row(backend: &str, level: &str, workload: &str, c: usize, ops: u64) -> Row {
        let mut recorder = Recorder::new();
        recorder.record_n(Duration::from_micros(100), ops);
        Row::new(
            backend,
            level,
            workload,
            c,
            &recorder,
            Duration::from_secs(1),
        )
    }

    #[test]
    fn ratios_pick_matching_rows() {
        let mut rows = vec![
            row("etcd-raw", "raw", "create", 1, 100),
            row("etcd-raw", "raw", "create", 64, 1000),
            row("etcd", "kv", "create", 64, 950),
            row("etcd", "kv", "get", 1, 50),
            row("fsync", "raw", "fsync", 1, 200),
            row("sqlite", "kv", "create", 1, 100),
            row("sqlite", "kv", "create", 64, 2000),
        ];
        compute_ratios(&mut rows, "etcd-raw");
        assert_eq!(rows[2].ratio, Some(0.95));
        assert_eq!(rows[3].ratio, None);
        assert_eq!(rows[5].ratio, Some(1.0));
        compute_ratios(&mut rows, "fsync");
        assert_eq!(rows[5].ratio, Some(0.5));
        let ratios = key_ratios(&rows);
        let group = ratios
            .iter()
            .find(|r| r.name.contains("group commit"))
            .unwrap();
        assert_eq!(group.ratio, 20.0);
        assert_eq!(group.met, Some(true));
        let text = table(&rows, "fsync", &ratios);
        assert!(text.contains("sqlite"), "{text}");
        assert_eq!(latency(1500.0), "1.50ms");
    }
}
