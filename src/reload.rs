//! The one path that changes the live configuration: re-read the file,
//! validate, keep start-up-only keys, swap. A bad file changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError, EnvLookup};

/// What the command line fixed at start-up; re-applied on every reload so a
/// flag keeps winning over the file. Applied before validation, like the
/// environment, so every value derived from a flag agrees with it.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_path: Option<PathBuf>,
    pub database: Option<PathBuf>,
}

impl Overrides {
    pub fn load(&self, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        self.load_from(self.config_path.as_deref(), env)
    }

    fn load_from(&self, path: Option<&Path>, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        Config::load_with(path, env, |file| {
            if let Some(db) = &self.database {
                file.database = Some(db.clone());
            }
        })
    }
}

/// Reloads into `live`. On error the running config is untouched.
pub fn reload(
    live: &ArcSwap<Config>,
    overrides: &Overrides,
    env: EnvLookup<'_>,
) -> Result<Arc<Config>, ConfigError> {
    let running = live.load_full();
    // The file the running config came from is read again, whatever the
    // flag said: the default path is only used "when present", and a
    // deleted default file must not quietly become "no file" (built-in
    // defaults, the operator's routes gone).
    let path = overrides
        .config_path
        .as_deref()
        .or(running.source.as_deref());
    if let Some(p) = path.filter(|p| !p.exists()) {
        return Err(ConfigError::Vanished {
            path: p.to_path_buf(),
        });
    }
    let mut next = overrides.load_from(path, env)?;
    for key in next.keep_static_from(&running) {
        tracing::warn!(
            key,
            "changed in the config file but only applies at restart; keeping the running value"
        );
    }
    let next = Arc::new(next);
    live.store(next.clone());
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Database;
    use std::io::Write;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn bad_file_keeps_the_running_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[proxy]\npreserve_host = true\n").unwrap();
        let o = Overrides {
            config_path: Some(path.clone()),
            database: Some("/x.db".into()),
        };
        let live = ArcSwap::from_pointee(o.load(&no_env).unwrap());
        assert_eq!(
            live.load().startup.database,
            Database::Sqlite("/x.db".into())
        );

        std::fs::write(&path, "[proxy]\npreserve_host = false\n").unwrap();
        reload(&live, &o, &no_env).unwrap();
        assert!(!live.load().proxy.preserve_host);
        assert_eq!(
            live.load().startup.database,
            Database::Sqlite("/x.db".into()),
            "the flag keeps winning"
        );

        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"[proxy\npreserve_host = true\n").unwrap();
        assert!(reload(&live, &o, &no_env).is_err());
        assert!(!live.load().proxy.preserve_host, "old config still serves");
    }

    #[test]
    fn a_vanished_file_is_an_error_not_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "[proxy]\npreserve_host = false\n").unwrap();
        // As if found at the default path: no flag named it.
        let o = Overrides::default();
        let mut first = Overrides {
            config_path: Some(path.clone()),
            database: None,
        }
        .load(&no_env)
        .unwrap();
        first.source = Some(path.clone());
        let live = ArcSwap::from_pointee(first);
        std::fs::remove_file(&path).unwrap();
        let err = reload(&live, &o, &no_env).unwrap_err();
        assert!(matches!(err, ConfigError::Vanished { .. }), "{err}");
        assert!(!live.load().proxy.preserve_host, "old config still serves");
    }

    #[test]
    fn database_flag_reaches_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "database = \"/from/file.db\"\n").unwrap();
        let o = Overrides {
            config_path: Some(path),
            database: Some("/from/flag.db".into()),
        };
        let config = o.load(&no_env).unwrap();
        assert_eq!(
            config.startup.database,
            Database::Sqlite("/from/flag.db".into())
        );
        assert_eq!(
            config.startup.store.database,
            Database::Sqlite("/from/flag.db".into()),
            "the store enforces from the database the flag names"
        );
    }
}
