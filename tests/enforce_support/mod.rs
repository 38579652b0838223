//! Fixture for the enforcement tests: an Open WebUI-shaped database with two
//! organizations, session tokens signed like Open WebUI's, the fake upstream
//! and the real proxy with enforcement on.
//!
//! | user  | role    | organizations |
//! | ----- | ------- | ------------- |
//! | alice | user    | A             |
//! | bob   | user    | B             |
//! | carol | user    | A, B          |
//! | dave  | user    | none          |
//! | pat   | pending | A             |
//! | root  | admin   | B             |
//!
//! A permits `gpt-4o` and `claude`, B permits `llama`. Presets in Open
//! WebUI's `model` table: `alice-helper` → `gpt-4o`, `sneaky` → `llama`, and
//! the loop `c1` → `c2` → `c1`. Alice owns the API key [`ALICE_KEY`].
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use jsonwebtoken::{EncodingKey, Header};
use modelgate::config::FileConfig;
use modelgate::proxy::body::full;
use modelgate::store::admin::{self, MemberRole};
use modelgate::store::webui_fixture::create_open_webui_tables;
use rusqlite::{params, Connection};
use serde_json::{json, Value};

use crate::common::*;

/// Alice's Open WebUI API key: `sk-` and 32 hex digits.
pub const ALICE_KEY: &str = "sk-0123456789abcdef0123456789abcdef";

/// Builds the fixture database at `dir/webui.db`.
pub fn fixture_db() -> (Arc<tempfile::TempDir>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webui.db");
    let conn = admin::open_writer(&path).unwrap();
    create_open_webui_tables(&conn).unwrap();
    modelgate::store::ensure_schema(&conn).unwrap();
    for (id, role) in [
        ("alice", "user"),
        ("bob", "user"),
        ("carol", "user"),
        ("dave", "user"),
        ("pat", "pending"),
        ("root", "admin"),
    ] {
        conn.execute(
            "INSERT INTO user (id, name, email, role, created_at) VALUES (?1, ?1, ?1 || '@example.com', ?2, 0)",
            params![id, role],
        )
        .unwrap();
    }
    for (id, base) in [
        ("gpt-4o", None),
        ("claude", None),
        ("llama", None),
        ("alice-helper", Some("gpt-4o")),
        ("sneaky", Some("llama")),
        ("c1", Some("c2")),
        ("c2", Some("c1")),
    ] {
        conn.execute(
            "INSERT INTO model (id, user_id, base_model_id, name, params, meta) VALUES (?1, 'root', ?2, ?1, '{}', '{}')",
            params![id, base],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO api_key (id, user_id, key, created_at) VALUES ('key_alice', 'alice', ?1, 0)",
        [ALICE_KEY],
    )
    .unwrap();
    for (org, models) in [("A", &["gpt-4o", "claude"][..]), ("B", &["llama"][..])] {
        admin::create_org(&conn, org, &format!("Org {org}"), "test").unwrap();
        for m in models {
            admin::enable_model(&conn, org, m, "test").unwrap();
        }
    }
    for (org, user) in [
        ("A", "alice"),
        ("B", "bob"),
        ("A", "carol"),
        ("B", "carol"),
        ("A", "pat"),
        ("B", "root"),
    ] {
        admin::add_member(&conn, org, user, MemberRole::Member, "test").unwrap();
    }
    (Arc::new(dir), path)
}

/// A session token for `uid`, signed like Open WebUI's (HS256, [`SECRET`]).
pub fn token(uid: &str) -> String {
    token_with(&json!({"id": uid, "typ": "session"}), SECRET)
}

pub fn token_with(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// `Authorization: Bearer <session of uid>`.
pub fn bearer(uid: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {}", token(uid)))
}

/// The fake upstream, the proxy with enforcement on over the fixture, and
/// the database path (for changes while running).
pub struct Env {
    pub up: FakeUpstream,
    pub proxy: TestProxy,
    pub db: PathBuf,
}

impl Env {
    pub async fn start() -> Env {
        Env::with(|b| b, |_| {}).await
    }

    /// `routes` scripts the upstream, `tweak` the configuration.
    pub async fn with(
        routes: impl FnOnce(FakeUpstreamBuilder) -> FakeUpstreamBuilder,
        tweak: impl FnOnce(&mut FileConfig),
    ) -> Env {
        let up = routes(FakeUpstream::builder()).start().await;
        let (dir, db) = fixture_db();
        let config = test_config(up.addr, &db, tweak);
        let mut proxy = start_proxy_with(config).await;
        proxy.dir = Some(dir);
        Env { up, proxy, db }
    }

    pub fn writer(&self) -> Connection {
        admin::open_writer(&self.db).unwrap()
    }

    /// Sends `body` with `headers` (JSON content type unless one is given).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut b = Request::builder().method(method).uri(self.proxy.url(path));
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        send(b.body(full(body.into())).unwrap()).await
    }

    /// POST of a JSON body as `uid` (bearer session).
    pub async fn post_as(&self, uid: &str, path: &str, body: &str) -> Answer {
        self.send(
            Method::POST,
            path,
            &[bearer(uid), ("content-type", "application/json".into())],
            body.to_owned(),
        )
        .await
    }

    /// GET as `uid` (bearer session).
    pub async fn get_as(&self, uid: &str, path: &str) -> Answer {
        self.send(Method::GET, path, &[bearer(uid)], Bytes::new())
            .await
    }

    /// Bodies the upstream received on `path`.
    pub fn bodies(&self, path: &str) -> Vec<Bytes> {
        self.up
            .requests_to(path)
            .into_iter()
            .map(|r| r.body)
            .collect()
    }
}

/// Asserts a 403 `model_not_allowed` that names `model` and none of the
/// models the user may use.
pub fn assert_model_refused(a: &Answer, model: &str, permitted: &[&str]) {
    assert_eq!(assert_error_shape(a, 403), "model_not_allowed");
    let detail = a.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains(&format!("'{model}'")), "{detail}");
    for p in permitted {
        if *p != model {
            assert!(!detail.contains(p), "refusal lists {p}: {detail}");
        }
    }
}
