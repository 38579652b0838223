//! Two `modelgate serve` processes on one PostgreSQL database, both with
//! warm caches: every kind of revocation (the CLI's, a raw SQL write, an
//! Open WebUI role or API key or preset change) is refused by both within
//! a second; a stopped server is a 503 and a failed readiness within a
//! second, and after a restart both recover and still hear revocations.
//! The revocation latency (commit → both refuse) is measured and printed.

mod common;
mod pg_support;

use std::process::Command;
use std::time::{Duration, Instant};

use common::serve::{Serve, JSON_LOG};
use common::{eventually, get, send, FakeUpstream, Reply, SECRET};
use http::{Method, Request};
use modelgate::proxy::body::full;
use pg_support::{PgServer, DATABASE};

const OPEN_WEBUI_DDL: &str = include_str!("pg_support/open_webui_0_12_4.sql");
const WITHIN: Duration = Duration::from_secs(1);
/// Revocations timed for the latency figures.
const TIMED: usize = 50;

const ROWS: &str = r#"
INSERT INTO "user" (id, name, email, role) VALUES
  ('alice', 'Alice', 'alice@x', 'user'), ('bob', 'Bob', 'bob@x', 'user'),
  ('dave', 'Dave', 'dave@x', 'user'), ('erin', 'Erin', 'erin@x', 'user'),
  ('kim', 'Kim', 'kim@x', 'user'), ('root', 'Root', 'root@x', 'admin');
INSERT INTO api_key (id, user_id, key, expires_at, created_at, updated_at) VALUES
  ('k1', 'kim', 'sk-kim', NULL, 0, 0);
INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active) VALUES
  ('gpt-4o', NULL, NULL, 'GPT-4o', '{}', '{}', true),
  ('claude', NULL, NULL, 'Claude', '{}', '{}', true),
  ('llama', NULL, NULL, 'Llama', '{}', '{}', true),
  ('helper', 'alice', 'gpt-4o', 'Helper', '{}', '{}', true);
INSERT INTO organizations (id, name, created_at) VALUES ('o', 'O', 0);
INSERT INTO organization_members (id, organization_id, user_id, role, is_active, joined_at)
  SELECT 'm-' || id, 'o', id, 'member', true, 0 FROM "user";
INSERT INTO organization_models (id, organization_id, model_id, is_active)
  VALUES ('l-gpt', 'o', 'gpt-4o', true), ('l-claude', 'o', 'claude', true),
         ('l-keep', 'o', 'keep', true);
INSERT INTO organization_models (id, organization_id, model_id, is_active)
  SELECT 'l-lat-' || i, 'o', 'lat-' || i, true FROM generate_series(0, 99) i;
"#;

fn token(user: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"id": user, "typ": "session"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The status of a chat completion for `model` with `credential` (a
/// session token or an API key).
async fn status(serve: &Serve, credential: &str, model: &str) -> u16 {
    let req = Request::builder()
        .method(Method::POST)
        .uri(serve.url("/api/chat/completions"))
        .header("authorization", format!("Bearer {credential}"))
        .header("content-type", "application/json")
        .body(full(
            serde_json::json!({"model": model, "messages": []}).to_string(),
        ))
        .unwrap();
    send(req).await.status.as_u16()
}

/// Both replicas answer `want` for (credential, model), twice each: the
/// second answer comes from a warm cache.
async fn both_answer(replicas: &[Serve; 2], credential: &str, model: &str, want: u16) {
    for serve in replicas {
        for _ in 0..2 {
            assert_eq!(status(serve, credential, model).await, want, "{model}");
        }
    }
}

/// Polls both replicas until each refuses (401/403); the time it took
/// for the slower one, failing past `within`.
async fn both_refuse_within(
    replicas: &[Serve; 2],
    credential: &str,
    model: &str,
    since: Instant,
    within: Duration,
    what: &str,
) -> Duration {
    let mut refused = [false, false];
    loop {
        for (i, serve) in replicas.iter().enumerate() {
            if !refused[i] {
                refused[i] = matches!(status(serve, credential, model).await, 401 | 403);
            }
        }
        let took = since.elapsed();
        if refused == [true, true] {
            return took;
        }
        assert!(
            took < within,
            "{what}: refused by {refused:?} after {took:?}"
        );
    }
}

fn cli(url: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .env_clear()
        .arg("--db")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn listening(serve: &Serve) {
    eventually(Duration::from_secs(10), "listener listening", || async {
        serve
            .metrics()
            .await
            .lines()
            .any(|l| l == r#"modelgate_policy_listener_state{state="listening"} 1"#)
    })
    .await;
}

/// `/health/ready`'s status and its store check.
async fn ready(serve: &Serve) -> (u16, String) {
    let answer = get(&format!("http://{}/health/ready", serve.admin)).await;
    let store = answer.json()["checks"]["store"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (answer.status.as_u16(), store)
}

fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_refuse_every_revocation_within_a_second() {
    let Some(pg) = PgServer::start() else { return };
    pg.psql(DATABASE, OPEN_WEBUI_DDL);
    let url = pg.url();
    cli(&url, &["init"]);
    pg.psql(DATABASE, ROWS);
    let list = serde_json::json!({"object": "list", "data": [
        {"id": "gpt-4o", "object": "model"}, {"id": "brand-new", "object": "model"}]});
    let up = FakeUpstream::builder()
        .route(
            "/api/models",
            Reply::Fixed(
                http::StatusCode::OK,
                vec![("content-type", "application/json".into())],
                list.to_string().into(),
            ),
        )
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modelgate.toml");
    std::fs::write(&config, JSON_LOG).unwrap();
    let egress = format!("http://{}", up.addr);
    let env = [
        ("MODELGATE_DATABASE", url.as_str()),
        ("WEBUI_SECRET_KEY", SECRET),
        // Readiness checks the egress upstream too: the fake, not the default.
        ("MODELGATE_EGRESS_UPSTREAM", egress.as_str()),
    ];
    let replicas = [
        Serve::start(&config, up.addr, &env),
        Serve::start(&config, up.addr, &env),
    ];
    for serve in &replicas {
        listening(serve).await;
        assert_eq!(ready(serve).await, (200, "ok".to_string()));
    }
    let (alice, bob, dave, erin) = (token("alice"), token("bob"), token("dave"), token("erin"));

    // An admin's model list through a replica is recorded in PostgreSQL,
    // so `model enable` knows the new id without --force.
    let models = Request::builder()
        .uri(replicas[0].url("/api/models"))
        .header("authorization", format!("Bearer {}", token("root")))
        .body(full(""))
        .unwrap();
    assert_eq!(send(models).await.status, 200);
    let known = || {
        pg.psql(
            DATABASE,
            "SELECT coalesce(string_agg(model_id, ',' ORDER BY model_id), '') \
             FROM known_models WHERE source = 'ingress'",
        )
    };
    eventually(Duration::from_secs(5), "the list recorded", || async {
        known() == "brand-new,gpt-4o"
    })
    .await;
    cli(&url, &["model", "enable", "o", "brand-new", "--actor", "t"]);

    // Each kind of revocation, both caches warm before it.
    both_answer(&replicas, &alice, "claude", 200).await;
    let t = Instant::now();
    cli(&url, &["model", "disable", "o", "claude", "--actor", "t"]);
    both_refuse_within(&replicas, &alice, "claude", t, WITHIN, "model disable").await;

    both_answer(&replicas, &bob, "gpt-4o", 200).await;
    let t = Instant::now();
    cli(&url, &["member", "remove", "o", "bob", "--actor", "t"]);
    both_refuse_within(&replicas, &bob, "gpt-4o", t, WITHIN, "member remove").await;

    both_answer(&replicas, &dave, "gpt-4o", 200).await;
    let t = Instant::now();
    pg.psql(
        DATABASE,
        "UPDATE organization_members SET is_active = false WHERE user_id = 'dave'",
    );
    both_refuse_within(&replicas, &dave, "gpt-4o", t, WITHIN, "raw SQL").await;

    both_answer(&replicas, &erin, "gpt-4o", 200).await;
    let t = Instant::now();
    pg.psql(
        DATABASE,
        "UPDATE \"user\" SET role = 'pending' WHERE id = 'erin'",
    );
    both_refuse_within(&replicas, &erin, "gpt-4o", t, WITHIN, "role pending").await;

    both_answer(&replicas, "sk-kim", "gpt-4o", 200).await;
    let t = Instant::now();
    pg.psql(DATABASE, "DELETE FROM api_key WHERE key = 'sk-kim'");
    both_refuse_within(&replicas, "sk-kim", "gpt-4o", t, WITHIN, "api key deleted").await;

    both_answer(&replicas, &alice, "helper", 200).await;
    let t = Instant::now();
    pg.psql(
        DATABASE,
        "UPDATE model SET base_model_id = 'llama' WHERE id = 'helper'",
    );
    both_refuse_within(&replicas, &alice, "helper", t, WITHIN, "base_model_id").await;

    // The latency, commit to both refusing, over many revocations.
    let (mut writer, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut took = Vec::with_capacity(TIMED);
    for i in 0..TIMED {
        let model = format!("lat-{i}");
        both_answer(&replicas, &alice, &model, 200).await;
        let tx = writer.transaction().await.unwrap();
        tx.execute(
            "UPDATE organization_models SET is_active = false WHERE model_id = $1",
            &[&model],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let t = Instant::now();
        took.push(both_refuse_within(&replicas, &alice, &model, t, WITHIN, &model).await);
    }
    took.sort();
    println!(
        "revocation latency, commit to both replicas refusing, over {TIMED} revocations: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&took, 50.0).as_secs_f64() * 1e3,
        percentile(&took, 99.0).as_secs_f64() * 1e3,
        took[TIMED - 1].as_secs_f64() * 1e3,
    );
    for serve in &replicas {
        let text = serve.metrics().await;
        assert!(counter(&text, "modelgate_policy_listener_notifications_total") >= 56.0);
        assert_eq!(
            counter(&text, "modelgate_policy_listener_missed_changes_total"),
            0.0
        );
    }

    // The server goes away: refusals (503) and failed readiness, at once.
    both_answer(&replicas, &alice, "gpt-4o", 200).await;
    let mut pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let t = Instant::now();
    for serve in &replicas {
        eventually(WITHIN, "503 while the server is down", || async {
            status(serve, &alice, "gpt-4o").await == 503
        })
        .await;
        eventually(WITHIN, "not ready while the server is down", || async {
            let (code, store) = ready(serve).await;
            code == 503 && store != "ok"
        })
        .await;
    }
    assert!(t.elapsed() < 2 * WITHIN, "{:?}", t.elapsed());

    // Back: both recover without a restart, and still hear revocations.
    pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    for serve in &replicas {
        eventually(Duration::from_secs(10), "answers again", || async {
            status(serve, &alice, "gpt-4o").await == 200
        })
        .await;
        listening(serve).await;
        eventually(Duration::from_secs(10), "ready again", || async {
            ready(serve).await == (200, "ok".to_string())
        })
        .await;
        let text = serve.metrics().await;
        assert!(counter(&text, "modelgate_policy_listener_reconnects_total") >= 1.0);
    }
    both_answer(&replicas, &alice, "keep", 200).await;
    let t = Instant::now();
    cli(
        &pg.url(),
        &["model", "disable", "o", "keep", "--actor", "t"],
    );
    both_refuse_within(&replicas, &alice, "keep", t, WITHIN, "after the restart").await;
    drop(pg);
}

/// `OPENROUTER_EXTERNAL_USER` names the deployment's organization; on
/// PostgreSQL too, `serve` makes sure it exists at start-up (audited).
#[tokio::test]
async fn the_deployment_organization_is_bootstrapped_on_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    pg.psql(DATABASE, OPEN_WEBUI_DDL);
    let url = pg.url();
    cli(&url, &["init"]);
    pg.psql(DATABASE, ROWS);
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modelgate.toml");
    std::fs::write(&config, JSON_LOG).unwrap();
    let env = [
        ("MODELGATE_DATABASE", url.as_str()),
        ("WEBUI_SECRET_KEY", SECRET),
        ("OPENROUTER_EXTERNAL_USER", "mai_client_boot"),
        ("ORGANIZATION_NAME", "Boot Ltd"),
    ];
    let serve = Serve::start(&config, up.addr, &env);
    serve.wait_for("organization bootstrap done");
    assert_eq!(
        pg.psql(
            DATABASE,
            "SELECT name FROM organizations WHERE id = 'mai_client_boot'"
        ),
        "Boot Ltd"
    );
    assert_eq!(
        pg.psql(
            DATABASE,
            "SELECT actor FROM permission_audit_log \
             WHERE table_name = 'organizations' AND organization_id = 'mai_client_boot'"
        ),
        "modelgate-bootstrap"
    );
}
