//! An in-memory database for the admin unit tests: Open WebUI's tables (a
//! few users and models) and the organization schema.

use rusqlite::{params, Connection};

use crate::store::schema::ensure_schema;
use crate::store::webui_fixture::create_open_webui_tables;

/// Users `u1` (user), `u2` (pending), `u3` (admin); base models `gpt-4o`,
/// `claude`, `old` (inactive) and the preset `helper` → `gpt-4o`.
pub(super) fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    create_open_webui_tables(&conn).unwrap();
    for (id, role) in [("u1", "user"), ("u2", "pending"), ("u3", "admin")] {
        conn.execute(
            "INSERT INTO user (id, name, email, role) VALUES (?1, ?1, ?1 || '@x', ?2)",
            params![id, role],
        )
        .unwrap();
    }
    for (id, base, active) in [
        ("gpt-4o", None, 1),
        ("claude", None, 1),
        ("old", None, 0),
        ("helper", Some("gpt-4o"), 1),
    ] {
        conn.execute(
            "INSERT INTO model (id, user_id, base_model_id, name, is_active) VALUES (?1, 'u3', ?2, ?1, ?3)",
            params![id, base, active],
        )
        .unwrap();
    }
    ensure_schema(&conn).unwrap();
    conn
}

/// [`db`] with the organization `o`, inserted directly so the tests of
/// one write do not depend on another.
pub(super) fn db_with_org() -> Connection {
    let conn = db();
    conn.execute("INSERT INTO organizations (id, name) VALUES ('o', 'O')", [])
        .unwrap();
    // The insert is audited; the tests count only their own write's rows.
    conn.execute("DELETE FROM permission_audit_log", [])
        .unwrap();
    conn
}

/// `(table, action, subject, actor)` of every audit row, oldest first.
pub(super) fn audit_actors(conn: &Connection) -> Vec<(String, String, String, Option<String>)> {
    conn.prepare("SELECT table_name, action, subject, actor FROM permission_audit_log ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
