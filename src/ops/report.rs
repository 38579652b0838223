//! `modelgate report` (the seed's user model access report and
//! `audit_access.sh` counts) and `modelgate audit` (the trigger-written
//! permission change log).
//!
//! `report` prints a summary whose size depends on the number of
//! organizations only; the per-user listing (`report --users`) is written
//! row by row as the query yields it, so a 100,000-user database costs
//! neither memory nor a long wait for the first line.

use std::fmt;
use std::io::Write;

use serde::Serialize;

use super::{fit, open_read, or_dash, require_non_empty, utc, write_table, OpsError};
use crate::store::admin::{self, AuditEntry};
use crate::store::report::{each_user_access, report_summary, ReportSummary, UserAccessRow};
use crate::store::Database;

/// `report [--org ORG]`: counts per organization and user totals.
pub fn report(db: impl Into<Database>, org: Option<&str>) -> Result<ReportSummary, OpsError> {
    let org = org
        .map(|o| require_non_empty(o, "organization id"))
        .transpose()?;
    let conn = open_read(&db.into())?;
    let summary = report_summary(&conn, org)?;
    if let Some(org) = org {
        if summary.organizations.is_empty() {
            return Err(OpsError::UnknownOrganization(org.to_string()));
        }
    }
    Ok(summary)
}

/// `report --users [--org ORG] [--json]`: one line per active membership,
/// written to `out` as the rows arrive. Text: fixed-width columns (long
/// cells cut with `…`). JSON: one array, one object per line, so the
/// output is a single document and still greppable line by line. Returns
/// the number of rows.
pub fn user_listing(
    db: impl Into<Database>,
    org: Option<&str>,
    json: bool,
    out: impl Write,
) -> Result<u64, OpsError> {
    let org = org
        .map(|o| require_non_empty(o, "organization id"))
        .transpose()?;
    let conn = open_read(&db.into())?;
    if let Some(org) = org {
        if report_summary(&conn, Some(org))?.organizations.is_empty() {
            return Err(OpsError::UnknownOrganization(org.to_string()));
        }
    }
    let mut out = std::io::BufWriter::new(out);
    if json {
        out.write_all(b"[").map_err(OpsError::Output)?;
    } else {
        writeln!(out, "{}", listing_line(&LISTING_HEADERS)).map_err(OpsError::Output)?;
    }
    let mut first = true;
    let rows = each_user_access(&conn, org, |row| -> Result<(), OpsError> {
        if json {
            out.write_all(if first { b"\n" } else { b",\n" })
                .map_err(OpsError::Output)?;
            serde_json::to_writer(&mut out, row)
                .map_err(|e| OpsError::Output(std::io::Error::from(e)))?;
        } else {
            writeln!(out, "{}", listing_line(&listing_cells(row))).map_err(OpsError::Output)?;
        }
        first = false;
        Ok(())
    })?;
    let end: &[u8] = match (json, rows) {
        (true, 0) => b"]\n",
        (true, _) => b"\n]\n",
        (false, 0) => b"no active memberships\n",
        (false, _) => b"",
    };
    out.write_all(end).map_err(OpsError::Output)?;
    out.flush().map_err(OpsError::Output)?;
    Ok(rows)
}

const LISTING_HEADERS: [&str; 7] = [
    "USER",
    "EMAIL",
    "NAME",
    "ORGANIZATION",
    "WEBUI ROLE",
    "ORG ROLE",
    "MODELS",
];
/// Fixed, since the widest cell is unknown until the last row: ids fit a
/// UUID, emails and names are cut with `…`.
const LISTING_WIDTHS: [usize; 7] = [36, 30, 20, 20, 10, 8, 6];

fn listing_cells(row: &UserAccessRow) -> [String; 7] {
    [
        row.user_id.clone(),
        or_dash(row.email.as_deref()),
        or_dash(row.name.as_deref()),
        row.organization_id.clone(),
        or_dash(row.user_role.as_deref()),
        or_dash(row.membership_role.as_deref()),
        row.accessible_models.to_string(),
    ]
}

fn listing_line<S: AsRef<str>>(cells: &[S; 7]) -> String {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(LISTING_WIDTHS).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        line.push_str(&fit(cell.as_ref(), width));
    }
    line.trim_end().to_string()
}

/// Text form of [`ReportSummary`] (a newtype: the report type lives in the
/// store, `Display` belongs to this layer).
pub struct ReportText<'a>(pub &'a ReportSummary);

impl fmt::Display for ReportText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        writeln!(f, "Organizations")?;
        if r.organizations.is_empty() {
            writeln!(
                f,
                "no organizations (create one: modelgate org create ID --name NAME)"
            )?;
        } else {
            let orgs: Vec<Vec<String>> = r
                .organizations
                .iter()
                .map(|o| {
                    vec![
                        o.id.clone(),
                        o.name.clone(),
                        o.active_members.to_string(),
                        o.admins.to_string(),
                        o.active_models.to_string(),
                    ]
                })
                .collect();
            write_table(
                f,
                &[
                    "ORGANIZATION",
                    "NAME",
                    "ACTIVE MEMBERS",
                    "ADMINS",
                    "ACTIVE MODELS",
                ],
                &orgs,
            )?;
        }
        writeln!(f)?;
        writeln!(f, "Users (all organizations)")?;
        match (
            r.total_users,
            r.open_webui_admins,
            r.users_without_organization,
        ) {
            (Some(total), Some(admins), Some(without)) => {
                writeln!(f, "{:<30}{total} ({admins} admins)", "in Open WebUI:")?;
                writeln!(
                    f,
                    "{:<30}{}",
                    "in at least one organization:", r.users_with_organization
                )?;
                writeln!(
                    f,
                    "{:<30}{without} (every guarded request of theirs is refused)",
                    "in no organization:"
                )?;
            }
            _ => {
                writeln!(
                    f,
                    "{:<30}{} (no Open WebUI user table: no totals)",
                    "in at least one organization:", r.users_with_organization
                )?;
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "One line per user and organization: modelgate report --users [--org ORG]"
        )
    }
}

/// `audit [--limit N]`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct AuditLog(pub Vec<AuditEntry>);

pub fn audit(db: impl Into<Database>, limit: usize) -> Result<AuditLog, OpsError> {
    let conn = open_read(&db.into())?;
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
