//! Where the access data lives: a SQLite file, or a PostgreSQL database
//! named by a URL in any spelling Open WebUI accepts.
//!
//! One setting says it (`--db`, `MODELGATE_DATABASE` or the config's
//! `database`); when none does, Open WebUI's own variables are read the
//! way Open WebUI reads them (`DATABASE_TYPE`/`_USER`/`_PASSWORD`/`_HOST`/
//! `_PORT`/`_NAME` when all are set, else `DATABASE_URL`), so one set of
//! variables configures both. `DATABASE_SCHEMA` applies to every
//! PostgreSQL target: Open WebUI's tables live in that schema however the
//! URL reached us.
//!
//! The password never leaves [`PgTarget`]: its `Display` and `Debug` omit
//! it, and no error here quotes the URL.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use percent_encoding::percent_decode_str;

/// The SQLite default, beside Open WebUI's data as its Docker image lays it.
pub const DEFAULT_SQLITE: &str = "./data/webui.db";

/// Reads an environment variable (injectable, as in `config`).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// Boxed: a client configuration is ~400 bytes, a path 24.
    Postgres(Box<PgTarget>),
}

/// A PostgreSQL database: connection settings (with the password), the
/// schema Open WebUI's tables are in, and the TLS policy.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    schema: Option<String>,
    tls: TlsSettings,
}

/// libpq's `sslmode`, all six. rustls has no notion of "try plain first",
/// so `allow` is served as `prefer` (TLS when the server offers it,
/// unverified, like libpq's `prefer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Where the trusted roots come from for `verify-ca`/`verify-full` (and
/// `require` with a root file, which libpq treats as `verify-ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// `sslrootcert=PATH`: PEM certificates.
    File(PathBuf),
    /// `sslrootcert=system`, or no `sslrootcert`: the platform's roots.
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `None` when the URL gave no `sslrootcert`.
    pub root_certs: Option<RootCerts>,
    /// `sslcert` and `sslkey`: a client certificate (both or neither).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// A database setting that cannot be used. Never carries the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseError {
    #[error("database URL scheme {scheme:?} is not supported: use a SQLite path (or sqlite:///PATH) or postgresql:// (postgres://, postgresql+psycopg2://)")]
    UnsupportedScheme { scheme: String },
    #[error("database URL driver {driver:?} is not supported: PostgreSQL URLs must be libpq-style (postgresql://, postgres://, postgresql+psycopg2://, postgresql+psycopg://)")]
    UnsupportedDriver { driver: String },
    #[error("encrypted SQLite (sqlite+sqlcipher://) is not supported: modelgate reads Open WebUI's SQLite file unencrypted")]
    SqlCipher,
    #[error("invalid database URL {shown}: {reason}")]
    Invalid { shown: String, reason: String },
}

impl Database {
    /// The database a setting names: a URL (`scheme://...`) or else a
    /// SQLite path. Paths that are not UTF-8 can only be files.
    pub fn from_setting(setting: &Path) -> Result<Database, DatabaseError> {
        match setting.to_str() {
            Some(text) => Database::parse(text),
            None => Ok(Database::Sqlite(setting.to_path_buf())),
        }
    }

    pub fn parse(text: &str) -> Result<Database, DatabaseError> {
        let text = text.trim();
        let Some((scheme, rest)) = split_scheme(text) else {
            if text.is_empty() {
                return Err(DatabaseError::Invalid {
                    shown: "\"\"".into(),
                    reason: "empty".into(),
                });
            }
            return Ok(Database::Sqlite(PathBuf::from(text)));
        };
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => sqlite_url(rest).map(Database::Sqlite),
            "sqlite+sqlcipher" => Err(DatabaseError::SqlCipher),
            // psycopg (3) and psycopg2 both speak libpq's parameters.
            "postgres" | "postgresql" | "postgresql+psycopg2" | "postgresql+psycopg" => {
                PgTarget::from_url_rest(rest).map(|t| Database::Postgres(Box::new(t)))
            }
            s if s.starts_with("postgresql+") || s.starts_with("postgres+") => {
                Err(DatabaseError::UnsupportedDriver {
                    driver: s.split_once('+').map(|(_, d)| d).unwrap_or(s).to_string(),
                })
            }
            _ => Err(DatabaseError::UnsupportedScheme { scheme }),
        }
    }

    /// The database to use: `setting` (`--db`, `MODELGATE_DATABASE`, the
    /// config's `database`) when given, else Open WebUI's variables, else
    /// [`DEFAULT_SQLITE`]. `DATABASE_SCHEMA` is applied to PostgreSQL.
    pub fn resolve(setting: Option<&Path>, env: EnvLookup<'_>) -> Result<Database, DatabaseError> {
        let non_empty = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        // A setting given empty is a mistake, not a request for the default.
        let database = match setting {
            Some(path) => Database::from_setting(path)?,
            None => match open_webui_parts(&non_empty).or_else(|| non_empty("DATABASE_URL")) {
                Some(url) => Database::parse(&url)?,
                None => Database::Sqlite(PathBuf::from(DEFAULT_SQLITE)),
            },
        };
        Ok(match database {
            Database::Postgres(target) => {
                Database::Postgres(Box::new(target.with_schema(non_empty("DATABASE_SCHEMA"))))
            }
            sqlite => sqlite,
        })
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Database::Sqlite(PathBuf::from(DEFAULT_SQLITE))
    }
}

impl From<PathBuf> for Database {
    /// A path is always a SQLite file (no URL parsing): for the callers
    /// that already hold one.
    fn from(path: PathBuf) -> Self {
        Database::Sqlite(path)
    }
}

impl From<&Path> for Database {
    /// A SQLite file, as for `PathBuf`.
    fn from(path: &Path) -> Self {
        Database::Sqlite(path.to_path_buf())
    }
}

impl From<&PathBuf> for Database {
    fn from(path: &PathBuf) -> Self {
        Database::Sqlite(path.clone())
    }
}

impl From<&Database> for Database {
    fn from(database: &Database) -> Self {
        database.clone()
    }
}

/// Shown in logs, `/health/detailed` and errors: never the password.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(target) => target.fmt(f),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(target) => f.debug_tuple("Postgres").field(target).finish(),
        }
    }
}

impl PgTarget {
    /// `rest` is everything after `scheme://`.
    fn from_url_rest(rest: &str) -> Result<PgTarget, DatabaseError> {
        let (base, query) = match rest.split_once('?') {
            Some((base, query)) => (base, query),
            None => (rest, ""),
        };
        let shown = redact_url(base);
        let invalid = |reason: String| DatabaseError::Invalid {
            shown: shown.clone(),
            reason,
        };
        let mut tls = TlsSettings::default();
        let mut cert = None;
        let mut key = None;
        let mut kept = Vec::new();
        let mut mode_text = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key_name = decode(raw_key).map_err(&invalid)?;
            let value = || decode(raw_value).map_err(&invalid);
            match key_name.as_str() {
                // Open WebUI takes the bare `ssl` as an alias; `sslmode` wins.
                "sslmode" => mode_text = Some(value()?),
                "ssl" => {
                    if mode_text.is_none() {
                        mode_text = Some(value()?);
                    }
                }
                "sslrootcert" => {
                    let v = value()?;
                    tls.root_certs = Some(if v == "system" {
                        RootCerts::System
                    } else {
                        RootCerts::File(PathBuf::from(v))
                    });
                }
                "sslcert" => cert = Some(PathBuf::from(value()?)),
                "sslkey" => key = Some(PathBuf::from(value()?)),
                "sslcrl"
                | "sslcrldir"
                | "sslpassword"
                | "sslcompression"
                | "sslsni"
                | "ssl_min_protocol_version"
                | "ssl_max_protocol_version" => {
                    return Err(invalid(format!("{key_name} is not supported")));
                }
                // Everything else is tokio-postgres's to accept or refuse.
                _ => kept.push(pair),
            }
        }
        if let Some(text) = mode_text {
            tls.mode = SslMode::parse(&text).ok_or_else(|| {
                invalid(format!(
                    "sslmode {text:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            })?;
        }
        tls.client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(invalid("sslcert and sslkey go together".into())),
        };
        let mut url = format!("postgresql://{base}");
        if !kept.is_empty() {
            url.push('?');
            url.push_str(&kept.join("&"));
        }
        // tokio-postgres's messages name the option, never its value.
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            // The cause names the option ("unknown option `x`"); the error
            // itself only says "invalid connection string".
            let cause = std::error::Error::source(&e).map(|c| c.to_string());
            invalid(cause.unwrap_or_else(|| e.to_string()))
        })?;
        if config.get_hosts().is_empty() {
            return Err(invalid(
                "no host (name a host, or a socket directory with ?host=/path)".into(),
            ));
        }
        if config.get_user().is_none() {
            return Err(invalid("no user".into()));
        }
        config.ssl_mode(tls.mode.tokio_postgres());
        if config.get_application_name().is_none() {
            config.application_name("modelgate");
        }
        Ok(PgTarget {
            config,
            schema: None,
            tls,
        })
    }

    /// Puts `schema` first (and alone) on every connection's `search_path`,
    /// through the startup options so no connection ever runs without it.
    pub fn with_schema(mut self, schema: Option<String>) -> PgTarget {
        self.schema = schema
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        if let Some(schema) = &self.schema {
            let setting = format!("-c search_path={}", options_escape(&quote_ident(schema)));
            let options = match self.config.get_options() {
                Some(existing) if !existing.trim().is_empty() => format!("{existing} {setting}"),
                _ => setting,
            };
            self.config.options(&options);
        }
        self
    }

    /// The same target with a connect timeout (for URLs that set none).
    pub(crate) fn with_connect_timeout(mut self, timeout: std::time::Duration) -> PgTarget {
        self.config.connect_timeout(timeout);
        self
    }

    /// The client settings, password included: for connecting only.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgresql://")?;
        if let Some(user) = self.config.get_user() {
            write!(f, "{user}@")?;
        }
        let ports = self.config.get_ports();
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            match host {
                tokio_postgres::config::Host::Tcp(name) => write!(f, "{name}")?,
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(dir) => write!(f, "[{}]", dir.display())?,
            }
            if let Some(port) = ports.get(i).or(ports.first()) {
                write!(f, ":{port}")?;
            }
        }
        write!(f, "/{}", self.config.get_dbname().unwrap_or(""))?;
        write!(f, "?sslmode={}", self.tls.mode.as_str())?;
        if let Some(schema) = &self.schema {
            write!(f, " (schema {schema})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.to_string())
            .field(
                "password",
                &self.config.get_password().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

impl SslMode {
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether TLS is attempted at all, and whether it is required:
    /// tokio-postgres only knows these three.
    fn tokio_postgres(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as T;
        match self {
            SslMode::Disable => T::Disable,
            SslMode::Allow | SslMode::Prefer => T::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => T::Require,
        }
    }
}

/// `scheme` and the rest when `text` starts with `scheme://` (a scheme is
/// a letter, then letters, digits, `+`, `-`, `.`).
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some((scheme, rest))
}

/// SQLAlchemy's form: `sqlite:///relative.db`, `sqlite:////abs/webui.db`.
fn sqlite_url(rest: &str) -> Result<PathBuf, DatabaseError> {
    let invalid = |reason: &str| DatabaseError::Invalid {
        shown: format!("sqlite://{rest}"),
        reason: reason.into(),
    };
    let path = rest
        .strip_prefix('/')
        .ok_or_else(|| invalid("expected sqlite:///PATH"))?;
    if path.is_empty() {
        return Err(invalid(
            "names no file (an in-memory database holds no access data)",
        ));
    }
    if path.contains('?') {
        return Err(invalid("query parameters are not supported"));
    }
    Ok(PathBuf::from(
        decode(path).map_err(|reason| invalid(&reason))?,
    ))
}

/// Builds a URL from Open WebUI's split variables, only when all are set
/// (its own rule; `DATABASE_PASSWORD` may be empty).
fn open_webui_parts(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let kind = env("DATABASE_TYPE")?;
    let user = env("DATABASE_USER")?;
    let host = env("DATABASE_HOST")?;
    let port = env("DATABASE_PORT")?;
    let name = env("DATABASE_NAME")?;
    let cred = match env("DATABASE_PASSWORD") {
        Some(password) => format!("{user}:{password}"),
        None => user,
    };
    Some(format!("{kind}://{cred}@{host}:{port}/{name}"))
}

/// The authority and path with any password replaced, for error messages.
fn redact_url(base: &str) -> String {
    let (authority, path) = match base.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (base, None),
    };
    let authority = match authority.rsplit_once('@') {
        Some((cred, host)) => {
            let user = cred.split_once(':').map(|(u, _)| u).unwrap_or(cred);
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    match path {
        Some(p) => format!("postgresql://{authority}/{p}"),
        None => format!("postgresql://{authority}"),
    }
}

fn decode(text: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "a percent-encoded value is not UTF-8".to_string())
}

/// An SQL identifier, always quoted: a schema named `Web UI` or `user`
/// means exactly that.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The startup `options` string splits on spaces; a backslash escapes.
fn options_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace(' ', "\\ ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokio_postgres::config::Host;

    fn pg(text: &str) -> PgTarget {
        match Database::parse(text) {
            Ok(Database::Postgres(t)) => *t,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn paths_are_sqlite_files() {
        for path in [
            "./data/webui.db",
            "/abs/webui.db",
            "webui.db",
            "dir with space/x.db",
        ] {
            assert_eq!(
                Database::parse(path),
                Ok(Database::Sqlite(PathBuf::from(path)))
            );
        }
    }

    #[test]
    fn sqlalchemy_sqlite_urls_name_the_file() {
        assert_eq!(
            Database::parse("sqlite:////app/backend/data/webui.db"),
            Ok(Database::Sqlite("/app/backend/data/webui.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite:///data/webui.db"),
            Ok(Database::Sqlite("data/webui.db".into()))
        );
        assert!(Database::parse("sqlite://").is_err());
        assert!(Database::parse("sqlite:///").is_err());
        assert_eq!(
            Database::parse("sqlite+sqlcipher:///x.db"),
            Err(DatabaseError::SqlCipher)
        );
    }

    #[test]
    fn every_open_webui_spelling_of_postgresql_is_accepted() {
        for scheme in [
            "postgres",
            "postgresql",
            "postgresql+psycopg2",
            "postgresql+psycopg",
            "PostgreSQL",
        ] {
            let t = pg(&format!(
                "{scheme}://webui:s3cret@db.internal:6543/openwebui"
            ));
            assert_eq!(t.config().get_user(), Some("webui"));
            assert_eq!(t.config().get_password(), Some(&b"s3cret"[..]));
            assert_eq!(t.config().get_hosts(), [Host::Tcp("db.internal".into())]);
            assert_eq!(t.config().get_ports(), [6543]);
            assert_eq!(t.config().get_dbname(), Some("openwebui"));
            assert_eq!(t.tls().mode, SslMode::Prefer, "libpq's default");
        }
    }

    #[test]
    fn other_drivers_and_schemes_are_refused_by_name() {
        let err = Database::parse("postgresql+asyncpg://u@h/d").unwrap_err();
        assert_eq!(
            err,
            DatabaseError::UnsupportedDriver {
                driver: "asyncpg".into()
            }
        );
        assert!(err.to_string().contains("asyncpg"), "{err}");
        let err = Database::parse("mysql://u:pw@h/d").unwrap_err();
        assert!(matches!(err, DatabaseError::UnsupportedScheme { .. }));
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn unix_socket_hosts_and_percent_encoding() {
        let t = pg("postgresql://me@/webui?host=/run/postgresql&port=5433");
        assert_eq!(
            t.config().get_hosts(),
            [Host::Unix("/run/postgresql".into())]
        );
        assert_eq!(t.config().get_ports(), [5433]);
        let t = pg("postgresql://me@%2Fvar%2Frun%2Fpostgresql/webui");
        assert_eq!(
            t.config().get_hosts(),
            [Host::Unix("/var/run/postgresql".into())]
        );
        let t = pg("postgresql://me:p%40ss%3Aword@h/d");
        assert_eq!(t.config().get_password(), Some(&b"p@ss:word"[..]));
    }

    #[test]
    fn sslmodes_map_onto_what_tokio_postgres_attempts() {
        use tokio_postgres::config::SslMode as T;
        for (mode, ours, theirs) in [
            ("disable", SslMode::Disable, T::Disable),
            ("allow", SslMode::Allow, T::Prefer),
            ("prefer", SslMode::Prefer, T::Prefer),
            ("require", SslMode::Require, T::Require),
            ("verify-ca", SslMode::VerifyCa, T::Require),
            ("verify-full", SslMode::VerifyFull, T::Require),
        ] {
            let t = pg(&format!("postgresql://u@h/d?sslmode={mode}"));
            assert_eq!(t.tls().mode, ours);
            assert_eq!(t.config().get_ssl_mode(), theirs, "{mode}");
        }
        // Open WebUI's bare `ssl=` alias; sslmode wins over it.
        assert_eq!(
            pg("postgresql://u@h/d?ssl=require").tls().mode,
            SslMode::Require
        );
        assert_eq!(
            pg("postgresql://u@h/d?ssl=disable&sslmode=verify-full")
                .tls()
                .mode,
            SslMode::VerifyFull
        );
        let err = Database::parse("postgresql://u:pw@h/d?sslmode=sure").unwrap_err();
        assert!(err.to_string().contains("sure"), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn certificate_files_are_taken_from_the_url() {
        let t = pg(
            "postgresql://u@h/d?sslmode=verify-full&sslrootcert=/etc/ca%20s/root.crt\
                    &sslcert=/c/client.crt&sslkey=/c/client.key&connect_timeout=3",
        );
        assert_eq!(
            t.tls().root_certs,
            Some(RootCerts::File("/etc/ca s/root.crt".into()))
        );
        assert_eq!(
            t.tls().client_cert,
            Some(("/c/client.crt".into(), "/c/client.key".into()))
        );
        assert_eq!(
            t.config().get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(
            pg("postgresql://u@h/d?sslrootcert=system").tls().root_certs,
            Some(RootCerts::System)
        );
        let err = Database::parse("postgresql://u@h/d?sslcert=/c.crt").unwrap_err();
        assert!(err.to_string().contains("sslkey"), "{err}");
        let err = Database::parse("postgresql://u@h/d?sslcrl=/x.crl").unwrap_err();
        assert!(err.to_string().contains("sslcrl"), "{err}");
    }

    #[test]
    fn unknown_parameters_are_refused_by_tokio_postgres_without_the_password() {
        let err = Database::parse("postgresql://u:hunter2@h/d?frobnicate=1").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("frobnicate"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let err = Database::parse("postgresql://u:hunter2@h:notaport/d").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_host_and_a_user_are_required() {
        assert!(Database::parse("postgresql:///d").is_err());
        let err = Database::parse("postgresql://h/d").unwrap_err();
        assert!(err.to_string().contains("no user"), "{err}");
    }

    #[test]
    fn the_password_never_shows() {
        let db = Database::parse(
            "postgresql://webui:hunter2@db:5432/owui?sslmode=require&password=hunter3",
        )
        .unwrap();
        for shown in [db.to_string(), format!("{db:?}"), format!("{db:#?}")] {
            assert!(!shown.contains("hunter"), "{shown}");
        }
        assert_eq!(
            db.to_string(),
            "postgresql://webui@db:5432/owui?sslmode=require"
        );
        let Database::Postgres(t) = db else {
            unreachable!()
        };
        assert_eq!(t.config().get_password(), Some(&b"hunter3"[..]));
    }

    #[test]
    fn a_given_setting_wins_over_open_webui_s_variables() {
        let env = env_of(&[("DATABASE_URL", "postgresql://u@h/d")]);
        assert_eq!(
            Database::resolve(Some(Path::new("/x.db")), &env),
            Ok(Database::Sqlite("/x.db".into()))
        );
        assert!(matches!(
            Database::resolve(None, &env),
            Ok(Database::Postgres(_))
        ));
        assert_eq!(
            Database::resolve(None, &env_of(&[])),
            Ok(Database::Sqlite(DEFAULT_SQLITE.into()))
        );
        assert_eq!(
            Database::resolve(None, &env_of(&[("DATABASE_URL", " ")])),
            Ok(Database::Sqlite(DEFAULT_SQLITE.into()))
        );
        assert_eq!(
            Database::resolve(
                None,
                &env_of(&[("DATABASE_URL", "sqlite:////app/backend/data/webui.db")])
            ),
            Ok(Database::Sqlite("/app/backend/data/webui.db".into()))
        );
    }

    #[test]
    fn open_webui_s_split_variables_win_over_its_url_when_all_are_set() {
        let mut vars = vec![
            ("DATABASE_URL", "postgresql://other@elsewhere/x"),
            ("DATABASE_TYPE", "postgresql"),
            ("DATABASE_USER", "webui"),
            ("DATABASE_PASSWORD", "pw"),
            ("DATABASE_HOST", "db"),
            ("DATABASE_PORT", "5432"),
            ("DATABASE_NAME", "owui"),
        ];
        let Ok(Database::Postgres(t)) = Database::resolve(None, &env_of(&vars)) else {
            panic!("postgres expected");
        };
        assert_eq!(t.config().get_user(), Some("webui"));
        assert_eq!(t.config().get_dbname(), Some("owui"));
        vars.retain(|(k, _)| *k != "DATABASE_HOST");
        let Ok(Database::Postgres(t)) = Database::resolve(None, &env_of(&vars)) else {
            panic!("postgres expected");
        };
        assert_eq!(
            t.config().get_user(),
            Some("other"),
            "falls back to the URL"
        );
    }

    #[test]
    fn database_schema_goes_on_the_search_path_quoted() {
        let env = env_of(&[
            (
                "DATABASE_URL",
                "postgres://u@h/d?options=-c%20statement_timeout%3D5000",
            ),
            ("DATABASE_SCHEMA", "Web UI"),
        ]);
        let Ok(Database::Postgres(t)) = Database::resolve(None, &env) else {
            panic!("postgres expected");
        };
        assert_eq!(t.schema(), Some("Web UI"));
        assert_eq!(
            t.config().get_options(),
            Some(r#"-c statement_timeout=5000 -c search_path="Web\ UI""#)
        );
        assert!(t.to_string().ends_with("(schema Web UI)"), "{t}");
        // Also for a URL given with --db: the tables are where Open WebUI put them.
        let Ok(Database::Postgres(t)) = Database::resolve(
            Some(Path::new("postgresql://u@h/d")),
            &env_of(&[("DATABASE_SCHEMA", "owui")]),
        ) else {
            panic!("postgres expected");
        };
        assert_eq!(t.config().get_options(), Some(r#"-c search_path="owui""#));
        // Not for SQLite, which has no schemas.
        assert_eq!(
            Database::resolve(None, &env_of(&[("DATABASE_SCHEMA", "owui")])),
            Ok(Database::Sqlite(DEFAULT_SQLITE.into()))
        );
    }

    #[test]
    fn identifiers_are_quoted_and_escaped() {
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(options_escape(r#""a b\c""#), r#""a\ b\\c""#);
    }
}
