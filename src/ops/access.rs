//! `modelgate access USER [MODEL]`: why a user may or may not use a model.
//!
//! The decision comes from the proxy's own read path (`AccessStore::
//! load_user` + `model_graph` + `UserAccess::decide`), uncached, so what
//! this prints is what the gate enforces. The preset → base chain is read
//! separately (`store::report::base_chain`, same rules) only to show the
//! steps, which the decision itself does not keep.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::{open_reader, require_non_empty, OpsError};
use crate::store::report::{base_chain, BaseChain, ChainEnd};
use crate::store::{AccessStore, Decision, DenyReason, StoreConfig, UserAccess};

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
    pub permitted_models: Vec<PermittedModel>,
    pub model: Option<ModelExplanation>,
}

impl AccessExplanation {
    /// True unless a MODEL was asked about and refused (exit code 3).
    pub fn allowed(&self) -> bool {
        self.model
            .as_ref()
            .map_or(true, |m| m.decision.is_allowed())
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

/// Needs a tokio runtime (the store reads on blocking threads).
pub async fn explain(
    path: &Path,
    user: &str,
    model: Option<&str>,
) -> Result<AccessExplanation, OpsError> {
    let user = require_non_empty(user, "user id")?;
    let model = model
        .map(|m| require_non_empty(m, "model id"))
        .transpose()?;
    // Opened first (read-only) so an unreadable file is reported with its
    // path and the fix before the store's pool tries it.
    let reader = open_reader(path)?;
    let cfg = StoreConfig::new(path);
    let max_depth = cfg.max_base_depth;
    let store = AccessStore::open(cfg);
    let access = store.load_user(user).await?;
    let graph = store.model_graph().await?;
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
            let decision = access.decide(&graph, model);
            let chain = base_chain(&reader, model, max_depth)?;
            let explanation = explain_line(&chain, &decision, &access.organizations, max_depth);
            Some(ModelExplanation {
                requested: model.to_string(),
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
        permitted_models: permitted,
        model,
    })
}

fn explain_line(
    chain: &BaseChain,
    decision: &Decision,
    orgs: &[String],
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
        Decision::Allowed { organization, .. } => {
            format!("permitted by organization {organization}")
        }
        Decision::Denied(DenyReason::NotPermitted { .. }) => {
            format!("not permitted in orgs [{}]", orgs.join(", "))
        }
        Decision::Denied(DenyReason::NoOrganization) => {
            "refused: the user has no active organization membership".to_string()
        }
        Decision::Denied(DenyReason::Cycle) => "refused: the preset's base chain loops".to_string(),
        Decision::Denied(DenyReason::TooDeep) => {
            "refused: the preset's base chain is too long".to_string()
        }
    };
    format!("{line} → {verdict}")
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
            writeln!(f, "organizations: {}", self.organizations.join(", "))?;
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
        if let Some(m) = &self.model {
            writeln!(f, "model {}: {}", m.requested, m.explanation)?;
            let verdict = if m.decision.is_allowed() {
                "allowed"
            } else {
                "denied"
            };
            writeln!(f, "decision: {verdict}")?;
        }
        Ok(())
    }
}
