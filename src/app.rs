//! Start-up wiring for `modelgate serve`: bind, serve, reload on SIGHUP,
//! drain on SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::{self, AdminState};
use crate::config::{process_env, Config};
use crate::metrics::{EnforcementState, Metrics};
use crate::proxy::egress::Egress;
use crate::proxy::Proxy;
use crate::reload::{self, Overrides};
use crate::server;
use crate::store::bootstrap::ModelSelection;
use crate::store::AccessStore;
use crate::workers;

/// Runs the proxy and the admin listener until SIGTERM or SIGINT.
pub async fn run(config: Config, overrides: Overrides) -> anyhow::Result<()> {
    let listener = server::bind(config.startup.listen)
        .with_context(|| format!("cannot listen on {}", config.startup.listen))?;
    let admin_listener = server::bind(config.startup.admin_listen)
        .with_context(|| format!("cannot listen on {} (admin)", config.startup.admin_listen))?;
    let egress_listener = server::bind(config.startup.egress_listen)
        .with_context(|| format!("cannot listen on {} (egress)", config.startup.egress_listen))?;
    tracing::info!(addr = %listener.local_addr()?, upstream = %config.upstream, "proxy listening");
    tracing::info!(
        addr = %egress_listener.local_addr()?,
        upstream = %config.egress.upstream.origin,
        base_path = %config.egress.upstream.base_path,
        "egress listening"
    );
    tracing::info!(addr = %admin_listener.local_addr()?, "admin listening");

    prepare_database(&config);
    announce_enforcement(&config);
    let live = Arc::new(ArcSwap::from_pointee(config));
    let metrics = Arc::new(Metrics::new());
    metrics.set_enforcement(enforcement_state(&live.load()));
    let store = AccessStore::open(live.load().startup.store.clone());
    let proxy = Proxy::new(live.clone(), store.clone(), metrics.clone());
    let egress = Egress::new(live.clone(), store.clone(), metrics.clone())
        .context("cannot build the egress client")?;

    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let reload_live = live.clone();
    let reload_metrics = metrics.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match reload::reload(&reload_live, &overrides, &process_env) {
                // Metrics first, then the log lines: whoever reads the log
                // (an operator, a test) then finds the metrics updated.
                Ok(c) => {
                    reload_metrics.set_enforcement(enforcement_state(&c));
                    reload_metrics.record_config_reload(true);
                    tracing::info!(
                        source = c
                            .source
                            .as_ref()
                            .map(|p| tracing::field::display(p.display())),
                        "config reloaded"
                    );
                    // A reload can turn a check off or trust a new header:
                    // announced as loudly as at start-up, and in the metrics.
                    announce_enforcement(&c);
                }
                Err(e) => {
                    reload_metrics.record_config_reload(false);
                    tracing::error!(error = %e, "config reload failed; the running config stays in force");
                }
            }
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin_state = Arc::new(AdminState {
        config: live.clone(),
        store,
        metrics,
        started: Instant::now(),
    });
    let mut admin_stop = stop_rx.clone();
    let admin_task = tokio::spawn(admin::serve(admin_listener, admin_state, async move {
        let _ = admin_stop.wait_for(|s| *s).await;
    }));
    let workers = live.load().startup.workers;
    tracing::info!(workers, "proxy and egress served by one thread per worker");
    let egress_workers = workers::start(egress_listener, egress, workers, stop_rx.clone())
        .context("cannot start the egress workers")?;

    let shutdown = async move {
        let _ = shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    };
    let proxy_workers = workers::start(listener, proxy, workers, stop_rx)
        .context("cannot start the proxy workers")?;
    shutdown.await;
    // Every listener got the signal and drains beside the others.
    proxy_workers.wait().await;
    egress_workers.wait().await;
    if let Err(e) = admin_task.await {
        tracing::warn!(listener = "admin", error = %e, "listener ended abnormally");
    }
    Ok(())
}

/// Self-healing start-up (seed 003): creates the organization tables,
/// indexes, view and triggers when the database is writable. A read-only or
/// missing database is not fatal: guarded requests get 503 until it is
/// readable (fail closed). Whatever it finds is said once, loudly when the
/// gate will refuse everything: a new empty file, a database that is not
/// Open WebUI's, no organizations yet.
fn prepare_database(config: &Config) {
    let path = match &config.startup.database {
        crate::store::Database::Sqlite(path) => path,
        crate::store::Database::Postgres(target) => {
            // Never created behind the operator's back on a shared server:
            // Open WebUI must have migrated the schema first (`init` checks).
            tracing::info!(database = %target, "PostgreSQL: the organization schema is created by `modelgate init`");
            if config.admin.organization_id.is_some() {
                // The blocking client runs its own runtime, so it gets a
                // thread of its own, outside this one's.
                let done = std::thread::scope(|s| {
                    s.spawn(|| {
                        crate::store::pg::blocking::PgConn::connect(target, false)
                            .map(|conn| bootstrap(config, &conn))
                    })
                    .join()
                });
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(
                        database = %target,
                        error = %e,
                        "organization bootstrap failed: cannot connect"
                    ),
                    Err(_) => tracing::error!("organization bootstrap failed: its thread panicked"),
                }
            }
            return;
        }
    };
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
    if path.is_dir() {
        tracing::error!(
            database = %shown.display(),
            "the database path is a directory, not a SQLite file: guarded requests fail closed; point --db or MODELGATE_DATABASE at Open WebUI's webui.db"
        );
        return;
    }
    let existed = path.exists();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::error!(directory = %dir.display(), error = %e, "cannot create the database's directory: guarded requests fail closed");
                return;
            }
            tracing::warn!(directory = %dir.display(), "created the database's directory");
        }
    }
    let conn = match crate::store::admin::open_writer(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                database = %shown.display(),
                error = %e,
                problem = open_problem(path, existed),
                "database not writable; guarded requests fail closed until it is usable"
            );
            return;
        }
    };
    match crate::store::ensure_schema(&conn) {
        Ok(report) if report.created.is_empty() => {
            tracing::info!(database = %shown.display(), "organization schema present")
        }
        Ok(report) => tracing::info!(
            database = %shown.display(),
            created = %report.created.join(", "),
            "organization schema created or repaired"
        ),
        Err(e) => tracing::warn!(
            database = %shown.display(),
            error = %e,
            "cannot prepare the organization schema; guarded requests fail closed until the database is usable"
        ),
    }
    bootstrap(config, &conn);
    announce_contents(&conn, &shown, existed);
}

/// What stands in the way of opening `path`, in the operator's words.
fn open_problem(path: &std::path::Path, existed: bool) -> &'static str {
    match (existed, std::fs::OpenOptions::new().read(true).write(true).open(path)) {
        (true, Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            "permission denied: run as a user who may write the file (and its directory, for the WAL files)"
        }
        (false, _) => "the file does not exist and cannot be created here (check the directory's permissions)",
        _ => "the file exists but SQLite cannot use it (is it a SQLite database?)",
    }
}

/// One line on what the gate will enforce from, loud when that is nothing.
fn announce_contents(conn: &rusqlite::Connection, shown: &std::path::Path, existed: bool) {
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    let users_table =
        count("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'user'");
    let organizations = count("SELECT COUNT(*) FROM organizations");
    let db = shown.display();
    match (users_table, organizations) {
        (Ok(0), Ok(0)) if !existed => tracing::warn!(
            database = %db,
            "CREATED A NEW EMPTY DATABASE: it has no Open WebUI users and no organizations, so every guarded request will be refused. Point --db or MODELGATE_DATABASE at Open WebUI's webui.db, or try it out with `modelgate --db {db} org create <id> --name <name>`"
        ),
        (Ok(0), _) => tracing::warn!(
            database = %db,
            "the database has no Open WebUI `user` table: every guarded request will be refused; is this Open WebUI's webui.db?"
        ),
        (_, Ok(0)) => tracing::warn!(
            database = %db,
            "NO ORGANIZATIONS YET: every guarded request will be refused until one exists; next: `modelgate --db {db} org create <id> --name <name>`, then `member add` and `model enable`"
        ),
        (Ok(_), Ok(n)) => tracing::info!(database = %db, organizations = n, "access data found"),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(database = %db, error = %e, "cannot read the access data; guarded requests fail closed")
        }
    }
}

/// Seed 003: `OPENROUTER_EXTERNAL_USER` / `ORGANIZATION_NAME` name the
/// deployment's organization; make sure it exists with its models.
fn bootstrap(config: &Config, conn: &(impl crate::store::sql::AdminDb + ?Sized)) {
    let Some(org_id) = config.admin.organization_id.as_deref() else {
        return;
    };
    let name = config.admin.organization_name.as_deref().unwrap_or(org_id);
    let models = ModelSelection::from_config(&config.admin.organization_models);
    let development = config.admin.development_mode;
    if development {
        tracing::warn!(
            organization = org_id,
            "DEVELOPMENT MODE (admin.development_mode): every Open WebUI user is made a member of this organization at start-up"
        );
    } else if crate::store::bootstrap::looks_like_development(org_id, name) {
        tracing::warn!(
            organization = org_id,
            "the organization's id or name contains \"dev\", but development mode is explicit now and off: no users are added (set admin.development_mode = true or MODELGATE_DEVELOPMENT_MODE=true to add them)"
        );
    }
    match crate::store::bootstrap::bootstrap(
        conn,
        org_id,
        name,
        &models,
        development,
        "modelgate-bootstrap",
    ) {
        Ok(r) => tracing::info!(
            organization = %r.organization_id,
            created = r.organization_created,
            models_linked = r.models_linked,
            development = r.development,
            members_added = r.members_added,
            "organization bootstrap done"
        ),
        Err(e) => {
            tracing::error!(organization = org_id, error = %e, "organization bootstrap failed")
        }
    }
}

fn enforcement_state(config: &Config) -> EnforcementState {
    EnforcementState {
        enabled: config.access.enforcing(),
        bypass_model_access: config.access.bypass_model_access_control,
        bypass_admin_access: config.access.bypass_admin_access_control,
    }
}

/// Turning the gate off must never go unnoticed.
fn announce_enforcement(config: &Config) {
    let a = &config.access;
    if !a.enabled {
        tracing::warn!(
            "MODEL ACCESS ENFORCEMENT IS OFF (ENABLE_MODEL_FILTER=false): every model is reachable"
        );
    } else if a.bypass_model_access_control {
        tracing::warn!("MODEL ACCESS ENFORCEMENT IS OFF (BYPASS_MODEL_ACCESS_CONTROL=true): every model is reachable");
    } else {
        if a.bypass_admin_access_control {
            tracing::warn!("admins bypass model access control (BYPASS_ADMIN_ACCESS_CONTROL=true)");
        }
        let e = &config.egress;
        if e.jwt.is_none() && !e.trust_plain_user_headers {
            tracing::warn!("egress: no FORWARD_USER_INFO_HEADER_JWT_SECRET: outbound calls carry no verifiable user, so only egress.system_models pass");
        }
        if e.trust_plain_user_headers {
            tracing::warn!("EGRESS TRUSTS UNSIGNED USER HEADERS (egress.trust_plain_user_headers = true): anyone who can reach the egress listener can call as any user");
        }
        if !e.upstream.is_https() {
            tracing::warn!(upstream = %e.upstream.origin, "egress upstream is plain http: outbound calls and their API keys travel unencrypted");
        }
        if a.jwt.is_none() {
            tracing::warn!("no WEBUI_SECRET_KEY or WEBUI_SECRET_KEY_FILE: session tokens cannot be verified; such requests get 503");
        }
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
