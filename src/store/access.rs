//! The decision: a user's access snapshot, the preset→base model graph, and
//! the rule that joins them. Pure data, no I/O, so every case is unit-tested.
//!
//! Rule: a user may use model M iff some active membership's
//! organization has an active row for root(M), where root(M) follows
//! `model.base_model_id` to the upstream model. Judging the root (never the
//! requested id) is what makes "listing a preset never grants its base" and
//! "listing only a preset grants nothing" hold: Open WebUI calls the base.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// One organization's active model links. Loaded once per organization and
/// shared (`Arc`) by every user of it: an organization grants hundreds of
/// models, a user only adds which organizations they belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgModels {
    organization_id: String,
    models: HashSet<String>,
}

impl OrgModels {
    pub fn new(
        organization_id: impl Into<String>,
        models: impl IntoIterator<Item = String>,
    ) -> OrgModels {
        OrgModels {
            organization_id: organization_id.into(),
            models: models.into_iter().collect(),
        }
    }

    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }

    pub fn contains(&self, model_id: &str) -> bool {
        self.models.contains(model_id)
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The model ids, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(String::as_str)
    }
}

/// What one user may use: their active memberships (and role), each with
/// the organization's shared model set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserAccess {
    pub user_id: String,
    /// Open WebUI's `user.role` (`admin`, `user`, `pending`) when that table
    /// exists and has the user.
    pub role: Option<String>,
    /// A `user` row or any membership row (active or not) exists.
    pub known: bool,
    /// Organizations with an active membership, sorted.
    pub organizations: Vec<String>,
    /// One set per entry of `organizations`, same order. Serialized as the
    /// old `models` map (permitted model id → granting organization, now in
    /// sorted order) so `access` explanations keep their shape.
    #[serde(rename = "models", serialize_with = "serialize_permitted")]
    model_sets: Vec<Arc<OrgModels>>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DenyReason {
    /// The user has no active membership.
    NoOrganization,
    /// None of the user's organizations has an active link for the root.
    NotPermitted { root: String },
    /// The model's `base_model_id` chain loops.
    Cycle,
    /// The chain is longer than `max_base_depth`.
    TooDeep,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allowed { root: String, organization: String },
    Denied(DenyReason),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
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
        UserAccess {
            user_id: user_id.to_string(),
            role,
            known,
            organizations: model_sets
                .iter()
                .map(|s| s.organization_id.clone())
                .collect(),
            model_sets,
        }
    }

    /// The organization granting `root` (the smallest id when several do),
    /// or `None`. A few hash lookups: one per membership.
    pub fn permits(&self, root: &str) -> Option<&str> {
        self.model_sets
            .iter()
            .find(|set| set.contains(root))
            .map(|set| set.organization_id())
    }

    /// Every permitted model with its granting organization, sorted by
    /// model id (for `modelgate access` and admin explanations; the request
    /// path uses `permits`).
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

    pub fn decide(&self, graph: &ModelGraph, model_id: &str) -> Decision {
        if self.organizations.is_empty() {
            return Decision::Denied(DenyReason::NoOrganization);
        }
        let root = match graph.root(model_id) {
            Ok(root) => root,
            Err(RootError::Cycle) => return Decision::Denied(DenyReason::Cycle),
            Err(RootError::TooDeep(_)) => return Decision::Denied(DenyReason::TooDeep),
        };
        match self.permits(root) {
            Some(org) => Decision::Allowed {
                root: root.to_string(),
                organization: org.to_string(),
            },
            None => Decision::Denied(DenyReason::NotPermitted {
                root: root.to_string(),
            }),
        }
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
    base_of: HashMap<String, String>,
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
}
