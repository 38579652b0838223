//! The real `modelgate serve` process: SIGHUP reloads (or refuses a bad
//! file and keeps serving), SIGTERM drains an in-flight stream and exits 0.

mod common;

use std::sync::Arc;

use http::Request;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use common::serve::{Serve, JSON_LOG};
use common::*;
use modelgate::proxy::body::full;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_file_and_refuses_an_invalid_one() {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("modelgate.toml");
    std::fs::write(&path, format!("{JSON_LOG}[proxy]\npreserve_host = true\n")).unwrap();
    let serve = Serve::start(&path, up.addr, &[("ENABLE_MODEL_FILTER", "false")]);

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
async fn a_reload_that_loosens_enforcement_is_announced_and_counted() {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("modelgate.toml");
    std::fs::write(&path, JSON_LOG).unwrap();
    let serve = Serve::start(&path, up.addr, &[]);
    let metric = |text: &str, line: &str| text.lines().any(|l| l == line);
    let metrics = || serve.metrics();
    assert!(metric(&metrics().await, "modelgate_enforcement_enabled 1"));

    std::fs::write(
        &path,
        format!("{JSON_LOG}[access]\nenabled = false\n[egress]\ntrust_plain_user_headers = true\n"),
    )
    .unwrap();
    serve.signal("-HUP");
    serve.wait_for("config reloaded");
    let warn = serve.wait_for(
        "MODEL ACCESS ENFORCEMENT IS OFF (ENABLE_MODEL_FILTER=false): every model is reachable",
    );
    assert_eq!(warn["level"], "WARN");
    let text = metrics().await;
    assert!(metric(&text, "modelgate_enforcement_enabled 0"), "{text}");
    assert!(
        metric(&text, r#"modelgate_config_reloads_total{result="ok"} 1"#),
        "{text}"
    );

    // Enforcement back on: the trusted plain header is announced too.
    std::fs::write(
        &path,
        format!("{JSON_LOG}[egress]\ntrust_plain_user_headers = true\n"),
    )
    .unwrap();
    serve.signal("-HUP");
    serve.wait_for("config reloaded");
    serve.wait_for("EGRESS TRUSTS UNSIGNED USER HEADERS (egress.trust_plain_user_headers = true): anyone who can reach the egress listener can call as any user");
    assert!(metric(&metrics().await, "modelgate_enforcement_enabled 1"));

    std::fs::write(&path, format!("{JSON_LOG}[access]\nenabled = maybe\n")).unwrap();
    serve.signal("-HUP");
    serve.wait_for("config reload failed; the running config stays in force");
    let text = metrics().await;
    assert!(
        metric(
            &text,
            r#"modelgate_config_reloads_total{result="failed"} 1"#
        ),
        "{text}"
    );
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
    let mut serve = Serve::start(&path, up.addr, &[("ENABLE_MODEL_FILTER", "false")]);

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
