//! Read-only queries for operator reports that the proxy never needs: the
//! seed's "user model access report" and per-organization counts
//! (`audit_access.sh`), model display names, and the preset → base chain
//! that `modelgate access` prints.
//!
//! Open WebUI's `user` and `model` tables are optional here as everywhere:
//! a standalone database reports ids without emails or names.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::admin::{list_orgs, Organization};
use super::error::StoreError;
use super::schema::table_exists;

/// One active membership and what it grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAccessRow {
    pub user_id: String,
    /// From Open WebUI's `user` table (absent table or row: `None`).
    pub email: Option<String>,
    pub name: Option<String>,
    pub user_role: Option<String>,
    pub organization_id: String,
    pub membership_role: Option<String>,
    /// Distinct active model links of the organization (roots).
    pub accessible_models: usize,
    pub model_ids: Vec<String>,
    /// `model.name` where a row exists, else the id: Open WebUI keeps
    /// upstream (connection) models out of its `model` table, so the
    /// seed's inner join on `model` silently dropped them.
    pub model_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessReport {
    /// Whether Open WebUI's `user` table exists (emails and names).
    pub user_table: bool,
    pub users: Vec<UserAccessRow>,
    /// Every organization with its active member and model counts,
    /// including organizations without members (the seed's query lost them).
    pub organizations: Vec<Organization>,
}

/// The seed's `user_model_access_report` view plus `audit_access.sh`,
/// optionally for one organization. Memberships of organizations without
/// active models are kept (0 models): that is the "users can't see models"
/// case an operator is looking for.
pub fn access_report(conn: &Connection, org: Option<&str>) -> Result<AccessReport, StoreError> {
    let user_table = table_exists(conn, "user")?;
    let model_table = table_exists(conn, "model")?;
    let (user_cols, user_join) = if user_table {
        (
            "u.email, u.name, u.role",
            "LEFT JOIN user u ON u.id = om.user_id",
        )
    } else {
        ("NULL, NULL, NULL", "")
    };
    let (model_col, model_join) = if model_table {
        ("m.name", "LEFT JOIN model m ON m.id = mo.model_id")
    } else {
        ("NULL", "")
    };
    // Identifiers above are constants; the only input is bound.
    let sql = format!(
        "SELECT om.user_id, {user_cols}, om.organization_id, om.role, mo.model_id, {model_col}
         FROM organization_members om
         {user_join}
         LEFT JOIN organization_models mo
                ON mo.organization_id = om.organization_id AND mo.is_active = 1
         {model_join}
         WHERE om.is_active = 1 AND (?1 IS NULL OR om.organization_id = ?1)
         ORDER BY om.user_id, om.organization_id, mo.model_id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([org])?;
    let mut users: Vec<UserAccessRow> = Vec::new();
    while let Some(r) = rows.next()? {
        let user_id: String = r.get(0)?;
        let organization_id: String = r.get(4)?;
        let same = users
            .last()
            .is_some_and(|u| u.user_id == user_id && u.organization_id == organization_id);
        if !same {
            users.push(UserAccessRow {
                user_id,
                email: r.get(1)?,
                name: r.get(2)?,
                user_role: r.get(3)?,
                organization_id,
                membership_role: r.get(5)?,
                accessible_models: 0,
                model_ids: Vec::new(),
                model_names: Vec::new(),
            });
        }
        if let Some(model_id) = r.get::<_, Option<String>>(6)? {
            let name = r
                .get::<_, Option<String>>(7)?
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| model_id.clone());
            // The unique (organization_id, model_id) index makes each
            // model appear once per membership.
            if let Some(row) = users.last_mut() {
                row.accessible_models += 1;
                row.model_ids.push(model_id);
                row.model_names.push(name);
            }
        }
    }
    let mut organizations = list_orgs(conn)?;
    if let Some(org) = org {
        organizations.retain(|o| o.id == org);
    }
    Ok(AccessReport {
        user_table,
        users,
        organizations,
    })
}

/// `model.id → model.name` (empty without Open WebUI's `model` table).
pub fn model_names(conn: &Connection) -> Result<HashMap<String, String>, StoreError> {
    if !table_exists(conn, "model")? {
        return Ok(HashMap::new());
    }
    let mut stmt =
        conn.prepare("SELECT id, name FROM model WHERE name IS NOT NULL AND name != ''")?;
    let names = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<HashMap<String, String>, _>>()?;
    Ok(names)
}

/// One model on the way from the requested id to its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainStep {
    pub id: String,
    /// `model.name`, when the model has a row.
    pub name: Option<String>,
}

/// How the walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainEnd {
    /// The last step is the root (no base, or no row at all).
    Root,
    /// The last step is a model already on the path.
    Cycle,
    /// More than `max_depth` hops.
    TooDeep,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseChain {
    pub steps: Vec<ChainStep>,
    pub end: ChainEnd,
}

/// Follows `model.base_model_id` from `model_id`, with exactly the rules of
/// `ModelGraph::root` (empty base = upstream model, a dangling base is its
/// own root, a loop or more than `max_depth` hops ends the walk), but
/// keeping every step so an operator sees *why* a preset maps where it does.
pub fn base_chain(
    conn: &Connection,
    model_id: &str,
    max_depth: usize,
) -> Result<BaseChain, StoreError> {
    let model_table = table_exists(conn, "model")?;
    let mut stmt = if model_table {
        Some(conn.prepare("SELECT base_model_id, name FROM model WHERE id = ?1")?)
    } else {
        None
    };
    let mut steps = Vec::new();
    let mut current = model_id.to_string();
    let mut hops = 0usize;
    loop {
        let row: Option<(Option<String>, Option<String>)> = match stmt.as_mut() {
            Some(stmt) => stmt
                .query_row([&current], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
            None => None,
        };
        let (base, name) = row.unwrap_or((None, None));
        steps.push(ChainStep {
            id: current.clone(),
            name,
        });
        let Some(base) = base.filter(|b| !b.is_empty()) else {
            return Ok(BaseChain {
                steps,
                end: ChainEnd::Root,
            });
        };
        hops += 1;
        if steps.iter().any(|s| s.id == base) {
            steps.push(ChainStep {
                id: base,
                name: None,
            });
            return Ok(BaseChain {
                steps,
                end: ChainEnd::Cycle,
            });
        }
        if hops > max_depth {
            return Ok(BaseChain {
                steps,
                end: ChainEnd::TooDeep,
            });
        }
        current = base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::access::{ModelGraph, RootError};

    /// `base_chain` must agree with `ModelGraph::root`, which decides.
    #[test]
    fn chain_agrees_with_the_graph() {
        let conn = Connection::open_in_memory().unwrap();
        crate::store::webui_fixture::create_open_webui_tables(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO model (id, base_model_id, name) VALUES ('gpt', NULL, 'GPT'), ('p1', 'gpt', 'P1'),
                 ('p2', 'p1', NULL), ('dangling', 'nowhere', NULL), ('empty', '', NULL),
                 ('a', 'b', NULL), ('b', 'a', NULL), ('self', 'self', NULL), ('tail', 'a', NULL);",
        )
        .unwrap();
        for hop in 0..9 {
            conn.execute(
                "INSERT INTO model (id, base_model_id, name) VALUES (?1, ?2, NULL)",
                [format!("c{hop}"), format!("c{}", hop + 1)],
            )
            .unwrap();
        }
        let rows: Vec<(String, Option<String>)> = conn
            .prepare("SELECT id, base_model_id FROM model")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let graph = ModelGraph::new(rows, 8);
        for id in [
            "gpt", "p1", "p2", "dangling", "empty", "a", "self", "tail", "c0", "c1", "unknown",
        ] {
            let chain = base_chain(&conn, id, 8).unwrap();
            let last = chain.steps.last().unwrap().id.as_str();
            match graph.root(id) {
                Ok(root) => {
                    assert_eq!(chain.end, ChainEnd::Root, "{id}");
                    assert_eq!(last, root, "{id}");
                }
                Err(RootError::Cycle) => assert_eq!(chain.end, ChainEnd::Cycle, "{id}"),
                Err(RootError::TooDeep(_)) => assert_eq!(chain.end, ChainEnd::TooDeep, "{id}"),
            }
        }
        let p2 = base_chain(&conn, "p2", 8).unwrap();
        let ids: Vec<&str> = p2.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["p2", "p1", "gpt"]);
        assert_eq!(p2.steps[2].name.as_deref(), Some("GPT"));
        // c1 → c9 is 8 hops (allowed), c0 → c9 is 9 (too deep).
        assert_eq!(base_chain(&conn, "c1", 8).unwrap().end, ChainEnd::Root);
        assert_eq!(base_chain(&conn, "c0", 8).unwrap().end, ChainEnd::TooDeep);
    }

    #[test]
    fn without_a_model_table_every_id_is_its_own_root() {
        let conn = Connection::open_in_memory().unwrap();
        let chain = base_chain(&conn, "m", 8).unwrap();
        assert_eq!(chain.end, ChainEnd::Root);
        assert_eq!(chain.steps.len(), 1);
        assert!(model_names(&conn).unwrap().is_empty());
    }
}
