//! `mock-upstream`: a fast fake Open WebUI for load tests. Prints
//! `listening ADDR` as its first stdout line so scripts can use `:0`.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use modelgate_load::mock::{serve, MockConfig};

#[derive(Parser)]
#[command(
    about = "Fake Open WebUI upstream: model lists, chat completions (JSON/SSE), WebSocket echo"
)]
struct Args {
    /// Address to bind; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Models in every list response.
    #[arg(long, default_value_t = 300)]
    models: usize,
    /// Content chunks per streamed completion.
    #[arg(long, default_value_t = 20)]
    tokens: usize,
    /// Delay between streamed chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    token_delay_ms: u64,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    rt.build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        let addr = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {addr}")?;
        out.flush()?;
        drop(out);
        let cfg = MockConfig {
            models: args.models,
            tokens: args.tokens,
            token_delay: Duration::from_millis(args.token_delay_ms),
        };
        tokio::select! {
            r = serve(listener, cfg) => r?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
