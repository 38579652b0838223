//! The shipped Grafana dashboards and Prometheus alert rules query only
//! metrics the real server exports: every metric name in every PromQL
//! expression of `config/grafana/dashboards/*.json` and
//! `config/prometheus/alerts.yml` is looked up in a live `/metrics` answer
//! of `modelgate serve`. (A browser check of the dashboard needs a Grafana
//! engine this test environment does not have; a renamed metric is what
//! silently empties a panel or disarms an alert, and that is caught here.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::serve::{Serve, JSON_LOG};
use common::*;

/// PromQL functions and aggregation operators: identifiers that are never
/// metric names.
const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "avg",
    "avg_over_time",
    "bottomk",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count",
    "count_over_time",
    "count_values",
    "delta",
    "deriv",
    "floor",
    "group",
    "histogram_quantile",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "max",
    "max_over_time",
    "min",
    "min_over_time",
    "predict_linear",
    "quantile",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "scalar",
    "sort",
    "sort_desc",
    "stddev",
    "stdvar",
    "sum",
    "sum_over_time",
    "time",
    "timestamp",
    "topk",
    "vector",
];
/// Keywords that are not followed by a label list.
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: strings, label matchers
/// (`{..}`), ranges (`[..]`), Grafana variables (`$x`), numbers, functions,
/// keywords and grouping label lists removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut cleaned = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '{' | '[' => {
                // Skip to the closing bracket; a label value may hold one.
                let close = if c == '{' { '}' } else { ']' };
                let mut quote = None;
                while let Some(d) = chars.next() {
                    match (quote, d) {
                        (Some(_), '\\') => {
                            chars.next();
                        }
                        (Some(q), d) if d == q => quote = None,
                        (None, '"' | '\'' | '`') => quote = Some(d),
                        (None, d) if d == close => break,
                        _ => {}
                    }
                }
                cleaned.push(' ');
            }
            _ => cleaned.push(c),
        }
    }
    let mut names = BTreeSet::new();
    let b = cleaned.as_bytes();
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    while i < b.len() {
        let c = b[i];
        if c == b'$' || c.is_ascii_digit() || c == b'.' {
            // A Grafana variable or a number (1e-9, 0.95): skip the token.
            i += 1;
            while i < b.len() && (ident(b[i]) || b[i] == b'.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_' || c == b':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        let word = &cleaned[start..i];
        let next = cleaned[i..].trim_start().chars().next();
        let lower = word.to_ascii_lowercase();
        if LABEL_LISTS.contains(&lower.as_str()) {
            // Skip the label list in parentheses, when there is one.
            let rest = cleaned[i..].trim_start();
            if rest.starts_with('(') {
                let offset = cleaned.len() - rest.len();
                i = cleaned[offset..]
                    .find(')')
                    .map_or(cleaned.len(), |p| offset + p + 1);
            }
            continue;
        }
        if next == Some('(')
            || FUNCTIONS.contains(&lower.as_str())
            || KEYWORDS.contains(&lower.as_str())
        {
            continue;
        }
        names.insert(word.to_owned());
    }
    names
}

#[test]
fn the_promql_name_extractor_finds_metrics_only() {
    let got = metric_names(
        r#"histogram_quantile(0.95, sum by (le, route) (rate(modelgate_request_duration_seconds_bucket{instance=~"$instance",a="b{c}"}[$__rate_interval]))) / clamp_min(sum without(x) (up offset 5m) + on(instance) group_left(version) modelgate_build_info, 1e-9) > bool 0 or vector(0) and time() - x:y"#,
    );
    let want: BTreeSet<String> = [
        "modelgate_request_duration_seconds_bucket",
        "up",
        "modelgate_build_info",
        "x:y",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, want);
}

/// The metric families of a Prometheus text format answer, by name, with
/// their type: counters as `x_total`, histograms as their base name.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

/// Whether a name a query selects is a series the exporter writes.
fn exported(families: &BTreeMap<String, String>, name: &str) -> bool {
    if families.contains_key(name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|base| families.get(base))
            .is_some_and(|t| t == "histogram" || (t == "summary" && *suffix != "_bucket"))
    })
}

/// A live `/metrics` answer (text format) of the real binary.
async fn live_families() -> BTreeMap<String, String> {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modelgate.toml");
    std::fs::write(&config, JSON_LOG).unwrap();
    let serve = Serve::start(&config, up.addr, &[]);
    let m = get(&format!("http://{}/metrics", serve.admin)).await;
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    let f = families(&text);
    assert!(f.len() > 20, "{text}");
    f
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every `expr` of a dashboard (panels, nested rows) and the metric of its
/// `label_values(metric, label)` variables.
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    ("definition", serde_json::Value::String(d)) => {
                        if let Some(args) = d.strip_prefix("label_values(") {
                            let metric = args.split(',').next().unwrap_or("").trim();
                            out.push(metric.to_owned());
                        }
                    }
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_names_an_exported_metric() {
    let live = live_families().await;
    let mut dashboards: Vec<PathBuf> = std::fs::read_dir(repo("config/grafana/dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    dashboards.sort();
    assert!(!dashboards.is_empty());
    let mut referenced = BTreeSet::new();
    for path in &dashboards {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut exprs = Vec::new();
        dashboard_exprs(&json, &mut exprs);
        assert!(
            exprs.len() > 10,
            "{}: {} queries",
            path.display(),
            exprs.len()
        );
        for expr in exprs {
            let names = metric_names(&expr);
            assert!(
                !names.is_empty(),
                "{}: no metric in {expr:?}",
                path.display()
            );
            for name in names {
                assert!(
                    exported(&live, &name),
                    "{}: {name} (in {expr:?}) is not in a live /metrics",
                    path.display()
                );
                referenced.insert(name);
            }
        }
    }
    // The panels issue 16 asked for: the store, the bypass, the reloads.
    for name in [
        "modelgate_store_up",
        "modelgate_store_errors_total",
        "modelgate_store_query_duration_seconds_bucket",
        "modelgate_policy_watch_polls_total",
        "modelgate_access_control_bypass",
        "modelgate_config_reloads_total",
        "modelgate_config_last_reload_success_timestamp_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(referenced.contains(name), "no panel shows {name}");
    }
}

/// The `expr` values of a rule file: one line, or a `|`/`>` block.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let mut block = String::new();
            while i < lines.len() {
                let l = lines[i];
                if !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent {
                    break;
                }
                block.push_str(l.trim());
                block.push(' ');
                i += 1;
            }
            out.push(block);
        } else {
            out.push(value.trim_matches(['"', '\'']).to_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_rule_names_an_exported_metric() {
    let live = live_families().await;
    let yaml = std::fs::read_to_string(repo("config/prometheus/alerts.yml")).unwrap();
    let exprs = rule_exprs(&yaml);
    let alerts = yaml
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    assert_eq!(exprs.len(), alerts, "one expr per alert: {exprs:#?}");
    let mut referenced = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr:?}");
        for name in names {
            // `up` is the series Prometheus itself writes for every target.
            assert!(
                name == "up" || exported(&live, &name),
                "alerts.yml: {name} (in {expr:?}) is not in a live /metrics"
            );
            referenced.insert(name);
        }
    }
    // What issue 16 asked the rules to cover.
    for name in [
        "modelgate_enforcement_enabled",
        "modelgate_access_control_bypass",
        "modelgate_store_errors_total",
        "modelgate_store_up",
        "modelgate_decisions_total",
        "modelgate_policy_watch_polls_total",
        "modelgate_upstream_errors_total",
        "modelgate_config_reloads_total",
    ] {
        assert!(referenced.contains(name), "no alert on {name}");
    }
}
