//! The one path that changes the live configuration: re-read the file,
//! validate, keep start-up-only keys, swap. A bad file changes nothing.

use std::path::PathBuf;
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
        Config::load_with(self.config_path.as_deref(), env, |file| {
            if let Some(db) = &self.database {
                file.database = db.clone();
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
    let mut next = overrides.load(env)?;
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
        assert_eq!(live.load().startup.database, PathBuf::from("/x.db"));

        std::fs::write(&path, "[proxy]\npreserve_host = false\n").unwrap();
        reload(&live, &o, &no_env).unwrap();
        assert!(!live.load().proxy.preserve_host);
        assert_eq!(
            live.load().startup.database,
            PathBuf::from("/x.db"),
            "the flag keeps winning"
        );

        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"[proxy\npreserve_host = true\n").unwrap();
        assert!(reload(&live, &o, &no_env).is_err());
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
        assert_eq!(config.startup.database, PathBuf::from("/from/flag.db"));
        assert_eq!(
            config.startup.store.path,
            PathBuf::from("/from/flag.db"),
            "the store enforces from the database the flag names"
        );
    }
}
