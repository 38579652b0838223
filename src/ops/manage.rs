//! `org`, `member` and `model`: the seed's hand-written INSERT/UPDATE
//! statements as commands. Each write is one store transaction that records
//! the actor in `permission_audit_log`; revocation deactivates, never
//! deletes.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::{open_reader, open_writer, or_dash, require_non_empty, utc, write_table, OpsError};
use crate::store::admin::{self, Member, MemberRole, OrgModel, Organization, WriteOutcome};
use crate::store::report::{base_chain, model_names, ChainEnd};

/// What one write did; `--json` prints it as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteReport {
    /// `org create`, `member add`, ...
    pub command: &'static str,
    pub organization: String,
    /// The user (memberships) or model (model links); `None` for `org`.
    pub subject: Option<String>,
    pub role: Option<MemberRole>,
    pub outcome: WriteOutcome,
    pub actor: String,
    /// A warning worth reading, e.g. enabling a preset grants nothing.
    pub note: Option<String>,
}

fn report(
    command: &'static str,
    organization: &str,
    subject: Option<&str>,
    outcome: WriteOutcome,
    actor: &str,
) -> WriteReport {
    WriteReport {
        command,
        organization: organization.to_string(),
        subject: subject.map(str::to_string),
        role: None,
        outcome,
        actor: actor.to_string(),
        note: None,
    }
}

pub fn org_create(path: &Path, id: &str, name: &str, actor: &str) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_writer(path)?;
    let outcome = admin::create_org(&conn, id, name, actor)?;
    Ok(report("org create", id, None, outcome, actor))
}

pub fn member_add(
    path: &Path,
    org: &str,
    user: &str,
    role: MemberRole,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_writer(path)?;
    let outcome = admin::add_member(&conn, org, user, role, actor)?;
    let mut r = report("member add", org, Some(user), outcome, actor);
    r.role = Some(role);
    Ok(r)
}

pub fn member_remove(
    path: &Path,
    org: &str,
    user: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_writer(path)?;
    match admin::remove_member(&conn, org, user, actor)? {
        WriteOutcome::NotFound => Err(OpsError::NotAMember {
            org: org.to_string(),
            user: user.to_string(),
        }),
        outcome => Ok(report("member remove", org, Some(user), outcome, actor)),
    }
}

pub fn model_enable(
    path: &Path,
    org: &str,
    model: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_writer(path)?;
    let outcome = admin::enable_model(&conn, org, model, actor)?;
    let mut r = report("model enable", org, Some(model), outcome, actor);
    // Decisions judge a preset by its root (`store::access`), so a link to a
    // preset permits nothing; say so instead of letting an operator wonder
    // why users still get 403.
    let chain = base_chain(
        &conn,
        model,
        crate::store::StoreConfig::default().max_base_depth,
    )?;
    r.note = match (chain.end, chain.steps.last()) {
        (ChainEnd::Root, Some(root)) if chain.steps.len() > 1 => Some(format!(
            "'{model}' is a preset of '{}': access is decided by the base model, \
             so this link grants nothing on its own; enable '{}' to permit it",
            root.id, root.id
        )),
        (ChainEnd::Cycle, _) => Some(format!(
            "'{model}' has a base_model_id loop; requests for it are always refused"
        )),
        (ChainEnd::TooDeep, _) => Some(format!(
            "'{model}' has a base_model_id chain that is too long; requests for it are refused"
        )),
        _ => None,
    };
    Ok(r)
}

pub fn model_disable(
    path: &Path,
    org: &str,
    model: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_writer(path)?;
    match admin::disable_model(&conn, org, model, actor)? {
        WriteOutcome::NotFound => Err(OpsError::ModelNotLinked {
            org: org.to_string(),
            model: model.to_string(),
        }),
        outcome => Ok(report("model disable", org, Some(model), outcome, actor)),
    }
}

impl fmt::Display for WriteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match self.outcome {
            WriteOutcome::Created => "created",
            WriteOutcome::Reactivated => "reactivated",
            WriteOutcome::Updated => "updated",
            WriteOutcome::Deactivated => "deactivated",
            WriteOutcome::Unchanged => "unchanged (already so)",
            WriteOutcome::NotFound => "not found",
        };
        let org = &self.organization;
        match (self.command, &self.subject) {
            ("member add" | "member remove", Some(user)) => {
                write!(f, "membership of user '{user}' in '{org}'")?;
                if let Some(role) = self.role {
                    write!(f, " (role {})", role.as_str())?;
                }
            }
            ("model enable" | "model disable", Some(model)) => {
                write!(f, "model '{model}' for '{org}'")?;
            }
            _ => write!(f, "organization '{org}'")?,
        }
        writeln!(f, ": {outcome} (actor: {})", self.actor)?;
        if let Some(note) = &self.note {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// `org list`: JSON is the plain array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OrgList(pub Vec<Organization>);

pub fn org_list(path: &Path) -> Result<OrgList, OpsError> {
    let conn = open_reader(path)?;
    Ok(OrgList(admin::list_orgs(&conn)?))
}

impl fmt::Display for OrgList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(
                f,
                "no organizations (create one with `modelgate org create ID --name NAME`)"
            );
        }
        let rows: Vec<Vec<String>> = self
            .0
            .iter()
            .map(|o| {
                vec![
                    o.id.clone(),
                    o.name.clone(),
                    o.active_members.to_string(),
                    o.active_models.to_string(),
                    o.created_at.map(utc).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        write_table(
            f,
            &["ID", "NAME", "MEMBERS", "MODELS", "CREATED (UTC)"],
            &rows,
        )
    }
}

/// `member list ORG`: every membership, inactive ones too (marked), since
/// "why can't this user see models?" is often a deactivated row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MemberList(pub Vec<Member>);

pub fn member_list(path: &Path, org: &str) -> Result<MemberList, OpsError> {
    let conn = open_reader(path)?;
    Ok(MemberList(admin::list_members(&conn, org)?))
}

impl fmt::Display for MemberList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no members");
        }
        let rows: Vec<Vec<String>> = self
            .0
            .iter()
            .map(|m| {
                vec![
                    m.user_id.clone(),
                    or_dash(m.email.as_deref()),
                    or_dash(m.role.as_deref()),
                    if m.is_active { "active" } else { "inactive" }.into(),
                    m.joined_at.map(utc).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        write_table(
            f,
            &["USER", "EMAIL", "ROLE", "STATUS", "JOINED (UTC)"],
            &rows,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelEntry {
    #[serde(flatten)]
    pub link: OrgModel,
    /// Open WebUI's `model.name`, when the model has a row.
    pub name: Option<String>,
}

/// `model list ORG`: every link, inactive ones too (marked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ModelList(pub Vec<ModelEntry>);

pub fn model_list(path: &Path, org: &str) -> Result<ModelList, OpsError> {
    let conn = open_reader(path)?;
    let links = admin::list_models(&conn, org)?;
    let mut names = model_names(&conn)?;
    Ok(ModelList(
        links
            .into_iter()
            .map(|link| ModelEntry {
                name: names.remove(&link.model_id),
                link,
            })
            .collect(),
    ))
}

impl fmt::Display for ModelList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no models");
        }
        let rows: Vec<Vec<String>> = self
            .0
            .iter()
            .map(|m| {
                vec![
                    m.link.model_id.clone(),
                    or_dash(m.name.as_deref()),
                    if m.link.is_active {
                        "active"
                    } else {
                        "inactive"
                    }
                    .into(),
                    m.link.updated_at.map(utc).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        write_table(f, &["MODEL", "NAME", "STATUS", "UPDATED (UTC)"], &rows)
    }
}
