//! The management API over a PostgreSQL store: it writes (and explains
//! from) the database the live store reads, with the caller as the audit
//! actor, and the live store sees each write through the listener.

mod common;
mod pg_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request};
use tokio::net::TcpListener;

use common::*;
use modelgate::admin::{self, AdminState};
use modelgate::proxy::body::full;
use pg_support::{PgServer, DATABASE};

const OPEN_WEBUI_DDL: &str = include_str!("pg_support/open_webui_0_12_4.sql");
const TOKEN: &str = "pg-admin-token";

const ROWS: &str = r#"
INSERT INTO "user" (id, name, email, role) VALUES
  ('boss', 'Boss', 'b@x', 'admin'), ('ann', 'Ann', 'a@x', 'user'), ('joe', 'Joe', 'j@x', 'user');
INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active) VALUES
  ('openai/gpt-4o', NULL, NULL, 'GPT-4o', '{}', '{}', true),
  ('claude', NULL, NULL, 'Claude', '{}', '{}', true),
  ('acme-writer', 'joe', 'openai/gpt-4o', 'Acme Writer', '{}', '{}', true);
INSERT INTO "group" (id, user_id, name, description, created_at, updated_at) VALUES
  ('g-eng', 'boss', 'engineering', '', 0, 0);
INSERT INTO group_member (id, group_id, user_id) VALUES ('gm1', 'g-eng', 'joe');
"#;

struct Api {
    addr: std::net::SocketAddr,
    store: modelgate::store::AccessStore,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Answer {
        let b = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("authorization", format!("Bearer {TOKEN}"));
        let req = match body {
            Some(json) => b
                .header("content-type", "application/json")
                .body(full(json.to_string())),
            None => b.body(full("")),
        };
        send(req.unwrap()).await
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        status: u16,
    ) -> serde_json::Value {
        let a = self.call(method, path, body).await;
        assert_eq!(
            a.status.as_u16(),
            status,
            "{path}: {}",
            String::from_utf8_lossy(&a.body)
        );
        a.json()
    }
}

async fn start(pg: &PgServer, dir: &Path) -> Api {
    pg.psql(DATABASE, OPEN_WEBUI_DDL);
    pg.psql(DATABASE, ROWS);
    let url = pg.url();
    let Ok(modelgate::store::Database::Postgres(target)) = modelgate::store::Database::parse(&url)
    else {
        panic!("a PostgreSQL URL");
    };
    let mut client = modelgate::store::pg::connect(&target).await.unwrap();
    modelgate::store::pg::ensure_schema(&mut client)
        .await
        .unwrap();
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let config = test_config(closed_port().await, Path::new(&url), |f| {
        f.admin.token_file = Some(token_file.clone())
    });
    assert!(
        matches!(
            config.startup.database,
            modelgate::store::Database::Postgres(_)
        ),
        "{:?}",
        config.startup.database
    );
    let store = modelgate::store::AccessStore::open(config.startup.store.clone());
    let state = Arc::new(AdminState {
        config: Arc::new(arc_swap::ArcSwap::from_pointee(config)),
        store: store.clone(),
        metrics: Arc::new(modelgate::metrics::Metrics::new()),
        started: Instant::now(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(admin::serve(listener, state, std::future::pending()));
    eventually(Duration::from_secs(5), "listener listening", || async {
        store
            .stats()
            .listener
            .is_some_and(|l| l.state == modelgate::store::ListenerState::Listening)
    })
    .await;
    Api { addr, store }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_writes_and_explains_on_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let api = start(&pg, dir.path()).await;
    let orgs = "/api/v1/organizations";

    let created = api
        .expect(
            Method::POST,
            orgs,
            Some(serde_json::json!({"id": "acme", "name": "Acme"})),
            201,
        )
        .await;
    assert_eq!(created["outcome"], "created");
    assert_eq!(created["actor"], "api:token");
    api.expect(
        Method::POST,
        orgs,
        Some(serde_json::json!({"id": "acme", "name": "Other"})),
        409,
    )
    .await;
    api.expect(
        Method::POST,
        "/api/v1/organizations/acme/members",
        Some(serde_json::json!({"user": "a@x"})),
        201,
    )
    .await;
    api.expect(
        Method::POST,
        "/api/v1/organizations/acme/members",
        Some(serde_json::json!({"user": "ghost"})),
        404,
    )
    .await;
    api.expect(
        Method::POST,
        "/api/v1/organizations/acme/models",
        Some(serde_json::json!({"model": "openai/gpt-4o"})),
        201,
    )
    .await;
    let typo = api
        .expect(
            Method::POST,
            "/api/v1/organizations/acme/models",
            Some(serde_json::json!({"model": "openai/gtp-4o"})),
            422,
        )
        .await;
    assert!(typo.to_string().contains("openai/gpt-4o"), "{typo}");
    api.expect(
        Method::POST,
        "/api/v1/organizations/acme/models",
        Some(serde_json::json!({"model": "claude", "effect": "deny"})),
        201,
    )
    .await;
    let bound = api
        .expect(
            Method::POST,
            "/api/v1/organizations/acme/groups",
            Some(serde_json::json!({"group": "engineering"})),
            201,
        )
        .await;
    assert_eq!(bound["subject"], "g-eng");

    // The live store reads what the API wrote (through the listener).
    eventually(Duration::from_secs(1), "store sees the writes", || async {
        api.store
            .decide("joe", "acme-writer")
            .await
            .is_ok_and(|d| d.is_allowed())
    })
    .await;

    let explained = api
        .expect(
            Method::GET,
            "/api/v1/explain?user=joe&model=acme-writer",
            None,
            200,
        )
        .await;
    assert_eq!(explained["organizations"], serde_json::json!(["acme"]));
    assert_eq!(explained["memberships"][0]["group_id"], "g-eng");
    assert!(
        explained["model"]["explanation"]
            .as_str()
            .unwrap()
            .contains("acme-writer → openai/gpt-4o (root) → permitted by organization acme"),
        "{explained}"
    );
    let denied = api
        .expect(
            Method::GET,
            "/api/v1/explain?user=ann&model=claude",
            None,
            200,
        )
        .await;
    assert_eq!(
        denied["model"]["decision"]["decision"], "denied",
        "{denied}"
    );

    let members = api
        .expect(Method::GET, "/api/v1/organizations/acme/members", None, 200)
        .await;
    assert_eq!(members[0]["user_id"], "ann");
    assert_eq!(members[0]["is_active"], true);
    api.expect(
        Method::DELETE,
        "/api/v1/organizations/acme/members/ann",
        None,
        200,
    )
    .await;
    api.expect(
        Method::DELETE,
        "/api/v1/organizations/acme/models/openai%2Fgpt-4o",
        None,
        200,
    )
    .await;
    eventually(Duration::from_secs(1), "store sees the removal", || async {
        api.store
            .decide("joe", "acme-writer")
            .await
            .is_ok_and(|d| !d.is_allowed())
    })
    .await;

    let log = api
        .expect(Method::GET, "/api/v1/audit?limit=20", None, 200)
        .await;
    let rows: Vec<(&str, &str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["table_name"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("organizations", "INSERT", "api:token"),
            ("organization_members", "INSERT", "api:token"),
            ("organization_models", "INSERT", "api:token"),
            ("organization_model_rules", "INSERT", "api:token"),
            ("organization_groups", "INSERT", "api:token"),
            ("organization_members", "UPDATE", "api:token"),
            ("organization_models", "UPDATE", "api:token"),
        ]
    );
}
