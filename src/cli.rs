//! The `modelgate` command line. `main.rs` only calls [`main`]; every
//! subcommand is a thin layer over a library function ([`crate::app`] for
//! `serve`, [`crate::ops`] for the operator commands): this module parses,
//! prints text or `--json`, and picks the exit code.
//!
//! Exit codes: 0 success; 1 error (message on stderr); 2 invalid arguments
//! (clap); 3 `access USER MODEL` denied; 4 `db-bench` index check failed.
//! With `--json`, an error is one line of JSON on stderr,
//! `{"error":{"code":"unknown_organization","message":"..."}}`, with a
//! stable code ([`crate::ops::OpsError::code`], `invalid_arguments` for
//! exit 2) and stdout stays empty.

use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::process_env;
use crate::ops;
use crate::reload::Overrides;
use crate::store::admin::MemberRole;
use crate::store::bench::Sizes;
use crate::store::{Database, Mode};

/// `access USER MODEL`: the model is refused.
pub const EXIT_DENIED: u8 = 3;
/// `db-bench`: a query does not use its index (or scans a table).
pub const EXIT_CHECK_FAILED: u8 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "modelgate",
    version,
    about = "Model-access gateway in front of Open WebUI",
    after_help = "Exit codes: 0 success, 1 error, 2 invalid arguments, \
                  3 access denied (`access USER MODEL`), 4 index check failed (`db-bench`). \
                  With --json, errors are JSON on stderr: {\"error\":{\"code\":...,\"message\":...}}."
)]
pub struct Cli {
    /// Open WebUI's database: a SQLite path or a PostgreSQL URL (default:
    /// Open WebUI's DATABASE_URL when set, else ./data/webui.db).
    #[arg(
        long,
        global = true,
        env = "MODELGATE_DATABASE",
        value_name = "PATH|URL"
    )]
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
    /// Try modelgate in one command: a fake upstream, two organizations, the
    /// real proxy, and curl commands that show it at work.
    Demo,
    /// Exit 0 when the running instance's admin `/health` answers (for
    /// container health checks; reads MODELGATE_ADMIN_LISTEN / the config).
    Health {
        #[arg(long, env = "MODELGATE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Create or repair the organization tables, indexes, view and audit
    /// triggers (creates the database file and its directory if missing).
    Init {
        #[command(flatten)]
        out: Output,
    },
    /// Organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Memberships (remove = deactivate).
    #[command(subcommand)]
    Member(MemberCommand),
    /// Model access per organization (disable = deactivate).
    #[command(subcommand)]
    Model(ModelCommand),
    /// Explain a user's organizations and permitted models, and the
    /// decision for MODEL with its reason (exit 3 when denied).
    Access {
        user: String,
        model: Option<String>,
        #[command(flatten)]
        out: Output,
    },
    /// Per-organization counts (active members, admins, active models) and
    /// user totals; `--users` lists every active membership instead.
    Report {
        /// Only this organization (the user totals stay global).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// One line per user and organization (email, name, roles, number
        /// of models), streamed as the database yields it, so memory stays
        /// flat on any number of users. With --json: one JSON array, one
        /// object per line.
        #[arg(long)]
        users: bool,
        #[command(flatten)]
        out: Output,
    },
    /// The permission change log, newest first.
    Audit {
        /// How many entries (at least 1).
        #[arg(long, default_value_t = 50, value_name = "N", value_parser = parse_limit)]
        limit: usize,
        #[command(flatten)]
        out: Output,
    },
    /// Query latency (p50/p95/p99) and EXPLAIN QUERY PLAN index check
    /// (exit 4 when an index is not used).
    DbBench {
        #[arg(long, default_value_t = 100, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..))]
        iterations: u32,
        /// First fill a NEW database file with synthetic data (100k users,
        /// 1k organizations, 2k models); refuses an existing file.
        #[arg(long)]
        generate: bool,
        #[command(flatten)]
        out: Output,
    },
    /// The seed's migration: online backup, then ONE transaction linking
    /// every non-pending user and every base model to the organization
    /// (Open WebUI's `model` table, or without base models there, the model
    /// ids the gate has seen the upstream offer).
    Migrate {
        #[arg(long, value_name = "ID")]
        org_id: String,
        #[arg(long, value_name = "NAME")]
        org_name: String,
        /// Do everything, report, and roll back (no backup is taken).
        #[arg(long)]
        dry_run: bool,
        /// Go ahead even when the organization would get no models (Open
        /// WebUI's `model` table has no base models and the gate has not
        /// seen the upstream's model list yet).
        #[arg(long)]
        allow_empty: bool,
        #[command(flatten)]
        write: WriteArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization (an existing id with another name is refused:
    /// use `org rename`).
    Create {
        id: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Rename an organization.
    Rename {
        id: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// enforce: refuse what the rules refuse; shadow: let it through, log
    /// and count it (outcome would_deny).
    Mode {
        org: String,
        #[arg(value_parser = parse_mode)]
        mode: Mode,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Make the members of an Open WebUI group (id or name; its subgroups'
    /// members too) members of ORG.
    BindGroup {
        org: String,
        group: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Remove a group binding.
    UnbindGroup {
        org: String,
        group: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// List the groups bound to ORG, unbound ones included.
    Groups {
        org: String,
        #[command(flatten)]
        out: Output,
    },
    /// List organizations with their mode and active counts.
    List {
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a user (or reactivate, or change the role).
    Add {
        org: String,
        user: String,
        /// member or admin.
        #[arg(long, default_value = "member", value_parser = parse_role)]
        role: MemberRole,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Deactivate a membership (the row and its history stay).
    Remove {
        org: String,
        user: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// List memberships, inactive ones included.
    List {
        org: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Allow an exact model id (a base model: its presets follow it) or a
    /// glob (`openai/*`; only `*` is special, `\*` is a literal star).
    Enable {
        org: String,
        #[arg(value_name = "PATTERN")]
        model: String,
        /// Accept an exact id that no model the gate has seen matches.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Deny an exact id or a glob: members of ORG may not use a matching
    /// model, whatever any organization allows.
    Deny {
        org: String,
        #[arg(value_name = "PATTERN")]
        model: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Remove an allow or a deny (deactivated; the history stays).
    Disable {
        org: String,
        model: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// List model links, inactive ones included.
    List {
        org: String,
        #[command(flatten)]
        out: Output,
    },
}

#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Who makes the change, recorded in the audit log (default: $USER,
    /// $LOGNAME, else "cli").
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    #[command(flatten)]
    pub out: Output,
}

impl WriteArgs {
    fn actor(&self) -> String {
        self.actor
            .clone()
            .unwrap_or_else(|| ops::default_actor(&process_env))
    }
}

/// `audit --limit`: 0 would print an empty log and "no permission changes
/// recorded", which is false; refused instead.
fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 would show nothing)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_role(s: &str) -> Result<MemberRole, String> {
    s.parse()
        .map_err(|e: crate::store::StoreError| e.to_string())
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("invalid mode '{s}' (expected enforce or shadow)"))
}

pub fn main() -> ExitCode {
    // `--json` anywhere asks for JSON errors too, even when the arguments
    // around it do not parse.
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            let text = e.to_string();
            eprintln!("{}", error_json("invalid_arguments", first_line(&text)));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) if json => {
            eprintln!("{}", error_json(error_code(&e), &format!("{e:#}")));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("modelgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// clap's message without its usage lines and `--help` hint.
fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .map_or(text, |l| l.trim_start_matches("error: "))
}

/// `{"error":{"code":"...","message":"..."}}`, one line.
fn error_json(code: &str, message: &str) -> String {
    serde_json::json!({ "error": { "code": code, "message": message } }).to_string()
}

/// The stable code of the first error in the chain that has one.
fn error_code(e: &anyhow::Error) -> &'static str {
    e.chain()
        .find_map(|cause| {
            if let Some(ops) = cause.downcast_ref::<ops::OpsError>() {
                Some(ops.code())
            } else if cause.is::<crate::config::ConfigError>() {
                Some("invalid_config")
            } else {
                None
            }
        })
        .unwrap_or("error")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            let overrides = Overrides {
                config_path: config,
                database: cli.db,
            };
            let config = overrides.load(&process_env)?;
            crate::logging::init(&config.startup.log, process_env("RUST_LOG"));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crate::app::run(config, overrides))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            crate::logging::init(&Default::default(), Some("warn".into()));
            let rt = runtime()?;
            rt.block_on(async {
                let demo = crate::demo::start().await?;
                print!("{}", crate::demo::instructions(&demo));
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .context("waiting for SIGTERM")?;
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
                    _ = term.recv() => {}
                }
                // Dropping the demo removes its temporary database.
                drop(demo);
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { config, timeout } => {
            let overrides = Overrides {
                config_path: config,
                database: cli.db,
            };
            let config = overrides.load(&process_env)?;
            let rt = runtime()?;
            match rt.block_on(crate::admin::probe(
                config.startup.admin_listen,
                std::time::Duration::from_secs(timeout),
            )) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("modelgate: unhealthy: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        command => run_ops(
            &Database::resolve(cli.db.as_deref(), &process_env)?,
            command,
        ),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The operator commands: each calls one `ops` function and prints. They
/// run on either database; `db-bench` alone is SQLite's.
fn run_ops(db: &Database, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init { out } => {
            let report = match db {
                Database::Sqlite(path) => ops::init::init(path)?,
                Database::Postgres(target) => {
                    runtime()?.block_on(ops::init::init_postgres(target))?
                }
            };
            emit(out.json, &report)?
        }
        Command::Org(OrgCommand::Create { id, name, write }) => emit(
            write.out.json,
            &ops::manage::org_create(db, &id, &name, &write.actor())?,
        )?,
        Command::Org(OrgCommand::Rename { id, name, write }) => emit(
            write.out.json,
            &ops::manage::org_rename(db, &id, &name, &write.actor())?,
        )?,
        Command::Org(OrgCommand::Mode { org, mode, write }) => emit(
            write.out.json,
            &ops::manage::org_mode(db, &org, mode, &write.actor())?,
        )?,
        Command::Org(OrgCommand::BindGroup { org, group, write }) => emit(
            write.out.json,
            &ops::manage::org_bind_group(db, &org, &group, &write.actor())?,
        )?,
        Command::Org(OrgCommand::UnbindGroup { org, group, write }) => emit(
            write.out.json,
            &ops::manage::org_unbind_group(db, &org, &group, &write.actor())?,
        )?,
        Command::Org(OrgCommand::Groups { org, out }) => {
            emit(out.json, &ops::manage::org_groups(db, &org)?)?
        }
        Command::Org(OrgCommand::List { out }) => emit(out.json, &ops::manage::org_list(db)?)?,
        Command::Member(MemberCommand::Add {
            org,
            user,
            role,
            write,
        }) => emit(
            write.out.json,
            &ops::manage::member_add(db, &org, &user, role, &write.actor())?,
        )?,
        Command::Member(MemberCommand::Remove { org, user, write }) => emit(
            write.out.json,
            &ops::manage::member_remove(db, &org, &user, &write.actor())?,
        )?,
        Command::Member(MemberCommand::List { org, out }) => {
            emit(out.json, &ops::manage::member_list(db, &org)?)?
        }
        Command::Model(ModelCommand::Enable {
            org,
            model,
            force,
            write,
        }) => emit(
            write.out.json,
            &ops::manage::model_enable(db, &org, &model, force, &write.actor())?,
        )?,
        Command::Model(ModelCommand::Deny { org, model, write }) => emit(
            write.out.json,
            &ops::manage::model_deny(db, &org, &model, &write.actor())?,
        )?,
        Command::Model(ModelCommand::Disable { org, model, write }) => emit(
            write.out.json,
            &ops::manage::model_disable(db, &org, &model, &write.actor())?,
        )?,
        Command::Model(ModelCommand::List { org, out }) => {
            emit(out.json, &ops::manage::model_list(db, &org)?)?
        }
        Command::Access { user, model, out } => {
            // The store reads on blocking threads; one small runtime is enough.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let explained = rt.block_on(ops::access::explain(db, &user, model.as_deref()))?;
            emit(out.json, &explained)?;
            if !explained.allowed() {
                return Ok(ExitCode::from(EXIT_DENIED));
            }
        }
        Command::Report {
            org,
            users: true,
            out,
        } => {
            let stdout = std::io::stdout().lock();
            match ops::report::user_listing(db, org.as_deref(), out.json, stdout) {
                // `modelgate report --users | head` closing the pipe early
                // is not an error.
                Err(ops::OpsError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => {
                    other?;
                }
            }
        }
        Command::Report {
            org,
            users: false,
            out,
        } => {
            let report = ops::report::report(db, org.as_deref())?;
            emit_as(out.json, &report, &ops::report::ReportText(&report))?
        }
        Command::Audit { limit, out } => emit(out.json, &ops::report::audit(db, limit)?)?,
        Command::DbBench {
            iterations,
            generate,
            out,
        } => {
            let Database::Sqlite(db) = db else {
                return Err(ops::OpsError::NotOnPostgres {
                    what: "`db-bench`",
                    why:
                        "it checks SQLite's query plans (EXPLAIN QUERY PLAN) and generates SQLite \
                          files; on PostgreSQL use EXPLAIN (ANALYZE) and pg_stat_statements",
                }
                .into());
            };
            if generate {
                let made = ops::bench::generate(db, Sizes::default())?;
                eprintln!(
                    "generated {}: {} users, {} organizations, {} models, {} memberships, {} links",
                    made.database,
                    made.rows.users,
                    made.rows.orgs,
                    made.rows.models,
                    made.rows.memberships,
                    made.rows.links
                );
            }
            let iterations = usize::try_from(iterations).unwrap_or(usize::MAX);
            let report = ops::bench::db_bench(db, iterations)?;
            emit_as(out.json, &report, &ops::bench::BenchText(&report))?;
            if !report.ok {
                return Ok(ExitCode::from(EXIT_CHECK_FAILED));
            }
        }
        Command::Migrate {
            org_id,
            org_name,
            dry_run,
            allow_empty,
            write,
        } => {
            // Progress goes to stderr so `--json` stdout stays one document.
            let progress: ops::migrate::ProgressFn = Box::new(|p: ops::migrate::Progress| {
                eprintln!("migrate: {} rows inserted into {}", p.rows, p.table);
            });
            // Before anything runs, where it cannot be missed: there is no
            // file to copy, so the operator must have taken a dump. (With
            // --json it is the output's `backup_advice`: an error must stay
            // the only line on stderr.)
            if matches!(db, Database::Postgres(_)) && !dry_run && !write.out.json {
                eprintln!(
                    "modelgate: NOTE: {}",
                    ops::migrate::pg_backup_advice(&db.to_string())
                );
            }
            let outcome = ops::migrate::migrate(
                db,
                &org_id,
                &org_name,
                &write.actor(),
                crate::store::admin::MigrateOptions {
                    dry_run,
                    allow_empty,
                },
                Some(progress),
            )?;
            emit(write.out.json, &outcome)?
        }
        // `serve` (and whatever else `run` handles itself) never gets here;
        // a catch-all keeps new top-level commands a one-place change.
        other => anyhow::bail!("{other:?} is not an operator command"),
    }
    Ok(ExitCode::SUCCESS)
}

fn emit<T: Serialize + Display>(json: bool, value: &T) -> anyhow::Result<()> {
    emit_as(json, value, value)
}

fn emit_as(json: bool, value: &impl Serialize, text: &impl Display) -> anyhow::Result<()> {
    let out = if json {
        let mut s = serde_json::to_string_pretty(value).context("cannot serialize the output")?;
        s.push('\n');
        s
    } else {
        text.to_string()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `modelgate audit | head` closing the pipe early is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}
