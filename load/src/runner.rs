//! The load generator: simulated users sending the request mix to one
//! target, closed loop (each user waits for its answer, thinks, repeats)
//! or open loop (requests start at a fixed rate whether or not earlier ones
//! finished). In open loop latency is measured from the *intended* start,
//! so a stalled server cannot hide its stall by slowing the generator down
//! (coordinated omission).
//!
//! Only requests that *start* inside the measurement window are recorded;
//! those still running at its end are awaited (bounded by the timeout).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::fixture::UserFixture;
use crate::mix::{Kind, Mix, Rng};
use crate::stats::{self, Recorder, Report, Rss, Tick};

/// Cap on a buffered response body (the mock's list is ~300 KB).
const MAX_BODY: usize = 16 << 20;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Closed { think: Duration },
    Open { rate: f64 },
}

/// One simulated user: credential and the model ids it uses.
#[derive(Debug, Clone)]
pub struct SimUser {
    pub id: String,
    pub auth: HeaderValue,
    pub allowed: Vec<String>,
    pub forbidden: Vec<String>,
    /// `"model-id"` (JSON-quoted) needles for the list checks.
    allowed_quoted: Vec<Vec<u8>>,
    forbidden_quoted: Vec<Vec<u8>>,
}

impl SimUser {
    pub fn new(fixture: &UserFixture, token: &str) -> anyhow::Result<SimUser> {
        let quote = |ids: &[String]| -> Vec<Vec<u8>> {
            ids.iter()
                .filter_map(|m| serde_json::to_vec(m).ok())
                .collect()
        };
        anyhow::ensure!(
            !fixture.allowed.is_empty() && !fixture.forbidden.is_empty(),
            "user {} needs allowed and forbidden models",
            fixture.id
        );
        Ok(SimUser {
            id: fixture.id.clone(),
            auth: HeaderValue::from_str(&format!("Bearer {token}"))?,
            allowed: fixture.allowed.clone(),
            forbidden: fixture.forbidden.clone(),
            allowed_quoted: quote(&fixture.allowed),
            forbidden_quoted: quote(&fixture.forbidden),
        })
    }
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub label: String,
    /// `http://127.0.0.1:PORT` (see [`parse_target`]).
    pub target: String,
    pub users: Vec<SimUser>,
    pub mode: Mode,
    pub warmup: Duration,
    pub duration: Duration,
    pub mix: Mix,
    pub timeout: Duration,
    /// The target enforces model access: forbidden calls must get 403 and
    /// lists must not show forbidden models (else: security errors).
    pub expect_enforcement: bool,
    /// Open loop: most requests in flight at once.
    pub max_inflight: usize,
    pub seed: u64,
    /// Process whose memory is reported (the proxy under test).
    pub pid: Option<u32>,
    /// A progress line per second on stderr.
    pub progress: bool,
}

/// Accepts only plain-HTTP loopback targets: this tool is for measuring
/// local processes, never for loading someone else's server.
pub fn parse_target(s: &str) -> anyhow::Result<String> {
    let uri: Uri = s.parse()?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http"),
        "target must be http://: {s}"
    );
    let host = uri.host().unwrap_or_default();
    anyhow::ensure!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1"),
        "target must be a loopback address (127.0.0.1, localhost, [::1]): {s}"
    );
    anyhow::ensure!(
        matches!(uri.path(), "" | "/") && uri.query().is_none(),
        "target must have no path: {s}"
    );
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("target has no host: {s}"))?;
    Ok(format!("http://{authority}"))
}

/// What one request ended as.
enum Outcome {
    Ok {
        latency: Duration,
        ttft: Option<Duration>,
    },
    ForbiddenRefused(Duration),
    ForbiddenPassed(Duration),
    Error(String),
    /// Answered, but with what must be refused; the latency still counts
    /// (the answer was served), the security counter flags it.
    Security(&'static str, Duration),
}

#[derive(Default)]
struct Live {
    ok: AtomicU64,
    errors: AtomicU64,
    security: AtomicU64,
    inflight: AtomicU64,
}

struct Shared {
    client: HttpClient,
    list_uri: Uri,
    chat_uri: Uri,
    mix: Mix,
    timeout: Duration,
    expect_enforcement: bool,
    measure_from: Instant,
    measure_to: Instant,
    /// A std Mutex: held for a few histogram increments, never across an
    /// await, at a few thousand requests per second — no contention worth
    /// per-task histograms and a merge.
    rec: Mutex<Recorder>,
    live: Live,
    /// One point per second from the progress ticker: shows stalls that
    /// percentiles alone cannot place in time.
    timeline: Mutex<Vec<Tick>>,
}

pub async fn run(cfg: RunConfig) -> anyhow::Result<Report> {
    anyhow::ensure!(!cfg.users.is_empty(), "no users");
    anyhow::ensure!(
        cfg.duration > Duration::ZERO && cfg.duration <= Duration::from_secs(3_600),
        "duration must be between 0 and 1 h"
    );
    let base = parse_target(&cfg.target)?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(cfg.users.len().max(cfg.max_inflight))
        .build(connector);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        client,
        list_uri: format!("{base}/api/models").parse()?,
        chat_uri: format!("{base}/api/chat/completions").parse()?,
        mix: cfg.mix,
        timeout: cfg.timeout,
        expect_enforcement: cfg.expect_enforcement,
        measure_from: start + cfg.warmup,
        measure_to: start + cfg.warmup + cfg.duration,
        rec: Mutex::new(Recorder::new()),
        live: Live::default(),
        timeline: Mutex::new(Vec::new()),
    });

    let progress = tokio::spawn(progress(
        Arc::clone(&shared),
        cfg.label.clone(),
        start,
        cfg.progress,
    ));
    match cfg.mode {
        Mode::Closed { think } => closed_loop(&shared, &cfg, think, start).await,
        Mode::Open { rate } => open_loop(&shared, &cfg, rate, start).await?,
    }
    progress.abort();

    let rec = shared
        .rec
        .lock()
        .map_err(|_| anyhow::anyhow!("recorder poisoned"))?
        .clone();
    let mut report = build_report(&cfg, base, &rec);
    report.timeline = shared
        .timeline
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    Ok(report)
}

fn build_report(cfg: &RunConfig, target: String, rec: &Recorder) -> Report {
    let window = cfg.duration;
    let ok = rec.count(stats::ALL);
    Report {
        label: cfg.label.clone(),
        target,
        mode: match cfg.mode {
            Mode::Closed { .. } => "closed".into(),
            Mode::Open { .. } => "open".into(),
        },
        users: cfg.users.len(),
        rate: match cfg.mode {
            Mode::Open { rate } => Some(rate),
            Mode::Closed { .. } => None,
        },
        think_ms: match cfg.mode {
            Mode::Closed { think } => u64::try_from(think.as_millis()).unwrap_or(u64::MAX),
            Mode::Open { .. } => 0,
        },
        warmup_s: cfg.warmup.as_secs_f64(),
        duration_s: window.as_secs_f64(),
        expect_enforcement: cfg.expect_enforcement,
        throughput_rps: ok as f64 / window.as_secs_f64(),
        ok,
        error_total: rec.errors.values().sum(),
        errors: rec.errors.clone(),
        security_total: rec.security.values().sum(),
        security_errors: rec.security.clone(),
        forbidden_passed: rec.forbidden_passed,
        forbidden_refused: rec.forbidden_refused,
        series: stats::SERIES
            .iter()
            .filter_map(|s| rec.series(s, window).map(|v| (s.to_string(), v)))
            .collect(),
        rss: cfg.pid.map(read_rss),
        timeline: Vec::new(),
    }
}

async fn closed_loop(shared: &Arc<Shared>, cfg: &RunConfig, think: Duration, start: Instant) {
    let n = cfg.users.len();
    // Spread user start-up over the first second (or the warm-up, when
    // shorter) so 300 users do not all connect in the same millisecond.
    let ramp = cfg.warmup.min(Duration::from_secs(1));
    let tasks: Vec<_> = cfg
        .users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let shared = Arc::clone(shared);
            let user = user.clone();
            let first = start + ramp.mul_f64(i as f64 / n as f64);
            let mut rng = Rng::new(cfg.seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
            tokio::spawn(async move {
                tokio::time::sleep_until(first).await;
                loop {
                    let begin = Instant::now();
                    if begin >= shared.measure_to {
                        break;
                    }
                    let kind = shared.mix.pick(rng.next_u64());
                    one(&shared, &user, kind, &mut rng, begin).await;
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        // A panicking user task only loses that user's remaining requests.
        let _ = t.await;
    }
}

async fn open_loop(
    shared: &Arc<Shared>,
    cfg: &RunConfig,
    rate: f64,
    start: Instant,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        rate > 0.0 && rate <= 100_000.0,
        "rate must be in (0, 100000]"
    );
    let max_inflight = cfg.max_inflight.clamp(1, 100_000);
    let permits = Arc::new(Semaphore::new(max_inflight));
    let mut rng = Rng::new(cfg.seed);
    for i in 0u64.. {
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        if intended >= shared.measure_to {
            break;
        }
        tokio::time::sleep_until(intended).await;
        // Waiting here (too many in flight) delays the send but not the
        // intended start the latency is measured from.
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let user = cfg.users[rng.below(cfg.users.len())].clone();
        let kind = shared.mix.pick(rng.next_u64());
        let mut task_rng = Rng::new(rng.next_u64());
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            one(&shared, &user, kind, &mut task_rng, intended).await;
            drop(permit);
        });
    }
    // Wait for the stragglers; each is bounded by the request timeout.
    let all = u32::try_from(max_inflight).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        cfg.timeout + Duration::from_secs(1),
        permits.acquire_many(all),
    )
    .await;
    Ok(())
}

/// Sends one request and records its outcome (when it started inside the
/// measurement window).
async fn one(shared: &Shared, user: &SimUser, kind: Kind, rng: &mut Rng, start: Instant) {
    shared.live.inflight.fetch_add(1, Ordering::Relaxed);
    let outcome =
        match tokio::time::timeout(shared.timeout, send(shared, user, kind, rng, start)).await {
            Ok(o) => o,
            Err(_) => Outcome::Error("timeout".into()),
        };
    shared.live.inflight.fetch_sub(1, Ordering::Relaxed);
    let counter = match &outcome {
        Outcome::Error(_) => &shared.live.errors,
        Outcome::Security(..) => &shared.live.security,
        _ => &shared.live.ok,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if start < shared.measure_from || start >= shared.measure_to {
        return;
    }
    let Ok(mut rec) = shared.rec.lock() else {
        return;
    };
    match outcome {
        Outcome::Ok { latency, ttft } => match (kind, ttft) {
            (Kind::Stream, Some(ttft)) => {
                rec.record(stats::STREAM_TTFT, ttft);
                rec.record(stats::STREAM_TOTAL, latency);
                rec.record(stats::ALL, ttft);
            }
            _ => {
                let series = match kind {
                    Kind::List => stats::LIST,
                    _ => stats::CHAT,
                };
                rec.record(series, latency);
                rec.record(stats::ALL, latency);
            }
        },
        Outcome::ForbiddenRefused(latency) => {
            rec.forbidden_refused += 1;
            rec.record(stats::FORBIDDEN, latency);
            rec.record(stats::ALL, latency);
        }
        Outcome::ForbiddenPassed(latency) => {
            rec.forbidden_passed += 1;
            rec.record(stats::FORBIDDEN, latency);
            rec.record(stats::ALL, latency);
        }
        Outcome::Error(reason) => rec.error(format!("{kind}: {reason}")),
        Outcome::Security(what, latency) => {
            rec.security(format!("{kind}: {what}"));
            let series = match kind {
                Kind::List => stats::LIST,
                _ => stats::FORBIDDEN,
            };
            rec.record(series, latency);
            rec.record(stats::ALL, latency);
        }
    }
}

async fn send(
    shared: &Shared,
    user: &SimUser,
    kind: Kind,
    rng: &mut Rng,
    start: Instant,
) -> Outcome {
    let req = match build_request(shared, user, kind, rng) {
        Ok(r) => r,
        Err(e) => return Outcome::Error(format!("request: {e}")),
    };
    let resp = match shared.client.request(req).await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Outcome::Error("connect".into()),
        Err(_) => return Outcome::Error("io".into()),
    };
    let status = resp.status();
    match kind {
        Kind::List => {
            if status != StatusCode::OK {
                return Outcome::Error(format!("status {}", status.as_u16()));
            }
            let body = match read_body(resp.into_body()).await {
                Ok(b) => b,
                Err(e) => return Outcome::Error(e),
            };
            let latency = start.elapsed();
            check_list(shared, user, rng, &body, latency).unwrap_or(Outcome::Ok {
                latency,
                ttft: None,
            })
        }
        Kind::Chat => {
            if status != StatusCode::OK {
                return Outcome::Error(format!("status {}", status.as_u16()));
            }
            match read_body(resp.into_body()).await {
                Ok(_) => Outcome::Ok {
                    latency: start.elapsed(),
                    ttft: None,
                },
                Err(e) => Outcome::Error(e),
            }
        }
        Kind::Stream => {
            if status != StatusCode::OK {
                return Outcome::Error(format!("status {}", status.as_u16()));
            }
            read_stream(resp.into_body(), start).await
        }
        Kind::Forbidden => {
            // Drain so the connection can be reused.
            if let Err(e) = read_body(resp.into_body()).await {
                return Outcome::Error(e);
            }
            let latency = start.elapsed();
            if status == StatusCode::FORBIDDEN {
                Outcome::ForbiddenRefused(latency)
            } else if status.is_success() && shared.expect_enforcement {
                Outcome::Security("forbidden model served (2xx)", latency)
            } else if status.is_success() {
                Outcome::ForbiddenPassed(latency)
            } else {
                Outcome::Error(format!("status {}", status.as_u16()))
            }
        }
    }
}

fn build_request(
    shared: &Shared,
    user: &SimUser,
    kind: Kind,
    rng: &mut Rng,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let builder = Request::builder().header(AUTHORIZATION, user.auth.clone());
    if kind == Kind::List {
        return builder
            .method(Method::GET)
            .uri(shared.list_uri.clone())
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::new()));
    }
    let (model, stream) = match kind {
        Kind::Forbidden => (&user.forbidden[rng.below(user.forbidden.len())], false),
        _ => (
            &user.allowed[rng.below(user.allowed.len())],
            kind == Kind::Stream,
        ),
    };
    // Shaped like the Open WebUI frontend's chat call (minus session ids,
    // which would move the answer to socket.io).
    let body = serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Summarise the quarterly report in three bullet points."}
        ],
        "params": {"temperature": 0.7},
        "features": {"web_search": false, "image_generation": false, "code_interpreter": false}
    });
    builder
        .method(Method::POST)
        .uri(shared.chat_uri.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(
            ACCEPT,
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        )
        .body(Full::new(Bytes::from(body.to_string())))
}

/// With enforcement, a list must show one of the user's allowed models
/// and none of the forbidden ones. One needle of each per request keeps the
/// check cheap (memchr's SIMD search) while covering every id over a run.
fn check_list(
    shared: &Shared,
    user: &SimUser,
    rng: &mut Rng,
    body: &[u8],
    latency: Duration,
) -> Option<Outcome> {
    let allowed = &user.allowed_quoted[rng.below(user.allowed_quoted.len())];
    if memchr::memmem::find(body, allowed).is_none() {
        return Some(Outcome::Error("allowed model missing from list".into()));
    }
    if shared.expect_enforcement {
        let forbidden = &user.forbidden_quoted[rng.below(user.forbidden_quoted.len())];
        if memchr::memmem::find(body, forbidden).is_some() {
            return Some(Outcome::Security("forbidden model listed", latency));
        }
    }
    None
}

async fn read_body(body: hyper::body::Incoming) -> Result<Bytes, String> {
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err("body".into()),
    }
}

/// Reads an SSE answer: time to the first non-empty data frame, then to
/// the end; the stream must end with `data: [DONE]`.
async fn read_stream(mut body: hyper::body::Incoming, start: Instant) -> Outcome {
    let mut ttft = None;
    // Only the tail matters for the [DONE] check; keep a little of it.
    let mut tail: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Outcome::Error("body".into());
        };
        if let Ok(data) = frame.into_data() {
            if data.is_empty() {
                continue;
            }
            ttft.get_or_insert_with(|| start.elapsed());
            tail.extend_from_slice(&data);
            let keep = 64;
            if tail.len() > 4 * keep {
                tail.drain(..tail.len() - keep);
            }
        }
    }
    let latency = start.elapsed();
    let trimmed = tail.trim_ascii_end();
    if !trimmed.ends_with(b"data: [DONE]") {
        return Outcome::Error("stream without [DONE]".into());
    }
    Outcome::Ok { latency, ttft }
}

async fn progress(shared: Arc<Shared>, label: String, start: Instant, print: bool) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_answered, mut last_errors) = (0, 0);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let phase = if now < shared.measure_from {
            "warmup"
        } else if now < shared.measure_to {
            "measure"
        } else {
            "drain"
        };
        // Security outcomes were answered too; they count as throughput.
        let answered =
            shared.live.ok.load(Ordering::Relaxed) + shared.live.security.load(Ordering::Relaxed);
        let errors = shared.live.errors.load(Ordering::Relaxed);
        let point = Tick {
            t_s: (now - start).as_secs_f64().round(),
            phase: phase.to_string(),
            answered: answered - last_answered,
            errors: errors - last_errors,
            inflight: shared.live.inflight.load(Ordering::Relaxed),
        };
        if print {
            eprintln!(
                "[{label}] {:>4.0}s {phase:<7} answered/s={:<6} errors={} security={} inflight={}",
                point.t_s,
                point.answered,
                errors,
                shared.live.security.load(Ordering::Relaxed),
                point.inflight,
            );
        }
        if let Ok(mut t) = shared.timeline.lock() {
            t.push(point);
        }
        (last_answered, last_errors) = (answered, errors);
    }
}

/// VmHWM and VmRSS from `/proc/PID/status` (None when unreadable).
pub fn read_rss(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    Rss {
        pid,
        vm_hwm_kb: status_kb(&status, "VmHWM:"),
        vm_rss_kb: status_kb(&status, "VmRSS:"),
    }
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_loopback_http_only() {
        assert_eq!(
            parse_target("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            parse_target("http://localhost:1/").unwrap(),
            "http://localhost:1"
        );
        assert!(parse_target("http://[::1]:9").is_ok());
        assert!(parse_target("https://127.0.0.1:1").is_err());
        assert!(parse_target("http://example.com").is_err());
        assert!(parse_target("http://10.0.0.1:80").is_err());
        assert!(parse_target("http://127.0.0.1:1/api").is_err());
    }

    #[test]
    fn proc_status_parsing() {
        let s = "Name:\tmodelgate\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kb(s, "VmHWM:"), Some(20_480));
        assert_eq!(status_kb(s, "VmRSS:"), Some(10_240));
        assert_eq!(status_kb(s, "VmSwap:"), None);
        let me = read_rss(std::process::id());
        assert!(me.vm_rss_kb.unwrap_or(0) > 0);
    }
}
