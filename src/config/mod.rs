//! Configuration: TOML file → environment overrides → command-line flags →
//! `validate()` → the runtime [`Config`].
//!
//! The environment is read through an injectable lookup function so tests
//! never mutate the process environment (linkerd `app/src/env.rs`).
//! Precedence, lowest first: built-in defaults, the file, the environment,
//! command-line flags ([`Config::load_with`]). All of them are applied to the
//! file before validation, so every runtime value derived from a key sees
//! the same winner.

mod egress;
mod env;
mod file;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use crate::gate::jwt::JwtVerifier;
use crate::gate::routes::RouteTable;
use crate::store::{Database, DatabaseError, StoreConfig};

pub use egress::{Egress, EgressSection, EgressUpstream};
pub use file::{
    AccessSection, AdminSection, FileConfig, LimitSection, LogFormat, LogSection, ProxySection,
    StoreSection, TimeoutSection,
};

/// Where a configuration value comes from when it is not in the file.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for production use.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The default config file, used by `serve` when it exists.
pub const DEFAULT_CONFIG_PATH: &str = "config/modelgate.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The cause is part of the message (reload failures are logged with
    /// it) and therefore not also the `source()`: the CLI prints an
    /// error's whole chain, which would repeat it.
    #[error("cannot read config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A reload found the file the running config was read from gone. The
    /// built-in defaults are never a fallback for it: they would drop the
    /// operator's routes and switches without a word.
    #[error("config file {path} was loaded before and is now missing; a reload never falls back to the built-in defaults")]
    Vanished { path: PathBuf },
    /// The database setting (or Open WebUI's variables) names nothing
    /// usable; the message never quotes a password.
    #[error("invalid database: {0}")]
    Database(#[from] DatabaseError),
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

fn invalid(key: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.into(),
        reason: reason.into(),
    }
}

/// The validated runtime configuration.
///
/// Its sections are runtime types, not the file's: the file spells
/// durations as `*_secs`/`*_ms` integers and cannot say "non-zero", while
/// readers here get `Duration`s and `NonZero*`s, so a unit is converted and
/// a zero refused once, in validation, instead of at every use.
#[derive(Debug, Clone)]
pub struct Config {
    /// Keys read once at start-up; a reload keeps the running ones whole.
    pub startup: Startup,
    /// `scheme://authority` of Open WebUI; request paths are appended as received.
    pub upstream: Uri,
    pub proxy: Proxy,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub access: Access,
    /// The egress gate (Open WebUI → the model API).
    pub egress: Egress,
    /// Only strings and paths, nothing to type: the file's section as is.
    pub admin: AdminSection,
    /// The file this came from, if any (SIGHUP re-reads it).
    pub source: Option<PathBuf>,
}

/// What sockets, the store, logging and the upstream pool are built from
/// when the process starts. Nothing rebuilds them on reload, so a new value
/// could only lie about what is running: reload keeps this struct whole
/// and warns about each key that differed.
#[derive(Debug, Clone, PartialEq)]
pub struct Startup {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Shown without its password wherever it is displayed.
    pub database: Database,
    /// Format and level strings, nothing to type: the file's section as is.
    pub log: LogSection,
    /// `limits.max_connections`.
    pub max_connections: NonZeroUsize,
    /// `workers`, 0 resolved to the number of cores.
    pub workers: NonZeroUsize,
    /// `limits.max_buffered_body_bytes`: the budget is sized once.
    pub max_buffered_body_bytes: NonZeroUsize,
    /// `timeouts.connect_ms`.
    pub connect_timeout: Duration,
    /// `access.max_concurrent_list_filters`.
    pub max_concurrent_list_filters: NonZeroUsize,
    /// Built from `database` and `[store]`; its `database` is always `database`.
    pub store: StoreConfig,
    /// `proxy.pool_*`.
    pub pool: Pool,
    /// `egress.listen`.
    pub egress_listen: SocketAddr,
    /// `egress.ca_file`: read once, when the egress client is built.
    pub egress_ca_file: Option<PathBuf>,
}

impl Startup {
    /// The config keys, as the file names them, whose values differ between
    /// `self` and `other`.
    pub fn changed_keys(&self, other: &Startup) -> Vec<&'static str> {
        // Destructured so a field added to `Startup` cannot be forgotten here.
        let Startup {
            listen,
            admin_listen,
            database,
            log,
            max_connections,
            workers,
            max_buffered_body_bytes,
            connect_timeout,
            max_concurrent_list_filters,
            store,
            pool,
            egress_listen,
            egress_ca_file,
        } = self;
        [
            ("listen", *listen != other.listen),
            ("admin_listen", *admin_listen != other.admin_listen),
            ("database", *database != other.database),
            ("log", *log != other.log),
            (
                "limits.max_connections",
                *max_connections != other.max_connections,
            ),
            ("workers", *workers != other.workers),
            (
                "limits.max_buffered_body_bytes",
                *max_buffered_body_bytes != other.max_buffered_body_bytes,
            ),
            (
                "timeouts.connect_ms",
                *connect_timeout != other.connect_timeout,
            ),
            (
                "access.max_concurrent_list_filters",
                *max_concurrent_list_filters != other.max_concurrent_list_filters,
            ),
            ("store", *store != other.store),
            ("proxy.pool_*", *pool != other.pool),
            ("egress.listen", *egress_listen != other.egress_listen),
            ("egress.ca_file", *egress_ca_file != other.egress_ca_file),
        ]
        .into_iter()
        .filter_map(|(key, differs)| differs.then_some(key))
        .collect()
    }
}

/// Idle upstream connections.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub max_idle_per_host: usize,
    pub idle_timeout: Duration,
}

/// How requests are forwarded.
#[derive(Debug, Clone, PartialEq)]
pub struct Proxy {
    pub preserve_host: bool,
    pub trust_forwarded_headers: bool,
    pub request_id_header: http::HeaderName,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub upstream_headers: Duration,
    pub header_read: Duration,
    pub drain: Duration,
    /// `timeouts.list_body_secs`: a model-list body, from its headers to its end.
    pub list_body: Duration,
}

/// Bounds on a client's request head.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_headers: NonZeroUsize,
}

/// The enforcement part of the runtime configuration.
#[derive(Debug, Clone)]
pub struct Access {
    pub enabled: bool,
    pub bypass_model_access_control: bool,
    pub bypass_admin_access_control: bool,
    pub max_body_bytes: NonZeroUsize,
    pub max_unlisted_body_bytes: NonZeroUsize,
    pub max_list_bytes: NonZeroUsize,
    pub api_key_header: http::HeaderName,
    pub arena_models: Arc<BTreeMap<String, Vec<String>>>,
    pub routes: Arc<RouteTable>,
    /// `None` when no `WEBUI_SECRET_KEY`/`_FILE` is set: session tokens
    /// then cannot be checked and guarded requests carrying one get 503.
    pub jwt: Option<Arc<JwtVerifier>>,
    pub admin_token: Option<Arc<str>>,
}

impl Access {
    /// Whether requests are checked at all.
    pub fn enforcing(&self) -> bool {
        self.enabled && !self.bypass_model_access_control
    }
}

impl Config {
    /// Reads `path` (or `MODELGATE_CONFIG`, or [`DEFAULT_CONFIG_PATH`] when it
    /// exists), applies the environment, validates.
    pub fn load(path: Option<&Path>, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        Config::load_with(path, env, |_| {})
    }

    /// [`Config::load`] with `flags` applied to the file after the
    /// environment and before validation: flags win, and values derived
    /// from a key during validation (the store's path from `database`)
    /// see the flag too.
    pub fn load_with(
        path: Option<&Path>,
        env: EnvLookup<'_>,
        flags: impl FnOnce(&mut FileConfig),
    ) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => match env("MODELGATE_CONFIG") {
                Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
                _ => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
            },
        };
        let mut file = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.clone(),
                    error,
                })?;
                file::parse_file(&text, p)?
            }
            None => FileConfig::default(),
        };
        env::apply(&mut file, env)?;
        flags(&mut file);
        let mut config = file.validate(env)?;
        config.source = path;
        Ok(config)
    }

    /// Builds a config from TOML text, for tests and `--config -` style use.
    pub fn from_toml(text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        Config::from_file(file::parse_file(text, Path::new("<inline>"))?, env)
    }

    /// Applies environment overrides to a parsed file and validates it.
    pub fn from_file(mut file: FileConfig, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        env::apply(&mut file, env)?;
        file.validate(env)
    }

    /// Keeps the running [`Startup`] keys and names the ones the new config
    /// wanted to change.
    pub fn keep_static_from(&mut self, running: &Config) -> Vec<&'static str> {
        let changed = self.startup.changed_keys(&running.startup);
        self.startup = running.startup.clone();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_match_design() {
        let c = Config::from_toml("", &env_of(&[])).unwrap();
        assert_eq!(c.startup.listen.to_string(), "0.0.0.0:8081");
        assert_eq!(c.startup.admin_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.upstream.to_string(), "http://127.0.0.1:8080/");
        assert_eq!(
            c.startup.database,
            Database::Sqlite("./data/webui.db".into())
        );
        assert!(c.proxy.preserve_host);
    }

    #[test]
    fn environment_overrides_file() {
        let text = "listen = \"127.0.0.1:1000\"\nupstream = \"http://a:1\"\n";
        let env = env_of(&[
            ("MODELGATE_LISTEN", "127.0.0.1:2000"),
            ("MODELGATE_UPSTREAM", "http://b:2"),
            ("MODELGATE_ADMIN_LISTEN", "127.0.0.1:3000"),
            ("MODELGATE_DATABASE", "/tmp/x.db"),
        ]);
        let c = Config::from_toml(text, &env).unwrap();
        assert_eq!(c.startup.listen.port(), 2000);
        assert_eq!(c.upstream.authority().unwrap().as_str(), "b:2");
        assert_eq!(c.startup.admin_listen.port(), 3000);
        assert_eq!(c.startup.database, Database::Sqlite("/tmp/x.db".into()));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::from_toml("[proxy]\npreserve_hots = true\n", &env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("preserve_hots"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        for (text, key) in [
            ("listen = \"nope\"", "listen"),
            ("upstream = \"https://x\"", "upstream"),
            ("upstream = \"http://x/api\"", "upstream"),
            ("upstream = \"x\"", "upstream"),
            ("[timeouts]\nconnect_ms = 0", "timeouts.connect_ms"),
            ("[limits]\nmax_header_bytes = 10", "limits.max_header_bytes"),
            (
                "[proxy]\nrequest_id_header = \"bad header\"",
                "proxy.request_id_header",
            ),
            (
                "listen = \"127.0.0.1:9464\"\nadmin_listen = \"127.0.0.1:9464\"",
                "admin_listen",
            ),
        ] {
            let err = Config::from_toml(text, &env_of(&[])).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn bad_environment_value_is_refused() {
        let err = Config::from_toml("", &env_of(&[("MODELGATE_UPSTREAM", "ftp://x")])).unwrap_err();
        assert!(err.to_string().contains("upstream"));
    }

    #[test]
    fn static_keys_survive_a_reload() {
        let running = Config::from_toml("", &env_of(&[])).unwrap();
        let mut next = Config::from_toml(
            "listen = \"127.0.0.1:1\"\n[proxy]\npreserve_host = false\n",
            &env_of(&[]),
        )
        .unwrap();
        let changed = next.keep_static_from(&running);
        assert_eq!(changed, vec!["listen"]);
        assert_eq!(next.startup.listen, running.startup.listen);
        assert!(!next.proxy.preserve_host, "runtime keys take the new value");
    }

    #[test]
    fn enforcement_switches_from_the_environment() {
        let c = Config::from_toml("", &env_of(&[])).unwrap();
        assert!(c.access.enforcing());
        assert!(c.access.jwt.is_none());
        let c = Config::from_toml(
            "",
            &env_of(&[
                ("BYPASS_MODEL_ACCESS_CONTROL", "True"),
                ("BYPASS_ADMIN_ACCESS_CONTROL", "1"),
                ("WEBUI_SECRET_KEY", "k"),
                ("CUSTOM_API_KEY_HEADER", "X-My-Key"),
            ]),
        )
        .unwrap();
        assert!(!c.access.enforcing());
        assert!(c.access.bypass_admin_access_control);
        assert!(c.access.jwt.is_some());
        assert_eq!(c.access.api_key_header, "x-my-key");
        let c = Config::from_toml("", &env_of(&[("ENABLE_MODEL_FILTER", "false")])).unwrap();
        assert!(!c.access.enforcing());
        let err = Config::from_toml("", &env_of(&[("ENABLE_MODEL_FILTER", "maybe")])).unwrap_err();
        assert!(err.to_string().contains("ENABLE_MODEL_FILTER"));
    }

    #[test]
    fn database_path_reaches_the_store() {
        let c = Config::from_toml(
            "database = \"/d/w.db\"\n[store]\nwatch_interval_ms = 100\n",
            &env_of(&[]),
        )
        .unwrap();
        assert_eq!(c.startup.store.database, Database::Sqlite("/d/w.db".into()));
        assert_eq!(c.startup.store.watch_interval, Duration::from_millis(100));
    }

    #[test]
    fn open_webui_s_database_url_is_the_fallback_and_its_password_stays_hidden() {
        let env = env_of(&[
            (
                "DATABASE_URL",
                "postgres://webui:hunter2@db:5432/owui?sslmode=require",
            ),
            ("DATABASE_SCHEMA", "owui"),
        ]);
        let c = Config::from_toml("", &env).unwrap();
        let Database::Postgres(target) = &c.startup.database else {
            panic!("DATABASE_URL names PostgreSQL");
        };
        assert_eq!(target.schema(), Some("owui"));
        assert_eq!(c.startup.store.database, c.startup.database);
        let shown = format!(
            "{} {:?} {:?}",
            c.startup.database, c.startup, c.startup.store
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        // A given setting wins over it.
        let c = Config::from_toml("database = \"/w.db\"\n", &env).unwrap();
        assert_eq!(c.startup.database, Database::Sqlite("/w.db".into()));
        // An unusable URL is refused without its password.
        let env = env_of(&[("MODELGATE_DATABASE", "postgresql+asyncpg://u:hunter2@h/d")]);
        let err = Config::from_toml("", &env).unwrap_err();
        assert!(err.to_string().contains("asyncpg"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = Config::from_toml("", &env_of(&[("MODELGATE_DATABASE", "")])).unwrap_err();
        assert!(err.to_string().contains("database"), "{err}");
    }

    #[test]
    fn operator_routes_are_compiled() {
        let text = "[[access.routes]]\nmethods = [\"POST\"]\npath = \"/api/v1/custom/{id}/run\"\nkind = \"model_call\"\nmodels = [{ field = \"model\" }]\n";
        let c = Config::from_toml(text, &env_of(&[])).unwrap();
        let class = c
            .access
            .routes
            .classify(&http::Method::POST, "/api/v1/custom/7/run");
        assert!(matches!(
            class,
            crate::gate::routes::RouteClass::ModelCall(_)
        ));
        let bad = "[[access.routes]]\nmethods = [\"POST\"]\npath = \"/x/{\"\nkind = \"pass\"\n";
        assert!(Config::from_toml(bad, &env_of(&[]))
            .unwrap_err()
            .to_string()
            .contains("access.routes"));
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let text = include_str!("../../config/modelgate.toml");
        Config::from_toml(text, &env_of(&[])).unwrap();
    }
}
