//! `modelgate db-bench`: the seed's `monitor_performance.py` (p50/p95/p99
//! per query) plus its "check index usage" troubleshooting step as a
//! pass/fail check, so a dropped index fails a deployment script.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::{open_reader, OpsError};
use crate::store::bench::{self, DbBenchReport, Sizes};

pub fn db_bench(path: &Path, iterations: usize) -> Result<DbBenchReport, OpsError> {
    // Checks the file opens read-only (path and fix in the error), then
    // lets the bench open its own connections.
    drop(open_reader(path)?);
    Ok(bench::db_bench(path, iterations.max(1))?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Generated {
    pub database: String,
    pub rows: Sizes,
}

/// Fills a NEW file with synthetic production-scale data (the figure the
/// seed quotes is for 300+ users per container; this is 100k users). Never
/// touches an existing file: this is not something to run against
/// Open WebUI's database.
pub fn generate(path: &Path, sizes: Sizes) -> Result<Generated, OpsError> {
    if path.exists() {
        return Err(OpsError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "--generate only writes a new file",
            ),
        });
    }
    let conn = crate::store::admin::open_writer(path)?;
    let rows = bench::generate(&conn, sizes)?;
    Ok(Generated {
        database: path.display().to_string(),
        rows,
    })
}

pub struct BenchText<'a>(pub &'a DbBenchReport);

impl fmt::Display for BenchText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        writeln!(f, "db-bench: {} iterations per query", r.iterations)?;
        let rows: Vec<Vec<String>> = r
            .queries
            .iter()
            .map(|q| {
                vec![
                    q.name.to_string(),
                    format!("{:.1}", q.p50_us),
                    format!("{:.1}", q.p95_us),
                    format!("{:.1}", q.p99_us),
                    if q.ok { "ok" } else { "FAIL" }.to_string(),
                ]
            })
            .collect();
        super::write_table(f, &["QUERY", "P50 µs", "P95 µs", "P99 µs", "PLAN"], &rows)?;
        for q in r.queries.iter().filter(|q| !q.ok) {
            writeln!(f)?;
            writeln!(f, "{}: {}", q.name, q.sql)?;
            if !q.missing_indexes.is_empty() {
                writeln!(f, "  index not used: {}", q.missing_indexes.join(", "))?;
            }
            for scan in &q.scans {
                writeln!(f, "  table scan: {scan}")?;
            }
            for line in &q.plan {
                writeln!(f, "  plan: {line}")?;
            }
        }
        if r.ok {
            writeln!(f, "every query uses its index")
        } else {
            writeln!(
                f,
                "index check FAILED (run `modelgate init` to recreate missing indexes)"
            )
        }
    }
}
