//! `org`, `member` and `model`: the seed's hand-written INSERT/UPDATE
//! statements as commands. Each write is one store transaction that records
//! the actor in `permission_audit_log`; revocation deactivates, never
//! deletes.

use std::fmt;

use serde::Serialize;

use super::{open_read, open_write, or_dash, require_non_empty, utc, write_table, OpsError};
use crate::store::admin::{
    self, GroupBinding, Member, MemberRole, OrgModel, Organization, WriteOutcome,
};
use crate::store::known::{check_exact, known_models, KnownCheck, KnownSet};
use crate::store::pattern::Target;
use crate::store::report::{base_chain, model_names, ChainEnd};
use crate::store::sql::AnyDb;
use crate::store::{Database, Mode};

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

pub fn org_create(
    db: impl Into<Database>,
    id: &str,
    name: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
    let outcome = admin::create_org(&conn, id, name, actor)?;
    Ok(report("org create", id, None, outcome, actor))
}

/// Renames an organization (`org create` refuses to).
pub fn org_rename(
    db: impl Into<Database>,
    id: &str,
    name: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
    let outcome = admin::rename_org(&conn, id, name, actor)?;
    Ok(report("org rename", id, Some(name), outcome, actor))
}

/// `org mode ORG enforce|shadow`.
pub fn org_mode(
    db: impl Into<Database>,
    id: &str,
    mode: Mode,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
    let outcome = admin::set_mode(&conn, id, mode, actor)?;
    let mut r = report("org mode", id, Some(mode.as_str()), outcome, actor);
    if mode == Mode::Shadow {
        r.note = Some(
            "shadow mode: requests this organization's rules would refuse are let through, \
             logged and counted (modelgate_decisions_total{outcome=\"would_deny\"}); \
             lists are not filtered by its rules. Switch back with `org mode ORG enforce`."
                .into(),
        );
    }
    Ok(r)
}

/// `org bind-group ORG GROUP`: the group's members (and its subgroups'
/// members) become members of ORG.
pub fn org_bind_group(
    db: impl Into<Database>,
    org: &str,
    group: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
    let (outcome, group_id) = admin::bind_group(&conn, org, group, actor)?;
    let mut r = report("org bind-group", org, Some(&group_id), outcome, actor);
    let bound = admin::list_groups(&conn, org)?
        .into_iter()
        .find(|b| b.group_id == group_id);
    if let Some(b) = bound {
        r.note = Some(format!(
            "group {} has {} direct member(s); members of its subgroups count too",
            b.group_name.as_deref().unwrap_or(&group_id),
            b.members
        ));
    }
    Ok(r)
}

pub fn org_unbind_group(
    db: impl Into<Database>,
    org: &str,
    group: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
    match admin::unbind_group(&conn, org, group, actor)? {
        (WriteOutcome::NotFound, _) => Err(OpsError::GroupNotBound {
            org: org.to_string(),
            group: group.to_string(),
        }),
        (outcome, group_id) => Ok(report(
            "org unbind-group",
            org,
            Some(&group_id),
            outcome,
            actor,
        )),
    }
}

pub fn member_add(
    db: impl Into<Database>,
    org: &str,
    user: &str,
    role: MemberRole,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
    let user = &admin::resolve_user(&conn, user)?;
    let outcome = admin::add_member(&conn, org, user, role, actor)?;
    let mut r = report("member add", org, Some(user), outcome, actor);
    r.role = Some(role);
    Ok(r)
}

pub fn member_remove(
    db: impl Into<Database>,
    org: &str,
    user: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
    let user = &admin::resolve_user(&conn, user)?;
    match admin::remove_member(&conn, org, user, actor)? {
        WriteOutcome::NotFound => Err(OpsError::NotAMember {
            org: org.to_string(),
            user: user.to_string(),
        }),
        outcome => Ok(report("member remove", org, Some(user), outcome, actor)),
    }
}

/// `model enable ORG PATTERN`: allow an exact id or a glob.
pub fn model_enable(
    db: impl Into<Database>,
    org: &str,
    model: &str,
    force: bool,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
    let target = admin::parse_target(model)?;
    let known = known_models(&conn)?;
    let mut notes = Vec::new();
    match &target {
        Target::Exact(id) => match check_exact(&known, id) {
            KnownCheck::Known => {}
            _ if admin::ever_linked(&conn, id)? => {}
            KnownCheck::Unknown { suggestions } if !force => {
                return Err(OpsError::UnknownModel {
                    model: id.clone(),
                    suggestions,
                    nothing_known: false,
                })
            }
            KnownCheck::NothingKnown if !force => {
                return Err(OpsError::UnknownModel {
                    model: id.clone(),
                    suggestions: Vec::new(),
                    nothing_known: true,
                })
            }
            _ => notes.push(format!(
                "'{id}' matches no known model (enabled with --force)"
            )),
        },
        Target::Glob(_) => notes.extend(pattern_note(&known, &target)),
    }
    let outcome = admin::enable_model(&conn, org, model, actor)?;
    let mut r = report("model enable", org, Some(model), outcome, actor);
    if let Target::Exact(id) = &target {
        notes.extend(preset_note(&conn, id)?);
        notes.extend(denied_elsewhere(&conn, id)?);
    }
    r.note = (!notes.is_empty()).then(|| notes.join("; "));
    Ok(r)
}

/// A glob that matches nothing known is allowed (new models appear weekly)
/// but worth a warning: a typo in a pattern grants nothing.
fn pattern_note(known: &KnownSet, target: &Target) -> Option<String> {
    if known.is_empty() {
        return Some(format!(
            "no model list has been seen yet, so '{target}' could not be checked against known models"
        ));
    }
    let matching = known.ids.iter().filter(|id| target.matches(id)).count();
    (matching == 0).then(|| {
        format!(
            "'{target}' matches none of the {} known models: check it for a typo",
            known.ids.len()
        )
    })
}

/// `model deny ORG PATTERN`: no member of ORG may use a matching model,
/// whatever any organization allows.
pub fn model_deny(
    db: impl Into<Database>,
    org: &str,
    model: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
    let target = admin::parse_target(model)?;
    let known = known_models(&conn)?;
    // Denying something unknown is harmless (and may be deliberate, ahead
    // of a release), so it is a warning, never a refusal.
    let note = match &target {
        Target::Exact(id) => match check_exact(&known, id) {
            KnownCheck::Unknown { suggestions } if !suggestions.is_empty() => Some(format!(
                "'{id}' matches no known model; close ids: {}",
                suggestions.join(", ")
            )),
            KnownCheck::Unknown { .. } => Some(format!("'{id}' matches no known model")),
            _ => None,
        },
        Target::Glob(_) => pattern_note(&known, &target),
    };
    let outcome = admin::deny_model(&conn, org, model, actor)?;
    let mut r = report("model deny", org, Some(model), outcome, actor);
    r.note = note;
    Ok(r)
}

/// Decisions judge a preset by its root (`store::access`), so a link to a
/// preset permits nothing; say so instead of letting an operator wonder
/// why users still get 403.
fn preset_note(conn: &AnyDb, model: &str) -> Result<Option<String>, OpsError> {
    let chain = base_chain(
        conn,
        model,
        crate::store::StoreConfig::default().max_base_depth,
    )?;
    Ok(match (chain.end, chain.steps.last()) {
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
    })
}

/// An allow that a deny somewhere overrides for the members of both
/// organizations: worth a line, since the allow alone looks like it works.
fn denied_elsewhere(conn: &AnyDb, model: &str) -> Result<Option<String>, OpsError> {
    let denies = crate::store::report::active_denies(conn)?;
    let hits: Vec<String> = denies
        .into_iter()
        .filter(|(_, pattern)| Target::parse(pattern).is_ok_and(|t| t.matches(model)))
        .map(|(org, pattern)| format!("{pattern} in {org}"))
        .collect();
    Ok((!hits.is_empty()).then(|| {
        format!(
            "'{model}' matches deny rule(s) {}: members of those organizations stay refused (a deny wins)",
            hits.join(", ")
        )
    }))
}

pub fn model_disable(
    db: impl Into<Database>,
    org: &str,
    model: &str,
    actor: &str,
) -> Result<WriteReport, OpsError> {
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db.into())?;
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
            ("model deny", Some(model)) => write!(f, "deny of '{model}' for '{org}'")?,
            ("org rename", Some(name)) => write!(f, "organization '{org}' named '{name}'")?,
            ("org mode", Some(mode)) => write!(f, "organization '{org}' in {mode} mode")?,
            ("org bind-group" | "org unbind-group", Some(group)) => {
                write!(f, "binding of Open WebUI group '{group}' to '{org}'")?;
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

pub fn org_list(db: impl Into<Database>) -> Result<OrgList, OpsError> {
    let conn = open_read(&db.into())?;
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
                    o.mode.as_str().to_string(),
                    o.active_members.to_string(),
                    o.bound_groups.to_string(),
                    o.active_models.to_string(),
                    o.active_rules.to_string(),
                    o.created_at.map(utc).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        write_table(
            f,
            &[
                "ID",
                "NAME",
                "MODE",
                "MEMBERS",
                "GROUPS",
                "MODELS",
                "RULES",
                "CREATED (UTC)",
            ],
            &rows,
        )
    }
}

/// `member list ORG`: every membership, inactive ones too (marked), since
/// "why can't this user see models?" is often a deactivated row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MemberList(pub Vec<Member>);

pub fn member_list(db: impl Into<Database>, org: &str) -> Result<MemberList, OpsError> {
    let conn = open_read(&db.into())?;
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

pub fn model_list(db: impl Into<Database>, org: &str) -> Result<ModelList, OpsError> {
    let conn = open_read(&db.into())?;
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
                    m.link.effect.as_str().to_string(),
                    if m.link.pattern { "pattern" } else { "exact" }.to_string(),
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
        write_table(
            f,
            &["MODEL", "EFFECT", "KIND", "NAME", "STATUS", "UPDATED (UTC)"],
            &rows,
        )
    }
}

/// `org groups ORG`: the Open WebUI groups bound to ORG, unbound ones too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct GroupList(pub Vec<GroupBinding>);

pub fn org_groups(db: impl Into<Database>, org: &str) -> Result<GroupList, OpsError> {
    let conn = open_read(&db.into())?;
    Ok(GroupList(admin::list_groups(&conn, org)?))
}

impl fmt::Display for GroupList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no groups bound");
        }
        let rows: Vec<Vec<String>> = self
            .0
            .iter()
            .map(|b| {
                vec![
                    b.group_id.clone(),
                    or_dash(b.group_name.as_deref()),
                    b.members.to_string(),
                    if b.is_active { "active" } else { "inactive" }.into(),
                    b.created_at.map(utc).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        write_table(
            f,
            &["GROUP", "NAME", "MEMBERS", "STATUS", "BOUND (UTC)"],
            &rows,
        )
    }
}
