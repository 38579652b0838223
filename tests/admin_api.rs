//! The management API on the admin listener: every endpoint with good and
//! bad input and without a credential, model ids with `/` and `:`, the
//! audit rows it writes compared with the CLI's, and the OpenAPI document
//! compared with what the router serves.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request};
use tokio::net::TcpListener;

use common::*;
use modelgate::admin::api::routes::{Access, Verb, ROUTES};
use modelgate::admin::{self, AdminState};
use modelgate::proxy::body::{full, Body};
use modelgate::store::admin as store_admin;
use modelgate::store::webui_fixture::create_open_webui_tables;

const ADMIN_TOKEN: &str = "s3cret-admin-token";

fn session(user: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"id": user, "typ": "session"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Open WebUI's users (an admin, two users), a preset on a model whose id
/// has a `/`, and one organization with joe and that model.
fn seed(path: &Path) {
    let conn = store_admin::open_writer(path).unwrap();
    create_open_webui_tables(&conn).unwrap();
    modelgate::store::ensure_schema(&conn).unwrap();
    conn.execute_batch(
        "INSERT INTO user (id, email, role, name) VALUES
             ('boss', 'b@x', 'admin', 'Boss'), ('joe', 'j@x', 'user', 'Joe'),
             ('ann', 'a@x', 'user', 'Ann');
         INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active) VALUES
             ('openai/gpt-4o', NULL, NULL, 'GPT-4o', '{}', '{}', 1),
             ('acme-writer', 'joe', 'openai/gpt-4o', 'Acme Writer', '{}', '{}', 1);
         INSERT INTO \"group\" (id, user_id, name, description, created_at, updated_at) VALUES
             ('g-eng', 'boss', 'engineering', '', 0, 0), ('g-t1', 'boss', 'twins', '', 0, 0),
             ('g-t2', 'boss', 'twins', '', 0, 0);
         INSERT INTO group_member (id, group_id, user_id) VALUES ('gm1', 'g-eng', 'ann');",
    )
    .unwrap();
    store_admin::create_org(&conn, "acme", "Acme", "seed").unwrap();
    store_admin::add_member(
        &conn,
        "acme",
        "joe",
        store_admin::MemberRole::Member,
        "seed",
    )
    .unwrap();
    store_admin::enable_model(&conn, "acme", "openai/gpt-4o", "seed").unwrap();
}

struct Api {
    addr: std::net::SocketAddr,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("webui.db");
    seed(&db);
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let config = test_config(closed_port().await, &db, |f| {
        f.admin.token_file = Some(token_file.clone())
    });
    let store = modelgate::store::AccessStore::open(config.startup.store.clone());
    let state = Arc::new(AdminState {
        config: Arc::new(arc_swap::ArcSwap::from_pointee(config)),
        store,
        metrics: Arc::new(modelgate::metrics::Metrics::new()),
        started: Instant::now(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(admin::serve(listener, state, std::future::pending()));
    Api {
        addr,
        db,
        _dir: dir,
    }
}

/// Who calls.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    Token,
    Session(&'a str),
}

impl Api {
    fn request(&self, method: Method, path: &str, who: As<'_>) -> http::request::Builder {
        let b = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        match who {
            As::Nobody => b,
            As::Token => b.header("authorization", format!("Bearer {ADMIN_TOKEN}")),
            As::Session(user) => b.header("authorization", format!("Bearer {}", session(user))),
        }
    }

    async fn call(&self, method: Method, path: &str, who: As<'_>) -> Answer {
        send(self.request(method, path, who).body(full("")).unwrap()).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, As::Token).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, As::Token).await
    }

    /// A JSON body as the given caller.
    async fn post_as(&self, path: &str, who: As<'_>, body: serde_json::Value) -> Answer {
        self.json_as(Method::POST, path, who, body).await
    }

    /// A JSON body with any method, as the given caller.
    async fn json_as(
        &self,
        method: Method,
        path: &str,
        who: As<'_>,
        body: serde_json::Value,
    ) -> Answer {
        let req = self
            .request(method, path, who)
            .header("content-type", "application/json")
            .body(full(body.to_string()))
            .unwrap();
        send(req).await
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> Answer {
        self.post_as(path, As::Token, body).await
    }

    /// Any body, any content type (`None`: no header).
    async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Body) -> Answer {
        let mut b = self.request(Method::POST, path, As::Token);
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        send(b.body(body).unwrap()).await
    }
}

/// Asserts the error shape and status, returns `error.code`.
fn refused(a: &Answer, status: u16) -> String {
    assert_error_shape(a, status)
}

fn ok(a: &Answer, status: u16) -> serde_json::Value {
    assert_eq!(
        a.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.headers["content-type"], "application/json");
    a.json()
}

/// A route's path with sample values for its captures.
fn sample_path(template: &str) -> String {
    template
        .replace("{org}", "acme")
        .replace("{user}", "joe")
        .replace("{model}", "openai%2Fgpt-4o")
        .replace("{group}", "g-eng")
}

/// A good request for every route: path, query and body.
fn good_request(template: &str, verb: Verb) -> (String, Option<serde_json::Value>) {
    let path = sample_path(template);
    match (verb, template) {
        (Verb::Post, "/api/v1/organizations") => (
            path,
            Some(serde_json::json!({"id": "globex", "name": "Globex"})),
        ),
        (Verb::Post, "/api/v1/organizations/{org}/members") => {
            (path, Some(serde_json::json!({"user": "ann"})))
        }
        (Verb::Post, "/api/v1/organizations/{org}/models") => {
            (path, Some(serde_json::json!({"model": "openai/gpt-4o"})))
        }
        (Verb::Patch, "/api/v1/organizations/{org}") => {
            (path, Some(serde_json::json!({"name": "Acme Inc"})))
        }
        (Verb::Put, "/api/v1/organizations/{org}/mode") => {
            (path, Some(serde_json::json!({"mode": "shadow"})))
        }
        (Verb::Post, "/api/v1/organizations/{org}/groups") => {
            (path, Some(serde_json::json!({"group": "engineering"})))
        }
        (Verb::Delete, "/api/v1/organizations/{org}/models") => {
            (format!("{path}?model=openai%2Fgpt-4o"), None)
        }
        (Verb::Get, "/api/v1/explain") => (format!("{path}?user=joe&model=acme-writer"), None),
        (Verb::Get, "/api/v1/audit") => (format!("{path}?limit=5"), None),
        _ => (path, None),
    }
}

fn method(verb: Verb) -> Method {
    Method::from_bytes(verb.as_str().as_bytes()).unwrap()
}

#[tokio::test]
async fn every_endpoint_refuses_a_missing_bad_or_non_admin_credential() {
    let api = start().await;
    for route in ROUTES {
        let (path, body) = good_request(route.path, route.verb);
        for (who, status, code) in [
            (As::Nobody, 401, "not_authenticated"),
            (As::Session("joe"), 403, "admin_required"),
        ] {
            let a = match &body {
                Some(b) => api.json_as(method(route.verb), &path, who, b.clone()).await,
                None => api.call(method(route.verb), &path, who).await,
            };
            match route.access {
                Access::Admin => assert_eq!(refused(&a, status), code, "{path}"),
                Access::Public => assert_eq!(a.status, 200, "{path}"),
            }
        }
        let wrong = api
            .request(method(route.verb), &path, As::Nobody)
            .header("authorization", "Bearer s3cret-admin-tokeX");
        let a = send(wrong.body(full("")).unwrap()).await;
        if route.access == Access::Admin {
            assert_eq!(a.status, 401, "{path}");
        }
    }
    // Nothing was written by the refused calls.
    let audit = ok(&api.get("/api/v1/audit").await, 200);
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == "seed"));
}

#[tokio::test]
async fn organizations() {
    let api = start().await;
    let created = api
        .post(
            "/api/v1/organizations",
            serde_json::json!({"id": "globex", "name": "Globex"}),
        )
        .await;
    let report = ok(&created, 201);
    assert_eq!(report["command"], "org create");
    assert_eq!(report["outcome"], "created");
    assert_eq!(report["actor"], "api:token");
    let again = api
        .post(
            "/api/v1/organizations",
            serde_json::json!({"id": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(ok(&again, 200)["outcome"], "unchanged");
    // Another name for an existing id is a conflict, not a rename...
    let clash = api
        .post(
            "/api/v1/organizations",
            serde_json::json!({"id": "globex", "name": "Globex Inc"}),
        )
        .await;
    assert_eq!(refused(&clash, 409), "organization_exists");
    assert!(clash.json()["detail"].as_str().unwrap().contains("rename"));
    // ...which PATCH does. An admin session is named by its user.
    let renamed = api
        .json_as(
            Method::PATCH,
            "/api/v1/organizations/globex",
            As::Session("boss"),
            serde_json::json!({"name": "Globex Inc"}),
        )
        .await;
    let renamed = ok(&renamed, 200);
    assert_eq!(
        (renamed["outcome"].as_str(), renamed["actor"].as_str()),
        (Some("updated"), Some("api:boss"))
    );

    let list = ok(&api.get("/api/v1/organizations").await, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "globex"]);
    let one = ok(&api.get("/api/v1/organizations/acme").await, 200);
    assert_eq!(
        (one["name"].as_str(), one["active_members"].as_i64()),
        (Some("Acme"), Some(1))
    );
    assert_eq!(
        refused(&api.get("/api/v1/organizations/nope").await, 404),
        "unknown_organization"
    );

    // Bad bodies.
    for (body, code) in [
        (serde_json::json!({"id": "x"}), "invalid_body"),
        (
            serde_json::json!({"id": "x", "name": "X", "extra": 1}),
            "invalid_body",
        ),
        (serde_json::json!({"id": 7, "name": "X"}), "invalid_body"),
        (serde_json::json!(["x"]), "invalid_body"),
        (
            serde_json::json!({"id": " ", "name": "X"}),
            "empty_argument",
        ),
    ] {
        let a = api.post("/api/v1/organizations", body.clone()).await;
        assert_eq!(refused(&a, 400), code, "{body}");
    }
    let unknown = api
        .post(
            "/api/v1/organizations",
            serde_json::json!({"id": "x", "name": "X", "nmae": "Y"}),
        )
        .await;
    assert!(unknown.json()["detail"]
        .as_str()
        .unwrap()
        .contains("unknown field `nmae`"));
    for raw in ["{\"id\": \"x\",", "", "id=x&name=X"] {
        let a = api
            .post_raw(
                "/api/v1/organizations",
                Some("application/json"),
                full(raw.to_string()),
            )
            .await;
        assert_eq!(refused(&a, 400), "invalid_json", "{raw:?}");
    }
    let body = || full(r#"{"id":"x","name":"X"}"#);
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let a = api.post_raw("/api/v1/organizations", ct, body()).await;
        assert_eq!(refused(&a, 415), "unsupported_media_type", "{ct:?}");
    }
    let charset = api
        .post_raw(
            "/api/v1/organizations",
            Some("Application/JSON; charset=utf-8"),
            body(),
        )
        .await;
    assert_eq!(ok(&charset, 201)["organization"], "x");
}

/// A raw POST: the head, then as many of `chunks` as the server takes (it
/// may answer and close before the body ends); the status line.
async fn raw_post(api: &Api, head: &str, chunks: &[&[u8]]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(api.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    for c in chunks {
        if s.write_all(c).await.is_err() {
            break;
        }
    }
    let mut out = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut out))
        .await
        .expect("no answer")
        .unwrap();
    String::from_utf8_lossy(&out[..n]).into_owned()
}

#[tokio::test]
async fn bodies_past_64_kib_are_refused_declared_or_streamed() {
    let api = start().await;
    let cap = modelgate::admin::api::input::MAX_BODY_BYTES;
    let head = |framing: &str| {
        format!(
            "POST /api/v1/organizations HTTP/1.1\r\nhost: x\r\n\
             authorization: Bearer {ADMIN_TOKEN}\r\ncontent-type: application/json\r\n\
             {framing}\r\n\r\n"
        )
    };
    // A declared length past the cap is refused before the body is read.
    let answer = raw_post(
        &api,
        &head(&format!("content-length: {}", cap + 1)),
        &[br#"{"id":"x","#],
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
    // Chunked, no length: the bounded read stops at the cap.
    let filler = format!("{:x}\r\n{}\r\n", 8192, "n".repeat(8192));
    let mut chunks: Vec<&[u8]> = vec![b"12\r\n{\"id\":\"x\",\"name\":\"\r\n"];
    chunks.extend(std::iter::repeat(filler.as_bytes()).take(cap / 8192 + 1));
    chunks.push(b"0\r\n\r\n");
    let answer = raw_post(&api, &head("transfer-encoding: chunked"), &chunks).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert_eq!(
        refused(&api.get("/api/v1/organizations/x").await, 404),
        "unknown_organization"
    );
    // Just under the cap is fine.
    let name = "n".repeat(cap - 100);
    let fits = api
        .post(
            "/api/v1/organizations",
            serde_json::json!({"id": "x", "name": name}),
        )
        .await;
    assert_eq!(ok(&fits, 201)["organization"], "x");
}

#[tokio::test]
async fn members() {
    let api = start().await;
    let path = "/api/v1/organizations/acme/members";
    let added = ok(
        &api.post(path, serde_json::json!({"user": "ann"})).await,
        201,
    );
    assert_eq!(
        (added["subject"].as_str(), added["role"].as_str()),
        (Some("ann"), Some("member"))
    );
    let promoted = api
        .post(path, serde_json::json!({"user": "ann", "role": "admin"}))
        .await;
    assert_eq!(ok(&promoted, 200)["outcome"], "updated");

    let list = ok(&api.get(path).await, 200);
    let rows: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user_id"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(rows, [("ann", "admin"), ("joe", "member")]);

    for (target, body, status, code) in [
        (
            path,
            serde_json::json!({"user": "ann", "role": "owner"}),
            400,
            "invalid_role",
        ),
        (path, serde_json::json!({"user": ""}), 400, "empty_argument"),
        (
            path,
            serde_json::json!({"role": "admin"}),
            400,
            "invalid_body",
        ),
        (
            path,
            serde_json::json!({"user": "ghost"}),
            404,
            "unknown_user",
        ),
        (
            "/api/v1/organizations/nope/members",
            serde_json::json!({"user": "ann"}),
            404,
            "unknown_organization",
        ),
    ] {
        let a = api.post(target, body.clone()).await;
        assert_eq!(refused(&a, status), code, "{body}");
    }
    assert_eq!(
        refused(&api.get("/api/v1/organizations/nope/members").await, 404),
        "unknown_organization"
    );

    let removed = ok(&api.delete(&format!("{path}/ann")).await, 200);
    assert_eq!(
        (removed["command"].as_str(), removed["outcome"].as_str()),
        (Some("member remove"), Some("deactivated"))
    );
    assert_eq!(
        ok(&api.delete(&format!("{path}/ann")).await, 200)["outcome"],
        "unchanged"
    );
    assert_eq!(
        refused(&api.delete(&format!("{path}/boss")).await, 404),
        "not_a_member"
    );
    assert_eq!(
        refused(&api.delete(&format!("{path}/%FF")).await, 400),
        "invalid_parameter"
    );
    // DELETE takes no query parameters.
    assert_eq!(
        refused(&api.delete(&format!("{path}/ann?force=1")).await, 400),
        "invalid_parameter"
    );
}

#[tokio::test]
async fn models_with_slashes_and_colons_in_their_ids() {
    let api = start().await;
    let path = "/api/v1/organizations/acme/models";
    let id = "meta-llama/llama-3.1-70b:free";
    // Not in any list the gate has seen: refused as a possible typo...
    let unknown = api.post(path, serde_json::json!({"model": id})).await;
    assert_eq!(refused(&unknown, 422), "unknown_model");
    // ...unless forced.
    let enabled = ok(
        &api.post(path, serde_json::json!({"model": id, "force": true}))
            .await,
        201,
    );
    assert_eq!(enabled["subject"].as_str(), Some(id));
    assert!(enabled["note"].as_str().unwrap().contains("--force"));
    // A preset grants nothing; the report says so.
    let preset = ok(
        &api.post(path, serde_json::json!({"model": "acme-writer"}))
            .await,
        201,
    );
    assert!(preset["note"].as_str().unwrap().contains("preset"));
    let list = ok(&api.get(path).await, 200);
    let models: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model_id"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["acme-writer", id, "openai/gpt-4o"]);
    assert_eq!(list[2]["name"], "GPT-4o");

    // The path form: one segment, `/` as %2F; `:` either way.
    let gone = ok(
        &api.delete(&format!("{path}/meta-llama%2Fllama-3.1-70b:free"))
            .await,
        200,
    );
    assert_eq!(
        (gone["subject"].as_str(), gone["outcome"].as_str()),
        (Some(id), Some("deactivated"))
    );
    assert_eq!(
        ok(
            &api.delete(&format!("{path}/meta-llama%2Fllama-3.1-70b%3Afree"))
                .await,
            200
        )["outcome"],
        "unchanged"
    );
    // The query form.
    let gone = ok(
        &api.delete(&format!("{path}?model=openai%2Fgpt-4o")).await,
        200,
    );
    assert_eq!(gone["subject"], "openai/gpt-4o");

    // A raw `/` makes a path no route has; the 404 says how to encode.
    let raw = api.delete(&format!("{path}/openai/gpt-4o")).await;
    assert_eq!(refused(&raw, 404), "not_found");
    assert!(raw.json()["detail"].as_str().unwrap().contains("%2F"));
    for (target, status, code) in [
        (format!("{path}/never-enabled"), 404, "model_not_enabled"),
        (format!("{path}?model=never"), 404, "model_not_enabled"),
        (path.to_string(), 400, "invalid_parameter"),
        (format!("{path}?model=x&model=y"), 400, "invalid_parameter"),
        (format!("{path}?modle=x"), 400, "invalid_parameter"),
        (format!("{path}/%E2%28"), 400, "invalid_parameter"),
        (
            "/api/v1/organizations/nope/models/x".to_string(),
            404,
            "unknown_organization",
        ),
    ] {
        assert_eq!(
            refused(&api.delete(&target).await, status),
            code,
            "{target}"
        );
    }
    for (body, status, code) in [
        (serde_json::json!({"model": ""}), 400, "empty_argument"),
        (serde_json::json!({"models": ["x"]}), 400, "invalid_body"),
        (serde_json::json!({"model": null}), 400, "invalid_body"),
    ] {
        assert_eq!(
            refused(&api.post(path, body.clone()).await, status),
            code,
            "{body}"
        );
    }
    assert_eq!(
        refused(&api.get("/api/v1/organizations/nope/models").await, 404),
        "unknown_organization"
    );
}

/// The CLI's `access --json` for the same question, from the real binary.
fn cli_access(db: &Path, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .env_clear()
        .arg("--db")
        .arg(db)
        .arg("access")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn explain_answers_what_the_cli_answers() {
    let api = start().await;
    for (query, args, allowed) in [
        (
            "user=joe&model=acme-writer",
            &["joe", "acme-writer"][..],
            Some(true),
        ),
        (
            "user=joe&model=openai%2Fgpt-4o",
            &["joe", "openai/gpt-4o"],
            Some(true),
        ),
        ("user=joe&model=claude-3", &["joe", "claude-3"], Some(false)),
        (
            "user=ann&model=openai%2Fgpt-4o",
            &["ann", "openai/gpt-4o"],
            Some(false),
        ),
        ("user=joe", &["joe"], None),
        ("user=ghost", &["ghost"], None),
    ] {
        let a = ok(&api.get(&format!("/api/v1/explain?{query}")).await, 200);
        assert_eq!(a, cli_access(&api.db, args), "{query}");
        if let Some(allowed) = allowed {
            assert_eq!(
                a["model"]["decision"]["decision"] == "allowed",
                allowed,
                "{query}"
            );
        }
    }
    let through_preset = ok(
        &api.get("/api/v1/explain?user=joe&model=acme-writer").await,
        200,
    );
    assert_eq!(
        through_preset["model"]["explanation"],
        "acme-writer → openai/gpt-4o (root) → permitted by organization acme"
    );
    for query in [
        "",
        "?model=x",
        "?user=",
        "?user=joe&user=ann",
        "?user=joe&org=x",
    ] {
        let a = api.get(&format!("/api/v1/explain{query}")).await;
        let code = refused(&a, 400);
        assert!(
            code == "invalid_parameter" || code == "empty_argument",
            "{query}: {code}"
        );
    }
}

#[tokio::test]
async fn audit_pages_newest_first() {
    let api = start().await;
    api.post(
        "/api/v1/organizations/acme/members",
        serde_json::json!({"user": "ann"}),
    )
    .await;
    let log = ok(&api.get("/api/v1/audit?limit=2").await, 200);
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0]["subject"].as_str(), log[0]["actor"].as_str()),
        (Some("ann"), Some("api:token"))
    );
    assert!(log[0]["id"].as_i64() > log[1]["id"].as_i64());
    assert_eq!(
        ok(&api.get("/api/v1/audit").await, 200)
            .as_array()
            .unwrap()
            .len(),
        // The seed's organization, membership and link, and ann.
        4
    );
    for bad in ["0", "1001", "ten", "-1"] {
        let a = api.get(&format!("/api/v1/audit?limit={bad}")).await;
        assert_eq!(refused(&a, 400), "invalid_parameter", "{bad}");
    }
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes() {
    let api = start().await;
    let a = api
        .call(Method::PUT, "/api/v1/organizations/acme/models", As::Token)
        .await;
    assert_eq!(refused(&a, 405), "method_not_allowed");
    assert_eq!(a.headers["allow"], "GET, POST, DELETE");
    let a = api.call(Method::POST, "/api/v1/audit", As::Nobody).await;
    assert_eq!(refused(&a, 405), "method_not_allowed");
    assert_eq!(a.headers["allow"], "GET");
    for path in [
        "/api/v1/nope",
        "/api/v1/organizations/",
        "/api/v2/audit",
        "/api/",
    ] {
        assert_eq!(refused(&api.get(path).await, 404), "not_found", "{path}");
    }
    // The listener's own routes behave as before.
    assert_eq!(
        ok(&api.call(Method::GET, "/health", As::Nobody).await, 200)["status"],
        "ok"
    );
    let post = api.call(Method::POST, "/health", As::Nobody).await;
    assert_eq!(refused(&post, 405), "method_not_allowed");
}

#[tokio::test]
async fn an_unreadable_database_is_503_in_the_error_shape() {
    let api = start().await;
    std::fs::remove_file(&api.db).unwrap();
    for path in [
        "/api/v1/organizations",
        "/api/v1/audit",
        "/api/v1/explain?user=joe&model=x",
    ] {
        let a = api.get(path).await;
        assert_eq!(refused(&a, 503), "database_not_found", "{path}");
        assert_eq!(a.json()["error"]["type"], "service_unavailable");
    }
    let a = api
        .post(
            "/api/v1/organizations",
            serde_json::json!({"id": "x", "name": "X"}),
        )
        .await;
    assert_eq!(refused(&a, 503), "database_not_found");
    // Authentication needs no database for the token, and the document none.
    assert_eq!(
        api.call(Method::GET, "/api/v1/openapi.json", As::Nobody)
            .await
            .status,
        200
    );
}

/// The audit rows of a database, without what differs between two runs
/// of the same operations: ids, times, the actor (returned apart).
fn audit_rows(db: &Path) -> (Vec<serde_json::Value>, Vec<Option<String>>) {
    let log = modelgate::ops::report::audit(db, 1000).unwrap().0;
    let mut rows = Vec::new();
    let mut actors = Vec::new();
    for e in log.into_iter().rev() {
        actors.push(e.actor.clone());
        let strip = |v: Option<serde_json::Value>| {
            v.map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    for k in ["id", "joined_at", "created_at", "updated_at"] {
                        o.remove(k);
                    }
                }
                v
            })
        };
        rows.push(serde_json::json!({
            "table": e.table_name,
            "action": e.action,
            "organization": e.organization_id,
            "subject": e.subject,
            "old": strip(e.old_values),
            "new": strip(e.new_values),
        }));
    }
    (rows, actors)
}

#[tokio::test]
async fn the_api_and_the_cli_write_identical_audit_rows() {
    let api = start().await;
    let cli_dir = tempfile::tempdir().unwrap();
    let cli_db = cli_dir.path().join("webui.db");
    seed(&cli_db);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .env_clear()
            .arg("--db")
            .arg(&cli_db)
            .args(args)
            .args(["--actor", "carol", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let same = |cli: serde_json::Value, api: Answer| {
        let mut api = api.json();
        assert_eq!(api["actor"], "api:token");
        api["actor"] = cli["actor"].clone();
        assert_eq!(api, cli, "the same WriteReport but the actor");
    };

    let members = "/api/v1/organizations/acme/members";
    let models = "/api/v1/organizations/acme/models";
    same(
        cli(&["org", "create", "globex", "--name", "Globex"]),
        api.post(
            "/api/v1/organizations",
            serde_json::json!({"id": "globex", "name": "Globex"}),
        )
        .await,
    );
    same(
        cli(&["member", "add", "acme", "ann"]),
        api.post(members, serde_json::json!({"user": "ann"})).await,
    );
    same(
        cli(&["member", "add", "acme", "ann", "--role", "admin"]),
        api.post(members, serde_json::json!({"user": "ann", "role": "admin"}))
            .await,
    );
    same(
        cli(&["member", "remove", "acme", "joe"]),
        api.delete(&format!("{members}/joe")).await,
    );
    same(
        cli(&["member", "add", "acme", "joe"]),
        api.post(members, serde_json::json!({"user": "joe"})).await,
    );
    same(
        cli(&[
            "model",
            "enable",
            "acme",
            "meta-llama/llama-3.1-70b:free",
            "--force",
        ]),
        api.post(
            models,
            serde_json::json!({"model": "meta-llama/llama-3.1-70b:free", "force": true}),
        )
        .await,
    );
    same(
        cli(&["model", "disable", "acme", "openai/gpt-4o"]),
        api.delete(&format!("{models}/openai%2Fgpt-4o")).await,
    );
    same(
        cli(&["model", "enable", "acme", "openai/gpt-4o"]),
        api.post(models, serde_json::json!({"model": "openai/gpt-4o"}))
            .await,
    );

    let org = "/api/v1/organizations/acme";
    same(
        cli(&["org", "rename", "acme", "--name", "Acme Inc"]),
        api.json_as(
            Method::PATCH,
            org,
            As::Token,
            serde_json::json!({"name": "Acme Inc"}),
        )
        .await,
    );
    same(
        cli(&["org", "mode", "acme", "shadow"]),
        api.json_as(
            Method::PUT,
            &format!("{org}/mode"),
            As::Token,
            serde_json::json!({"mode": "shadow"}),
        )
        .await,
    );
    same(
        cli(&["model", "enable", "acme", "anthropic/*"]),
        api.post(models, serde_json::json!({"model": "anthropic/*"}))
            .await,
    );
    same(
        cli(&["model", "deny", "acme", "anthropic/claude-3-opus"]),
        api.post(
            models,
            serde_json::json!({"model": "anthropic/claude-3-opus", "effect": "deny"}),
        )
        .await,
    );
    same(
        cli(&["org", "bind-group", "acme", "engineering"]),
        api.post(
            &format!("{org}/groups"),
            serde_json::json!({"group": "engineering"}),
        )
        .await,
    );
    same(
        cli(&["org", "unbind-group", "acme", "g-eng"]),
        api.delete(&format!("{org}/groups/g-eng")).await,
    );
    same(
        cli(&["member", "remove", "acme", "a@x"]),
        api.delete(&format!("{members}/a%40x")).await,
    );

    let (cli_rows, cli_actors) = audit_rows(&cli_db);
    let (api_rows, api_actors) = audit_rows(&api.db);
    assert_eq!(api_rows, cli_rows);
    let written = |actors: &[Option<String>]| -> Vec<String> {
        actors
            .iter()
            .flatten()
            .filter(|a| *a != "seed")
            .cloned()
            .collect()
    };
    // Membership add, role change, remove, re-add; two model enables, a
    // disable; an organization created, renamed and put in shadow mode; a
    // glob, a deny, a group bound and unbound; a member removed by email.
    assert_eq!(written(&cli_actors), vec!["carol"; 15]);
    assert_eq!(written(&api_actors), vec!["api:token"; 15]);
}

#[tokio::test]
async fn the_document_lists_every_route_the_router_serves() {
    let api = start().await;
    let a = api
        .call(Method::GET, "/api/v1/openapi.json", As::Nobody)
        .await;
    let doc = ok(&a, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (template, item) in paths {
        let methods: Vec<&String> = item.as_object().unwrap().keys().collect();
        for m in &methods {
            documented += 1;
            let verb = match m.as_str() {
                "get" => Verb::Get,
                "post" => Verb::Post,
                "put" => Verb::Put,
                "patch" => Verb::Patch,
                "delete" => Verb::Delete,
                other => panic!("{other}"),
            };
            // Served: a good request is answered by its operation.
            let (path, body) = good_request(template, verb);
            let a = match body {
                Some(b) => api.json_as(method(verb), &path, As::Token, b).await,
                None => api.call(method(verb), &path, As::Token).await,
            };
            assert!(
                a.status.is_success(),
                "{m} {path}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
            let op = &item[m.as_str()];
            assert!(op["responses"]["401"].is_object() || op["security"] == serde_json::json!([]));
        }
        // And nothing else on that path.
        let a = api
            .call(Method::OPTIONS, &sample_path(template), As::Token)
            .await;
        assert_eq!(refused(&a, 405), "method_not_allowed");
        let mut allow: Vec<String> = a.headers["allow"]
            .to_str()
            .unwrap()
            .split(", ")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        allow.sort();
        let mut methods: Vec<String> = methods.into_iter().cloned().collect();
        methods.sort();
        assert_eq!(allow, methods, "{template}");
    }
    assert_eq!(documented, ROUTES.len());
}

#[tokio::test]
async fn rules_modes_and_group_bindings() {
    let api = start().await;
    let org = "/api/v1/organizations/acme";
    let models = format!("{org}/models");
    // A glob allow, a deny beside it, listed with their effect and kind.
    let glob = api
        .post(&models, serde_json::json!({"model": "anthropic/*"}))
        .await;
    assert_eq!(ok(&glob, 201)["outcome"], "created");
    let deny = api
        .post(
            &models,
            serde_json::json!({"model": "anthropic/claude-3-opus", "effect": "deny"}),
        )
        .await;
    assert_eq!(ok(&deny, 201)["command"], "model deny");
    let listed = ok(&api.get(&models).await, 200);
    let rules: Vec<(String, String, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["model_id"].as_str().unwrap().to_owned(),
                m["effect"].as_str().unwrap().to_owned(),
                m["pattern"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("anthropic/*".into(), "allow".into(), true),
            ("anthropic/claude-3-opus".into(), "deny".into(), false),
            ("openai/gpt-4o".into(), "allow".into(), false),
        ]
    );
    // A pattern in the path: `/` encoded, `*` as is.
    let removed = api.delete(&format!("{models}/anthropic%2F*")).await;
    assert_eq!(ok(&removed, 200)["outcome"], "deactivated");
    for (body, status, code) in [
        (
            serde_json::json!({"model": "openai/\\x"}),
            400,
            "invalid_pattern",
        ),
        (
            serde_json::json!({"model": "x", "effect": "maybe"}),
            400,
            "invalid_body",
        ),
        (
            serde_json::json!({"model": "x", "force": "yes"}),
            400,
            "invalid_body",
        ),
        (serde_json::json!({"model": ""}), 400, "empty_argument"),
    ] {
        let a = api.post(&models, body.clone()).await;
        assert_eq!(refused(&a, status), code, "{body}");
    }

    // Modes.
    let mode_path = format!("{org}/mode");
    let mode = |body: serde_json::Value| api.json_as(Method::PUT, &mode_path, As::Token, body);
    let shadow = ok(&mode(serde_json::json!({"mode": "shadow"})).await, 200);
    assert_eq!(
        (shadow["outcome"].as_str(), shadow["subject"].as_str()),
        (Some("updated"), Some("shadow"))
    );
    assert_eq!(ok(&api.get(org).await, 200)["mode"], "shadow");
    for body in [
        serde_json::json!({"mode": "off"}),
        serde_json::json!({}),
        serde_json::json!({"mode": "enforce", "why": "x"}),
    ] {
        assert_eq!(
            refused(&mode(body.clone()).await, 400),
            "invalid_body",
            "{body}"
        );
    }
    let unknown = api
        .json_as(
            Method::PUT,
            "/api/v1/organizations/nope/mode",
            As::Token,
            serde_json::json!({"mode": "enforce"}),
        )
        .await;
    assert_eq!(refused(&unknown, 404), "unknown_organization");

    // Group bindings: by name, listed with the group's name and members.
    let groups = format!("{org}/groups");
    let bound = api
        .post(&groups, serde_json::json!({"group": "engineering"}))
        .await;
    let bound = ok(&bound, 201);
    assert_eq!(bound["subject"], "g-eng");
    let listed = ok(&api.get(&groups).await, 200);
    assert_eq!(listed[0]["group_name"], "engineering");
    assert_eq!(listed[0]["members"], 1);
    // ann is in the group: explain says so, by email too.
    let why = ok(&api.get("/api/v1/explain?user=a%40x").await, 200);
    assert_eq!(why["user_id"], "ann");
    assert_eq!(why["memberships"][0]["group_id"], "g-eng");
    assert_eq!(why["shadow_organizations"][0], "acme");
    for (body, status, code) in [
        (serde_json::json!({"group": "nobody"}), 404, "unknown_group"),
        (
            serde_json::json!({"group": "twins"}),
            409,
            "ambiguous_group",
        ),
        (serde_json::json!({"group": 7}), 400, "invalid_body"),
    ] {
        let a = api.post(&groups, body.clone()).await;
        assert_eq!(refused(&a, status), code, "{body}");
    }
    let unbound = api.delete(&format!("{groups}/engineering")).await;
    assert_eq!(ok(&unbound, 200)["outcome"], "deactivated");
    let never = api.delete(&format!("{groups}/g-t1")).await;
    assert_eq!(refused(&never, 404), "group_not_bound");
}
