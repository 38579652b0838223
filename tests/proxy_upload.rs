//! A large upload streams through without being buffered. Its own test
//! binary (process) so the memory measurement sees nothing else.

mod common;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::StreamBody;
use hyper::body::Frame;

use common::*;
use modelgate::proxy::body::{boxed, BoxError};

const CHUNK: usize = 64 * 1024;
const TOTAL: usize = 100 * 1024 * 1024;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn current_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabyte_upload_streams_with_bounded_memory() {
    let up = FakeUpstream::builder()
        .route("/api/v1/files/", Reply::Sink)
        .start()
        .await;
    let proxy = start_proxy(up.addr, |_| {}).await;
    let before = current_rss_kib();

    // The body is generated as it is sent: nothing here holds 100 MB either.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(2);
    let producer = tokio::spawn(async move {
        let mut h = 0xcbf29ce484222325u64;
        let mut sent = 0;
        let mut i = 0u8;
        while sent < TOTAL {
            let chunk = Bytes::from(vec![i; CHUNK]);
            h = fnv(h, &chunk);
            i = i.wrapping_add(1);
            sent += CHUNK;
            if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                break;
            }
        }
        h
    });
    let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let req = Request::post(proxy.url("/api/v1/files/"))
        .header("content-type", "application/octet-stream")
        .body(boxed(body))
        .unwrap();
    let a = tokio::time::timeout(Duration::from_secs(120), send(req))
        .await
        .unwrap();
    let expected = producer.await.unwrap();
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v["bytes"], TOTAL as u64);
    assert_eq!(v["fnv"], expected.to_string(), "bytes changed in transit");

    let grew_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(
        grew_mib < 40,
        "peak memory grew by {grew_mib} MiB for a 100 MiB upload"
    );
}
