//! `modelgate report` (the seed's user model access report and
//! `audit_access.sh` counts) and `modelgate audit` (the trigger-written
//! permission change log).

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::{open_reader, or_dash, require_non_empty, utc, write_table, OpsError};
use crate::store::admin::{self, AuditEntry};
use crate::store::report::{access_report, AccessReport};

/// `report [--org ORG]`.
pub fn report(path: &Path, org: Option<&str>) -> Result<AccessReport, OpsError> {
    let org = org
        .map(|o| require_non_empty(o, "organization id"))
        .transpose()?;
    let conn = open_reader(path)?;
    let report = access_report(&conn, org)?;
    if let Some(org) = org {
        if report.organizations.is_empty() {
            return Err(OpsError::UnknownOrganization(org.to_string()));
        }
    }
    Ok(report)
}

/// Text form of [`AccessReport`] (a newtype: the report type lives in the
/// store, `Display` belongs to this layer).
pub struct ReportText<'a>(pub &'a AccessReport);

impl fmt::Display for ReportText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        writeln!(f, "Organizations")?;
        let orgs: Vec<Vec<String>> = r
            .organizations
            .iter()
            .map(|o| {
                vec![
                    o.id.clone(),
                    o.name.clone(),
                    o.active_members.to_string(),
                    o.active_models.to_string(),
                ]
            })
            .collect();
        write_table(
            f,
            &["ORGANIZATION", "NAME", "ACTIVE MEMBERS", "ACTIVE MODELS"],
            &orgs,
        )?;
        writeln!(f)?;
        if r.users.is_empty() {
            writeln!(f, "User model access (active memberships)")?;
            return writeln!(f, "no active memberships");
        }
        let users: Vec<Vec<String>> = r
            .users
            .iter()
            .map(|u| {
                vec![
                    u.user_id.clone(),
                    or_dash(u.email.as_deref()),
                    or_dash(u.name.as_deref()),
                    u.organization_id.clone(),
                    or_dash(u.membership_role.as_deref()),
                    u.accessible_models.to_string(),
                    u.model_names.join(","),
                ]
            })
            .collect();
        // The seed's audit_access.sh also listed administrators: whoever is
        // admin in Open WebUI or in an organization.
        let admins: Vec<Vec<String>> = r
            .users
            .iter()
            .filter(|u| {
                u.user_role.as_deref() == Some("admin")
                    || u.membership_role.as_deref() == Some("admin")
            })
            .map(|u| {
                vec![
                    u.user_id.clone(),
                    or_dash(u.email.as_deref()),
                    u.organization_id.clone(),
                    or_dash(u.user_role.as_deref()),
                    or_dash(u.membership_role.as_deref()),
                ]
            })
            .collect();
        if !admins.is_empty() {
            writeln!(f, "Administrators")?;
            write_table(
                f,
                &[
                    "USER",
                    "EMAIL",
                    "ORGANIZATION",
                    "OPEN WEBUI ROLE",
                    "ORG ROLE",
                ],
                &admins,
            )?;
            writeln!(f)?;
        }
        writeln!(f, "User model access (active memberships)")?;
        write_table(
            f,
            &[
                "USER",
                "EMAIL",
                "NAME",
                "ORGANIZATION",
                "ROLE",
                "MODELS",
                "MODEL NAMES",
            ],
            &users,
        )
    }
}

/// `audit [--limit N]`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct AuditLog(pub Vec<AuditEntry>);

pub fn audit(path: &Path, limit: usize) -> Result<AuditLog, OpsError> {
    let conn = open_reader(path)?;
    Ok(AuditLog(admin::audit(&conn, limit)?))
}

impl fmt::Display for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no permission changes recorded");
        }
        let rows: Vec<Vec<String>> = self
            .0
            .iter()
            .map(|e| {
                vec![
                    e.id.to_string(),
                    utc(e.changed_at),
                    // NULL actor: a writer other than modelgate (sqlite3, Open WebUI).
                    e.actor.clone().unwrap_or_else(|| "(external)".into()),
                    e.action.clone(),
                    e.table_name.trim_start_matches("organization_").to_string(),
                    or_dash(e.organization_id.as_deref()),
                    or_dash(e.subject.as_deref()),
                    change(e),
                ]
            })
            .collect();
        write_table(
            f,
            &[
                "ID",
                "TIME (UTC)",
                "ACTOR",
                "ACTION",
                "TABLE",
                "ORGANIZATION",
                "SUBJECT",
                "CHANGE",
            ],
            &rows,
        )
    }
}

/// The fields an UPDATE changed (`is_active 1→0`); the full snapshots are
/// in `--json`.
fn change(e: &AuditEntry) -> String {
    let (Some(serde_json::Value::Object(old)), Some(serde_json::Value::Object(new))) =
        (&e.old_values, &e.new_values)
    else {
        return String::new();
    };
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| {
            let was = old.get(k).map(ToString::to_string).unwrap_or_default();
            format!("{k} {was}→{v}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
