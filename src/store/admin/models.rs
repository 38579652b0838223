//! An organization's model rules: allow (`enable`) or deny an exact id or a
//! glob, remove either (`disable`), list them.
//!
//! Exact allows stay rows of the seed's `organization_models` (so the
//! seed's view and reports keep working); globs and denies are rows of
//! `organization_model_rules`. One (organization, target) has one effect:
//! enabling what was denied lifts the deny, denying what was enabled
//! removes the allow, so a command never leaves an opposite rule behind
//! that would silently undo it.

use serde::Serialize;

use super::write::{non_empty, require_org, with_actor, WriteOutcome};
use crate::store::access::Effect;
use crate::store::error::StoreError;
use crate::store::pattern::Target;
use crate::store::sql::{AdminDb, Value};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgModel {
    pub id: String,
    pub organization_id: String,
    /// The model id of an exact rule, or the pattern (canonical spelling).
    pub model_id: String,
    pub effect: Effect,
    /// A glob (`openai/*`) rather than one exact id.
    pub pattern: bool,
    pub is_active: bool,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// Parses a rule target, refusing blanks and bad escapes.
pub fn parse_target(text: &str) -> Result<Target, StoreError> {
    let text = non_empty(text, "model id or pattern")?;
    Target::parse(text).map_err(|e| StoreError::BadPattern {
        pattern: text.to_string(),
        reason: e.to_string(),
    })
}

/// Allows a model id or pattern. An exact id is a link in
/// `organization_models` (presets are judged by their root, so enabling a
/// base model is what permits its presets).
pub fn enable_model(
    conn: &(impl AdminDb + ?Sized),
    org: &str,
    pattern: &str,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let org = non_empty(org, "organization id")?;
    let target = parse_target(pattern)?;
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        match &target {
            Target::Exact(id) => {
                let lifted = set_rule_inactive(tx, org, &target.canonical())?;
                let link = activate_link(tx, org, id)?;
                Ok(combine(link, lifted))
            }
            Target::Glob(_) => upsert_rule(tx, org, &target.canonical(), Effect::Allow),
        }
    })
}

/// Denies a model id or pattern: no member of the organization may use a
/// matching model, whatever any organization allows.
pub fn deny_model(
    conn: &(impl AdminDb + ?Sized),
    org: &str,
    pattern: &str,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let org = non_empty(org, "organization id")?;
    let target = parse_target(pattern)?;
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        let rule = upsert_rule(tx, org, &target.canonical(), Effect::Deny)?;
        let unlinked = match &target {
            Target::Exact(id) => deactivate_link(tx, org, id)?,
            Target::Glob(_) => false,
        };
        Ok(combine(rule, unlinked))
    })
}

/// Removes an allow or a deny (deactivates: the row and its history stay).
pub fn disable_model(
    conn: &(impl AdminDb + ?Sized),
    org: &str,
    pattern: &str,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let org = non_empty(org, "organization id")?;
    let target = parse_target(pattern)?;
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        let canonical = target.canonical();
        let mut changed = set_rule_inactive(tx, org, &canonical)?;
        let mut exists = rule_exists(tx, org, &canonical)?;
        if let Target::Exact(id) = &target {
            changed |= deactivate_link(tx, org, id)?;
            exists |= tx.exists(
                "SELECT 1 FROM organization_models WHERE organization_id = ?1 AND model_id = ?2",
                &[Value::Text(org), Value::Text(id)],
            )?;
        }
        Ok(if changed {
            WriteOutcome::Deactivated
        } else if exists {
            WriteOutcome::Unchanged
        } else {
            WriteOutcome::NotFound
        })
    })
}

/// A write's own outcome, upgraded to `Updated` when it also removed an
/// opposite rule but was otherwise a no-op.
fn combine(outcome: WriteOutcome, also_changed: bool) -> WriteOutcome {
    if also_changed && outcome == WriteOutcome::Unchanged {
        WriteOutcome::Updated
    } else {
        outcome
    }
}

fn activate_link(
    tx: &(impl AdminDb + ?Sized),
    org: &str,
    model: &str,
) -> Result<WriteOutcome, StoreError> {
    let keys = [Value::Text(org), Value::Text(model)];
    let active = tx
        .query_opt(
            "SELECT is_active FROM organization_models WHERE organization_id = ?1 AND model_id = ?2",
            &keys,
        )?
        .map(|r| r.flag(0))
        .transpose()?;
    match active {
        None => {
            tx.execute(
                "INSERT INTO organization_models (id, organization_id, model_id, is_active, created_at, updated_at)
                 VALUES ('orgmod_' || ?1 || '_' || ?2, ?1, ?2, TRUE, {now}, {now})",
                &keys,
            )?;
            Ok(WriteOutcome::Created)
        }
        Some(true) => Ok(WriteOutcome::Unchanged),
        Some(false) => {
            tx.execute(
                "UPDATE organization_models SET is_active = TRUE, updated_at = {now}
                 WHERE organization_id = ?1 AND model_id = ?2",
                &keys,
            )?;
            Ok(WriteOutcome::Reactivated)
        }
    }
}

/// True when an active link was deactivated.
fn deactivate_link(
    tx: &(impl AdminDb + ?Sized),
    org: &str,
    model: &str,
) -> Result<bool, StoreError> {
    let changed = tx.execute(
        "UPDATE organization_models SET is_active = FALSE, updated_at = {now}
         WHERE organization_id = ?1 AND model_id = ?2 AND is_active <> FALSE",
        &[Value::Text(org), Value::Text(model)],
    )?;
    Ok(changed > 0)
}

fn upsert_rule(
    tx: &(impl AdminDb + ?Sized),
    org: &str,
    pattern: &str,
    effect: Effect,
) -> Result<WriteOutcome, StoreError> {
    let existing = tx.query_opt(
        "SELECT effect, is_active FROM organization_model_rules WHERE organization_id = ?1 AND pattern = ?2",
        &[Value::Text(org), Value::Text(pattern)],
    )?;
    let outcome = match existing {
        None => {
            let id = format!("orgrule_{}", uuid::Uuid::new_v4().simple());
            tx.execute(
                "INSERT INTO organization_model_rules
                    (id, organization_id, pattern, effect, is_active, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, TRUE, {now}, {now})",
                &[
                    Value::Text(&id),
                    Value::Text(org),
                    Value::Text(pattern),
                    Value::Text(effect.as_str()),
                ],
            )?;
            return Ok(WriteOutcome::Created);
        }
        Some(row) => match (row.text(0)?, row.flag(1)?) {
            (old, true) if old == effect.as_str() => return Ok(WriteOutcome::Unchanged),
            (_, true) => WriteOutcome::Updated,
            (_, false) => WriteOutcome::Reactivated,
        },
    };
    tx.execute(
        "UPDATE organization_model_rules SET effect = ?3, is_active = TRUE, updated_at = {now}
         WHERE organization_id = ?1 AND pattern = ?2",
        &[
            Value::Text(org),
            Value::Text(pattern),
            Value::Text(effect.as_str()),
        ],
    )?;
    Ok(outcome)
}

/// True when an active rule was deactivated. A database whose schema
/// predates rules has none to deactivate.
fn set_rule_inactive(
    tx: &(impl AdminDb + ?Sized),
    org: &str,
    pattern: &str,
) -> Result<bool, StoreError> {
    if !tx.table_exists("organization_model_rules")? {
        return Ok(false);
    }
    let changed = tx.execute(
        "UPDATE organization_model_rules SET is_active = FALSE, updated_at = {now}
         WHERE organization_id = ?1 AND pattern = ?2 AND is_active <> FALSE",
        &[Value::Text(org), Value::Text(pattern)],
    )?;
    Ok(changed > 0)
}

fn rule_exists(tx: &(impl AdminDb + ?Sized), org: &str, pattern: &str) -> Result<bool, StoreError> {
    if !tx.table_exists("organization_model_rules")? {
        return Ok(false);
    }
    tx.exists(
        "SELECT 1 FROM organization_model_rules WHERE organization_id = ?1 AND pattern = ?2",
        &[Value::Text(org), Value::Text(pattern)],
    )
}

/// Whether any organization has (or had) an exact link to `model`: an id
/// an operator already enabled once, with `--force` if need be, is not a
/// typo the second time.
pub fn ever_linked(conn: &(impl AdminDb + ?Sized), model: &str) -> Result<bool, StoreError> {
    conn.exists(
        "SELECT 1 FROM organization_models WHERE model_id = ?1 LIMIT 1",
        &[Value::Text(model)],
    )
}

/// Exact links and rules, active or not, sorted by id or pattern.
pub fn list_models(conn: &(impl AdminDb + ?Sized), org: &str) -> Result<Vec<OrgModel>, StoreError> {
    let org = non_empty(org, "organization id")?;
    require_org(conn, org)?;
    let key = [Value::Text(org)];
    let mut out = Vec::new();
    for r in conn.query_rows(
        "SELECT id, organization_id, model_id, is_active, created_at, updated_at
         FROM organization_models WHERE organization_id = ?1",
        &key,
    )? {
        out.push(OrgModel {
            id: r.text(0)?,
            organization_id: r.text(1)?,
            model_id: r.text(2)?,
            effect: Effect::Allow,
            pattern: false,
            is_active: r.flag(3)?,
            created_at: r.opt_int(4)?,
            updated_at: r.opt_int(5)?,
        });
    }
    if conn.table_exists("organization_model_rules")? {
        for r in conn.query_rows(
            "SELECT id, organization_id, pattern, effect, is_active, created_at, updated_at
             FROM organization_model_rules WHERE organization_id = ?1",
            &key,
        )? {
            let pattern = r.text(2)?;
            let effect = r.text(3)?;
            // Shown as stored; a row the gate cannot read is listed (so the
            // operator can find and remove it) and flagged by `access`.
            let glob = Target::parse(&pattern)
                .map(|t| t.is_glob())
                .unwrap_or(false);
            out.push(OrgModel {
                id: r.text(0)?,
                organization_id: r.text(1)?,
                model_id: pattern,
                effect: Effect::parse(&effect).unwrap_or(Effect::Deny),
                pattern: glob,
                is_active: r.flag(4)?,
                created_at: r.opt_int(5)?,
                updated_at: r.opt_int(6)?,
            });
        }
    }
    out.sort_by(|a, b| (&a.model_id, a.effect).cmp(&(&b.model_id, b.effect)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::test_db::{audit_actors, db_with_org as with_org};
    use rusqlite::Connection;

    #[test]
    fn enable_is_created_then_unchanged() {
        let conn = with_org();
        assert_eq!(
            enable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Created)
        );
        assert_eq!(
            enable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Unchanged)
        );
        let models = list_models(&conn, "o").unwrap();
        assert_eq!(models.len(), 1);
        assert!(models[0].is_active);
        assert_eq!(models[0].model_id, "gpt-4o");
    }

    /// Model ids are not checked against Open WebUI's `model` table: a
    /// link may name a model an upstream serves without a `model` row.
    #[test]
    fn any_model_id_may_be_linked() {
        let conn = with_org();
        assert_eq!(
            enable_model(&conn, "o", "not-in-the-catalogue", "t"),
            Ok(WriteOutcome::Created)
        );
    }

    #[test]
    fn disable_keeps_the_row_and_enable_reactivates_it() {
        let conn = with_org();
        enable_model(&conn, "o", "gpt-4o", "t").unwrap();
        let id = list_models(&conn, "o").unwrap()[0].id.clone();
        assert_eq!(
            disable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Deactivated)
        );
        assert_eq!(
            disable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Unchanged)
        );
        let models = list_models(&conn, "o").unwrap();
        assert_eq!(models.len(), 1);
        assert!(!models[0].is_active);
        assert_eq!(
            enable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Reactivated)
        );
        let models = list_models(&conn, "o").unwrap();
        assert!(models[0].is_active);
        assert_eq!(models[0].id, id);
    }

    #[test]
    fn disabling_an_unlinked_model_is_not_found() {
        let conn = with_org();
        assert_eq!(
            disable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::NotFound)
        );
    }

    #[test]
    fn unknown_organization_and_blank_model_are_refused() {
        let conn = with_org();
        assert_eq!(
            enable_model(&conn, "nope", "gpt-4o", "t"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        assert_eq!(
            disable_model(&conn, "nope", "gpt-4o", "t"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        assert_eq!(
            list_models(&conn, "nope"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        assert_eq!(
            enable_model(&conn, "o", "  ", "t"),
            Err(StoreError::EmptyId("model id or pattern"))
        );
    }

    #[test]
    fn every_change_is_audited_with_its_actor() {
        let conn = with_org();
        enable_model(&conn, "o", "claude", "alice").unwrap();
        disable_model(&conn, "o", "claude", "bob").unwrap();
        enable_model(&conn, "o", "claude", "carol").unwrap();
        let row = |action: &str, actor: &str| {
            (
                "organization_models".to_string(),
                action.to_string(),
                "claude".to_string(),
                Some(actor.to_string()),
            )
        };
        assert_eq!(
            audit_actors(&conn),
            [
                row("INSERT", "alice"),
                row("UPDATE", "bob"),
                row("UPDATE", "carol")
            ]
        );
    }

    fn active(conn: &Connection) -> Vec<(String, Effect, bool)> {
        list_models(conn, "o")
            .unwrap()
            .into_iter()
            .filter(|m| m.is_active)
            .map(|m| (m.model_id, m.effect, m.pattern))
            .collect()
    }

    #[test]
    fn globs_and_denies_are_rules_beside_the_links() {
        let conn = with_org();
        assert_eq!(
            enable_model(&conn, "o", "openai/*", "t"),
            Ok(WriteOutcome::Created)
        );
        assert_eq!(
            enable_model(&conn, "o", "openai/**", "t"),
            Ok(WriteOutcome::Unchanged),
            "one rule per canonical spelling"
        );
        assert_eq!(
            deny_model(&conn, "o", "openai/o1-pro", "t"),
            Ok(WriteOutcome::Created)
        );
        assert_eq!(
            active(&conn),
            [
                ("openai/*".to_string(), Effect::Allow, true),
                ("openai/o1-pro".to_string(), Effect::Deny, false)
            ]
        );
        // The glob turned into a deny: one row, its effect updated.
        assert_eq!(
            deny_model(&conn, "o", "openai/*", "t"),
            Ok(WriteOutcome::Updated)
        );
        assert_eq!(
            active(&conn)[0],
            ("openai/*".to_string(), Effect::Deny, true)
        );
        assert_eq!(
            disable_model(&conn, "o", "openai/*", "t"),
            Ok(WriteOutcome::Deactivated)
        );
        assert_eq!(
            disable_model(&conn, "o", "openai/*", "t"),
            Ok(WriteOutcome::Unchanged)
        );
        assert_eq!(
            disable_model(&conn, "o", "anthropic/*", "t"),
            Ok(WriteOutcome::NotFound)
        );
    }

    #[test]
    fn an_exact_id_has_one_effect_at_a_time() {
        let conn = with_org();
        enable_model(&conn, "o", "gpt-4o", "t").unwrap();
        // Denying what was enabled removes the allow...
        assert_eq!(
            deny_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Created)
        );
        assert_eq!(active(&conn), [("gpt-4o".to_string(), Effect::Deny, false)]);
        // ...and enabling it again lifts the deny.
        assert_eq!(
            enable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Reactivated)
        );
        assert_eq!(
            active(&conn),
            [("gpt-4o".to_string(), Effect::Allow, false)]
        );
        deny_model(&conn, "o", "gpt-4o", "t").unwrap();
        // `disable` removes the deny too.
        assert_eq!(
            disable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Deactivated)
        );
        assert!(active(&conn).is_empty());
    }

    #[test]
    fn bad_patterns_are_refused_before_any_write() {
        let conn = with_org();
        assert_eq!(
            enable_model(&conn, "o", r"openai/\x", "t"),
            Err(StoreError::BadPattern {
                pattern: r"openai/\x".into(),
                reason: "`\\x` is not an escape: only `\\*` (a literal star) and `\\\\` (a backslash) are".into()
            })
        );
        assert!(list_models(&conn, "o").unwrap().is_empty());
        // A literal star is an exact link.
        enable_model(&conn, "o", r"vendor/\*", "t").unwrap();
        assert_eq!(
            active(&conn),
            [("vendor/*".to_string(), Effect::Allow, false)]
        );
    }

    #[test]
    fn rule_changes_are_audited_with_their_actor() {
        let conn = with_org();
        enable_model(&conn, "o", "openai/*", "alice").unwrap();
        deny_model(&conn, "o", "openai/*", "bob").unwrap();
        disable_model(&conn, "o", "openai/*", "carol").unwrap();
        let row = |action: &str, actor: &str| {
            (
                "organization_model_rules".to_string(),
                action.to_string(),
                "openai/*".to_string(),
                Some(actor.to_string()),
            )
        };
        assert_eq!(
            audit_actors(&conn),
            [
                row("INSERT", "alice"),
                row("UPDATE", "bob"),
                row("UPDATE", "carol")
            ]
        );
    }
}
