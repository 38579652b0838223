//! Administrative writes and listings the CLI calls: organizations,
//! memberships, model links, the audit log, the seed's migration and online
//! backup.
//!
//! Every write is one IMMEDIATE transaction (takes the write lock up front,
//! so it never fails half-way on a lock upgrade) that first names its actor
//! in `permission_audit_context` and clears it before committing: the audit
//! triggers read the actor, and no other writer ever sees it.
//! Revocation is deactivation (`is_active = 0`), never deletion, so the row
//! and its history stay.
//!
//! # Layout
//! - `write`   — `open_writer`, the actor-stamped transaction, `WriteOutcome`
//! - `orgs`    — organizations
//! - `members` — memberships and their roles
//! - `models`  — an organization's model rules: allow/deny, exact or glob
//! - `groups`  — Open WebUI groups bound to an organization
//! - `audit`   — reading `permission_audit_log`
//! - `migrate` — the seed's one-shot migration (and its linking steps)
//! - `backup`  — SQLite online backup

mod audit;
mod backup;
mod groups;
mod members;
mod migrate;
mod models;
mod orgs;
#[cfg(test)]
mod test_db;
mod write;

pub use audit::{audit, AuditEntry};
pub use backup::backup;
pub use groups::{bind_group, list_groups, resolve_group, unbind_group, GroupBinding};
pub use members::{add_member, list_members, remove_member, resolve_user, Member, MemberRole};
pub(crate) use migrate::{link_all_users, link_base_models};
pub use migrate::{migrate, model_plan, MigrateOptions, MigrateReport, ModelPlan, ModelSource};
pub use models::{
    deny_model, disable_model, enable_model, ever_linked, list_models, parse_target, OrgModel,
};
pub use orgs::{create_org, list_orgs, rename_org, set_mode, Organization};
pub(crate) use write::with_actor;
pub use write::{configure_writer, open_writer, WriteOutcome};
