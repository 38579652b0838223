//! The real `modelgate serve` process: SIGHUP reloads (or refuses a bad
//! file and keeps serving), SIGTERM drains an in-flight stream and exits 0.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use common::*;
use modelgate::proxy::body::full;

struct Serve {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
}

impl Serve {
    fn start(config: &std::path::Path, upstream: std::net::SocketAddr) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .args(["serve", "--config"])
            .arg(config)
            .env_clear()
            .env("MODELGATE_LISTEN", "127.0.0.1:0")
            .env("MODELGATE_ADMIN_LISTEN", "127.0.0.1:0")
            .env("MODELGATE_UPSTREAM", format!("http://{upstream}"))
            .env("RUST_LOG", "info")
            .env("ENABLE_MODEL_FILTER", "false")
            .env("MODELGATE_DATABASE", config.with_file_name("webui.db"))
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
    fn wait_for(&self, message: &str) -> serde_json::Value {
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

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const JSON_LOG: &str = "[log]\nformat = \"json\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_file_and_refuses_an_invalid_one() {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("modelgate.toml");
    std::fs::write(&path, format!("{JSON_LOG}[proxy]\npreserve_host = true\n")).unwrap();
    let serve = Serve::start(&path, up.addr);

    get(&serve.url("/a")).await;
    assert_eq!(
        up.requests().pop().unwrap().headers["host"],
        serve.addr.to_string().as_str()
    );

    // A valid change applies without a restart.
    std::fs::write(&path, format!("{JSON_LOG}[proxy]\npreserve_host = false\n")).unwrap();
    serve.signal("-HUP");
    serve.wait_for("config reloaded");
    get(&serve.url("/b")).await;
    assert_eq!(
        up.requests().pop().unwrap().headers["host"],
        up.addr.to_string().as_str()
    );

    // A broken file is refused, logged, and the previous config keeps serving.
    std::fs::write(&path, format!("{JSON_LOG}[proxy]\npreserve_host = maybe\n")).unwrap();
    serve.signal("-HUP");
    let err = serve.wait_for("config reload failed; the running config stays in force");
    assert_eq!(err["level"], "ERROR");
    let a = get(&serve.url("/c")).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        up.requests().pop().unwrap().headers["host"],
        up.addr.to_string().as_str()
    );

    let health = get(&format!("http://{}/health", serve.admin)).await;
    assert_eq!(health.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_stream_then_exits_zero() {
    let gate = Arc::new(Semaphore::new(0));
    let up = FakeUpstream::builder()
        .route(
            "/api/chat/completions",
            Reply::Sse {
                events: vec!["one".into(), "two".into()],
                gate: Some(gate.clone()),
            },
        )
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("modelgate.toml");
    std::fs::write(&path, format!("{JSON_LOG}[timeouts]\ndrain_secs = 30\n")).unwrap();
    let mut serve = Serve::start(&path, up.addr);

    let resp = client()
        .request(
            Request::post(serve.url("/api/chat/completions"))
                .body(full("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"data: one\n\n");

    serve.signal("-TERM");
    serve.wait_for("draining in-flight requests");
    assert!(
        serve.child.try_wait().unwrap().is_none(),
        "exited with a stream open"
    );
    gate.add_permits(1);
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&second[..], b"data: two\n\n");
    assert!(body.frame().await.is_none());
    serve.wait_for("drained");
    let status = tokio::task::spawn_blocking(move || {
        let s = serve.child.wait().unwrap();
        drop(serve);
        s
    })
    .await
    .unwrap();
    assert!(status.success(), "{status:?}");
}
