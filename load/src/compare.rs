//! Puts the runs of one harness invocation side by side: the closed-loop
//! (saturation) run per target, the open-loop run at about half of
//! modelgate's saturation throughput, and the ratios between targets.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::{fmt_ms, markdown_summary, markdown_table, Report, ALL};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Closed-loop runs, in the order given (direct, nginx, modelgate).
    pub runs: Vec<Report>,
    /// Open-loop runs at a fixed rate below saturation, same order.
    pub half_load: Vec<Report>,
    /// `later / earlier` for every pair of closed-loop runs.
    pub ratios: Vec<Ratio>,
    /// p99 added over the first half-load run (direct).
    pub added_p99: Vec<Added>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub run: String,
    pub baseline: String,
    /// run throughput / baseline throughput (1.0 = no loss).
    pub throughput: f64,
    /// run p99 / baseline p99 of the `all` series (1.0 = no added tail).
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Added {
    pub run: String,
    pub baseline: String,
    pub rate: Option<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub baseline_p99_ms: f64,
    pub added_p50_ms: f64,
    pub added_p99_ms: f64,
}

pub fn compare(runs: Vec<Report>, half_load: Vec<Report>) -> Comparison {
    let mut ratios = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        for baseline in &runs[..i] {
            ratios.push(Ratio {
                run: run.label.clone(),
                baseline: baseline.label.clone(),
                throughput: run.throughput_rps / baseline.throughput_rps.max(1e-9),
                p99: match (run.p99_all(), baseline.p99_all()) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                },
            });
        }
    }
    let mut added_p99 = Vec::new();
    if let Some((base, rest)) = half_load.split_first() {
        if let Some(b) = base.series.get(ALL) {
            for run in rest {
                if let Some(s) = run.series.get(ALL) {
                    added_p99.push(Added {
                        run: run.label.clone(),
                        baseline: base.label.clone(),
                        rate: run.rate,
                        p50_ms: s.p50_ms,
                        p99_ms: s.p99_ms,
                        baseline_p99_ms: b.p99_ms,
                        added_p50_ms: s.p50_ms - b.p50_ms,
                        added_p99_ms: s.p99_ms - b.p99_ms,
                    });
                }
            }
        }
    }
    Comparison {
        runs,
        half_load,
        ratios,
        added_p99,
    }
}

impl Comparison {
    /// The lines `run.sh` prints at the end.
    pub fn ratio_lines(&self) -> String {
        let mut out = String::new();
        for r in &self.ratios {
            let p99 = r.p99.map_or("-".into(), |p| format!("{p:.2}"));
            let _ = writeln!(
                out,
                "{}/{}: throughput x{:.2}, p99 x{p99}",
                r.run, r.baseline, r.throughput
            );
        }
        for a in &self.added_p99 {
            let _ = writeln!(
                out,
                "{} at {} req/s (open loop): p99 {} ms vs {} {} ms, added p99 {:+.2} ms, added p50 {:+.2} ms",
                a.run,
                a.rate.map_or("?".into(), |r| format!("{r:.0}")),
                fmt_ms(a.p99_ms),
                a.baseline,
                fmt_ms(a.baseline_p99_ms),
                a.added_p99_ms,
                a.added_p50_ms
            );
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut md = String::from("# modelgate load test\n\n");
        if let Some(r) = self.runs.first() {
            let _ = writeln!(
                md,
                "{} users, warm-up {:.0} s, {:.0} s measured per run. Latency series `all` = \
                 non-streaming requests plus time to first token of streams.\n",
                r.users, r.warmup_s, r.duration_s
            );
        }
        let runs: Vec<&Report> = self.runs.iter().collect();
        let half: Vec<&Report> = self.half_load.iter().collect();
        md.push_str("## Saturation (closed loop)\n\n");
        md.push_str(&markdown_summary(&runs));
        md.push('\n');
        md.push_str(&markdown_table(&runs));
        if !self.ratios.is_empty() {
            md.push_str("\n| ratio | throughput | p99 (all) |\n|---|---:|---:|\n");
            for r in &self.ratios {
                let _ = writeln!(
                    md,
                    "| {} / {} | {:.2} | {} |",
                    r.run,
                    r.baseline,
                    r.throughput,
                    r.p99.map_or("-".into(), |p| format!("{p:.2}"))
                );
            }
        }
        if !half.is_empty() {
            md.push_str("\n## Half of saturation (open loop, latency from intended send time)\n\n");
            md.push_str(&markdown_summary(&half));
            md.push('\n');
            md.push_str(&markdown_table(&half));
            if !self.added_p99.is_empty() {
                md.push_str("\n| run | vs | p99 ms | baseline p99 ms | added p50 ms | added p99 ms |\n|---|---|---:|---:|---:|---:|\n");
                for a in &self.added_p99 {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {:+.2} | {:+.2} |",
                        a.run,
                        a.baseline,
                        fmt_ms(a.p99_ms),
                        fmt_ms(a.baseline_p99_ms),
                        a.added_p50_ms,
                        a.added_p99_ms
                    );
                }
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Series;
    use std::collections::BTreeMap;

    fn report(label: &str, rps: f64, p50: f64, p99: f64, rate: Option<f64>) -> Report {
        let series = Series {
            count: 10,
            rps,
            mean_ms: p50,
            p50_ms: p50,
            p90_ms: p99,
            p95_ms: p99,
            p99_ms: p99,
            p999_ms: p99,
            max_ms: p99,
            curve: vec![[0.0, p50], [0.99, p99], [1.0, p99]],
        };
        Report {
            label: label.into(),
            target: "http://127.0.0.1:1".into(),
            mode: if rate.is_some() { "open" } else { "closed" }.into(),
            users: 300,
            rate,
            think_ms: 0,
            warmup_s: 3.0,
            duration_s: 15.0,
            expect_enforcement: label == "modelgate",
            throughput_rps: rps,
            ok: 10,
            error_total: 0,
            errors: BTreeMap::new(),
            security_total: 0,
            security_errors: BTreeMap::new(),
            forbidden_passed: 0,
            forbidden_refused: 0,
            series: [(ALL.to_string(), series)].into_iter().collect(),
            rss: None,
            timeline: Vec::new(),
        }
    }

    #[test]
    fn ratios_and_added_latency() {
        let c = compare(
            vec![
                report("direct", 4000.0, 1.0, 4.0, None),
                report("nginx", 3000.0, 1.5, 5.0, None),
                report("modelgate", 2000.0, 2.0, 8.0, None),
            ],
            vec![
                report("direct", 1000.0, 0.5, 1.0, Some(1000.0)),
                report("modelgate", 1000.0, 0.8, 1.5, Some(1000.0)),
            ],
        );
        assert_eq!(c.ratios.len(), 3);
        let mg_direct = c
            .ratios
            .iter()
            .find(|r| r.run == "modelgate" && r.baseline == "direct")
            .unwrap();
        assert!((mg_direct.throughput - 0.5).abs() < 1e-9);
        assert!((mg_direct.p99.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(c.added_p99.len(), 1);
        assert!((c.added_p99[0].added_p99_ms - 0.5).abs() < 1e-9);
        let lines = c.ratio_lines();
        assert!(
            lines.contains("modelgate/nginx: throughput x0.67, p99 x1.60"),
            "{lines}"
        );
        assert!(lines.contains("added p99 +0.50 ms"), "{lines}");
        let md = c.markdown();
        assert!(md.contains("| modelgate / direct | 0.50 | 2.00 |"), "{md}");
        assert!(
            md.contains("| modelgate | direct | 1.50 | 1.00 | +0.30 | +0.50 |"),
            "{md}"
        );
    }
}
