//! The real `modelgate serve` process, driven through its environment and
//! read through its JSON log lines (the only readiness signal it needs).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A config file body that switches the log to JSON lines.
pub const JSON_LOG: &str = "[log]\nformat = \"json\"\n";

pub struct Serve {
    pub child: Child,
    pub lines: mpsc::Receiver<serde_json::Value>,
    pub addr: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
}

impl Serve {
    /// Runs `modelgate serve` with a clean environment plus `env`; the
    /// database defaults to `webui.db` beside the config file.
    pub fn start(
        config: &std::path::Path,
        upstream: std::net::SocketAddr,
        env: &[(&str, &str)],
    ) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate"));
        cmd.args(["serve", "--config"]).arg(config);
        Serve::spawn(cmd, config, upstream, env)
    }

    /// Runs `modelgate serve` without `--config`, in `dir`: the config is
    /// found at the default path `dir/config/modelgate.toml`, when present.
    pub fn start_in(
        dir: &std::path::Path,
        upstream: std::net::SocketAddr,
        env: &[(&str, &str)],
    ) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelgate"));
        cmd.arg("serve").current_dir(dir);
        Serve::spawn(cmd, &dir.join("modelgate.toml"), upstream, env)
    }

    fn spawn(
        mut cmd: Command,
        config: &std::path::Path,
        upstream: std::net::SocketAddr,
        env: &[(&str, &str)],
    ) -> Serve {
        let mut child = cmd
            .env_clear()
            .env("MODELGATE_LISTEN", "127.0.0.1:0")
            .env("MODELGATE_ADMIN_LISTEN", "127.0.0.1:0")
            .env("MODELGATE_EGRESS_LISTEN", "127.0.0.1:0")
            .env("MODELGATE_UPSTREAM", format!("http://{upstream}"))
            .env("RUST_LOG", "info")
            .env("MODELGATE_DATABASE", config.with_file_name("webui.db"))
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) => {
                        let _ = tx.send(v);
                    }
                    Err(_) => eprintln!("non-JSON log line: {line}"),
                }
            }
        });
        let mut s = Serve {
            child,
            lines,
            addr: "0.0.0.0:0".parse().unwrap(),
            admin: "0.0.0.0:0".parse().unwrap(),
        };
        s.addr = s.wait_for("proxy listening")["addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        s.admin = s.wait_for("admin listening")["addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        s
    }

    /// The next log line whose message is `message` (other lines skipped).
    pub fn wait_for(&self, message: &str) -> serde_json::Value {
        loop {
            let v = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no {message:?} log line"));
            if v["message"] == message {
                return v;
            }
        }
    }

    /// The next log line whose message starts with `prefix`.
    pub fn wait_for_prefix(&self, prefix: &str) -> serde_json::Value {
        loop {
            let v = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no log line starting {prefix:?}"));
            if v["message"].as_str().is_some_and(|m| m.starts_with(prefix)) {
                return v;
            }
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let answer = super::get(&format!("http://{}/metrics", self.admin)).await;
        String::from_utf8(answer.body.to_vec()).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
