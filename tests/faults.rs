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
        err["error"]
            .as_str()
            .unwrap_or_default()
            .contains("missing"),
        "{err}"
    );
    assert_eq!(
        assert_error_shape(&post().await, 403),
        "route_refused",
        "the operator's route still applies"
    );
    assert!(up.requests_to("/api/v1/custom/run").is_empty());
    let text = serve.metrics().await;
    assert!(
        metric_line(
            &text,
            r#"modelgate_config_reloads_total{result="failed"} 1"#
        ),
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

/// A model-list response whose head arrives but whose body stalls held a
/// list-filter slot forever; with every slot held, every model list hung.
/// The body now has `timeouts.list_body_secs` to arrive (504), and the slot
/// is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_list_bodies_time_out_and_give_their_slot_back() {
    let stall = Arc::new(Semaphore::new(0));
    let env = Env::with(
        |b| {
            b.route(
                "/api/models",
                Reply::Sse {
                    events: vec![r#"{"data":["#.into(), "]}".into()],
                    gate: Some(stall.clone()),
                },
            )
            .route(
                "/api/v1/models",
                Reply::Fixed(
                    StatusCode::OK,
                    vec![("content-type", "application/json".into())],
                    Bytes::from_static(br#"{"data":[{"id":"gpt-4o"},{"id":"llama"}]}"#),
                ),
            )
        },
        |f| {
            f.access.max_concurrent_list_filters = 2;
            f.timeouts.list_body_secs = 1;
        },
    )
    .await;
    let env = Arc::new(env);
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let env = env.clone();
            tokio::spawn(async move { env.get_as("alice", "/api/models").await })
        })
        .collect();
    eventually(
        Duration::from_secs(10),
        "both stalled lists sent",
        || async { env.up.requests_to("/api/models").len() == 2 },
    )
    .await;
    // Both slots are held by stalled bodies: this list waits for one.
    let other = env.get_as("alice", "/api/v1/models").await;
    assert_eq!(other.status, 200);
    assert_eq!(other.json()["data"].as_array().unwrap().len(), 1);
    for t in stalled {
        let a = t.await.unwrap();
        assert_eq!(assert_error_shape(&a, 504), "upstream_timeout");
    }
    // And the slots are free again.
    assert_eq!(env.get_as("alice", "/api/v1/models").await.status, 200);
}

/// An error response can carry a model list too (a 500 once showed a
/// forbidden id): it is filtered like a success; one that names no models
/// passes unchanged; one with the list's shape that cannot be filtered is
/// refused (502), as for a success.
#[tokio::test]
async fn error_responses_that_list_models_are_filtered() {
    let fixed = |status: u16, body: &'static str| {
        Reply::Fixed(
            StatusCode::from_u16(status).unwrap(),
            vec![("content-type", "application/json".into())],
            Bytes::from_static(body.as_bytes()),
        )
    };
    let env = Env::with(
        |b| {
            b.route(
                "/api/models",
                fixed(500, r#"{"data":[{"id":"gpt-4o"},{"id":"llama"}]}"#),
            )
            .route("/api/v1/models", fixed(500, r#"{"detail":"llama broke"}"#))
            .route("/api/models/base", fixed(503, r#"{"data":[{"name":"x"}]}"#))
            .route(
                "/api/v1/models/model",
                fixed(404, r#"{"detail":"Model not found"}"#),
            )
        },
        |_| {},
    )
    .await;
    let a = env.get_as("alice", "/api/models").await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json(), serde_json::json!({"data":[{"id":"gpt-4o"}]}));
    let b = env.get_as("alice", "/api/v1/models").await;
    assert_eq!(b.status, 500);
    assert_eq!(&b.body[..], br#"{"detail":"llama broke"}"#);
    let c = env.get_as("alice", "/api/models/base").await;
    assert_eq!(assert_error_shape(&c, 502), "upstream_bad_response");
    let d = env.get_as("alice", "/api/v1/models/model?id=nope").await;
    assert_eq!(d.status, 404);
    assert_eq!(&d.body[..], br#"{"detail":"Model not found"}"#);
}

/// With a writer holding the database lock (rollback journal), cold
/// lookups queued for a read connection and then waited their own
/// busy_timeout each. A guarded request now gets its answer — 503, fail
/// closed — within `store.lookup_timeout_ms`, while the lock is still held,
/// and is served again once it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_lock_bounds_the_wait_of_every_lookup() {
    let env = Env::with(
        |b| b,
        |f| {
            f.store.read_connections = 1;
            f.store.busy_timeout_ms = 60_000;
            f.store.lookup_timeout_ms = 300;
            // Rollback journal, set before the proxy opens anything: there
            // a writer's exclusive lock keeps every reader out.
            let c = rusqlite::Connection::open(f.database.as_ref().unwrap()).unwrap();
            let mode: String = c
                .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "delete");
        },
    )
    .await;
    let writer = rusqlite::Connection::open(&env.db).unwrap();
    writer.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let env = Arc::new(env);
    let asks: Vec<_> = ["alice", "bob", "carol", "dave"]
        .into_iter()
        .map(|u| {
            let env = env.clone();
            tokio::spawn(async move {
                env.post_as(u, "/api/chat/completions", r#"{"model":"gpt-4o"}"#)
                    .await
            })
        })
        .collect();
    for t in asks {
        let a = t.await.unwrap();
        assert_eq!(assert_error_shape(&a, 503), "access_data_unavailable");
    }
    // Still locked: every answer above came within the lookup deadline,
    // not after the writer let go.
    writer.execute_batch("COMMIT").unwrap();
    eventually(Duration::from_secs(20), "served after the lock", || async {
        env.post_as("alice", "/api/chat/completions", r#"{"model":"gpt-4o"}"#)
            .await
            .status
            == 200
    })
    .await;
}

/// Sends a request head over a raw socket, then `body_prefix` of a body
/// whose declared length is `declared`; returns the socket.
async fn raw_post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    declared: usize,
    body_prefix: &[u8],
) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body_prefix).await.unwrap();
    s
}

/// The status line of the response on `s`.
async fn status_of(s: &mut tokio::net::TcpStream) -> String {
    let mut buf = vec![0u8; 12];
    tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// JSON bodies to routes outside the table were read (up to 64 MiB) before
/// the user was known. Now who asks is settled first: without a valid
/// credential the body is streamed to Open WebUI (which serves it as
/// nobody) instead of buffered, and on a guarded route the 401 comes
/// before the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_bodies_are_never_buffered() {
    let env = Env::with(|b| b.route("/api/v1/unlisted", Reply::Head), |_| {}).await;
    let big = 60 * 1024 * 1024;
    for auth in [
        vec![],
        vec![("authorization", "Bearer not-a-token".to_owned())],
        vec![(
            "cookie",
            format!(
                "token={}",
                token_with(&serde_json::json!({"id": "alice"}), "wrong-key")
            ),
        )],
    ] {
        let before = env.up.requests_to("/api/v1/unlisted").len();
        let mut s = raw_post(
            env.proxy.addr,
            "/api/v1/unlisted",
            &auth,
            big,
            b"{\"model\":",
        )
        .await;
        // Forwarded on its head: the rest of the 60 MB was never sent.
        assert_eq!(status_of(&mut s).await, "HTTP/1.1 200", "{auth:?}");
        assert_eq!(env.up.requests_to("/api/v1/unlisted").len(), before + 1);
    }
    // A guarded route answers 401 before the body.
    let mut s = raw_post(
        env.proxy.addr,
        "/api/chat/completions",
        &[("authorization", "Bearer not-a-token".to_owned())],
        big,
        b"{",
    )
    .await;
    assert_eq!(status_of(&mut s).await, "HTTP/1.1 401");
    assert!(env.up.requests_to("/api/chat/completions").is_empty());
}

/// Buffered bodies share one memory budget: a body that would pass it is
/// refused at once with 503 `body_budget_exhausted`, not queued, and the
/// budget is whole again once the first body has been forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_bodies_share_a_memory_budget() {
    let mib = 1024 * 1024;
    let env = Env::with(
        |b| b,
        |f| {
            f.access.max_body_bytes = mib;
            f.access.max_unlisted_body_bytes = mib;
            f.egress.max_body_bytes = mib;
            f.limits.max_buffered_body_bytes = mib;
        },
    )
    .await;
    let declared = 800 * 1024;
    // Alice's first body is being read: it holds 800 KiB of the 1 MiB, so
    // a second one of the same size is refused on its head, before a byte
    // of it is read. (When the second is identified first, it is the one
    // holding the budget and waits for its body: both are dropped and the
    // pair is tried again.)
    let prefix = b"{\"model\":\"gpt-4o\",\"pad\":\"";
    let mut first = loop {
        let first = raw_post(
            env.proxy.addr,
            "/api/v1/unlisted",
            &[bearer("alice")],
            declared,
            prefix,
        )
        .await;
        let mut second = raw_post(
            env.proxy.addr,
            "/api/v1/unlisted",
            &[bearer("bob")],
            declared,
            b"",
        )
        .await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), async {
            let mut buf = [0u8; 1024];
            while !answer.ends_with(b"}") {
                match second.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let text = String::from_utf8_lossy(&answer);
        if read.is_ok() && text.starts_with("HTTP/1.1 503") {
            assert!(text.contains("body_budget_exhausted"), "{text}");
            break first;
        }
    };
    let rest = format!("{}\"}}", " ".repeat(declared - prefix.len() - 2));
    first.write_all(rest.as_bytes()).await.unwrap();
    assert_eq!(status_of(&mut first).await, "HTTP/1.1 200");
    let again = env
        .post_as(
            "alice",
            "/api/v1/unlisted",
            &format!("{{\"pad\":\"{}\"}}", " ".repeat(declared - 11)),
        )
        .await;
    assert_eq!(again.status, 200);
}

/// 401 and 403 refusals echo the request id like forwarded responses.
#[tokio::test]
async fn refusals_echo_the_request_id() {
    let env = Env::start().await;
    let json = ("content-type", "application/json".to_owned());
    let rid = ("x-request-id", "req-faults-1".to_owned());
    let a = env
        .send(
            Method::POST,
            "/api/chat/completions",
            &[json.clone(), rid.clone()],
            r#"{"model":"gpt-4o"}"#,
        )
        .await;
    assert_eq!(assert_error_shape(&a, 401), "not_authenticated");
    assert_eq!(a.headers["x-request-id"], "req-faults-1");
    let b = env
        .send(
            Method::POST,
            "/api/chat/completions",
            &[bearer("alice"), json, rid],
            r#"{"model":"llama"}"#,
        )
        .await;
    assert_eq!(assert_error_shape(&b, 403), "model_not_allowed");
    assert_eq!(b.headers["x-request-id"], "req-faults-1");
}

/// The database under a running gate is deleted, replaced by garbage, or
/// loses an organization table: guarded requests get 503 (never a pass from
/// a warm cache), and the same process recovers once the file is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_database_fails_closed_and_recovers_without_a_restart() {
    let env = Env::start().await;
    let chat = r#"{"model":"gpt-4o","messages":[]}"#;
    let status = || async {
        env.post_as("alice", "/api/chat/completions", chat)
            .await
            .status
    };
    assert_eq!(status().await, StatusCode::OK);
    // Everything SQLite needs to reopen the database as it was.
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    let good = std::fs::read(&env.db).unwrap();
    // As an operator restores a copy: without the old write-ahead log,
    // whose frames SQLite would otherwise apply to the copy.
    let restore = || {
        for side in ["db-wal", "db-shm"] {
            let _ = std::fs::remove_file(env.db.with_extension(side));
        }
        let tmp = env.db.with_extension("restore");
        std::fs::write(&tmp, &good).unwrap();
        std::fs::rename(&tmp, &env.db).unwrap();
    };
    let becomes = |want: StatusCode, what: &'static str| {
        let status = &status;
        async move {
            eventually(Duration::from_secs(5), what, || async {
                status().await == want
            })
            .await
        }
    };
    type Breakage<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let breakages: [Breakage; 3] = [
        (
            "replaced by garbage",
            Box::new(|| {
                let tmp = env.db.with_extension("garbage");
                std::fs::write(&tmp, vec![0x5a; 64 * 1024]).unwrap();
                std::fs::rename(&tmp, &env.db).unwrap();
            }),
        ),
        (
            "deleted",
            Box::new(|| std::fs::remove_file(&env.db).unwrap()),
        ),
        (
            "an organization table dropped",
            Box::new(|| {
                rusqlite::Connection::open(&env.db)
                    .unwrap()
                    .execute_batch(
                        "DROP VIEW IF EXISTS v_user_model_access; DROP TABLE organization_models;",
                    )
                    .unwrap()
            }),
        ),
    ];
    for (what, breakage) in breakages {
        breakage();
        becomes(StatusCode::SERVICE_UNAVAILABLE, what).await;
        let refused = env.post_as("alice", "/api/chat/completions", chat).await;
        assert_eq!(
            assert_error_shape(&refused, 503),
            "access_data_unavailable",
            "{what}"
        );
        restore();
        becomes(StatusCode::OK, "recovery").await;
    }
    // No forbidden call ever reached the upstream meanwhile.
    assert!(env
        .bodies("/api/chat/completions")
        .iter()
        .all(|b| String::from_utf8_lossy(b).contains("gpt-4o")));
}

/// An upstream that resets the connection or answers garbage: a clear JSON
/// refusal, never a hang or a half-response.
#[tokio::test]
async fn an_upstream_that_resets_or_answers_garbage_is_a_clear_502() {
    for behaviour in ["reset", "garbage"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                if behaviour == "garbage" {
                    let _ = s.write_all(b"\x00\x01 this is not HTTP\r\n\r\n").await;
                } else {
                    // Linger 0: the drop sends RST (it cannot block: there
                    // is nothing to flush).
                    #[allow(deprecated)]
                    let _ = s.set_linger(Some(Duration::ZERO));
                }
                drop(s);
            }
        });
        let proxy = start_proxy(addr, |_| {}).await;
        let a = get(&proxy.url("/health")).await;
        assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{behaviour}");
        let code = assert_error_shape(&a, 502);
        assert!(code.starts_with("upstream"), "{behaviour}: {code}");
    }
}
