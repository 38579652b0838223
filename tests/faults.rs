//! Fault injection (issue 15): each way found to take the gate down or turn
//! it off unnoticed, reproduced against real servers on 127.0.0.1, with the
//! behaviour the fix gives.

mod common;
mod enforce_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use common::serve::{Serve, JSON_LOG};
use common::*;
use enforce_support::*;

fn metric_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

async fn metrics_text(serve: &Serve) -> String {
    String::from_utf8(
        get(&format!("http://{}/metrics", serve.admin))
            .await
            .body
            .to_vec(),
    )
    .unwrap()
}

/// A default config file (found at `config/modelgate.toml`, no flag) that
/// was loaded and then deleted: SIGHUP must keep the running config — its
/// operator routes — and say so, never fall back to the built-in defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_after_the_default_config_file_is_deleted_keeps_the_running_config() {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let path = dir.path().join("config/modelgate.toml");
    std::fs::write(
        &path,
        format!(
            "{JSON_LOG}[[access.routes]]\nmethods = [\"POST\"]\npath = \"/api/v1/custom/run\"\nkind = \"refuse\"\n"
        ),
    )
    .unwrap();
    let serve = Serve::start_in(dir.path(), up.addr, &[]);
    let post = || async {
        send(
            http::Request::post(serve.url("/api/v1/custom/run"))
                .header("content-type", "text/plain")
                .body(modelgate::proxy::body::full("x"))
                .unwrap(),
        )
        .await
    };
    assert_eq!(assert_error_shape(&post().await, 403), "route_refused");

    std::fs::remove_file(&path).unwrap();
    serve.signal("-HUP");
    let err = serve.wait_for("config reload failed; the running config stays in force");
    assert_eq!(err["level"], "ERROR");
    assert!(
        err["error"].as_str().unwrap_or_default().contains("missing"),
        "{err}"
    );
    assert_eq!(
        assert_error_shape(&post().await, 403),
        "route_refused",
        "the operator's route still applies"
    );
    assert!(up.requests_to("/api/v1/custom/run").is_empty());
    let text = metrics_text(&serve).await;
    assert!(
        metric_line(&text, r#"modelgate_config_reloads_total{result="failed"} 1"#),
        "{text}"
    );
}

/// Reads until the peer closes; true when it did (EOF or reset), false if
/// it was still open after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Every connection slot taken by sockets that never send a byte (or only
/// the start of the HTTP/2 preface) must not lock everyone else out: they
/// are closed after `timeouts.header_read_secs`, and a normal request
/// waiting in the backlog is then served. An idle keep-alive connection is
/// closed the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_do_not_lock_others_out() {
    let up = FakeUpstream::builder().start().await;
    let proxy = start_proxy(up.addr, |f| {
        f.limits.max_connections = 6;
        f.timeouts.header_read_secs = 1;
    })
    .await;
    let mut silent = Vec::new();
    for i in 0..6 {
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        if i % 2 == 1 {
            // Looks like h2c, then stalls inside the preface.
            s.write_all(b"PRI * HTTP/2").await.unwrap();
        }
        silent.push(s);
    }
    // Every slot is taken: this waits in the backlog until one is freed.
    let a = get(&proxy.url("/after-the-silent-ones")).await;
    assert_eq!(a.status, 200);
    for (i, s) in silent.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(10)).await,
            "silent socket {i} still open"
        );
    }

    // An idle keep-alive connection gives its slot back too.
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET /once HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(closed_within(&mut s, Duration::from_secs(10)).await);
}
