//! Shared fixtures for the CLI tests: temp databases (empty, or with Open
//! WebUI's tables and a few rows), running the real binary, and a logical
//! dump for "nothing changed" checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use modelgate::store::webui_fixture::create_open_webui_tables;
use rusqlite::Connection;
use tempfile::TempDir;

/// A few rows in Open WebUI's tables (`OPEN_WEBUI_TABLES`).
pub const OPEN_WEBUI_ROWS: &str = r#"
INSERT INTO user (id, email, role, name) VALUES
    ('admin1', 'admin@example.com', 'admin', 'Ada Admin'),
    ('u1', 'u1@example.com', 'user', 'Uma One'),
    ('u2', 'u2@example.com', 'user', 'Udo Two'),
    ('pending1', 'p@example.com', 'pending', 'Pat Pending');
INSERT INTO auth (id, email, password, active)
    VALUES ('admin1', 'admin@example.com', 'x', 1), ('u1', 'u1@example.com', 'x', 1);
INSERT INTO api_key (id, user_id, key, expires_at) VALUES ('k1', 'u1', 'sk-u1', NULL);
INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active) VALUES
    ('gpt-4o', NULL, NULL, 'GPT-4o', '{}', '{}', 1),
    ('claude-3', NULL, NULL, 'Claude 3', '{}', '{}', 1),
    ('old-model', NULL, NULL, 'Old', '{}', '{}', 0),
    ('my-preset', 'u1', 'gpt-4o', 'My preset', '{}', '{}', 1),
    ('preset-of-preset', 'u1', 'my-preset', 'Nested', '{}', '{}', 1),
    ('loop-a', 'u1', 'loop-b', 'Loop A', '{}', '{}', 1),
    ('loop-b', 'u1', 'loop-a', 'Loop B', '{}', '{}', 1);
"#;

pub struct Db {
    pub dir: TempDir,
    pub path: PathBuf,
}

/// A path in a fresh temp dir; no file yet.
pub fn missing_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("webui.db");
    Db { dir, path }
}

/// A WAL file (as Open WebUI runs it) with Open WebUI's tables only: the
/// state before `init` or `migrate`.
pub fn owui_only() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webui.db");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    create_open_webui_tables(&conn).unwrap();
    conn.execute_batch(OPEN_WEBUI_ROWS).unwrap();
    Db { dir, path }
}

/// Open WebUI's tables plus our schema (`modelgate init`).
pub fn owui_db() -> Db {
    let db = owui_only();
    db.ok(&["init"]);
    db
}

/// Our schema only.
pub fn empty_db() -> Db {
    let db = missing_db();
    db.ok(&["init"]);
    db
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            // A signal (no code) would be a crash: make it fail loudly.
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

/// The real binary with a clean environment (no MODELGATE_*, no USER).
pub fn modelgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate"));
    cmd.env_clear();
    cmd
}

impl Db {
    pub fn run(&self, args: &[&str]) -> Run {
        modelgate()
            .arg("--db")
            .arg(&self.path)
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = modelgate();
        cmd.arg("--db").arg(&self.path).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap().into()
    }

    /// Runs and asserts exit 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code, 0,
            "{args:?} failed:\n{}{}",
            run.stdout, run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        run
    }

    /// Runs and asserts the exit code and that stderr says `message`.
    pub fn fails(&self, args: &[&str], code: i32, message: &str) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, code, "{args:?}:\n{}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(message),
            "{args:?}: stderr lacks {message:?}:\n{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        run
    }

    pub fn conn(&self) -> Connection {
        Connection::open(&self.path).unwrap()
    }

    pub fn exec(&self, sql: &str) {
        self.conn().execute_batch(sql).unwrap();
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    pub fn dump(&self) -> Vec<String> {
        dump(&self.path)
    }

    /// Files in the database's directory (backups show up here).
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// A logical dump like `sqlite3 .dump`: every schema object and every row
/// of every table, in a stable order.
pub fn dump(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut out = Vec::new();
    let objects: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (ty, name, sql) in objects {
        out.push(format!("{ty} {name}: {}", sql.unwrap_or_default()));
        if ty != "table" {
            continue;
        }
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY rowid"))
            .unwrap();
        let columns = stmt.column_count();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                Ok(format!("  {name}: {}", cells.join(" | ")))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.extend(rows);
    }
    out
}
