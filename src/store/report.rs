//! Read-only queries for operator reports that the proxy never needs: the
//! `report` summary (per-organization counts, computed by aggregate SQL so
//! it costs the same on 100 or 100,000 users), the per-membership listing
//! streamed row by row (`report --users`), model display names, and the
//! preset → base chain that `modelgate access` prints.
//!
//! Open WebUI's `user` and `model` tables are optional here as everywhere:
//! a standalone database reports ids without emails or names.

use std::collections::HashMap;

use serde::Serialize;

use super::error::StoreError;
use super::sql::{AdminDb, Value};

/// One organization in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgSummary {
    pub id: String,
    pub name: String,
    pub created_at: Option<i64>,
    pub active_members: i64,
    /// Active members whose membership role is `admin`.
    pub admins: i64,
    pub active_models: i64,
}

/// `report`: counts only, so its size does not grow with the user count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSummary {
    /// Whether Open WebUI's `user` table exists; without it the counts
    /// that need it are `None`.
    pub user_table: bool,
    /// Rows in Open WebUI's `user` table.
    pub total_users: Option<i64>,
    /// Open WebUI users whose `role` is `admin`.
    pub open_webui_admins: Option<i64>,
    /// Distinct users with at least one active membership (anywhere, even
    /// when the report is for one organization).
    pub users_with_organization: i64,
    /// Open WebUI users without any active membership: every guarded
    /// request of theirs is refused.
    pub users_without_organization: Option<i64>,
    /// Every organization (or the one asked for), including those without
    /// members, by id.
    pub organizations: Vec<OrgSummary>,
}

/// The summary, optionally for one organization (the user totals stay
/// global). One aggregate query per figure; the per-organization counts use
/// `idx_org_members_org_active` and `idx_org_models_org_active`.
pub fn report_summary(
    conn: &(impl AdminDb + ?Sized),
    org: Option<&str>,
) -> Result<ReportSummary, StoreError> {
    let user_table = conn.table_exists("user")?;
    let organizations = conn
        .query_rows(
            "SELECT o.id, o.name, o.created_at,
                (SELECT COUNT(*) FROM organization_members m
                  WHERE m.organization_id = o.id AND m.is_active = TRUE),
                (SELECT COUNT(*) FROM organization_members m
                  WHERE m.organization_id = o.id AND m.is_active = TRUE AND m.role = 'admin'),
                (SELECT COUNT(*) FROM organization_models l
                  WHERE l.organization_id = o.id AND l.is_active = TRUE)
             FROM organizations o
             WHERE ?1 IS NULL OR o.id = ?1
             ORDER BY o.id {binary}",
            &[Value::from(org)],
        )?
        .iter()
        .map(|r| {
            Ok(OrgSummary {
                id: r.text(0)?,
                name: r.text(1)?,
                created_at: r.opt_int(2)?,
                active_members: r.int(3)?,
                admins: r.int(4)?,
                active_models: r.int(5)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let users_with_organization = conn.query_int(
        "SELECT COUNT(DISTINCT user_id) FROM organization_members WHERE is_active = TRUE",
        &[],
    )?;
    let (total_users, open_webui_admins, users_without_organization) = if user_table {
        let totals = conn
            .query_opt(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN role = 'admin' THEN 1 ELSE 0 END), 0)
                 FROM \"user\"",
                &[],
            )?
            .ok_or_else(|| StoreError::Schema("a count returned no row".into()))?;
        let without = conn.query_int(
            "SELECT COUNT(*) FROM \"user\" u WHERE NOT EXISTS (
                 SELECT 1 FROM organization_members m WHERE m.user_id = u.id AND m.is_active = TRUE)",
            &[],
        )?;
        (Some(totals.int(0)?), Some(totals.int(1)?), Some(without))
    } else {
        (None, None, None)
    };
    Ok(ReportSummary {
        user_table,
        total_users,
        open_webui_admins,
        users_with_organization,
        users_without_organization,
        organizations,
    })
}

/// One active membership (`report --users`). The organization's models
/// are counted, not listed: they are the same for every member (`model
/// list ORG` names them), and listing them on every row is what made the
/// old report grow with users × models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAccessRow {
    pub user_id: String,
    /// From Open WebUI's `user` table (absent table or row: `None`).
    pub email: Option<String>,
    pub name: Option<String>,
    pub user_role: Option<String>,
    pub organization_id: String,
    pub membership_role: Option<String>,
    /// Active model links of the organization.
    pub accessible_models: i64,
}

/// Calls `each` for every active membership (of `org`, or all), ordered by
/// user then organization, one row at a time straight from the query: memory
/// stays flat whatever the user count. Returns how many rows were passed.
/// An error from `each` stops the walk and is returned as is.
pub fn each_user_access<E: From<StoreError>>(
    conn: &(impl AdminDb + ?Sized),
    org: Option<&str>,
    mut each: impl FnMut(&UserAccessRow) -> Result<(), E>,
) -> Result<u64, E> {
    let user_table = conn.table_exists("user")?;
    let (user_cols, user_join) = if user_table {
        (
            "u.email, u.name, u.role",
            "LEFT JOIN \"user\" u ON u.id = om.user_id",
        )
    } else {
        ("NULL, NULL, NULL", "")
    };
    // Identifiers above are constants; the only input is bound. The model
    // counts are grouped once per organization, not once per row.
    let sql = format!(
        "SELECT om.user_id, {user_cols}, om.organization_id, om.role, COALESCE(mc.n, 0)
         FROM organization_members om
         {user_join}
         LEFT JOIN (SELECT organization_id, COUNT(*) AS n FROM organization_models
                     WHERE is_active = TRUE GROUP BY organization_id) mc
                ON mc.organization_id = om.organization_id
         WHERE om.is_active = TRUE AND (?1 IS NULL OR om.organization_id = ?1)
         ORDER BY om.user_id {{binary}}, om.organization_id {{binary}}"
    );
    let mut count = 0u64;
    // `each`'s own error is kept aside and returned as is; the walk only
    // needs to know it should stop.
    let mut failed: Option<E> = None;
    let walked = conn.for_each_row(&sql, &[Value::from(org)], &mut |r| {
        let row = UserAccessRow {
            user_id: r.text(0)?,
            email: r.opt_text(1)?,
            name: r.opt_text(2)?,
            user_role: r.opt_text(3)?,
            organization_id: r.text(4)?,
            membership_role: r.opt_text(5)?,
            accessible_models: r.int(6)?,
        };
        match each(&row) {
            Ok(()) => {
                count += 1;
                Ok(())
            }
            Err(e) => {
                failed = Some(e);
                Err(StoreError::Unavailable("stopped by the caller".into()))
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    walked?;
    Ok(count)
}

/// Every active deny rule as (organization, pattern), for warnings.
pub fn active_denies(conn: &(impl AdminDb + ?Sized)) -> Result<Vec<(String, String)>, StoreError> {
    if !conn.table_exists("organization_model_rules")? {
        return Ok(Vec::new());
    }
    conn.query_rows(
        "SELECT organization_id, pattern FROM organization_model_rules
         WHERE effect = 'deny' AND is_active = TRUE
         ORDER BY organization_id {binary}, pattern {binary}",
        &[],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, r.text(1)?)))
    .collect()
}

/// How a user came to be in an organization: an explicit membership, or
/// an Open WebUI group bound to it (`org bind-group`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MembershipSource {
    pub organization: String,
    /// `None` for an explicit membership.
    pub group_id: Option<String>,
    pub group_name: Option<String>,
}

/// Every active way `user_id` is in an organization, sorted (explanations
/// only; the request path reads `lookup::GROUP_MEMBERSHIPS_SQL`).
pub fn membership_sources(
    conn: &(impl AdminDb + ?Sized),
    user_id: &str,
) -> Result<Vec<MembershipSource>, StoreError> {
    let key = [Value::Text(user_id)];
    let mut found = Vec::new();
    for r in conn.query_rows(
        "SELECT organization_id FROM organization_members WHERE user_id = ?1 AND is_active = TRUE",
        &key,
    )? {
        found.push(MembershipSource {
            organization: r.text(0)?,
            group_id: None,
            group_name: None,
        });
    }
    let groups = ["organization_groups", "group_member", "group"];
    let mut have_all = true;
    for table in groups {
        have_all &= conn.table_exists(table)?;
    }
    let subgroups = have_all && conn.column_exists("group", "parent_group_id")?;
    if have_all {
        // The bound group itself: the user's own group or an ancestor of
        // it (see `lookup::GROUP_MEMBERSHIPS_SQL`).
        let mine = if subgroups {
            "WITH RECURSIVE mine(group_id) AS (
                 SELECT group_id FROM group_member WHERE user_id = ?1
                 UNION SELECT g.parent_group_id FROM \"group\" g JOIN mine ON g.id = mine.group_id
                 WHERE g.parent_group_id IS NOT NULL)"
        } else {
            "WITH mine(group_id) AS (SELECT group_id FROM group_member WHERE user_id = ?1)"
        };
        let sql = format!(
            "{mine}
             SELECT b.organization_id, b.group_id, g.name FROM mine
             JOIN organization_groups b ON b.group_id = mine.group_id AND b.is_active = TRUE
             LEFT JOIN \"group\" g ON g.id = b.group_id"
        );
        for r in conn.query_rows(&sql, &key)? {
            found.push(MembershipSource {
                organization: r.text(0)?,
                group_id: r.opt_text(1)?,
                group_name: r.opt_text(2)?,
            });
        }
    }
    found.sort_by(|a, b| (&a.organization, &a.group_id).cmp(&(&b.organization, &b.group_id)));
    Ok(found)
}

/// `model.id → model.name` (empty without Open WebUI's `model` table).
pub fn model_names(conn: &(impl AdminDb + ?Sized)) -> Result<HashMap<String, String>, StoreError> {
    if !conn.table_exists("model")? {
        return Ok(HashMap::new());
    }
    let mut names = HashMap::new();
    conn.for_each_row(
        "SELECT id, name FROM model WHERE name IS NOT NULL AND name <> ''",
        &[],
        &mut |r| {
            names.insert(r.text(0)?, r.text(1)?);
            Ok(())
        },
    )?;
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
    conn: &(impl AdminDb + ?Sized),
    model_id: &str,
    max_depth: usize,
) -> Result<BaseChain, StoreError> {
    let model_table = conn.table_exists("model")?;
    let mut steps = Vec::new();
    let mut current = model_id.to_string();
    let mut hops = 0usize;
    loop {
        let row = if model_table {
            conn.query_opt(
                "SELECT base_model_id, name FROM model WHERE id = ?1",
                &[Value::Text(&current)],
            )?
        } else {
            None
        };
        let (base, name) = match row {
            Some(r) => (r.opt_text(0)?, r.opt_text(1)?),
            None => (None, None),
        };
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
    use rusqlite::Connection;

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
