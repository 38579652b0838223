//! Configuration: TOML file → environment overrides → `validate()` → the
//! runtime [`Config`].
//!
//! The environment is read through an injectable lookup function so tests
//! never mutate the process environment (linkerd `app/src/env.rs`).
//! Precedence, lowest first: built-in defaults, the file, the environment,
//! command-line flags (applied by the CLI after loading).

mod env;
mod file;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use crate::gate::jwt::JwtVerifier;
use crate::gate::routes::RouteTable;
use crate::store::StoreConfig;

use file::parse_file;
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
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
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

/// The enforcement part of the runtime configuration.
#[derive(Debug, Clone)]
pub struct Access {
    pub enabled: bool,
    pub bypass_model_access_control: bool,
    pub bypass_admin_access_control: bool,
    pub max_body_bytes: usize,
    pub max_unlisted_body_bytes: usize,
    pub max_list_bytes: usize,
    pub max_concurrent_list_filters: usize,
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

/// The validated runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// `scheme://authority` of Open WebUI; request paths are appended as received.
    pub upstream: Uri,
    pub database: PathBuf,
    pub proxy: ProxySection,
    pub request_id_header: http::HeaderName,
    pub timeouts: Timeouts,
    pub limits: LimitSection,
    pub log: LogSection,
    pub access: Access,
    pub store: StoreConfig,
    pub admin: AdminSection,
    /// The file this came from, if any (SIGHUP re-reads it).
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub upstream_headers: Duration,
    pub header_read: Duration,
    pub drain: Duration,
}

impl Config {
    /// Reads `path` (or `MODELGATE_CONFIG`, or [`DEFAULT_CONFIG_PATH`] when it
    /// exists), applies the environment, validates.
    pub fn load(path: Option<&Path>, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => match env("MODELGATE_CONFIG") {
                Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
                _ => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
            },
        };
        let file = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                parse_file(&text, p)?
            }
            None => FileConfig::default(),
        };
        let mut config = Config::from_file(file, env)?;
        config.source = path;
        Ok(config)
    }

    /// Builds a config from TOML text, for tests and `--config -` style use.
    pub fn from_toml(text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        Config::from_file(parse_file(text, Path::new("<inline>"))?, env)
    }

    /// Applies environment overrides to a parsed file and validates it.
    pub fn from_file(mut file: FileConfig, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        env::apply(&mut file, env)?;
        let jwt = JwtVerifier::from_lookup(env)
            .map_err(|e| invalid("WEBUI_SECRET_KEY_FILE", "", e.to_string()))?
            .map(Arc::new);
        let admin_token = match env("MODELGATE_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
            Some(t) => Some(t),
            None => match &file.admin.token_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| {
                            invalid("admin.token_file", p.display().to_string(), e.to_string())
                        })?
                        .trim()
                        .to_owned(),
                ),
                None => None,
            },
        };
        let mut config = file.validate()?;
        config.access.jwt = jwt;
        config.access.admin_token = admin_token.filter(|t| !t.is_empty()).map(Arc::from);
        Ok(config)
    }

    /// Keys that only take effect at start-up (sockets, database, logging).
    /// A reload keeps the running values and names the ones that differ.
    pub fn keep_static_from(&mut self, running: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.listen != running.listen {
            changed.push("listen");
            self.listen = running.listen;
        }
        if self.admin_listen != running.admin_listen {
            changed.push("admin_listen");
            self.admin_listen = running.admin_listen;
        }
        if self.database != running.database {
            changed.push("database");
            self.database = running.database.clone();
        }
        if self.log != running.log {
            changed.push("log");
            self.log = running.log.clone();
        }
        if self.limits.max_connections != running.limits.max_connections {
            changed.push("limits.max_connections");
            self.limits.max_connections = running.limits.max_connections;
        }
        if self.timeouts.connect != running.timeouts.connect {
            changed.push("timeouts.connect_ms");
            self.timeouts.connect = running.timeouts.connect;
        }
        if self.access.max_concurrent_list_filters != running.access.max_concurrent_list_filters {
            changed.push("access.max_concurrent_list_filters");
            self.access.max_concurrent_list_filters = running.access.max_concurrent_list_filters;
        }
        if self.store != running.store {
            changed.push("store");
            self.store = running.store.clone();
        }
        if self.proxy.pool_max_idle_per_host != running.proxy.pool_max_idle_per_host
            || self.proxy.pool_idle_timeout_secs != running.proxy.pool_idle_timeout_secs
        {
            changed.push("proxy.pool_*");
            self.proxy.pool_max_idle_per_host = running.proxy.pool_max_idle_per_host;
            self.proxy.pool_idle_timeout_secs = running.proxy.pool_idle_timeout_secs;
        }
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
        assert_eq!(c.listen.to_string(), "0.0.0.0:8081");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.upstream.to_string(), "http://127.0.0.1:8080/");
        assert_eq!(c.database, PathBuf::from("./data/webui.db"));
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
        assert_eq!(c.listen.port(), 2000);
        assert_eq!(c.upstream.authority().unwrap().as_str(), "b:2");
        assert_eq!(c.admin_listen.port(), 3000);
        assert_eq!(c.database, PathBuf::from("/tmp/x.db"));
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
        assert_eq!(next.listen, running.listen);
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
        assert_eq!(c.store.path, PathBuf::from("/d/w.db"));
        assert_eq!(c.store.watch_interval, Duration::from_millis(100));
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
