//! The model ids the gate has seen offered, so the operator's commands can
//! tell a typo from a model that exists, and `migrate` has something to
//! link when Open WebUI's `model` table has no base models.
//!
//! Each source's last list is kept whole (`known_models`), with when it
//! was recorded and a hash of its ids (`known_model_sources`). Recording a
//! list replaces that source's set; an unchanged list is not rewritten
//! (every write wakes the change watcher of each running gate). None of
//! this is a permission, so none of it is audited.
//!
//! [`known_models`] also counts Open WebUI's `model` table (presets and
//! the base ids they name): ids the operator can see in Open WebUI.
//! [`KnownRecorder`] feeds the tables from the lists the gates forward.

mod recorder;
mod suggest;

use std::collections::BTreeSet;

use serde::Serialize;

use super::error::StoreError;
use super::sql::{in_transaction, AdminDb, Value};

pub use recorder::{KnownObserver, KnownRecorder, KnownTicket, RecordResult};
pub use suggest::suggest;

/// Suggestions [`check_exact`] offers at most.
pub const SUGGESTIONS: usize = 3;

/// Where a list of model ids was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KnownSource {
    /// Open WebUI's `/api/models` through the ingress: the upstream's
    /// models and Open WebUI's own (presets, functions, arena models).
    Ingress,
    /// The model API's own `GET /models` through the egress.
    Egress,
}

impl KnownSource {
    pub const ALL: [KnownSource; 2] = [KnownSource::Ingress, KnownSource::Egress];

    /// The `source` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            KnownSource::Ingress => "ingress",
            KnownSource::Egress => "egress",
        }
    }
}

/// One recorded list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    /// `ingress` or `egress` (kept as text: a newer gate may add sources).
    pub source: String,
    /// Ids in the list.
    pub count: u64,
    /// Unix seconds when this list was recorded. Seeing the same list again
    /// does not move it (that would be a write for nothing).
    pub seen_at: i64,
}

/// Every model id known: the recorded lists and Open WebUI's `model` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KnownSet {
    pub ids: BTreeSet<String>,
    /// The recorded lists, by source name.
    pub sources: Vec<SourceInfo>,
    /// Distinct ids Open WebUI's `model` table contributed (its rows and
    /// the base ids they name); 0 without that table.
    pub model_table_ids: usize,
}

impl KnownSet {
    /// Nothing is known: the gate has seen no list and Open WebUI's `model`
    /// table is empty or absent.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

/// What [`check_exact`] found for one id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum KnownCheck {
    Known,
    /// Not known; `suggestions` are the closest known ids (maybe none).
    Unknown {
        suggestions: Vec<String>,
    },
    /// Nothing is known at all, so nothing can be said about the id.
    NothingKnown,
}

/// Whether `id`, taken literally (a `*` is just a character here), is a
/// known model id, and if not, which known ids are close.
pub fn check_exact(known: &KnownSet, id: &str) -> KnownCheck {
    if known.is_empty() {
        KnownCheck::NothingKnown
    } else if known.contains(id) {
        KnownCheck::Known
    } else {
        KnownCheck::Unknown {
            suggestions: suggest(known, id, SUGGESTIONS),
        }
    }
}

/// What [`record_known`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    /// The source's set was replaced.
    Recorded { added: usize, removed: usize },
    /// The stored set already had exactly these ids: nothing was written.
    Unchanged,
}

/// A hash of a set of ids, the same for the same set however it was
/// listed. Each id is length-prefixed, so no two sets share an encoding.
pub fn id_set_hash(ids: &BTreeSet<String>) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    for id in ids {
        h.update(&(id.len() as u64).to_le_bytes());
        h.update(id.as_bytes());
    }
    h.digest128()
}

/// Replaces `source`'s recorded set with `ids` in one transaction: ids no
/// longer listed are deleted, the rest upserted with `now` (Unix seconds).
/// Nothing is written when the stored set has the same hash. Not audited:
/// no actor is stamped.
pub fn record_known(
    conn: &(impl AdminDb + ?Sized),
    source: KnownSource,
    ids: &BTreeSet<String>,
    now: i64,
) -> Result<RecordOutcome, StoreError> {
    let hash = format!("{:032x}", id_set_hash(ids));
    let name = Value::Text(source.as_str());
    let stored = conn
        .query_opt(
            "SELECT id_set_hash FROM known_model_sources WHERE source = ?1",
            &[name],
        )?
        .map(|r| r.text(0))
        .transpose()?;
    if stored.as_deref() == Some(hash.as_str()) {
        return Ok(RecordOutcome::Unchanged);
    }
    in_transaction(conn, |tx| {
        let existing: BTreeSet<String> = tx
            .query_rows(
                "SELECT model_id FROM known_models WHERE source = ?1",
                &[name],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect::<Result<_, _>>()?;
        let mut removed = 0;
        for gone in existing.difference(ids) {
            removed += tx.execute(
                "DELETE FROM known_models WHERE source = ?1 AND model_id = ?2",
                &[name, Value::Text(gone)],
            )?;
        }
        for id in ids {
            tx.execute(
                "INSERT INTO known_models (source, model_id, last_seen_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source, model_id) DO UPDATE SET last_seen_at = excluded.last_seen_at",
                &[name, Value::Text(id), Value::Int(now)],
            )?;
        }
        tx.execute(
            "INSERT INTO known_model_sources (source, model_count, id_set_hash, seen_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source) DO UPDATE SET model_count = excluded.model_count,
                 id_set_hash = excluded.id_set_hash, seen_at = excluded.seen_at",
            &[
                name,
                Value::Int(i64::try_from(ids.len()).unwrap_or(i64::MAX)),
                Value::Text(&hash),
                Value::Int(now),
            ],
        )?;
        Ok(RecordOutcome::Recorded {
            added: ids.difference(&existing).count(),
            removed: usize::try_from(removed).unwrap_or(usize::MAX),
        })
    })
}

/// The union of every recorded list and Open WebUI's `model` table (its
/// rows' ids and the base ids they name). Absent tables (a database
/// without our schema yet, or without Open WebUI's) contribute nothing.
pub fn known_models(conn: &(impl AdminDb + ?Sized)) -> Result<KnownSet, StoreError> {
    let mut known = KnownSet::default();
    if conn.table_exists("known_models")? {
        conn.for_each_row(
            "SELECT DISTINCT model_id FROM known_models",
            &[],
            &mut |r| {
                known.ids.insert(r.text(0)?);
                Ok(())
            },
        )?;
    }
    if conn.table_exists("known_model_sources")? {
        known.sources = conn
            .query_rows(
                "SELECT source, model_count, seen_at FROM known_model_sources ORDER BY source {binary}",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(SourceInfo {
                    source: r.text(0)?,
                    count: r.int(1)?.try_into().unwrap_or(0),
                    seen_at: r.int(2)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
    }
    if conn.table_exists("model")? {
        let mut model_table_ids = 0;
        conn.for_each_row(
            "SELECT id FROM model WHERE id IS NOT NULL
             UNION SELECT base_model_id FROM model WHERE base_model_id IS NOT NULL",
            &[],
            &mut |r| {
                known.ids.insert(r.text(0)?);
                model_table_ids += 1;
                Ok(())
            },
        )?;
        known.model_table_ids = model_table_ids;
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::ensure_schema;
    use crate::store::webui_fixture::create_open_webui_tables;
    use rusqlite::Connection;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        ensure_schema(&conn).unwrap();
        conn
    }

    fn rows(conn: &Connection) -> Vec<(String, String, i64)> {
        conn.prepare("SELECT source, model_id, last_seen_at FROM known_models ORDER BY 1, 2")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn recording_replaces_the_source_s_set_and_leaves_the_other_alone() {
        let conn = db();
        let first = record_known(&conn, KnownSource::Egress, &set(&["a", "b"]), 10).unwrap();
        assert_eq!(
            first,
            RecordOutcome::Recorded {
                added: 2,
                removed: 0
            }
        );
        record_known(&conn, KnownSource::Ingress, &set(&["a", "preset"]), 11).unwrap();
        let second = record_known(&conn, KnownSource::Egress, &set(&["b", "c"]), 20).unwrap();
        assert_eq!(
            second,
            RecordOutcome::Recorded {
                added: 1,
                removed: 1
            }
        );
        assert_eq!(
            rows(&conn),
            [
                ("egress".into(), "b".into(), 20),
                ("egress".into(), "c".into(), 20),
                ("ingress".into(), "a".into(), 11),
                ("ingress".into(), "preset".into(), 11),
            ]
        );
        let known = known_models(&conn).unwrap();
        assert_eq!(known.ids, set(&["a", "b", "c", "preset"]));
        assert_eq!(
            known.sources,
            [
                SourceInfo {
                    source: "egress".into(),
                    count: 2,
                    seen_at: 20
                },
                SourceInfo {
                    source: "ingress".into(),
                    count: 2,
                    seen_at: 11
                },
            ]
        );
    }

    #[test]
    fn the_same_set_is_not_rewritten() {
        let conn = db();
        record_known(&conn, KnownSource::Egress, &set(&["a", "b"]), 10).unwrap();
        let before = conn.total_changes();
        assert_eq!(
            record_known(&conn, KnownSource::Egress, &set(&["b", "a"]), 99).unwrap(),
            RecordOutcome::Unchanged
        );
        assert_eq!(conn.total_changes(), before);
        assert_eq!(known_models(&conn).unwrap().sources[0].seen_at, 10);
    }

    #[test]
    fn recording_writes_no_audit_row() {
        let conn = db();
        record_known(&conn, KnownSource::Egress, &set(&["a"]), 1).unwrap();
        let audit: i64 = conn
            .query_row("SELECT COUNT(*) FROM permission_audit_log", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(audit, 0);
    }

    #[test]
    fn unicode_and_star_ids_are_kept_as_they_are() {
        let conn = db();
        let ids = set(&["modèle/ünï-7b", "作者/模型", "vendor/*", "a\u{0}b"]);
        record_known(&conn, KnownSource::Ingress, &ids, 5).unwrap();
        let known = known_models(&conn).unwrap();
        assert_eq!(known.ids, ids);
        assert_eq!(check_exact(&known, "vendor/*"), KnownCheck::Known);
        assert_eq!(check_exact(&known, "作者/模型"), KnownCheck::Known);
        // `*` is a character here, not a pattern.
        assert!(matches!(
            check_exact(&known, "vendor/x"),
            KnownCheck::Unknown { .. }
        ));
    }

    #[test]
    fn the_model_table_adds_presets_and_their_bases() {
        let conn = db();
        create_open_webui_tables(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO model (id, base_model_id, name) VALUES
                 ('helper', 'openai/gpt-4o', 'Helper'), ('tuned', NULL, 'Tuned');",
        )
        .unwrap();
        record_known(&conn, KnownSource::Egress, &set(&["openai/gpt-4o"]), 1).unwrap();
        let known = known_models(&conn).unwrap();
        assert_eq!(known.ids, set(&["helper", "openai/gpt-4o", "tuned"]));
        assert_eq!(known.model_table_ids, 3);
    }

    #[test]
    fn missing_tables_make_an_empty_set() {
        let conn = Connection::open_in_memory().unwrap();
        let known = known_models(&conn).unwrap();
        assert!(known.is_empty());
        assert_eq!(check_exact(&known, "gpt-4o"), KnownCheck::NothingKnown);
    }

    #[test]
    fn check_exact_suggests_close_ids() {
        let known = KnownSet {
            ids: set(&[
                "openai/gpt-4o",
                "openai/gpt-4o-mini",
                "anthropic/claude-3.5-sonnet",
            ]),
            ..KnownSet::default()
        };
        assert_eq!(check_exact(&known, "openai/gpt-4o"), KnownCheck::Known);
        let KnownCheck::Unknown { suggestions } = check_exact(&known, "openai/gtp-4o") else {
            panic!("a typo is unknown");
        };
        assert_eq!(
            suggestions.first().map(String::as_str),
            Some("openai/gpt-4o")
        );
        assert_eq!(
            check_exact(&known, "mistral/totally-else"),
            KnownCheck::Unknown {
                suggestions: vec![]
            }
        );
    }

    #[test]
    fn set_hashes_ignore_order_and_tell_boundaries_apart() {
        assert_eq!(
            id_set_hash(&set(&["a", "b"])),
            id_set_hash(&set(&["b", "a"]))
        );
        assert_ne!(id_set_hash(&set(&["ab"])), id_set_hash(&set(&["a", "b"])));
        assert_ne!(id_set_hash(&set(&[])), id_set_hash(&set(&[""])));
    }
}
