//! A throwaway PostgreSQL server for the tests: Debian's binaries, a cluster
//! in a temp dir, reachable only through a unix socket in that dir, stopped
//! (immediately: nothing in it is worth a checkpoint) when dropped.
//!
//! Tests that need it call [`PgServer::start`]; without the binaries it
//! returns `None` after saying why, unless `MODELGATE_REQUIRE_PG` is set
//! (CI sets it), in which case a missing server fails the test.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The database each test gets (created after `initdb`).
pub const DATABASE: &str = "modelgate_test";

/// How long a cluster may take to accept connections: initdb and the first
/// start are slow on a loaded CI machine, so be generous.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PgServer {
    dir: TempDir,
    bin: PathBuf,
    /// The socket file is `.s.PGSQL.<port>` in `dir`; no TCP is opened.
    pub port: u16,
    /// The cluster's superuser: `postgres` when initdb ran through runuser,
    /// else the user running the tests.
    pub user: String,
    as_postgres: bool,
    running: bool,
}

impl PgServer {
    /// A running cluster with [`DATABASE`] created, or `None` (after a
    /// message on stderr) when PostgreSQL is not installed and
    /// `MODELGATE_REQUIRE_PG` is unset.
    pub fn start() -> Option<PgServer> {
        let Some(bin) = find_bin_dir() else {
            let why = "PostgreSQL server binaries (initdb, pg_ctl) not found under \
                       /usr/lib/postgresql/*/bin, MODELGATE_PG_BIN or PATH";
            if std::env::var_os("MODELGATE_REQUIRE_PG").is_some() {
                panic!("{why}, and MODELGATE_REQUIRE_PG is set: install Debian's postgresql");
            }
            eprintln!("SKIPPED: {why}; install postgresql (or set MODELGATE_REQUIRE_PG to make this a failure)");
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("modelgate-pg-")
            .tempdir()
            .expect("temp dir");
        if as_postgres {
            // initdb refuses to run as root; the cluster belongs to the
            // `postgres` user, who must own the directory it writes.
            run(
                Command::new("chown").arg("postgres:").arg(dir.path()),
                "chown the temp dir to postgres",
            );
        }
        let user = if as_postgres {
            "postgres".to_string()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "postgres".into())
        };
        let mut server = PgServer {
            dir,
            bin,
            port: free_port(),
            user,
            as_postgres,
            running: false,
        };
        let data = server.data_dir();
        server.pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                server.user.as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        server.start_again();
        server.psql("postgres", &format!("CREATE DATABASE {DATABASE}"));
        Some(server)
    }

    /// The directory holding the socket (libpq's `host` for a unix socket).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A libpq-style URL to [`DATABASE`] over the socket, as Open WebUI's
    /// `DATABASE_URL` would spell it.
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }

    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgresql://{}@/{}?host={}&port={}",
            self.user,
            database,
            self.socket_dir().display(),
            self.port
        )
    }

    /// Starts the cluster (again, after [`PgServer::stop`]) and waits until
    /// it accepts connections.
    pub fn start_again(&mut self) {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-c fsync=off -c listen_addresses='' -c unix_socket_directories='{}' -p {}",
            self.socket_dir().display(),
            self.port
        );
        self.pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                // No wait: readiness is polled below, with our own deadline.
                "-W".as_ref(),
                "start".as_ref(),
            ],
        );
        self.running = true;
        let start = Instant::now();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(self.socket_dir())
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-d")
                .arg("postgres")
                .arg("-U")
                .arg(&self.user)
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                start.elapsed() < READY_TIMEOUT,
                "PostgreSQL did not accept connections within {READY_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server at once (`-m immediate`: every connection is cut,
    /// as when the database host goes away).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let data = self.data_dir();
        self.pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
        self.running = false;
    }

    /// Runs SQL through `psql` against `database` and returns its output
    /// (unaligned, tuples only); panics, with the output, on error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg(&self.user)
            .arg("-d")
            .arg(database)
            .arg("-c")
            .arg(sql)
            .output()
            .expect("run psql");
        check(&out, &format!("psql -c {sql:?}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn pg(&self, program: &str, args: &[&std::ffi::OsStr]) {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {program}: {e}");
            });
        if !out.status.success() {
            panic!(
                "{program} failed ({}):\n{}\n{}\nserver log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            // Not `stop()`: a panic in drop (during a failing test's
            // unwind) would abort and hide the test's own message.
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// The newest Debian PostgreSQL, `MODELGATE_PG_BIN`, or `pg_config --bindir`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("MODELGATE_PG_BIN").map(PathBuf::from) {
        return has_tools(&dir).then_some(dir);
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && has_tools(&dir)).then_some(dir)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A number for the socket file's name. Nothing listens on TCP
/// (`listen_addresses=''`), so the port only has to differ between
/// clusters sharing a socket directory, and each has its own: a free TCP
/// port is just a convenient random number.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    check(&out, what);
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
