//! The harness end to end, without nginx or modelgate: the mock upstream
//! (as a process and in-process) and loadgen against it directly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use modelgate_load::fixture::Fixture;
use modelgate_load::mix::Mix;
use modelgate_load::mock::{serve, MockConfig};
use modelgate_load::runner::{run, Mode, RunConfig, SimUser};
use modelgate_load::setup::{setup, SetupConfig};
use modelgate_load::stats::{Report, ALL, STREAM_TTFT};
use tokio_tungstenite::tungstenite::Message;

/// Kills the child process when the test ends, pass or fail.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mock_process(models: usize) -> (Reap, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--models", &models.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn mock-upstream");
    let stdout = child.stdout.take().expect("stdout");
    let reap = Reap(child);
    // The first line is printed once the socket is bound: no sleeping.
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (reap, addr)
}

fn loadgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .env("WEBUI_SECRET_KEY", "load-test-secret")
        .output()
        .expect("run loadgen")
}

#[test]
fn loadgen_against_the_mock_directly() {
    let (_mock, addr) = start_mock_process(60);
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let target = format!("http://{addr}");

    let out = loadgen(&[
        "setup",
        "--db",
        &p("webui.db"),
        "--fixture",
        &p("fixture.json"),
        "--users",
        "10",
        "--orgs",
        "6",
        "--models",
        "60",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fixture = Fixture::load(dir.path().join("fixture.json").as_path()).unwrap();
    assert_eq!(fixture.users.len(), 10);

    let out = loadgen(&[
        "run",
        "--target",
        &target,
        "--fixture",
        &p("fixture.json"),
        "--label",
        "direct",
        "--users",
        "10",
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--quiet",
        "--json-out",
        &p("direct.json"),
        "--md-out",
        &p("direct.md"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report = serde_json::from_slice(&std::fs::read(p("direct.json")).unwrap()).unwrap();
    assert_eq!(report.error_total, 0, "{:?}", report.errors);
    assert_eq!(report.security_total, 0);
    assert!(report.ok > 20, "only {} requests", report.ok);
    assert!(report.throughput_rps > 10.0);
    assert_eq!(report.series[ALL].count, report.ok);
    // The mock does not enforce: forbidden calls are served, recorded, not failed.
    assert_eq!(report.forbidden_refused, 0);
    assert!(std::fs::read_to_string(p("direct.md"))
        .unwrap()
        .contains("| direct | all |"));

    // Told to expect enforcement, the same target is a security failure.
    let out = loadgen(&[
        "run",
        "--target",
        &target,
        "--fixture",
        &p("fixture.json"),
        "--label",
        "strict",
        "--users",
        "10",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--quiet",
        "--expect-enforcement",
        "--json-out",
        &p("strict.json"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let strict: Report = serde_json::from_slice(&std::fs::read(p("strict.json")).unwrap()).unwrap();
    assert!(strict.security_total > 0);
    assert_eq!(strict.error_total, 0, "{:?}", strict.errors);

    // compare + plot consume the reports.
    let out = loadgen(&[
        "compare",
        "--run",
        &p("direct.json"),
        "--run",
        &p("strict.json"),
        "--json-out",
        &p("c.json"),
        "--md-out",
        &p("c.md"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("strict/direct: throughput x"));
    let out = loadgen(&["plot", "--input", &p("c.json"), "--output", &p("l.svg")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(p("l.svg"))
        .unwrap()
        .starts_with("<svg"));

    // Only loopback targets.
    let out = loadgen(&[
        "run",
        "--target",
        "http://192.0.2.1:80",
        "--fixture",
        &p("fixture.json"),
    ]);
    assert!(!out.status.success());
}

async fn start_mock_in_process(cfg: MockConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, cfg));
    format!("127.0.0.1:{}", addr.port())
}

#[tokio::test]
async fn mock_serves_lists_sse_and_websocket_echo() {
    let addr = start_mock_in_process(MockConfig {
        models: 25,
        tokens: 5,
        token_delay: Duration::from_millis(1),
    })
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();

    for path in ["/api/models", "/api/v1/models", "/openai/models"] {
        let resp = client
            .get(format!("http://{addr}{path}").parse().unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 25);
        assert_eq!(v["data"][2]["id"], "anthropic/claude-3.5-sonnet");
    }

    let req = http::Request::post(format!("http://{addr}/api/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            r#"{"model":"openai/gpt-4o","stream":true}"#,
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 5 + 2, "{text}");
    assert!(events.iter().all(|e| e.starts_with("data: ")));
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let chunk: serde_json::Value = serde_json::from_str(&events[0]["data: ".len()..]).unwrap();
    assert_eq!(chunk["model"], "openai/gpt-4o");

    let req = http::Request::post(format!("http://{addr}/api/v1/chat/completions"))
        .body(Full::new(Bytes::from("not json")))
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 400);

    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{addr}/ws/socket.io/?EIO=4&transport=websocket"
    ))
    .await
    .unwrap();
    ws.send(Message::text("40")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("40"));
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_keeps_its_rate() {
    let addr = start_mock_in_process(MockConfig {
        models: 30,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let fixture = setup(&SetupConfig {
        db: dir.path().join("webui.db"),
        users: 6,
        orgs: 6,
        models: 30,
        secret: "k".into(),
        force: false,
    })
    .unwrap();
    let users = fixture
        .users
        .iter()
        .map(|u| SimUser::new(u, &u.token).unwrap())
        .collect();
    let report = run(RunConfig {
        label: "open".into(),
        target: format!("http://{addr}"),
        users,
        mode: Mode::Open { rate: 200.0 },
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        mix: Mix::default(),
        timeout: Duration::from_secs(5),
        expect_enforcement: false,
        max_inflight: 100,
        seed: 3,
        pid: Some(std::process::id()),
        progress: false,
    })
    .await
    .unwrap();
    assert_eq!(report.error_total, 0, "{:?}", report.errors);
    // 200/s for 1 s: the schedule, not the server, sets the count.
    assert!((190..=210).contains(&report.ok), "{}", report.ok);
    assert_eq!(report.mode, "open");
    assert!(report.series.contains_key(STREAM_TTFT));
    assert!(report.rss.unwrap().vm_hwm_kb.is_some());
}
