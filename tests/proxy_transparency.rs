//! The proxy must be invisible: bytes, streams, upgrades and headers pass
//! as an operator expects, and failures become the JSON error shape.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use common::*;
use modelgate::proxy::body::full;

fn all_bytes() -> Bytes {
    (0..=255u8).cycle().take(70_000).collect::<Vec<u8>>().into()
}

#[tokio::test]
async fn methods_round_trip_byte_exact() {
    let up = FakeUpstream::builder().start().await;
    let proxy = start_proxy(up.addr, |_| {}).await;
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ] {
        let body = if method == Method::GET {
            Bytes::new()
        } else {
            all_bytes()
        };
        let req = Request::builder()
            .method(method.clone())
            .uri(proxy.url("/api/v1/files/x?q=a%20b&z=1"))
            .header("content-type", "application/octet-stream")
            .body(full(body.clone()))
            .unwrap();
        let a = send(req).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers["x-echo-method"], method.as_str());
        assert_eq!(a.body, body, "{method} body changed");
        let seen = up.requests().pop().unwrap();
        assert_eq!(seen.method, method);
        assert_eq!(
            seen.uri.path_and_query().unwrap().as_str(),
            "/api/v1/files/x?q=a%20b&z=1"
        );
        assert_eq!(seen.body, body);
    }
}

#[tokio::test]
async fn encoded_paths_are_forwarded_exactly_as_received() {
    let up = FakeUpstream::builder().start().await;
    let proxy = start_proxy(up.addr, |_| {}).await;
    for path in ["/api/chat%2Fcompletions", "/a//b/./c/../d", "/x%00y?%zz=1"] {
        let a = get(&proxy.url(path)).await;
        assert_eq!(a.status, 200);
        let seen = up.requests().pop().unwrap();
        assert_eq!(seen.uri.path_and_query().unwrap().as_str(), path);
    }
}

#[tokio::test]
async fn upstream_status_and_headers_pass_through() {
    let up = FakeUpstream::builder()
        .route(
            "/teapot",
            Reply::Fixed(
                StatusCode::IM_A_TEAPOT,
                vec![
                    ("set-cookie", "a=1".into()),
                    ("x-custom", "v".into()),
                    ("content-type", "text/plain".into()),
                ],
                Bytes::from_static(b"short and stout"),
            ),
        )
        .start()
        .await;
    let proxy = start_proxy(up.addr, |_| {}).await;
    let a = get(&proxy.url("/teapot")).await;
    assert_eq!(a.status, 418);
    assert_eq!(a.headers["set-cookie"], "a=1");
    assert_eq!(a.headers["x-custom"], "v");
    assert_eq!(&a.body[..], b"short and stout");
}

#[tokio::test]
async fn sse_chunks_arrive_before_the_next_is_sent() {
    let gate = Arc::new(Semaphore::new(0));
    let events: Vec<String> = (1..=3).map(|i| format!("{{\"n\":{i}}}")).collect();
    let up = FakeUpstream::builder()
        .route(
            "/api/chat/completions",
            Reply::Sse {
                events,
                gate: Some(gate.clone()),
            },
        )
        .start()
        .await;
    let proxy = start_proxy(up.addr, |_| {}).await;
    let resp = client()
        .request(
            Request::post(proxy.url("/api/chat/completions"))
                .body(full("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    for i in 1..=3 {
        // The upstream sends event i+1 only after we saw event i: if the
        // proxy held chunks back, this read would never complete.
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap_or_else(|_| panic!("event {i} held back by the proxy"))
            .unwrap()
            .unwrap();
        let data = frame.into_data().unwrap();
        assert_eq!(&data[..], format!("data: {{\"n\":{i}}}\n\n").as_bytes());
        gate.add_permits(1);
    }
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn websocket_echo_both_ways() {
    let up = FakeUpstream::builder()
        .route("/ws/socket.io/", Reply::WebSocketEcho)
        .start()
        .await;
    let proxy = start_proxy(up.addr, |_| {}).await;
    let url = format!(
        "ws://{}/ws/socket.io/?EIO=4&transport=websocket",
        proxy.addr
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::Text(format!("hello {i}"))).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, Message::Text(format!("hello {i}")));
    }
    let big = vec![7u8; 200_000];
    ws.send(Message::Binary(big.clone())).await.unwrap();
    let back = ws.next().await.unwrap().unwrap();
    assert_eq!(back, Message::Binary(big));
    ws.close(None).await.unwrap();
    let seen = up.requests_to("/ws/socket.io/").pop().unwrap();
    assert_eq!(seen.headers["upgrade"], "websocket");
}

/// Sends a raw request and returns the response head and body as text.
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn hop_by_hop_stripped_and_forwarded_headers_set() {
    let up = FakeUpstream::builder()
        .route(
            "/hop",
            Reply::Fixed(
                StatusCode::OK,
                vec![
                    ("connection", "x-upstream-hop".into()),
                    ("x-upstream-hop", "1".into()),
                    ("keep-alive", "timeout=5".into()),
                    ("x-kept", "yes".into()),
                ],
                Bytes::from_static(b"ok"),
            ),
        )
        .start()
        .await;
    let proxy = start_proxy(up.addr, |_| {}).await;
    let text = raw(
        proxy.addr,
        "GET /hop HTTP/1.1\r\nHost: chat.example.com\r\nConnection: close, x-secret-hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=9\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Request-Id: req-42\r\nAuthorization: Bearer keep-me\r\n\r\n",
    )
    .await;
    let head = text.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{text}");
    assert!(head.contains("x-kept: yes"));
    assert!(!head.contains("x-upstream-hop"), "{text}");
    assert!(!head.contains("keep-alive: timeout=5"), "{text}");
    assert!(head.contains("x-request-id: req-42"));

    let seen = up.requests_to("/hop").pop().unwrap();
    let h = &seen.headers;
    for gone in [
        "x-secret-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "transfer-encoding",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the upstream");
    }
    assert_eq!(h["authorization"], "Bearer keep-me");
    assert_eq!(h["host"], "chat.example.com", "Host preserved by default");
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "chat.example.com");
    assert_eq!(h["x-request-id"], "req-42");
}

#[tokio::test]
async fn request_id_generated_and_host_rewritten_when_configured() {
    let up = FakeUpstream::builder().start().await;
    let proxy = start_proxy(up.addr, |f| f.proxy.preserve_host = false).await;
    let a = get(&proxy.url("/x")).await;
    let rid = a.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(rid.len(), 32);
    let seen = up.requests().pop().unwrap();
    assert_eq!(seen.headers["x-request-id"], rid.as_str());
    assert_eq!(seen.headers["host"], up.addr.to_string().as_str());
}

#[tokio::test]
async fn upstream_down_is_502_json() {
    let proxy = start_proxy(closed_port().await, |_| {}).await;
    let a = get(&proxy.url("/api/models")).await;
    assert_eq!(assert_error_shape(&a, 502), "upstream_unavailable");
}

#[tokio::test]
async fn upstream_slow_is_504_json() {
    let up = FakeUpstream::builder()
        .route(
            "/slow",
            Reply::Delay(Duration::from_secs(5), Box::new(Reply::Echo)),
        )
        .start()
        .await;
    let proxy = start_proxy(up.addr, |f| f.timeouts.upstream_headers_secs = 1).await;
    let a = get(&proxy.url("/slow")).await;
    assert_eq!(assert_error_shape(&a, 504), "upstream_timeout");
}

#[tokio::test]
async fn slow_client_headers_get_the_connection_closed() {
    let up = FakeUpstream::builder().start().await;
    let proxy = start_proxy(up.addr, |f| f.timeouts.header_read_secs = 1).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut out = Vec::new();
    // The proxy must close the connection on its own (a 408 before the
    // close is fine); a hang fails the test.
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("slowloris connection left open")
        .ok();
    let text = String::from_utf8_lossy(&out);
    assert!(out.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(up.requests().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn oversized_request_head_is_refused() {
    let up = FakeUpstream::builder().start().await;
    let proxy = start_proxy(up.addr, |f| f.limits.max_header_bytes = 8192).await;
    let big = "a".repeat(20_000);
    let text = raw(
        proxy.addr,
        &format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let up = FakeUpstream::builder().start().await;
    let proxy = start_proxy(up.addr, |_| {}).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<modelgate::proxy::body::Body>();
    let resp = client
        .request(
            Request::post(proxy.url("/h2"))
                .body(full("over h2"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"over h2");
    let seen = up.requests().pop().unwrap();
    assert_eq!(
        seen.headers["host"],
        proxy.addr.to_string().as_str(),
        "authority becomes Host"
    );
}

#[tokio::test]
async fn graceful_drain_lets_an_sse_stream_finish() {
    let gate = Arc::new(Semaphore::new(0));
    let events: Vec<String> = vec!["first".into(), "second".into()];
    let up = FakeUpstream::builder()
        .route(
            "/stream",
            Reply::Sse {
                events,
                gate: Some(gate.clone()),
            },
        )
        .start()
        .await;
    let proxy = start_proxy(up.addr, |f| f.timeouts.drain_secs = 30).await;
    let addr = proxy.addr;
    let resp = client()
        .request(Request::get(proxy.url("/stream")).body(full("")).unwrap())
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"data: first\n\n");

    let shutdown = tokio::spawn(proxy.shutdown());
    // Once draining, new connections are refused...
    let refused = async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("still accepting after shutdown");
    assert!(
        !shutdown.is_finished(),
        "drain must wait for the open stream"
    );
    // ...while the open stream runs to its end.
    gate.add_permits(1);
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&second[..], b"data: second\n\n");
    assert!(body.frame().await.is_none());
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let up = FakeUpstream::builder().start().await;
    let proxy = start_proxy(up.addr, |f| f.timeouts.header_read_secs = 1).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    // The response arrives, then the idle connection is closed by the proxy.
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("idle keep-alive connection left open")
        .unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
}

/// The limit is one for all worker threads, not one per thread: with two
/// workers and one slot, the second worker must not serve the second
/// connection while the first holds the slot.
#[tokio::test]
async fn the_connection_limit_is_shared_by_the_workers() {
    let up = FakeUpstream::builder().start().await;
    let (_dir, path) = temp_db();
    let config = test_config(up.addr, &path, |f| {
        f.access.enabled = false;
        f.limits.max_connections = 1;
        f.workers = 2;
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = modelgate::store::AccessStore::open(config.startup.store.clone());
    let live = Arc::new(arc_swap::ArcSwap::from_pointee(config));
    let proxy = modelgate::proxy::Proxy::new(
        live.clone(),
        store,
        Arc::new(modelgate::metrics::Metrics::new()),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers = modelgate::workers::start(
        listener,
        proxy,
        std::num::NonZeroUsize::new(2).unwrap(),
        stopped,
    )
    .unwrap();

    let second =
        second_waits_for_the_first(addr, "a second worker served beyond max_connections").await;

    stop.send(true).unwrap();
    drop(second);
    workers.wait().await;
}

/// With one connection slot: a first connection is served and kept open;
/// a second is not served while the first holds the slot (`early` says
/// what it would mean), and is as soon as the first goes away.
async fn second_waits_for_the_first(addr: std::net::SocketAddr, early: &str) -> TcpStream {
    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");

    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(b"GET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    let served =
        tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut head)).await;
    assert!(served.is_err(), "{early}");
    drop(first);
    tokio::time::timeout(Duration::from_secs(10), second.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    second
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let up = FakeUpstream::builder().start().await;
    let proxy = start_proxy(up.addr, |f| f.limits.max_connections = 1).await;
    second_waits_for_the_first(proxy.addr, "served beyond max_connections").await;
}
