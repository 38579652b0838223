//! Recording and reporting: HdrHistograms (microseconds) per series, error
//! and security counters, the serializable `Report` of one run, and its
//! Markdown rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Series names. `all` is every successful non-streaming request plus the
/// time to first token of streams: the time until the user sees an
/// answer begin, which is what a proxy can add to (a stream's total is
/// dominated by the upstream's token pacing).
pub const ALL: &str = "all";
pub const LIST: &str = "list";
pub const CHAT: &str = "chat";
pub const STREAM_TTFT: &str = "stream_ttft";
pub const STREAM_TOTAL: &str = "stream_total";
pub const FORBIDDEN: &str = "forbidden";
pub const SERIES: [&str; 6] = [ALL, LIST, CHAT, STREAM_TTFT, STREAM_TOTAL, FORBIDDEN];

/// Highest latency tracked exactly (60 s); longer ones are clamped.
const MAX_US: u64 = 60_000_000;

/// Percentiles of the distribution curve in the report, as "nines"
/// (x = -log10(1 - q)), 0 to 4 in steps of 0.25: enough points to plot.
fn curve_quantiles() -> impl Iterator<Item = f64> {
    // Rounded so the JSON stays readable.
    (0..=16).map(|s| ((1.0 - 10f64.powf(-f64::from(s) * 0.25)) * 1e6).round() / 1e6)
}

#[derive(Debug, Clone)]
pub struct Recorder {
    hists: BTreeMap<&'static str, Histogram<u64>>,
    pub errors: BTreeMap<String, u64>,
    pub security: BTreeMap<String, u64>,
    pub forbidden_passed: u64,
    pub forbidden_refused: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        let hists = SERIES
            .iter()
            .filter_map(|s| {
                // 3 significant digits: 0.1% resolution, ~200 KB per series.
                Histogram::new_with_bounds(1, MAX_US, 3)
                    .ok()
                    .map(|h| (*s, h))
            })
            .collect();
        Recorder {
            hists,
            errors: BTreeMap::new(),
            security: BTreeMap::new(),
            forbidden_passed: 0,
            forbidden_refused: 0,
        }
    }

    pub fn record(&mut self, series: &'static str, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        if let Some(h) = self.hists.get_mut(series) {
            h.saturating_record(us);
        }
    }

    pub fn error(&mut self, key: String) {
        *self.errors.entry(key).or_default() += 1;
    }

    pub fn security(&mut self, key: String) {
        *self.security.entry(key).or_default() += 1;
    }

    pub fn count(&self, series: &str) -> u64 {
        self.hists.get(series).map_or(0, Histogram::len)
    }

    pub fn series(&self, name: &str, window: Duration) -> Option<Series> {
        let h = self.hists.get(name)?;
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1_000.0;
        Some(Series {
            count: h.len(),
            rps: h.len() as f64 / window.as_secs_f64().max(1e-9),
            mean_ms: h.mean() / 1_000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            curve: curve_quantiles()
                .map(|q| [q, ms(h.value_at_quantile(q))])
                .chain(std::iter::once([1.0, ms(h.max())]))
                .collect(),
        })
    }
}

/// Latency summary of one series over the measurement window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub count: u64,
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// `[quantile, ms]` pairs for plotting the distribution.
    pub curve: Vec<[f64; 2]>,
}

/// Memory of the process under test, from `/proc/PID/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rss {
    pub pid: u32,
    /// Peak resident set (VmHWM) at the end of the run, KiB.
    pub vm_hwm_kb: Option<u64>,
    /// Resident set (VmRSS) at the end of the run, KiB.
    pub vm_rss_kb: Option<u64>,
}

/// One loadgen run against one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub label: String,
    pub target: String,
    /// `closed` (users with think time) or `open` (fixed arrival rate).
    pub mode: String,
    pub users: usize,
    pub rate: Option<f64>,
    pub think_ms: u64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub expect_enforcement: bool,
    /// Answered requests per second in the window: everything but
    /// `errors` (a 403 on a forbidden model is a success; a security
    /// error was answered too, and is flagged separately).
    pub throughput_rps: f64,
    pub ok: u64,
    pub error_total: u64,
    pub errors: BTreeMap<String, u64>,
    pub security_total: u64,
    pub security_errors: BTreeMap<String, u64>,
    /// Forbidden-model calls that were served (expected without
    /// enforcement: direct and nginx).
    pub forbidden_passed: u64,
    pub forbidden_refused: u64,
    pub series: BTreeMap<String, Series>,
    pub rss: Option<Rss>,
    /// Per-second progress (warm-up and drain included).
    #[serde(default)]
    pub timeline: Vec<Tick>,
}

/// One second of a run, as the progress line shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// Seconds since the run started.
    pub t_s: f64,
    /// `warmup`, `measure` or `drain`.
    pub phase: String,
    /// Requests answered during this second.
    pub answered: u64,
    pub errors: u64,
    /// Requests in flight at the tick.
    pub inflight: u64,
}

impl Report {
    pub fn p99_all(&self) -> Option<f64> {
        self.series.get(ALL).map(|s| s.p99_ms)
    }
}

pub fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// One Markdown table over several runs: a row per run and series.
pub fn markdown_table(reports: &[&Report]) -> String {
    let mut out = String::from(
        "| run | series | count | req/s | p50 ms | p90 ms | p95 ms | p99 ms | max ms |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        for name in SERIES {
            let Some(s) = r.series.get(name) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                r.label,
                name,
                s.count,
                s.rps,
                fmt_ms(s.p50_ms),
                fmt_ms(s.p90_ms),
                fmt_ms(s.p95_ms),
                fmt_ms(s.p99_ms),
                fmt_ms(s.max_ms)
            );
        }
    }
    out
}

/// Per-run totals: throughput, errors, security, memory.
pub fn markdown_summary(reports: &[&Report]) -> String {
    let mut out = String::from(
        "| run | mode | users | req/s | errors | security errors | forbidden served/refused | RSS peak MiB |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let mode = match r.rate {
            Some(rate) => format!("open {rate:.0}/s"),
            None => format!("closed, think {} ms", r.think_ms),
        };
        let rss = r
            .rss
            .as_ref()
            .and_then(|m| m.vm_hwm_kb)
            .map_or("-".to_string(), |kb| format!("{:.1}", kb as f64 / 1024.0));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {}/{} | {} |",
            r.label,
            mode,
            r.users,
            r.throughput_rps,
            r.error_total,
            r.security_total,
            r.forbidden_passed,
            r.forbidden_refused,
            rss
        );
    }
    let mut details = String::new();
    for r in reports {
        for (k, v) in r.errors.iter().chain(&r.security_errors) {
            let _ = writeln!(details, "- {}: `{k}` × {v}", r.label);
        }
    }
    if !details.is_empty() {
        out.push_str("\nErrors by kind:\n\n");
        out.push_str(&details);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with(rec: &Recorder) -> Report {
        let window = Duration::from_secs(10);
        Report {
            label: "direct".into(),
            target: "http://127.0.0.1:1".into(),
            mode: "closed".into(),
            users: 3,
            rate: None,
            think_ms: 0,
            warmup_s: 1.0,
            duration_s: 10.0,
            expect_enforcement: false,
            throughput_rps: 100.0,
            ok: rec.count(ALL),
            error_total: rec.errors.values().sum(),
            errors: rec.errors.clone(),
            security_total: 0,
            security_errors: BTreeMap::new(),
            forbidden_passed: 0,
            forbidden_refused: 0,
            series: SERIES
                .iter()
                .filter_map(|s| rec.series(s, window).map(|v| (s.to_string(), v)))
                .collect(),
            rss: Some(Rss {
                pid: 1,
                vm_hwm_kb: Some(20_480),
                vm_rss_kb: Some(10_240),
            }),
            timeline: Vec::new(),
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut rec = Recorder::new();
        // 1..=1000 ms, one sample each.
        for ms in 1..=1_000u64 {
            rec.record(ALL, Duration::from_millis(ms));
        }
        let s = rec.series(ALL, Duration::from_secs(10)).unwrap();
        assert_eq!(s.count, 1_000);
        assert!((s.rps - 100.0).abs() < 1e-9);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002;
        assert!(close(s.p50_ms, 500.0), "{}", s.p50_ms);
        assert!(close(s.p90_ms, 900.0), "{}", s.p90_ms);
        assert!(close(s.p99_ms, 990.0), "{}", s.p99_ms);
        assert!(close(s.max_ms, 1_000.0), "{}", s.max_ms);
        assert!(close(s.mean_ms, 500.5), "{}", s.mean_ms);
        // The curve is monotone and ends at the max.
        assert!(s
            .curve
            .windows(2)
            .all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1]));
        assert_eq!(s.curve.last().unwrap()[1], s.max_ms);
        assert!(rec.series(CHAT, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn huge_and_zero_latencies_are_clamped_not_lost() {
        let mut rec = Recorder::new();
        rec.record(LIST, Duration::ZERO);
        rec.record(LIST, Duration::from_secs(3_600));
        assert_eq!(rec.count(LIST), 2);
        let s = rec.series(LIST, Duration::from_secs(1)).unwrap();
        assert!(s.max_ms >= 59_000.0);
    }

    #[test]
    fn markdown_rows_and_errors() {
        let mut rec = Recorder::new();
        rec.record(ALL, Duration::from_micros(1_234));
        rec.record(LIST, Duration::from_micros(1_234));
        rec.error("chat: status 502".into());
        let r = report_with(&rec);
        let table = markdown_table(&[&r]);
        assert!(
            table.contains("| direct | all | 1 | 0 | 1.23 | 1.23 | 1.23 | 1.23 | 1.23 |"),
            "{table}"
        );
        assert!(table.contains("| direct | list |"));
        assert!(!table.contains("| chat |"));
        let summary = markdown_summary(&[&r]);
        assert!(
            summary.contains("| direct | closed, think 0 ms | 3 | 100 | 1 | 0 | 0/0 | 20.0 |"),
            "{summary}"
        );
        assert!(summary.contains("`chat: status 502` × 1"));
        // The report survives a JSON round trip.
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.series[ALL].count, 1);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn fmt_ms_precision() {
        assert_eq!(fmt_ms(0.1234), "0.12");
        assert_eq!(fmt_ms(12.345), "12.3");
    }
}
