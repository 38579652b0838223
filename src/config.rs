//! Configuration: TOML file → environment overrides → `validate()` → the
//! runtime [`Config`].
//!
//! The environment is read through an injectable lookup function so tests
//! never mutate the process environment (linkerd `app/src/env.rs`).
//! Precedence, lowest first: built-in defaults, the file, the environment,
//! command-line flags (applied by the CLI after loading).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Uri;
use serde::{Deserialize, Serialize};

use crate::gate::jwt::JwtVerifier;
use crate::gate::routes::{RouteEntry, RouteTable, Switches};
use crate::store::StoreConfig;

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

/// The file as written: every key optional, unknown keys refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub listen: String,
    pub upstream: String,
    pub admin_listen: String,
    pub database: PathBuf,
    pub proxy: ProxySection,
    pub timeouts: TimeoutSection,
    pub limits: LimitSection,
    pub log: LogSection,
    pub access: AccessSection,
    pub store: StoreSection,
    pub admin: AdminSection,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8081".into(),
            upstream: "http://127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9464".into(),
            database: PathBuf::from("./data/webui.db"),
            proxy: ProxySection::default(),
            timeouts: TimeoutSection::default(),
            limits: LimitSection::default(),
            log: LogSection::default(),
            access: AccessSection::default(),
            store: StoreSection::default(),
            admin: AdminSection::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySection {
    /// Forward the client's `Host` header unchanged (Open WebUI builds
    /// absolute URLs from it); `false` sends the upstream's authority.
    pub preserve_host: bool,
    /// Keep `X-Forwarded-Proto`/`-Host` set by nginx in front of us and append
    /// to its `X-Forwarded-For`; `false` overwrites them with what this hop saw.
    pub trust_forwarded_headers: bool,
    /// Header carrying the request id, propagated when valid, generated otherwise.
    pub request_id_header: String,
    /// Idle upstream connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// How long an idle upstream connection is kept, in seconds.
    pub pool_idle_timeout_secs: u64,
}

impl Default for ProxySection {
    fn default() -> Self {
        Self {
            preserve_host: true,
            trust_forwarded_headers: true,
            request_id_header: "x-request-id".into(),
            pool_max_idle_per_host: 256,
            pool_idle_timeout_secs: 90,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutSection {
    /// TCP connect to the upstream, in milliseconds (→ 504 when exceeded).
    pub connect_ms: u64,
    /// From sending the request to receiving the upstream's response headers,
    /// in seconds (→ 504). Non-streaming completions can take minutes; a
    /// response body (SSE) is never cut once headers arrived.
    pub upstream_headers_secs: u64,
    /// A client must send a complete request head within this many seconds
    /// (slowloris guard); also closes keep-alive connections idle this long.
    pub header_read_secs: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests and streams may finish.
    pub drain_secs: u64,
}

impl Default for TimeoutSection {
    fn default() -> Self {
        Self {
            connect_ms: 5_000,
            upstream_headers_secs: 300,
            header_read_secs: 30,
            drain_secs: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSection {
    /// Client connections served at once; further ones wait in the backlog.
    pub max_connections: usize,
    /// Largest request head (request line + headers) in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
}

impl Default for LimitSection {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `modelgate=debug`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessSection {
    /// Enforce organization model access. Env: `ENABLE_MODEL_FILTER`.
    pub enabled: bool,
    /// Turn every check off (for emergencies; loudly logged and exported as
    /// a metric). Env: `BYPASS_MODEL_ACCESS_CONTROL`.
    pub bypass_model_access_control: bool,
    /// Let Open WebUI admins use and see every model. Off by default: the
    /// organization's contract limits its own admins too, and an admin
    /// account is the most valuable one to steal. Env: `BYPASS_ADMIN_ACCESS_CONTROL`.
    pub bypass_admin_access_control: bool,
    /// Largest request body buffered to read its model (bigger: 413).
    pub max_body_bytes: usize,
    /// Largest JSON body buffered on routes outside the table, to look for
    /// a top-level `model` (defence in depth; bigger: 413). Larger than
    /// `max_body_bytes` because chat saves carry whole histories with
    /// inline images.
    pub max_unlisted_body_bytes: usize,
    /// Largest model-list response buffered to filter it (bigger: 502).
    pub max_list_bytes: usize,
    /// Model lists buffered and filtered at once; more wait their turn.
    /// Filtering is CPU-bound, so more than a few per core only adds memory
    /// (each OpenRouter-sized list holds about 1 MiB while filtered).
    pub max_concurrent_list_filters: usize,
    /// Header carrying API keys. Env: `CUSTOM_API_KEY_HEADER` (Open WebUI's name).
    pub api_key_header: String,
    /// Allow the realtime audio WebSocket, whose model id modelgate cannot
    /// see (it travels in the first frame after the upgrade).
    pub allow_realtime_audio: bool,
    /// Allow Open WebUI's `/openai/{path}` passthrough; its JSON bodies must
    /// then name a permitted `model`.
    pub allow_openai_passthrough: bool,
    /// Arena models and the models they pick from: every candidate must be
    /// permitted for the arena model to be.
    pub arena_models: BTreeMap<String, Vec<String>>,
    /// Extra routes, matched before the built-in Open WebUI 0.12 table.
    pub routes: Vec<RouteEntry>,
}

impl Default for AccessSection {
    fn default() -> Self {
        Self {
            enabled: true,
            bypass_model_access_control: false,
            bypass_admin_access_control: false,
            max_body_bytes: 10 * 1024 * 1024,
            max_unlisted_body_bytes: 64 * 1024 * 1024,
            max_list_bytes: 64 * 1024 * 1024,
            max_concurrent_list_filters: 32,
            api_key_header: "x-api-key".into(),
            allow_realtime_audio: false,
            allow_openai_passthrough: false,
            arena_models: BTreeMap::from([("arena-model".to_owned(), Vec::new())]),
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// Read connections to SQLite. Restart.
    pub read_connections: usize,
    /// How long a read waits on a locked database before failing (503).
    pub busy_timeout_ms: u64,
    /// Users whose access is cached. Restart.
    pub cache_capacity: u64,
    /// How long a cached answer may be served without a change signal.
    pub cache_ttl_secs: u64,
    /// How often `PRAGMA data_version` is polled for committed changes.
    pub watch_interval_ms: u64,
    /// Longest preset → base chain followed before refusing.
    pub max_base_depth: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        let d = StoreConfig::default();
        Self {
            read_connections: d.read_connections,
            busy_timeout_ms: d.busy_timeout.as_millis() as u64,
            cache_capacity: d.cache_capacity,
            cache_ttl_secs: d.cache_ttl.as_secs(),
            watch_interval_ms: d.watch_interval.as_millis() as u64,
            max_base_depth: d.max_base_depth,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// File holding a bearer token for `/health/detailed` and
    /// `/health/model-access/*`, besides Open WebUI admin sessions.
    /// Env: `MODELGATE_ADMIN_TOKEN` (the token itself).
    pub token_file: Option<PathBuf>,
    /// Organization created and linked at start-up (seed 003).
    /// Env: `OPENROUTER_EXTERNAL_USER`.
    pub organization_id: Option<String>,
    /// Its display name. Env: `ORGANIZATION_NAME`.
    pub organization_name: Option<String>,
    /// Models linked to that organization at start-up: a list of ids, or
    /// `["*"]` for every base model in Open WebUI's `model` table.
    pub organization_models: Vec<String>,
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
        if let Some(v) = env("MODELGATE_LISTEN") {
            file.listen = v;
        }
        if let Some(v) = env("MODELGATE_UPSTREAM") {
            file.upstream = v;
        }
        if let Some(v) = env("MODELGATE_ADMIN_LISTEN") {
            file.admin_listen = v;
        }
        if let Some(v) = env("MODELGATE_DATABASE") {
            file.database = PathBuf::from(v);
        }
        if let Some(v) = env("ENABLE_MODEL_FILTER") {
            file.access.enabled = parse_bool("ENABLE_MODEL_FILTER", &v)?;
        }
        if let Some(v) = env("BYPASS_MODEL_ACCESS_CONTROL") {
            file.access.bypass_model_access_control =
                parse_bool("BYPASS_MODEL_ACCESS_CONTROL", &v)?;
        }
        if let Some(v) = env("BYPASS_ADMIN_ACCESS_CONTROL") {
            file.access.bypass_admin_access_control =
                parse_bool("BYPASS_ADMIN_ACCESS_CONTROL", &v)?;
        }
        if let Some(v) = env("CUSTOM_API_KEY_HEADER").filter(|v| !v.is_empty()) {
            file.access.api_key_header = v;
        }
        if let Some(v) = env("OPENROUTER_EXTERNAL_USER").filter(|v| !v.is_empty()) {
            file.admin.organization_id = Some(v);
        }
        if let Some(v) = env("ORGANIZATION_NAME").filter(|v| !v.is_empty()) {
            file.admin.organization_name = Some(v);
        }
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

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Booleans as Open WebUI's environment spells them.
fn parse_bool(key: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn parse_addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|e: std::net::AddrParseError| invalid(key, value, e.to_string()))
}

fn positive(key: &'static str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(invalid(key, "0", "must be greater than zero"));
    }
    Ok(value)
}

impl FileConfig {
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen = parse_addr("listen", &self.listen)?;
        let admin_listen = parse_addr("admin_listen", &self.admin_listen)?;
        if listen.port() != 0 && listen == admin_listen {
            return Err(invalid(
                "admin_listen",
                &self.admin_listen,
                "must differ from listen: the admin endpoints never share the proxied port",
            ));
        }
        let upstream = parse_upstream(&self.upstream)?;
        if self.database.as_os_str().is_empty() {
            return Err(invalid("database", "", "must not be empty"));
        }
        let request_id_header = http::HeaderName::from_bytes(
            self.proxy.request_id_header.trim().as_bytes(),
        )
        .map_err(|e| {
            invalid(
                "proxy.request_id_header",
                &self.proxy.request_id_header,
                e.to_string(),
            )
        })?;
        let timeouts = Timeouts {
            connect: Duration::from_millis(positive(
                "timeouts.connect_ms",
                self.timeouts.connect_ms,
            )?),
            upstream_headers: Duration::from_secs(positive(
                "timeouts.upstream_headers_secs",
                self.timeouts.upstream_headers_secs,
            )?),
            header_read: Duration::from_secs(positive(
                "timeouts.header_read_secs",
                self.timeouts.header_read_secs,
            )?),
            drain: Duration::from_secs(self.timeouts.drain_secs),
        };
        if self.limits.max_connections == 0 {
            return Err(invalid(
                "limits.max_connections",
                "0",
                "must be greater than zero",
            ));
        }
        // hyper refuses read buffers smaller than 8 KiB.
        if self.limits.max_header_bytes < 8192 {
            return Err(invalid(
                "limits.max_header_bytes",
                self.limits.max_header_bytes.to_string(),
                "must be at least 8192",
            ));
        }
        if self.limits.max_headers == 0 {
            return Err(invalid(
                "limits.max_headers",
                "0",
                "must be greater than zero",
            ));
        }
        if self.log.level.trim().is_empty() {
            return Err(invalid("log.level", "", "must not be empty"));
        }
        let access = self.access.compile()?;
        let store = self.store.compile(&self.database)?;
        Ok(Config {
            listen,
            admin_listen,
            upstream,
            database: self.database,
            proxy: self.proxy,
            request_id_header,
            timeouts,
            limits: self.limits,
            log: self.log,
            access,
            store,
            admin: self.admin,
            source: None,
        })
    }
}

impl AccessSection {
    fn compile(self) -> Result<Access, ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(invalid(
                "access.max_body_bytes",
                "0",
                "must be greater than zero",
            ));
        }
        if self.max_unlisted_body_bytes == 0 {
            return Err(invalid(
                "access.max_unlisted_body_bytes",
                "0",
                "must be greater than zero",
            ));
        }
        if self.max_concurrent_list_filters == 0 {
            return Err(invalid(
                "access.max_concurrent_list_filters",
                "0",
                "must be greater than zero",
            ));
        }
        if self.max_list_bytes == 0 {
            return Err(invalid(
                "access.max_list_bytes",
                "0",
                "must be greater than zero",
            ));
        }
        let api_key_header = http::HeaderName::from_bytes(self.api_key_header.trim().as_bytes())
            .map_err(|e| invalid("access.api_key_header", &self.api_key_header, e.to_string()))?;
        let switches = Switches {
            allow_realtime_audio: self.allow_realtime_audio,
            allow_openai_passthrough: self.allow_openai_passthrough,
        };
        let routes = RouteTable::open_webui(switches, self.routes)
            .map_err(|e| invalid("access.routes", "", e.to_string()))?;
        Ok(Access {
            enabled: self.enabled,
            bypass_model_access_control: self.bypass_model_access_control,
            bypass_admin_access_control: self.bypass_admin_access_control,
            max_body_bytes: self.max_body_bytes,
            max_unlisted_body_bytes: self.max_unlisted_body_bytes,
            max_list_bytes: self.max_list_bytes,
            max_concurrent_list_filters: self.max_concurrent_list_filters,
            api_key_header,
            arena_models: Arc::new(self.arena_models),
            routes: Arc::new(routes),
            jwt: None,
            admin_token: None,
        })
    }
}

impl StoreSection {
    fn compile(&self, database: &Path) -> Result<StoreConfig, ConfigError> {
        if self.read_connections == 0 {
            return Err(invalid(
                "store.read_connections",
                "0",
                "must be greater than zero",
            ));
        }
        if self.cache_capacity == 0 {
            return Err(invalid(
                "store.cache_capacity",
                "0",
                "must be greater than zero",
            ));
        }
        if self.max_base_depth == 0 {
            return Err(invalid(
                "store.max_base_depth",
                "0",
                "must be greater than zero",
            ));
        }
        Ok(StoreConfig {
            path: database.to_path_buf(),
            read_connections: self.read_connections,
            busy_timeout: Duration::from_millis(self.busy_timeout_ms),
            cache_capacity: self.cache_capacity,
            cache_ttl: Duration::from_secs(positive("store.cache_ttl_secs", self.cache_ttl_secs)?),
            watch_interval: Duration::from_millis(positive(
                "store.watch_interval_ms",
                self.watch_interval_ms,
            )?),
            max_base_depth: self.max_base_depth,
            org_cache_capacity: StoreConfig::default().org_cache_capacity,
        })
    }
}

fn parse_upstream(value: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = value
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid("upstream", value, e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid(
            "upstream",
            value,
            "must be an http:// URL (Open WebUI beside us, on a private network)",
        ));
    }
    let Some(authority) = uri.authority().cloned() else {
        return Err(invalid("upstream", value, "must name a host"));
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            "upstream",
            value,
            "must not have a path or query: request paths are forwarded as received",
        ));
    }
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query("/")
        .build()
        .map_err(|e| invalid("upstream", value, e.to_string()))
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
        let text = include_str!("../config/modelgate.toml");
        Config::from_toml(text, &env_of(&[])).unwrap();
    }
}
