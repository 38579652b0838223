//! The two exposition formats `/metrics` speaks and how a scrape picks one.
//!
//! prometheus-client writes OpenMetrics only. The Prometheus text format
//! 0.0.4, which `promtool check metrics`, older scrapers and a plain `curl`
//! expect, differs from it in naming rather than in structure: a counter
//! family `x` (samples `x_total`) is described as `x_total`, an info family
//! `x` (sample `x_info`) is a gauge `x_info`, and there is no `# UNIT` and no
//! `# EOF`. [`to_prometheus_text`] rewrites the OpenMetrics text along those
//! lines, so both formats come from the one registry.

use http::HeaderValue;

/// The content type of the OpenMetrics answer.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format answer.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An exposition format of `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (what Prometheus asks for first).
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// Picks the format for an `Accept` header, as Prometheus' own servers
    /// do: OpenMetrics when the client accepts it at least as much as plain
    /// text, the text format otherwise (including no header at all, or an
    /// OpenMetrics version this server does not write).
    pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
        let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
            return Format::Text;
        };
        let mut openmetrics = 0.0_f32;
        let mut text = 0.0_f32;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0_f32;
            let mut version: Option<String> = None;
            for param in parts {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.parse().unwrap_or(0.0),
                    "version" => version = Some(v.to_owned()),
                    _ => {}
                }
            }
            let version = version.as_deref();
            match media.as_str() {
                "application/openmetrics-text"
                    if matches!(version, None | Some("1.0.0") | Some("0.0.1")) =>
                {
                    openmetrics = openmetrics.max(q);
                }
                "text/plain" if matches!(version, None | Some("0.0.4")) => text = text.max(q),
                "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// The family's OpenMetrics type, as far as the rewrite cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Histogram,
    Other,
}

/// Rewrites OpenMetrics text as prometheus-client writes it (`# HELP`, then
/// `# TYPE`, then an optional `# UNIT`, then the samples of each family) into
/// the Prometheus text format 0.0.4.
pub(super) fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The HELP line waits for its TYPE line, which decides the exposed name.
    let mut help: Option<(&str, &str)> = None;
    let mut family = "";
    let mut kind = Kind::Other;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush_help(&mut out, help.take());
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, om_type) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (suffix, text_type, k) = match om_type {
                "counter" => ("_total", "counter", Kind::Counter),
                "info" => ("_info", "gauge", Kind::Other),
                "histogram" => ("", "histogram", Kind::Histogram),
                "gauge" => ("", "gauge", Kind::Other),
                "summary" => ("", "summary", Kind::Other),
                // gaugehistogram, stateset, unknown: no 0.0.4 equivalent.
                _ => ("", "untyped", Kind::Other),
            };
            family = name;
            kind = k;
            match help.take() {
                Some((h, text)) if h == name => {
                    out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
                }
                other => flush_help(&mut out, other),
            }
            out.push_str(&format!("# TYPE {name}{suffix} {text_type}\n"));
            continue;
        }
        // `# UNIT`, `# EOF` and any other comment have no 0.0.4 meaning.
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        flush_help(&mut out, help.take());
        let sample = line.split(['{', ' ']).next().unwrap_or("");
        // OpenMetrics' creation timestamps would be stray families in 0.0.4.
        if matches!(kind, Kind::Counter | Kind::Histogram)
            && sample.strip_prefix(family) == Some("_created")
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    flush_help(&mut out, help);
    out
}

fn flush_help(out: &mut String, help: Option<(&str, &str)>) {
    if let Some((name, text)) = help {
        out.push_str(&format!("# HELP {name} {text}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(accept: &str) -> Format {
        Format::negotiate(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn negotiation_follows_the_accept_header() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(neg("*/*"), Format::Text);
        assert_eq!(neg("text/plain"), Format::Text);
        assert_eq!(neg("text/plain; version=0.0.4"), Format::Text);
        assert_eq!(neg("application/openmetrics-text"), Format::OpenMetrics);
        assert_eq!(
            neg("Application/OpenMetrics-Text; version=1.0.0"),
            Format::OpenMetrics
        );
        // What Prometheus 2.x sends.
        assert_eq!(
            neg("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::OpenMetrics
        );
        // Plain text preferred, or OpenMetrics refused or unknown.
        assert_eq!(
            neg("application/openmetrics-text;q=0.3, text/plain;q=0.9"),
            Format::Text
        );
        assert_eq!(neg("application/openmetrics-text;q=0"), Format::Text);
        assert_eq!(
            neg("application/openmetrics-text; version=9.9.9"),
            Format::Text
        );
        assert_eq!(neg("application/json"), Format::Text);
    }

    #[test]
    fn rewrite_names_counters_and_info_as_the_text_format_does() {
        let om = "\
# HELP a_requests Requests.
# TYPE a_requests counter
a_requests_total{route=\"x\"} 3
a_requests_created{route=\"x\"} 1700000000.0
# HELP a_latency_seconds Latency.
# TYPE a_latency_seconds histogram
# UNIT a_latency_seconds seconds
a_latency_seconds_sum 0.5
a_latency_seconds_count 1
a_latency_seconds_bucket{le=\"+Inf\"} 1
# HELP a_build Build.
# TYPE a_build info
a_build_info{version=\"1\"} 1
# HELP a_up Up.
# TYPE a_up gauge
a_up 1
# EOF
";
        let want = "\
# HELP a_requests_total Requests.
# TYPE a_requests_total counter
a_requests_total{route=\"x\"} 3
# HELP a_latency_seconds Latency.
# TYPE a_latency_seconds histogram
a_latency_seconds_sum 0.5
a_latency_seconds_count 1
a_latency_seconds_bucket{le=\"+Inf\"} 1
# HELP a_build_info Build.
# TYPE a_build_info gauge
a_build_info{version=\"1\"} 1
# HELP a_up Up.
# TYPE a_up gauge
a_up 1
";
        assert_eq!(to_prometheus_text(om), want);
    }
}
