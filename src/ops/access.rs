//! `modelgate access USER [MODEL]`: why a user may or may not use a model.
//!
//! The decision comes from the proxy's own read path (`AccessStore::
//! load_user` + `model_graph` + `UserAccess::decide`), uncached, so what
//! this prints is what the gate enforces. The preset → base chain is read
//! separately (`store::report::base_chain`, same rules) only to show the
//! steps, which the decision itself does not keep.

use std::fmt;

use serde::Serialize;

use super::{open_read, require_non_empty, OpsError};
use crate::store::report::{base_chain, membership_sources, BaseChain, ChainEnd, MembershipSource};
use crate::store::{
    AccessStore, Database, Decision, DenyReason, RuleView, StoreConfig, StoreError, UserAccess,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermittedModel {
    /// A root model id (presets on it are permitted too).
    pub model: String,
    /// The organization granting it (the smallest id when several do).
    pub organization: String,
    /// Set when the linked id is itself a preset: decisions judge the
    /// root, so such a link permits nothing.
    pub preset_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelExplanation {
    pub requested: String,
    pub chain: BaseChain,
    pub decision: Decision,
    /// One line: `my-preset → gpt-4o (root) → not permitted in orgs [a, b]`.
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessExplanation {
    pub user_id: String,
    /// A `user` row or any membership row exists.
    pub known: bool,
    /// Open WebUI's `user.role`.
    pub role: Option<String>,
    /// Organizations with an active membership.
    pub organizations: Vec<String>,
    /// How the user is in each organization: explicitly or through a
    /// bound Open WebUI group (one entry per way).
    pub memberships: Vec<MembershipSource>,
    /// Organizations in shadow mode (their refusals are not enforced).
    pub shadow_organizations: Vec<String>,
    /// Exact links (roots), with the granting organization.
    pub permitted_models: Vec<PermittedModel>,
    /// Pattern and deny rules of the user's organizations.
    pub rules: Vec<RuleView>,
    pub model: Option<ModelExplanation>,
}

impl AccessExplanation {
    /// True unless a MODEL was asked about and the gate refuses it (exit
    /// code 3); a shadow-mode would-deny goes through, so it is true.
    pub fn allowed(&self) -> bool {
        self.model
            .as_ref()
            .map_or(true, |m| m.decision.lets_through())
    }
}

/// The user's permitted (root) models, sorted, with the granting organization.
fn permitted_models(access: &UserAccess) -> Vec<PermittedModel> {
    access
        .permitted_models()
        .into_iter()
        .map(|(model, organization)| PermittedModel {
            model,
            organization,
            preset_of: None,
        })
        .collect()
}

/// Needs a tokio runtime. The SQL parts (resolving an email, the preset
/// chain, group memberships) are blocking and run on a blocking thread,
/// which also runs the store's async lookups on the caller's runtime: the
/// connection is opened, used and closed there, never on an async worker.
pub async fn explain(
    db: impl Into<Database>,
    user: &str,
    model: Option<&str>,
) -> Result<AccessExplanation, OpsError> {
    let db = db.into();
    let user = require_non_empty(user, "user id")?.to_string();
    let model = model
        .map(|m| require_non_empty(m, "model id").map(str::to_string))
        .transpose()?;
    let runtime = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || explain_blocking(&runtime, db, &user, model)).await {
        Ok(result) => result,
        Err(e) => Err(OpsError::Store(StoreError::Unavailable(format!(
            "the explanation task failed: {e}"
        )))),
    }
}

fn explain_blocking(
    runtime: &tokio::runtime::Handle,
    db: Database,
    user: &str,
    model: Option<String>,
) -> Result<AccessExplanation, OpsError> {
    // Opened first (read-only) so an unreadable database is reported with
    // its name and the fix before the store's pool tries it.
    let reader = open_read(&db)?;
    let user = &crate::store::admin::resolve_user(&reader, user)?;
    let cfg = StoreConfig::for_database(db);
    let max_depth = cfg.max_base_depth;
    let (access, graph) = runtime.block_on(async {
        let store = AccessStore::open(cfg);
        let access = store.load_user(user).await?;
        let graph = store.model_graph().await?;
        Ok::<_, StoreError>((access, graph))
    })?;
    let mut permitted = permitted_models(&access);
    for p in &mut permitted {
        p.preset_of = match graph.root(&p.model) {
            Ok(root) if root != p.model => Some(root.to_string()),
            _ => None,
        };
    }
    let model = match model {
        None => None,
        Some(model) => {
            let decision = access.decide(&graph, &model);
            let chain = base_chain(&reader, &model, max_depth)?;
            let explanation = explain_line(&chain, &decision, &access, max_depth);
            Some(ModelExplanation {
                requested: model,
                chain,
                decision,
                explanation,
            })
        }
    };
    Ok(AccessExplanation {
        user_id: access.user_id.clone(),
        known: access.known,
        role: access.role.clone(),
        organizations: access.organizations.clone(),
        memberships: membership_sources(&reader, &access.user_id)?,
        shadow_organizations: access.shadow_organizations().to_vec(),
        permitted_models: permitted,
        rules: access.rules().to_vec(),
        model,
    })
}

fn explain_line(
    chain: &BaseChain,
    decision: &Decision,
    access: &UserAccess,
    max_depth: usize,
) -> String {
    let mut line = chain
        .steps
        .iter()
        .map(|s| s.id.as_str())
        .collect::<Vec<_>>()
        .join(" → ");
    match chain.end {
        ChainEnd::Root => line.push_str(" (root)"),
        ChainEnd::Cycle => line.push_str(" (base_model_id loop)"),
        ChainEnd::TooDeep => line.push_str(&format!(" → … (more than {max_depth} hops)")),
    }
    let verdict = match decision {
        Decision::Allowed {
            organization,
            rule: None,
            ..
        } => format!("permitted by organization {organization}"),
        Decision::Allowed {
            organization,
            rule: Some(rule),
            ..
        } => format!("permitted by rule {rule} of organization {organization}"),
        Decision::Denied(reason) => refusal_text(reason, &access.organizations),
        Decision::WouldDeny(reason) => format!(
            "{}; let through: shadow mode in [{}] (counted as would_deny)",
            refusal_text(reason, &access.organizations),
            access.shadow_organizations().join(", ")
        ),
    };
    format!("{line} → {verdict}")
}

fn refusal_text(reason: &DenyReason, orgs: &[String]) -> String {
    match reason {
        DenyReason::NotPermitted { .. } => {
            format!("not permitted in orgs [{}]", orgs.join(", "))
        }
        DenyReason::DeniedByRule {
            model,
            organization,
            rule,
        } => format!(
            "refused: {model} matches deny rule {rule} of organization {organization} (a deny wins over every allow)"
        ),
        DenyReason::NoOrganization => {
            "refused: the user has no active organization membership".to_string()
        }
        DenyReason::Cycle => "refused: the preset's base chain loops".to_string(),
        DenyReason::TooDeep => "refused: the preset's base chain is too long".to_string(),
    }
}

impl fmt::Display for AccessExplanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user: {}", self.user_id)?;
        match (&self.role, self.known) {
            (Some(role), _) => writeln!(f, " (Open WebUI role: {role})")?,
            (None, true) => writeln!(f)?,
            (None, false) => writeln!(f, " (unknown: no user row and no membership)")?,
        }
        if self.organizations.is_empty() {
            writeln!(f, "organizations: none (active)")?;
        } else {
            let orgs: Vec<String> = self
                .organizations
                .iter()
                .map(|org| {
                    let mut text = org.clone();
                    let groups: Vec<String> = self
                        .memberships
                        .iter()
                        .filter(|m| &m.organization == org)
                        .filter_map(|m| {
                            m.group_id.as_ref().map(|id| match &m.group_name {
                                Some(name) => format!("group {name}"),
                                None => format!("group {id}"),
                            })
                        })
                        .collect();
                    if !groups.is_empty() {
                        text.push_str(&format!(" (via {})", groups.join(", ")));
                    }
                    if self.shadow_organizations.contains(org) {
                        text.push_str(" [shadow mode]");
                    }
                    text
                })
                .collect();
            writeln!(f, "organizations: {}", orgs.join(", "))?;
        }
        if self.permitted_models.is_empty() {
            writeln!(f, "permitted models (roots): none")?;
        } else {
            let list: Vec<String> = self
                .permitted_models
                .iter()
                .map(|m| match &m.preset_of {
                    None => format!("{} [{}]", m.model, m.organization),
                    Some(root) => format!(
                        "{} [{}] (a preset of {root}: this link grants nothing)",
                        m.model, m.organization
                    ),
                })
                .collect();
            writeln!(f, "permitted models (roots): {}", list.join(", "))?;
        }
        if !self.rules.is_empty() {
            let list: Vec<String> = self
                .rules
                .iter()
                .map(|r| format!("{} {} [{}]", r.effect.as_str(), r.pattern, r.organization))
                .collect();
            writeln!(f, "rules: {}", list.join(", "))?;
        }
        if let Some(m) = &self.model {
            writeln!(f, "model {}: {}", m.requested, m.explanation)?;
            let verdict = match m.decision {
                Decision::Allowed { .. } => "allowed",
                Decision::WouldDeny(_) => "would deny (shadow mode: allowed)",
                Decision::Denied(_) => "denied",
            };
            writeln!(f, "decision: {verdict}")?;
        }
        Ok(())
    }
}
