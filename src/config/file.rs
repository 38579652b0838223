//! The config file as written: every key optional, unknown keys refused,
//! defaults here. [`FileConfig::validate`] turns it into the runtime
//! [`Config`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Serialize};

use super::egress::EgressSection;
use super::{
    env, invalid, Access, Config, ConfigError, EnvLookup, Limits, Pool, Proxy, Startup, Timeouts,
};
use crate::gate::jwt::JwtVerifier;
use crate::gate::routes::{RouteEntry, RouteTable, Switches};
use crate::store::{Database, StoreConfig};

/// The file as written: every key optional, unknown keys refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub listen: String,
    pub upstream: String,
    pub admin_listen: String,
    /// Threads serving the proxy listeners, each with its own event loop
    /// and upstream connections; 0 is one per core. Env: `MODELGATE_WORKERS`.
    pub workers: usize,
    /// A SQLite path or a PostgreSQL URL; `None` (not in the file, the
    /// environment or a flag): Open WebUI's `DATABASE_URL`, else the
    /// SQLite default (see `store::database`).
    pub database: Option<PathBuf>,
    pub proxy: ProxySection,
    pub timeouts: TimeoutSection,
    pub limits: LimitSection,
    pub log: LogSection,
    pub access: AccessSection,
    pub store: StoreSection,
    pub admin: AdminSection,
    pub egress: EgressSection,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8081".into(),
            upstream: "http://127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9464".into(),
            workers: 0,
            database: None,
            proxy: ProxySection::default(),
            timeouts: TimeoutSection::default(),
            limits: LimitSection::default(),
            log: LogSection::default(),
            access: AccessSection::default(),
            store: StoreSection::default(),
            admin: AdminSection::default(),
            egress: EgressSection::default(),
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
    /// A model-list response body must arrive whole within this many seconds
    /// of its headers (→ 504): the list is buffered to be filtered, and a
    /// stalled one would hold a list-filter slot forever.
    pub list_body_secs: u64,
}

impl Default for TimeoutSection {
    fn default() -> Self {
        Self {
            connect_ms: 5_000,
            upstream_headers_secs: 300,
            header_read_secs: 30,
            drain_secs: 30,
            list_body_secs: 30,
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
    /// Bytes that buffered request bodies (guarded bodies read to find their
    /// models) may hold at once, across all requests of a gate; a body that
    /// would pass it is refused with 503 `body_budget_exhausted` instead of
    /// waiting. At least `access.max_body_bytes` and
    /// `access.max_unlisted_body_bytes`.
    pub max_buffered_body_bytes: usize,
}

impl Default for LimitSection {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_buffered_body_bytes: 256 * 1024 * 1024,
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
            max_concurrent_list_filters: 16,
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
    /// The longest a lookup may take, waiting for a read connection
    /// included, before the request gets 503.
    pub lookup_timeout_ms: u64,
    /// Users whose access is cached. Restart.
    pub cache_capacity: u64,
    /// How long a cached answer may be served without a change signal.
    pub cache_ttl_secs: u64,
    /// How often `PRAGMA data_version` is polled for committed changes.
    pub watch_interval_ms: u64,
    /// Longest preset → base chain followed before refusing.
    pub max_base_depth: usize,
    /// The least time between two looks at the model lists one source
    /// forwards (to learn the known model ids); 0: every list, one at a
    /// time. A changed list is written, an unchanged one never is. Restart.
    pub known_models_interval_secs: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        let d = StoreConfig::default();
        Self {
            read_connections: d.read_connections,
            busy_timeout_ms: d.busy_timeout.as_millis() as u64,
            lookup_timeout_ms: d.lookup_timeout.as_millis() as u64,
            cache_capacity: d.cache_capacity,
            cache_ttl_secs: d.cache_ttl.as_secs(),
            watch_interval_ms: d.watch_interval.as_millis() as u64,
            max_base_depth: d.max_base_depth,
            known_models_interval_secs: d.known_models_interval.as_secs(),
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
    /// Development mode: every Open WebUI user becomes a member of that
    /// organization at start-up (said loudly). Off by default; an
    /// organization whose id or name merely contains "dev" no longer turns
    /// it on. Env: `MODELGATE_DEVELOPMENT_MODE`.
    pub development_mode: bool,
}

pub(super) fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn parse_addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|e: std::net::AddrParseError| invalid(key, value, e.to_string()))
}

/// The one check for counts, sizes and intervals where zero would disable
/// the thing (or stall it); the error names the key as the file spells it.
pub(super) fn non_zero<T, N: TryFrom<T>>(key: &'static str, value: T) -> Result<N, ConfigError> {
    N::try_from(value).map_err(|_| invalid(key, "0", "must be greater than zero"))
}

fn non_zero_secs(key: &'static str, secs: u64) -> Result<Duration, ConfigError> {
    non_zero::<_, NonZeroU64>(key, secs).map(|s| Duration::from_secs(s.get()))
}

fn non_zero_millis(key: &'static str, millis: u64) -> Result<Duration, ConfigError> {
    non_zero::<_, NonZeroU64>(key, millis).map(|ms| Duration::from_millis(ms.get()))
}

impl FileConfig {
    /// Checks every key and builds the runtime config. `env` supplies the
    /// secrets the file never holds (the session key, the admin token), so
    /// the result is complete: nothing is patched in afterwards.
    pub fn validate(self, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let listen = parse_addr("listen", &self.listen)?;
        let admin_listen = parse_addr("admin_listen", &self.admin_listen)?;
        if listen.port() != 0 && listen == admin_listen {
            return Err(invalid(
                "admin_listen",
                &self.admin_listen,
                "must differ from listen: the admin endpoints never share the proxied port",
            ));
        }
        let egress_listen = self.egress.listen()?;
        if egress_listen.port() != 0 && (egress_listen == listen || egress_listen == admin_listen) {
            return Err(invalid(
                "egress.listen",
                &self.egress.listen,
                "must differ from listen and admin_listen",
            ));
        }
        let egress = self.egress.compile(env)?;
        let upstream = parse_upstream(&self.upstream)?;
        let database = Database::resolve(self.database.as_deref(), env)?;
        let proxy = self.proxy.compile()?;
        let connect_timeout = non_zero_millis("timeouts.connect_ms", self.timeouts.connect_ms)?;
        let timeouts = self.timeouts.compile()?;
        let max_connections = non_zero("limits.max_connections", self.limits.max_connections)?;
        let workers = NonZeroUsize::new(self.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN));
        let limits = self.limits.compile()?;
        if self.log.level.trim().is_empty() {
            return Err(invalid("log.level", "", "must not be empty"));
        }
        let max_buffered_body_bytes: NonZeroUsize = non_zero(
            "limits.max_buffered_body_bytes",
            self.limits.max_buffered_body_bytes,
        )?;
        let largest_body = self
            .access
            .max_body_bytes
            .max(self.access.max_unlisted_body_bytes)
            .max(self.egress.max_body_bytes);
        if max_buffered_body_bytes.get() < largest_body {
            return Err(invalid(
                "limits.max_buffered_body_bytes",
                max_buffered_body_bytes.to_string(),
                format!("must be at least access.max_body_bytes, access.max_unlisted_body_bytes and egress.max_body_bytes ({largest_body}): a body the caps allow must fit"),
            ));
        }
        let max_concurrent_list_filters = non_zero(
            "access.max_concurrent_list_filters",
            self.access.max_concurrent_list_filters,
        )?;
        let jwt = env::session_key(env)?;
        let admin_token = env::admin_token(env, self.admin.token_file.as_deref())?;
        let access = self.access.compile(jwt, admin_token)?;
        let store = self.store.compile(&database)?;
        Ok(Config {
            startup: Startup {
                listen,
                admin_listen,
                database,
                log: self.log,
                max_connections,
                workers,
                max_buffered_body_bytes,
                connect_timeout,
                max_concurrent_list_filters,
                store,
                pool: Pool {
                    max_idle_per_host: self.proxy.pool_max_idle_per_host,
                    idle_timeout: Duration::from_secs(self.proxy.pool_idle_timeout_secs),
                },
                egress_listen,
                egress_ca_file: self.egress.ca_file,
            },
            egress,
            upstream,
            proxy,
            timeouts,
            limits,
            access,
            admin: self.admin,
            source: None,
        })
    }
}

impl ProxySection {
    fn compile(&self) -> Result<Proxy, ConfigError> {
        let request_id_header = http::HeaderName::from_bytes(
            self.request_id_header.trim().as_bytes(),
        )
        .map_err(|e| {
            invalid(
                "proxy.request_id_header",
                &self.request_id_header,
                e.to_string(),
            )
        })?;
        Ok(Proxy {
            preserve_host: self.preserve_host,
            trust_forwarded_headers: self.trust_forwarded_headers,
            request_id_header,
        })
    }
}

impl TimeoutSection {
    /// All but `connect_ms`, which is a [`Startup`] key.
    fn compile(&self) -> Result<Timeouts, ConfigError> {
        Ok(Timeouts {
            upstream_headers: non_zero_secs(
                "timeouts.upstream_headers_secs",
                self.upstream_headers_secs,
            )?,
            header_read: non_zero_secs("timeouts.header_read_secs", self.header_read_secs)?,
            // Zero is meaningful: stop without waiting for in-flight requests.
            drain: Duration::from_secs(self.drain_secs),
            list_body: non_zero_secs("timeouts.list_body_secs", self.list_body_secs)?,
        })
    }
}

impl LimitSection {
    /// All but `max_connections`, which is a [`Startup`] key.
    fn compile(&self) -> Result<Limits, ConfigError> {
        // hyper refuses read buffers smaller than 8 KiB.
        if self.max_header_bytes < 8192 {
            return Err(invalid(
                "limits.max_header_bytes",
                self.max_header_bytes.to_string(),
                "must be at least 8192",
            ));
        }
        Ok(Limits {
            max_header_bytes: self.max_header_bytes,
            max_headers: non_zero("limits.max_headers", self.max_headers)?,
        })
    }
}

impl AccessSection {
    /// All but `max_concurrent_list_filters`, which is a [`Startup`] key.
    fn compile(
        self,
        jwt: Option<Arc<JwtVerifier>>,
        admin_token: Option<Arc<str>>,
    ) -> Result<Access, ConfigError> {
        let max_body_bytes = non_zero("access.max_body_bytes", self.max_body_bytes)?;
        let max_unlisted_body_bytes = non_zero(
            "access.max_unlisted_body_bytes",
            self.max_unlisted_body_bytes,
        )?;
        let max_list_bytes = non_zero("access.max_list_bytes", self.max_list_bytes)?;
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
            max_body_bytes,
            max_unlisted_body_bytes,
            max_list_bytes,
            api_key_header,
            arena_models: Arc::new(self.arena_models),
            routes: Arc::new(routes),
            jwt,
            admin_token,
        })
    }
}

impl StoreSection {
    /// The store keeps plain integers in [`StoreConfig`] (its own type, used
    /// without a config file by the ops commands); zero is refused here.
    fn compile(&self, database: &Database) -> Result<StoreConfig, ConfigError> {
        Ok(StoreConfig {
            database: database.clone(),
            read_connections: non_zero::<_, NonZeroUsize>(
                "store.read_connections",
                self.read_connections,
            )?
            .get(),
            busy_timeout: Duration::from_millis(self.busy_timeout_ms),
            lookup_timeout: non_zero_millis("store.lookup_timeout_ms", self.lookup_timeout_ms)?,
            cache_capacity: non_zero::<_, NonZeroU64>("store.cache_capacity", self.cache_capacity)?
                .get(),
            cache_ttl: non_zero_secs("store.cache_ttl_secs", self.cache_ttl_secs)?,
            watch_interval: non_zero_millis("store.watch_interval_ms", self.watch_interval_ms)?,
            max_base_depth: non_zero::<_, NonZeroUsize>(
                "store.max_base_depth",
                self.max_base_depth,
            )?
            .get(),
            org_cache_capacity: StoreConfig::default().org_cache_capacity,
            known_models_interval: Duration::from_secs(self.known_models_interval_secs),
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
