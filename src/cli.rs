//! The `modelgate` command line. `main.rs` only calls [`main`]; every
//! subcommand is a thin layer over a library function.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::process_env;
use crate::reload::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "modelgate",
    version,
    about = "Model-access gateway in front of Open WebUI"
)]
pub struct Cli {
    /// SQLite database shared with Open WebUI (default ./data/webui.db).
    #[arg(long, global = true, env = "MODELGATE_DATABASE", value_name = "PATH")]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (and the admin listener).
    Serve {
        /// Config file (default: config/modelgate.toml when present).
        #[arg(long, env = "MODELGATE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("modelgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            let overrides = Overrides {
                config_path: config,
                database: cli.db,
            };
            let config = overrides.load(&process_env)?;
            crate::logging::init(&config.log, process_env("RUST_LOG"));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crate::app::run(config, overrides))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
