//! The subset of Open WebUI 0.12.4's own tables modelgate reads (`user`,
//! `auth`, `api_key`, `model`, channel `message`, `group` and
//! `group_member`, with the columns the
//! fixtures fill), for
//! tests, the demo and the benchmarks. Open WebUI creates the real ones;
//! modelgate never does in a deployment.
//!
//! One definition so that every fixture reads the same shape: a column the
//! lookups start to depend on is added here once, and no copy drifts.

use rusqlite::Connection;

use super::error::StoreError;

/// `IF NOT EXISTS` so generators can run against a database that already
/// has Open WebUI's tables (SQLite stores the statement without it).
pub const OPEN_WEBUI_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS user (id VARCHAR(255) PRIMARY KEY, name VARCHAR(255), email VARCHAR(255),
    role VARCHAR(255), profile_image_url TEXT, last_active_at BIGINT, updated_at BIGINT,
    created_at BIGINT, settings JSON, info JSON, oauth_sub TEXT UNIQUE);
CREATE TABLE IF NOT EXISTS auth (id VARCHAR(255) PRIMARY KEY, email VARCHAR(255), password TEXT, active BOOLEAN);
CREATE TABLE IF NOT EXISTS api_key (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, key TEXT NOT NULL UNIQUE,
    data JSON, expires_at BIGINT, last_used_at BIGINT, created_at BIGINT, updated_at BIGINT);
CREATE TABLE IF NOT EXISTS model (id TEXT PRIMARY KEY, user_id TEXT, base_model_id TEXT, name TEXT,
    params JSON, meta JSON, access_control JSON, is_active BOOLEAN DEFAULT 1,
    updated_at BIGINT, created_at BIGINT);
CREATE TABLE IF NOT EXISTS message (id TEXT PRIMARY KEY, user_id TEXT, app_id TEXT, channel_id TEXT,
    reply_to_id TEXT, parent_id TEXT, is_pinned BOOLEAN NOT NULL DEFAULT 0, pinned_at BIGINT,
    pinned_by TEXT, content TEXT, data JSON, meta JSON, created_at BIGINT, updated_at BIGINT);
CREATE TABLE IF NOT EXISTS "group" (id TEXT NOT NULL PRIMARY KEY, user_id TEXT, name TEXT, description TEXT,
    data JSON, meta JSON, permissions JSON, created_at BIGINT, updated_at BIGINT,
    parent_group_id TEXT REFERENCES "group"(id) ON DELETE SET NULL);
CREATE TABLE IF NOT EXISTS group_member (id TEXT NOT NULL PRIMARY KEY,
    group_id TEXT NOT NULL REFERENCES "group"(id) ON DELETE CASCADE, user_id TEXT NOT NULL,
    created_at BIGINT, updated_at BIGINT, CONSTRAINT uq_group_member_group_user UNIQUE (group_id, user_id));
CREATE INDEX IF NOT EXISTS ix_group_member_user_id_group_id ON group_member (user_id, group_id);
"#;

/// Creates [`OPEN_WEBUI_TABLES`] (those not there yet).
pub fn create_open_webui_tables(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(OPEN_WEBUI_TABLES)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_tables_the_lookups_read_and_is_repeatable() {
        let conn = Connection::open_in_memory().unwrap();
        create_open_webui_tables(&conn).unwrap();
        create_open_webui_tables(&conn).unwrap();
        let tables = crate::store::lookup::Tables::read(&conn).unwrap();
        assert!(tables.user && tables.api_key && tables.model && tables.message);
    }

    #[test]
    fn a_reply_is_answered_by_the_model_that_wrote_the_message() {
        use crate::store::lookup::{load_message_model, Tables};
        let conn = Connection::open_in_memory().unwrap();
        let no_channels = Tables::read(&conn).unwrap();
        assert_eq!(load_message_model(&conn, &no_channels, "m").unwrap(), None);
        create_open_webui_tables(&conn).unwrap();
        conn.execute_batch(
            r#"INSERT INTO message (id, content, meta) VALUES
                 ('by-model', 'hi', '{"model_id":"llama","model_name":"Llama"}'),
                 ('by-user', 'hi', NULL),
                 ('odd-meta', 'hi', '{"model_id":7}'),
                 ('not-json', 'hi', 'oops');"#,
        )
        .unwrap();
        let t = Tables::read(&conn).unwrap();
        let model = |id| load_message_model(&conn, &t, id).unwrap();
        assert_eq!(model("by-model").as_deref(), Some("llama"));
        assert_eq!(model("by-user"), None);
        assert_eq!(model("odd-meta"), None);
        assert_eq!(model("not-json"), None);
        assert_eq!(model("unknown"), None);
    }
}
