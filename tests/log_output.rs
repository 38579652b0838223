//! What the real process writes to its log: no colour escapes when stderr is
//! not a terminal, optional fields as plain values (never `Some(..)`), and
//! durations rounded to the microsecond.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::serve::{Serve, JSON_LOG};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_log_has_no_ansi_escapes_when_stderr_is_a_pipe() {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modelgate.toml");
    std::fs::write(&config, "[log]\nformat = \"text\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_clear()
        .env("MODELGATE_LISTEN", "127.0.0.1:0")
        .env("MODELGATE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("MODELGATE_EGRESS_LISTEN", "127.0.0.1:0")
        .env("MODELGATE_UPSTREAM", format!("http://{}", up.addr))
        .env("MODELGATE_DATABASE", dir.path().join("webui.db"))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let done = line.contains("admin listening");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("admin listening")),
        "{seen:#?}"
    );
    for line in &seen {
        assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_are_plain_values_and_durations_are_rounded() {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modelgate.toml");
    std::fs::write(&config, JSON_LOG).unwrap();
    let serve = Serve::start(&config, up.addr, &[]);

    assert_eq!(get(&serve.url("/some/page")).await.status, 200);
    let line = serve.wait_for("request");
    for field in ["duration_ms", "upstream_ms"] {
        let v = &line[field];
        assert!(v.is_number(), "{field}: {line}");
        let text = v.to_string();
        let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "{field} = {text}");
    }

    // A reload names its config file as a plain path.
    serve.signal("-HUP");
    let line = serve.wait_for("config reloaded");
    assert_eq!(line["source"], config.to_str().unwrap(), "{line}");
    assert!(!line.to_string().contains("Some("), "{line}");
}
