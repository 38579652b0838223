//! The decision: a user's access snapshot, the preset→base model graph, and
//! the rule that joins them. Pure data, no I/O, so every case is unit-tested.
//!
//! Rule: a user may use model M iff
//! 1. no organization of the user has an active **deny** rule matching M or
//!    any model on its base chain (deny wins over every allow, across all of
//!    the user's organizations: a deny is a compliance or cost decision of
//!    the organization that wrote it, and membership in a second
//!    organization must not be a way around it), and
//! 2. some organization of the user **allows** root(M), by an exact link
//!    (`organization_models`) or an allow pattern, where root(M) follows
//!    `model.base_model_id` to the upstream model. Judging the root (never
//!    the requested id) is what makes "listing a preset never grants its
//!    base" and "listing only a preset grants nothing" hold: Open WebUI
//!    calls the base.
//!
//! Shadow mode: an organization in `shadow` has its refusals evaluated but
//! not enforced; its allows count as always. A refusal becomes `WouldDeny`
//! (the call passes and is counted) when it is owed to shadow
//! organizations only: a shadow organization's deny blocked an allow, or
//! nothing allows the model and every organization of the user is in
//! shadow. A refusal an enforcing organization makes (its deny, or a model
//! nobody allows while it enforces) stands.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

use super::pattern::{Glob, Target};
use crate::hashing::Keyed;

/// Whether an organization's refusals are enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    /// Would-be refusals are allowed, logged and counted.
    Shadow,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }

    /// The stored spelling; anything else (a hand edit) is `None`, which
    /// the loader treats as an error rather than guess a mode.
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "enforce" => Some(Mode::Enforce),
            "shadow" => Some(Mode::Shadow),
            _ => None,
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }

    pub fn parse(text: &str) -> Option<Effect> {
        match text {
            "allow" => Some(Effect::Allow),
            "deny" => Some(Effect::Deny),
            _ => None,
        }
    }
}

/// A compiled glob with the spelling it was written in (for explanations).
#[derive(Debug, Clone, PartialEq, Eq)]
struct GlobRule {
    text: String,
    glob: Glob,
}

/// One organization's policy: mode, exact model links, and pattern/deny
/// rules, compiled once when the organization is loaded. Shared (`Arc`) by
/// every user of it: an organization grants hundreds of models, a user only
/// adds which organizations they belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgModels {
    organization_id: String,
    mode: Mode,
    /// Exact allows: the seed's `organization_models` links.
    models: HashSet<String, Keyed>,
    allow_globs: Vec<GlobRule>,
    deny_exact: HashSet<String, Keyed>,
    deny_globs: Vec<GlobRule>,
}

impl OrgModels {
    pub fn new(
        organization_id: impl Into<String>,
        models: impl IntoIterator<Item = String>,
    ) -> OrgModels {
        OrgModels {
            organization_id: organization_id.into(),
            models: models.into_iter().collect(),
            ..OrgModels::default()
        }
    }

    pub fn with_mode(mut self, mode: Mode) -> OrgModels {
        self.mode = mode;
        self
    }

    /// Adds a rule from the rules table. An exact allow joins the links.
    pub fn with_rule(mut self, target: Target, effect: Effect) -> OrgModels {
        let text = target.canonical();
        match (target, effect) {
            (Target::Exact(id), Effect::Allow) => {
                self.models.insert(id);
            }
            (Target::Exact(id), Effect::Deny) => {
                self.deny_exact.insert(id);
            }
            (Target::Glob(glob), Effect::Allow) => self.allow_globs.push(GlobRule { text, glob }),
            (Target::Glob(glob), Effect::Deny) => self.deny_globs.push(GlobRule { text, glob }),
        }
        self
    }

    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether an exact link or an allow pattern grants `model_id` (denies
    /// are not consulted: see [`UserAccess::decide`]).
    pub fn contains(&self, model_id: &str) -> bool {
        self.allow_rule(model_id).is_some()
    }

    /// The allow that grants `model_id`: `Some(None)` for an exact link,
    /// `Some(Some(pattern))` for a pattern.
    fn allow_rule(&self, model_id: &str) -> Option<Option<&str>> {
        if self.models.contains(model_id) {
            return Some(None);
        }
        self.allow_globs
            .iter()
            .find(|r| r.glob.matches(model_id))
            .map(|r| Some(r.text.as_str()))
    }

    /// The deny rule matching `model_id`, in its written spelling.
    fn deny_rule(&self, model_id: &str) -> Option<String> {
        if self.deny_exact.contains(model_id) {
            return Some(Target::Exact(model_id.to_string()).canonical());
        }
        self.deny_globs
            .iter()
            .find(|r| r.glob.matches(model_id))
            .map(|r| r.text.clone())
    }

    fn has_denies(&self) -> bool {
        !self.deny_exact.is_empty() || !self.deny_globs.is_empty()
    }

    /// Exact links plus rules: what the cache weighs an organization by.
    pub fn len(&self) -> usize {
        self.models.len() + self.allow_globs.len() + self.deny_exact.len() + self.deny_globs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The exactly linked model ids, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(String::as_str)
    }

    /// Pattern and deny rules as (spelling, effect), sorted.
    pub fn rules(&self) -> Vec<(String, Effect)> {
        let mut rules: Vec<(String, Effect)> = self
            .allow_globs
            .iter()
            .map(|r| (r.text.clone(), Effect::Allow))
            .chain(
                self.deny_globs
                    .iter()
                    .map(|r| (r.text.clone(), Effect::Deny)),
            )
            .chain(
                self.deny_exact
                    .iter()
                    .map(|id| (Target::Exact(id.clone()).canonical(), Effect::Deny)),
            )
            .collect();
        rules.sort();
        rules
    }
}

/// What one user may use: their active memberships (and role), each with
/// the organization's shared policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserAccess {
    pub user_id: String,
    /// Open WebUI's `user.role` (`admin`, `user`, `pending`) when that table
    /// exists and has the user.
    pub role: Option<String>,
    /// A `user` row or any membership row (active or not) exists.
    pub known: bool,
    /// Organizations with an active membership (explicit or through a bound
    /// group), sorted.
    pub organizations: Vec<String>,
    /// One set per entry of `organizations`, same order. Serialized as the
    /// old `models` map (exactly linked model id → granting organization,
    /// in sorted order) so `access` explanations keep their shape; pattern
    /// and deny rules and shadow organizations are listed beside it.
    #[serde(rename = "models", serialize_with = "serialize_permitted")]
    model_sets: Vec<Arc<OrgModels>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rules: Vec<RuleView>,
    /// Organizations in shadow mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    shadow: Vec<String>,
}

/// A pattern or deny rule as explanations show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleView {
    pub organization: String,
    pub pattern: String,
    pub effect: Effect,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DenyReason {
    /// The user has no active membership.
    NoOrganization,
    /// None of the user's organizations allows the root.
    NotPermitted { root: String },
    /// A deny rule of one of the user's organizations matches `model` (the
    /// requested id or one on its base chain).
    DeniedByRule {
        model: String,
        organization: String,
        rule: String,
    },
    /// The model's `base_model_id` chain loops.
    Cycle,
    /// The chain is longer than `max_base_depth`.
    TooDeep,
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DenyReason::NoOrganization => f.write_str("user is in no organization"),
            DenyReason::NotPermitted { root } => write!(f, "root model {root} not permitted"),
            DenyReason::DeniedByRule {
                model,
                organization,
                rule,
            } => write!(f, "{model} denied by rule {rule} of {organization}"),
            DenyReason::Cycle => f.write_str("preset chain loops"),
            DenyReason::TooDeep => f.write_str("preset chain too deep"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allowed {
        root: String,
        organization: String,
        /// The allow pattern that granted it; `None` for an exact link.
        #[serde(skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
    },
    Denied(DenyReason),
    /// Refused by a shadow-mode organization's policy only: let through,
    /// logged and counted as `would_deny`.
    WouldDeny(DenyReason),
}

impl Decision {
    /// Allowed by policy (not merely let through in shadow mode).
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// The call goes through: allowed, or refused only in shadow mode.
    /// What list filtering asks, so a shadow rollout hides nothing.
    pub fn lets_through(&self) -> bool {
        !matches!(self, Decision::Denied(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error("model base chain loops")]
    Cycle,
    #[error("model base chain longer than {0}")]
    TooDeep(usize),
}

impl UserAccess {
    /// A user with no rows anywhere: cached like any other answer.
    pub fn unknown(user_id: &str) -> UserAccess {
        UserAccess {
            user_id: user_id.to_string(),
            ..UserAccess::default()
        }
    }

    /// A user with active memberships in the organizations of `model_sets`
    /// (any order; sorted and deduplicated here, so attribution does not
    /// depend on the order the database returned them in).
    pub fn new(
        user_id: &str,
        role: Option<String>,
        known: bool,
        mut model_sets: Vec<Arc<OrgModels>>,
    ) -> UserAccess {
        model_sets.sort_unstable_by(|a, b| a.organization_id.cmp(&b.organization_id));
        model_sets.dedup_by(|a, b| a.organization_id == b.organization_id);
        let rules = model_sets
            .iter()
            .flat_map(|set| {
                set.rules().into_iter().map(|(pattern, effect)| RuleView {
                    organization: set.organization_id.clone(),
                    pattern,
                    effect,
                })
            })
            .collect();
        let shadow = model_sets
            .iter()
            .filter(|s| s.mode == Mode::Shadow)
            .map(|s| s.organization_id.clone())
            .collect();
        UserAccess {
            user_id: user_id.to_string(),
            role,
            known,
            organizations: model_sets
                .iter()
                .map(|s| s.organization_id.clone())
                .collect(),
            model_sets,
            rules,
            shadow,
        }
    }

    /// The organization allowing `root` (the smallest id when several do),
    /// or `None`; deny rules are not consulted (use `decide`).
    pub fn permits(&self, root: &str) -> Option<&str> {
        self.model_sets
            .iter()
            .find(|set| set.contains(root))
            .map(|set| set.organization_id())
    }

    /// Every exactly linked model with its granting organization, sorted by
    /// model id (for `modelgate access` and admin explanations; the request
    /// path uses `decide`).
    pub fn permitted_models(&self) -> Vec<(String, String)> {
        permitted_map(&self.model_sets)
            .into_iter()
            .map(|(m, o)| (m.to_string(), o.to_string()))
            .collect()
    }

    /// The per-organization sets, in `organizations` order.
    pub fn model_sets(&self) -> &[Arc<OrgModels>] {
        &self.model_sets
    }

    /// Pattern and deny rules of all the user's organizations.
    pub fn rules(&self) -> &[RuleView] {
        &self.rules
    }

    /// The user's organizations in shadow mode.
    pub fn shadow_organizations(&self) -> &[String] {
        &self.shadow
    }

    pub fn decide(&self, graph: &ModelGraph, model_id: &str) -> Decision {
        if self.organizations.is_empty() {
            return Decision::Denied(DenyReason::NoOrganization);
        }
        let root = match graph.root(model_id) {
            Ok(root) => root,
            Err(RootError::Cycle) => return Decision::Denied(DenyReason::Cycle),
            Err(RootError::TooDeep(_)) => return Decision::Denied(DenyReason::TooDeep),
        };
        let reason = match self.judge(graph, model_id, root, false) {
            Ok((organization, rule)) => {
                return Decision::Allowed {
                    root: root.to_string(),
                    organization: organization.to_string(),
                    rule: rule.map(str::to_string),
                }
            }
            Err(reason) => reason,
        };
        if self.shadow.is_empty() {
            return Decision::Denied(reason);
        }
        if self.shadow.len() == self.model_sets.len() {
            return Decision::WouldDeny(reason);
        }
        match self.judge(graph, model_id, root, true) {
            // Only a shadow organization's deny stood in the way.
            Ok(_) => Decision::WouldDeny(reason),
            Err(enforced) => Decision::Denied(enforced),
        }
    }

    /// Rule 1 then rule 2 of the module comment: denies of every
    /// organization (or of the enforcing ones only), then allows of all.
    fn judge<'a>(
        &'a self,
        graph: &ModelGraph,
        model_id: &str,
        root: &str,
        enforcing_denies_only: bool,
    ) -> Result<(&'a str, Option<&'a str>), DenyReason> {
        let denying = || {
            self.model_sets
                .iter()
                .filter(move |s| s.has_denies())
                .filter(move |s| !enforcing_denies_only || s.mode == Mode::Enforce)
        };
        if denying().next().is_some() {
            for id in graph.chain(model_id) {
                for set in denying() {
                    if let Some(rule) = set.deny_rule(id) {
                        return Err(DenyReason::DeniedByRule {
                            model: id.to_string(),
                            organization: set.organization_id.clone(),
                            rule,
                        });
                    }
                }
            }
        }
        self.model_sets
            .iter()
            .find_map(|s| s.allow_rule(root).map(|rule| (s.organization_id(), rule)))
            .ok_or_else(|| DenyReason::NotPermitted {
                root: root.to_string(),
            })
    }
}

/// model id → first granting organization; `sets` are in organization order,
/// so the first insertion wins, as in `permits`.
fn permitted_map(sets: &[Arc<OrgModels>]) -> BTreeMap<&str, &str> {
    let mut map = BTreeMap::new();
    for set in sets {
        for model in set.iter() {
            map.entry(model).or_insert(set.organization_id());
        }
    }
    map
}

fn serialize_permitted<S: Serializer>(sets: &[Arc<OrgModels>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(permitted_map(sets))
}

/// In-memory copy of Open WebUI's `model(id, base_model_id)`: a few thousand
/// rows, reloaded whenever the database changes, so `root` costs a few hash
/// lookups instead of a query per hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelGraph {
    base_of: HashMap<String, String, Keyed>,
    max_depth: usize,
}

impl ModelGraph {
    /// `rows` are `(id, base_model_id)`; a NULL or empty base marks an
    /// upstream model (Open WebUI tests the base for truthiness too).
    pub fn new(
        rows: impl IntoIterator<Item = (String, Option<String>)>,
        max_depth: usize,
    ) -> ModelGraph {
        let base_of = rows
            .into_iter()
            .filter_map(|(id, base)| base.filter(|b| !b.is_empty()).map(|b| (id, b)))
            .collect();
        ModelGraph { base_of, max_depth }
    }

    /// No `model` table: every id is its own root.
    pub fn empty(max_depth: usize) -> ModelGraph {
        ModelGraph::new(std::iter::empty(), max_depth)
    }

    /// Number of presets (rows with a base).
    pub fn presets(&self) -> usize {
        self.base_of.len()
    }

    /// The requested id, then each base up to the root. Call after `root`
    /// succeeded (no loop); the walk is bounded by `max_depth` regardless.
    pub fn chain<'a>(&'a self, model_id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        std::iter::successors(Some(model_id), move |id| {
            self.base_of.get(*id).map(String::as_str)
        })
        .take(self.max_depth + 1)
    }

    /// Follows `base_model_id` to the upstream model. An id without a row
    /// (or without a base) is its own root, which also covers a preset
    /// whose base has no row ("dangling base": the base is the root).
    pub fn root<'a>(&'a self, model_id: &'a str) -> Result<&'a str, RootError> {
        let mut current = model_id;
        // Chains are at most max_depth long, so a linear scan of the path
        // is cheaper than a HashSet.
        let mut path: Vec<&str> = Vec::new();
        while let Some(base) = self.base_of.get(current) {
            path.push(current);
            if path.contains(&base.as_str()) {
                return Err(RootError::Cycle);
            }
            if path.len() > self.max_depth {
                return Err(RootError::TooDeep(self.max_depth));
            }
            current = base;
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pattern::Target;

    fn graph(rows: &[(&str, Option<&str>)]) -> ModelGraph {
        ModelGraph::new(
            rows.iter()
                .map(|(id, base)| (id.to_string(), base.map(str::to_string))),
            8,
        )
    }

    fn access(orgs: &[&str], models: &[(&str, &str)]) -> UserAccess {
        let sets = orgs
            .iter()
            .map(|org| {
                let granted = models
                    .iter()
                    .filter(|(_, o)| o == org)
                    .map(|(m, _)| m.to_string());
                Arc::new(OrgModels::new(*org, granted))
            })
            .collect();
        UserAccess::new("u", None, true, sets)
    }

    #[test]
    fn roots() {
        let g = graph(&[
            ("gpt", None),
            ("preset", Some("gpt")),
            ("preset2", Some("preset")),
            ("dangling", Some("nowhere")),
            ("empty-base", Some("")),
            ("a", Some("b")),
            ("b", Some("a")),
            ("self", Some("self")),
        ]);
        assert_eq!(g.root("gpt"), Ok("gpt"));
        assert_eq!(g.root("unlisted"), Ok("unlisted"));
        assert_eq!(g.root("preset2"), Ok("gpt"));
        assert_eq!(g.root("dangling"), Ok("nowhere"));
        assert_eq!(g.root("empty-base"), Ok("empty-base"));
        assert_eq!(g.root("a"), Err(RootError::Cycle));
        assert_eq!(g.root("self"), Err(RootError::Cycle));
        assert_eq!(g.presets(), 6);
    }

    #[test]
    fn cycle_reached_through_a_tail() {
        let g = graph(&[("x", Some("a")), ("a", Some("b")), ("b", Some("a"))]);
        assert_eq!(g.root("x"), Err(RootError::Cycle));
    }

    #[test]
    fn depth_limit_is_inclusive() {
        // m0 -> m1 -> ... -> mN: N hops.
        let chain = |hops: usize| {
            let rows: Vec<(String, Option<String>)> = (0..hops)
                .map(|i| (format!("m{i}"), Some(format!("m{}", i + 1))))
                .collect();
            ModelGraph::new(rows, 8)
        };
        assert_eq!(chain(8).root("m0"), Ok("m8"));
        assert_eq!(chain(9).root("m0"), Err(RootError::TooDeep(8)));
        assert_eq!(ModelGraph::empty(8).root("anything"), Ok("anything"));
    }

    #[test]
    fn decisions() {
        let g = graph(&[
            ("on-base", Some("gpt")),
            ("on-forbidden", Some("claude")),
            ("listed-preset", Some("claude")),
            ("loop", Some("loop")),
        ]);
        let a = access(&["org1"], &[("gpt", "org1"), ("listed-preset", "org1")]);
        let allowed = |root: &str| Decision::Allowed {
            root: root.into(),
            organization: "org1".into(),
            rule: None,
        };
        let denied = |root: &str| Decision::Denied(DenyReason::NotPermitted { root: root.into() });
        assert_eq!(a.decide(&g, "gpt"), allowed("gpt"));
        assert_eq!(a.decide(&g, "on-base"), allowed("gpt"));
        assert_eq!(a.decide(&g, "on-forbidden"), denied("claude"));
        // Listing only a preset grants nothing: its root is what counts.
        assert_eq!(a.decide(&g, "listed-preset"), denied("claude"));
        assert_eq!(a.decide(&g, "claude"), denied("claude"));
        assert_eq!(a.decide(&g, "loop"), Decision::Denied(DenyReason::Cycle));
        assert_eq!(
            access(&[], &[]).decide(&g, "gpt"),
            Decision::Denied(DenyReason::NoOrganization)
        );
    }

    #[test]
    fn listing_a_preset_never_grants_its_base() {
        let g = graph(&[("preset", Some("gpt"))]);
        let a = access(&["o"], &[("preset", "o")]);
        assert!(!a.decide(&g, "gpt").is_allowed());
        assert!(!a.decide(&g, "preset").is_allowed());
    }

    #[test]
    fn too_deep_is_denied() {
        let rows: Vec<(String, Option<String>)> = (0..20)
            .map(|i| (format!("m{i}"), Some(format!("m{}", i + 1))))
            .collect();
        let g = ModelGraph::new(rows, 8);
        let a = access(&["o"], &[("m20", "o")]);
        assert_eq!(a.decide(&g, "m0"), Decision::Denied(DenyReason::TooDeep));
        assert!(a.decide(&g, "m15").is_allowed());
    }

    #[test]
    fn first_organization_in_sorted_order_grants() {
        // Given out of order: `new` sorts, so attribution is by id.
        let sets = vec![
            Arc::new(OrgModels::new(
                "o2",
                ["gpt".to_string(), "claude".to_string()],
            )),
            Arc::new(OrgModels::new("o1", ["gpt".to_string()])),
            Arc::new(OrgModels::new("o3", Vec::new())),
        ];
        let a = UserAccess::new("u", Some("user".into()), true, sets);
        assert_eq!(a.organizations, vec!["o1", "o2", "o3"]);
        assert_eq!(a.permits("gpt"), Some("o1"));
        assert_eq!(a.permits("claude"), Some("o2"));
        assert_eq!(a.permits("llama"), None);
        assert_eq!(
            a.permitted_models(),
            vec![
                ("claude".to_string(), "o2".to_string()),
                ("gpt".to_string(), "o1".to_string())
            ]
        );
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "user_id": "u",
                "role": "user",
                "known": true,
                "organizations": ["o1", "o2", "o3"],
                "models": {"claude": "o2", "gpt": "o1"}
            })
        );
        assert!(UserAccess::unknown("x").permitted_models().is_empty());
    }

    fn org(id: &str, mode: Mode, rules: &[(&str, Effect)], exact: &[&str]) -> Arc<OrgModels> {
        let mut set = OrgModels::new(id, exact.iter().map(|m| m.to_string())).with_mode(mode);
        for (pattern, effect) in rules {
            set = set.with_rule(Target::parse(pattern).unwrap(), *effect);
        }
        Arc::new(set)
    }

    fn user(sets: Vec<Arc<OrgModels>>) -> UserAccess {
        UserAccess::new("u", None, true, sets)
    }

    use super::Effect::{Allow, Deny};
    use super::Mode::{Enforce, Shadow};

    #[test]
    fn patterns_allow_and_attribute_their_rule() {
        let g = graph(&[("my-preset", Some("openai/gpt-4o"))]);
        let a = user(vec![org("o", Enforce, &[("openai/*", Allow)], &["claude"])]);
        assert_eq!(
            a.decide(&g, "openai/gpt-4o"),
            Decision::Allowed {
                root: "openai/gpt-4o".into(),
                organization: "o".into(),
                rule: Some("openai/*".into()),
            }
        );
        // A preset is judged by its root, which the pattern matches.
        assert!(a.decide(&g, "my-preset").is_allowed());
        assert!(a.decide(&g, "claude").is_allowed());
        assert!(!a.decide(&g, "anthropic/claude-3").is_allowed());
    }

    #[test]
    fn a_deny_wins_over_every_allow_in_every_organization() {
        let g = graph(&[]);
        let a = user(vec![
            org("a", Enforce, &[("*", Allow)], &["openai/o1-pro"]),
            org("b", Enforce, &[("openai/o1-pro", Deny)], &[]),
        ]);
        assert_eq!(
            a.decide(&g, "openai/o1-pro"),
            Decision::Denied(DenyReason::DeniedByRule {
                model: "openai/o1-pro".into(),
                organization: "b".into(),
                rule: "openai/o1-pro".into(),
            })
        );
        assert!(a.decide(&g, "openai/gpt-4o").is_allowed());
        // A deny pattern in the granting organization itself.
        let b = user(vec![org(
            "o",
            Enforce,
            &[("openai/*", Allow), ("anthropic/*", Allow), ("*-pro", Deny)],
            &[],
        )]);
        assert!(!b.decide(&g, "openai/o1-pro").is_allowed());
        assert!(b.decide(&g, "anthropic/claude-3.5-sonnet").is_allowed());
    }

    #[test]
    fn a_deny_matches_the_preset_or_any_base_on_its_chain() {
        let g = graph(&[
            ("cheap", Some("team-gpt")),
            ("team-gpt", Some("openai/gpt-4o")),
        ]);
        let denied_base = user(vec![org(
            "o",
            Enforce,
            &[("openai/*", Allow), ("team-gpt", Deny)],
            &[],
        )]);
        assert!(denied_base.decide(&g, "openai/gpt-4o").is_allowed());
        assert_eq!(
            denied_base.decide(&g, "cheap"),
            Decision::Denied(DenyReason::DeniedByRule {
                model: "team-gpt".into(),
                organization: "o".into(),
                rule: "team-gpt".into(),
            })
        );
        let denied_preset = user(vec![org(
            "o",
            Enforce,
            &[("openai/*", Allow), ("cheap", Deny)],
            &[],
        )]);
        assert!(!denied_preset.decide(&g, "cheap").is_allowed());
        assert!(denied_preset.decide(&g, "team-gpt").is_allowed());
    }

    #[test]
    fn unicode_and_stars_in_ids() {
        let g = graph(&[]);
        let a = user(vec![org(
            "o",
            Enforce,
            &[
                ("通义/*", Allow),
                (r"vendor/\*-exact", Allow),
                ("通义/*-max", Deny),
            ],
            &[],
        )]);
        assert!(a.decide(&g, "通义/qwen-plus").is_allowed());
        assert!(!a.decide(&g, "通义/qwen-max").is_allowed());
        assert!(a.decide(&g, "vendor/*-exact").is_allowed());
        assert!(!a.decide(&g, "vendor/x-exact").is_allowed());
    }

    #[test]
    fn shadow_mode_lets_through_what_only_it_would_refuse() {
        let g = graph(&[]);
        let only_shadow = user(vec![org("s", Shadow, &[("openai/*", Allow)], &[])]);
        assert!(only_shadow.decide(&g, "openai/gpt-4o").is_allowed());
        let would = only_shadow.decide(&g, "anthropic/claude");
        assert_eq!(
            would,
            Decision::WouldDeny(DenyReason::NotPermitted {
                root: "anthropic/claude".into()
            })
        );
        assert!(would.lets_through() && !would.is_allowed());
        // An enforcing organization's allow, a shadow organization's deny.
        let mixed = user(vec![
            org("e", Enforce, &[("*", Allow)], &[]),
            org("s", Shadow, &[("openai/o1-pro", Deny)], &[]),
        ]);
        assert!(matches!(
            mixed.decide(&g, "openai/o1-pro"),
            Decision::WouldDeny(DenyReason::DeniedByRule { .. })
        ));
        // The enforcing organization refuses on its own: that stands.
        let enforced = user(vec![
            org("e", Enforce, &[("x/*", Allow)], &[]),
            org("s", Shadow, &[], &[]),
        ]);
        assert_eq!(
            enforced.decide(&g, "y/model"),
            Decision::Denied(DenyReason::NotPermitted {
                root: "y/model".into()
            })
        );
        let enforced_deny = user(vec![
            org("e", Enforce, &[("x/*", Deny)], &[]),
            org("s", Shadow, &[("*", Allow)], &[]),
        ]);
        assert!(matches!(
            enforced_deny.decide(&g, "x/model"),
            Decision::Denied(DenyReason::DeniedByRule { .. })
        ));
        // A shadow organization's allows count; only its deny is shadowed.
        let own_allow = user(vec![
            org("e", Enforce, &[("llama", Allow)], &[]),
            org(
                "s",
                Shadow,
                &[("openai/*", Allow), ("openai/o1-pro", Deny)],
                &[],
            ),
        ]);
        assert!(own_allow.decide(&g, "openai/gpt-4o").is_allowed());
        assert!(matches!(
            own_allow.decide(&g, "openai/o1-pro"),
            Decision::WouldDeny(DenyReason::DeniedByRule { .. })
        ));
        assert!(matches!(
            own_allow.decide(&g, "meta/llama-3"),
            Decision::Denied(DenyReason::NotPermitted { .. })
        ));
        // No organization at all is never shadowed.
        assert_eq!(
            user(vec![]).decide(&g, "x"),
            Decision::Denied(DenyReason::NoOrganization)
        );
        assert_eq!(enforced.shadow_organizations(), ["s"]);
    }

    #[test]
    fn rules_are_listed_for_explanations() {
        let a = user(vec![org(
            "o",
            Enforce,
            &[
                ("openai/*", Allow),
                ("openai/o1-pro", Deny),
                ("*-pro", Deny),
            ],
            &["claude"],
        )]);
        let shown: Vec<(String, Effect)> = a
            .rules()
            .iter()
            .map(|r| (r.pattern.clone(), r.effect))
            .collect();
        assert_eq!(
            shown,
            [
                ("*-pro".to_string(), Deny),
                ("openai/*".to_string(), Allow),
                ("openai/o1-pro".to_string(), Deny)
            ]
        );
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["models"], serde_json::json!({"claude": "o"}));
        assert_eq!(json["rules"].as_array().unwrap().len(), 3);
        assert!(json.get("shadow").is_none());
    }
}
