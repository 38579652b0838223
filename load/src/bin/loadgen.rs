//! `loadgen`: builds the load-test database (`setup`), drives load at one
//! target (`run`), and turns runs into the comparison and picture
//! (`compare`, `plot`). `free-port` and `wait` are the small helpers
//! `load/run.sh` needs to avoid fixed ports and sleeps.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use modelgate_load::compare::{compare, Comparison};
use modelgate_load::fixture::{mint_token, Fixture};
use modelgate_load::mix::Mix;
use modelgate_load::runner::{self, Mode, RunConfig, SimUser};
use modelgate_load::setup::{setup, SetupConfig};
use modelgate_load::stats::{markdown_summary, markdown_table, Report};

/// Exit code when a target served what it must refuse.
const EXIT_SECURITY: u8 = 2;

#[derive(Parser)]
#[command(about = "Load generator and harness tools for modelgate")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the SQLite database (modelgate's schema, Open WebUI-like
    /// `user`/`model` tables, orgs, memberships, model links) and the fixture.
    Setup(SetupArgs),
    /// Run the request mix against one target and report.
    Run(Box<RunArgs>),
    /// Combine run reports into one JSON/Markdown with ratios.
    Compare(CompareArgs),
    /// Render the latency-distribution SVG from a `compare` JSON.
    Plot(PlotArgs),
    /// Print free loopback TCP ports, one per line.
    FreePort {
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Print FRACTION × the throughput of a run report (the open-loop rate
    /// for the half-load runs).
    RateOf {
        #[arg(long)]
        report: PathBuf,
        #[arg(long, default_value_t = 0.5)]
        fraction: f64,
    },
    /// Poll a loopback URL until it answers 2xx (bounded).
    Wait {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 30.0)]
        timeout_s: f64,
    },
}

#[derive(clap::Args)]
struct SetupArgs {
    #[arg(long)]
    db: PathBuf,
    #[arg(long)]
    fixture: PathBuf,
    #[arg(long, default_value_t = 300)]
    users: usize,
    #[arg(long, default_value_t = 6)]
    orgs: usize,
    /// Models in the mock catalogue (match `mock-upstream --models`).
    #[arg(long, default_value_t = 300)]
    models: usize,
    /// Open WebUI's `WEBUI_SECRET_KEY` the tokens are signed with.
    #[arg(long, env = "WEBUI_SECRET_KEY", hide_env_values = true)]
    secret: String,
    /// Replace an existing database.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Base URL, loopback only, e.g. http://127.0.0.1:8081
    #[arg(long)]
    target: String,
    /// Fixture written by `loadgen setup`.
    #[arg(long)]
    fixture: PathBuf,
    /// Name of this run in reports (direct, nginx, modelgate, ...).
    #[arg(long, default_value = "target")]
    label: String,
    /// Re-mint every token with this secret (else the fixture's tokens).
    #[arg(long, env = "WEBUI_SECRET_KEY", hide_env_values = true)]
    secret: Option<String>,
    /// Simulated users (fixture users are reused when fewer).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    users: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Seconds before measuring (connections, caches).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Closed loop: pause after each answer, ms.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Open loop at this many requests per second (instead of closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Weights list,chat,stream,forbidden.
    #[arg(long, default_value = "40,40,15,5")]
    mix: Mix,
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// The target enforces access: forbidden calls must get 403.
    #[arg(long)]
    expect_enforcement: bool,
    /// Open loop: most requests in flight.
    #[arg(long, default_value_t = 2_000)]
    max_inflight: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// PID of the process under test, for its memory (VmHWM/VmRSS).
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long)]
    json_out: Option<PathBuf>,
    #[arg(long)]
    md_out: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(clap::Args)]
struct CompareArgs {
    /// A closed-loop run report (repeat; first is the baseline).
    #[arg(long = "run", required = true)]
    runs: Vec<PathBuf>,
    /// An open-loop half-load report (repeat; first is the baseline).
    #[arg(long = "half")]
    half: Vec<PathBuf>,
    #[arg(long)]
    json_out: Option<PathBuf>,
    #[arg(long)]
    md_out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PlotArgs {
    /// JSON written by `loadgen compare`.
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    match Cli::parse().cmd {
        Cmd::Setup(a) => {
            let fixture = setup(&SetupConfig {
                db: a.db.clone(),
                users: a.users,
                orgs: a.orgs,
                models: a.models,
                secret: a.secret,
                force: a.force,
            })?;
            fixture.save(&a.fixture)?;
            println!(
                "setup: {} users in {} organizations, {} models; db {}, fixture {}",
                fixture.users.len(),
                fixture.organizations.len(),
                fixture.models,
                a.db.display(),
                a.fixture.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run(a) => run(*a),
        Cmd::Compare(a) => {
            let load = |paths: &[PathBuf]| -> anyhow::Result<Vec<Report>> {
                paths.iter().map(read_json).collect()
            };
            let c = compare(load(&a.runs)?, load(&a.half)?);
            write_out(a.json_out.as_ref(), &serde_json::to_vec_pretty(&c)?)?;
            write_out(a.md_out.as_ref(), c.markdown().as_bytes())?;
            print!("{}", c.ratio_lines());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Plot(a) => {
            let c: Comparison = read_json(&a.input)?;
            modelgate_load::plot::render(&c, &a.output)?;
            println!("plot: {}", a.output.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::FreePort { count } => {
            anyhow::ensure!((1..=16).contains(&count), "count must be 1..=16");
            // Hold all listeners until every port is known, so the ports
            // are distinct; the caller binds them right after.
            let listeners = (0..count)
                .map(|_| TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<Vec<_>, _>>()?;
            for l in &listeners {
                println!("{}", l.local_addr()?.port());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::RateOf { report, fraction } => {
            let r: Report = read_json(&report)?;
            let rate = r.throughput_rps * fraction;
            anyhow::ensure!(
                rate.is_finite() && rate >= 1.0,
                "{}: throughput {:.1} req/s gives no usable rate",
                report.display(),
                r.throughput_rps
            );
            println!("{rate:.0}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Wait { url, timeout_s } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(wait(
                &url,
                Duration::from_secs_f64(timeout_s.clamp(0.1, 600.0)),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.duration.is_finite() && a.duration > 0.0 && a.duration <= 3_600.0,
        "--duration must be in (0, 3600] seconds"
    );
    anyhow::ensure!(
        a.warmup.is_finite() && (0.0..=600.0).contains(&a.warmup),
        "--warmup must be in [0, 600] seconds"
    );
    let fixture = Fixture::load(&a.fixture)?;
    let users = (0..a.users as usize)
        .map(|i| {
            let u = &fixture.users[i % fixture.users.len()];
            let token = match &a.secret {
                Some(secret) if !secret.is_empty() => mint_token(secret, &u.id)?,
                _ => u.token.clone(),
            };
            SimUser::new(u, &token)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cfg = RunConfig {
        label: a.label,
        target: runner::parse_target(&a.target)?,
        users,
        mode: match a.rate {
            Some(rate) => Mode::Open { rate },
            None => Mode::Closed {
                think: Duration::from_millis(a.think_ms),
            },
        },
        warmup: Duration::from_secs_f64(a.warmup),
        duration: Duration::from_secs_f64(a.duration),
        mix: a.mix,
        timeout: Duration::from_millis(a.timeout_ms.clamp(1, 600_000)),
        expect_enforcement: a.expect_enforcement,
        max_inflight: a.max_inflight,
        seed: a.seed,
        pid: a.pid,
        progress: !a.quiet,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = a.threads {
        rt.worker_threads(n.max(1));
    }
    let report = rt.build()?.block_on(runner::run(cfg))?;
    write_out(a.json_out.as_ref(), &serde_json::to_vec_pretty(&report)?)?;
    let md = format!(
        "{}\n{}",
        markdown_summary(&[&report]),
        markdown_table(&[&report])
    );
    write_out(a.md_out.as_ref(), md.as_bytes())?;
    println!("{md}");
    if report.security_total > 0 {
        eprintln!(
            "loadgen: SECURITY: {} request(s) got what they must be refused",
            report.security_total
        );
        return Ok(ExitCode::from(EXIT_SECURITY));
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait(url: &str, timeout: Duration) -> anyhow::Result<()> {
    use http_body_util::{BodyExt, Empty};
    let uri: http::Uri = url.parse()?;
    let base = runner::parse_target(&format!(
        "{}://{}",
        uri.scheme_str().unwrap_or_default(),
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    ))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no answer");
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), client.get(uri.clone())).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                let _ = resp.into_body().collect().await;
                return Ok(());
            }
            Ok(Ok(resp)) => last = format!("status {}", resp.status()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timeout".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{base}: not ready after {timeout:?} ({last})")
}

fn read_json<T: serde::de::DeserializeOwned>(path: &PathBuf) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn write_out(path: Option<&PathBuf>, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(p) = path {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
