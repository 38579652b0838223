//! The closed label values modelgate exports and the label sets built
//! from them. Every value comes from an enum here, a numeric HTTP status or
//! an interned organization id ([`super::orgs`]): users, paths and model ids
//! are never labels.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use super::orgs::OrgLabel;
use crate::gate::shape::ListShape;

/// A closed set of label values: the enum, its `as_str`, and its encoding.
/// (The derive in prometheus-client writes the Rust variant name; the
/// exported values are snake_case.)
macro_rules! label_enum {
    ($(#[$doc:meta])* $vis:vis enum $name:ident { $($(#[$vdoc:meta])* $variant:ident => $value:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vdoc])* $variant,)+ }

        impl $name {
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $value,)+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// Which side of Open WebUI a request crossed.
    pub enum Gate {
        /// Browser → Open WebUI.
        Ingress => "ingress",
        /// Open WebUI → the model API.
        Egress => "egress",
    }
}

label_enum! {
    /// The route class of a request, as the classify phase decides it
    /// (`Ctx::route_class`).
    pub enum RouteLabel {
        Pass => "pass",
        ModelCall => "model_call",
        ModelList => "model_list",
        Upgrade => "upgrade",
        Refused => "refused",
        /// A class this module does not know yet; keeps the label bounded if a
        /// new class is added to the proxy before it is added here.
        Other => "other",
    }
}

label_enum! {
    /// The outcome of an access decision.
    pub enum Outcome {
        Allowed => "allowed",
        Denied => "denied",
        /// Refused by a shadow-mode organization's policy only: let through.
        WouldDeny => "would_deny",
        Unauthenticated => "unauthenticated",
        /// Enforcement is off (bypass configured): the request was let through
        /// unchecked.
        Bypassed => "bypassed",
        /// The access data could not be read (the request fails closed).
        Error => "error",
    }
}

label_enum! {
    /// Why a store operation failed.
    pub enum StoreErrorKind {
        /// The database could not be opened or a connection could not be had.
        Connect => "connect",
        /// A query failed (SQL error, missing table, corrupt row).
        Query => "query",
        /// The database stayed busy/locked past the deadline.
        Timeout => "timeout",
        /// The change watcher (`PRAGMA data_version`, LISTEN/NOTIFY) failed.
        Watch => "watch",
    }
}

label_enum! {
    /// Why the upstream could not be reached or answered.
    pub enum UpstreamErrorKind {
        Connect => "connect",
        Timeout => "timeout",
        Reset => "reset",
        Other => "other",
    }
}

label_enum! {
    /// The layout of a rewritten model list (a label twin of [`ListShape`]).
    pub(super) enum ShapeLabel {
        Data => "data",
        OllamaModels => "ollama_models",
        Items => "items",
        BareList => "bare_list",
        Single => "single",
        AppConfig => "app_config",
        TaskConfig => "task_config",
        Usage => "usage",
        Chat => "chat",
        Chats => "chats",
        ChannelMessage => "channel_message",
        ChannelMessages => "channel_messages",
        Folder => "folder",
        Folders => "folders",
        Groups => "groups",
        UserSettings => "user_settings",
        SearchResults => "search_results",
        ChatStats => "chat_stats",
        ChatStatsExports => "chat_stats_exports",
        ChatStatsExport => "chat_stats_export",
        UserUsage => "user_usage",
        Feedbacks => "feedbacks",
        Feedback => "feedback",
    }
}

impl From<ListShape> for ShapeLabel {
    fn from(shape: ListShape) -> Self {
        match shape {
            ListShape::Data => ShapeLabel::Data,
            ListShape::OllamaModels => ShapeLabel::OllamaModels,
            ListShape::Items => ShapeLabel::Items,
            ListShape::BareList => ShapeLabel::BareList,
            ListShape::Single => ShapeLabel::Single,
            ListShape::AppConfig => ShapeLabel::AppConfig,
            ListShape::TaskConfig => ShapeLabel::TaskConfig,
            ListShape::Usage => ShapeLabel::Usage,
            ListShape::Chat => ShapeLabel::Chat,
            ListShape::Chats => ShapeLabel::Chats,
            ListShape::ChannelMessage => ShapeLabel::ChannelMessage,
            ListShape::ChannelMessages => ShapeLabel::ChannelMessages,
            ListShape::Folder => ShapeLabel::Folder,
            ListShape::Folders => ShapeLabel::Folders,
            ListShape::Groups => ShapeLabel::Groups,
            ListShape::UserSettings => ShapeLabel::UserSettings,
            ListShape::SearchResults => ShapeLabel::SearchResults,
            ListShape::ChatStats => ShapeLabel::ChatStats,
            ListShape::ChatStatsExports => ShapeLabel::ChatStatsExports,
            ListShape::ChatStatsExport => ShapeLabel::ChatStatsExport,
            ListShape::UserUsage => ShapeLabel::UserUsage,
            ListShape::Feedbacks => ShapeLabel::Feedbacks,
            ListShape::Feedback => ShapeLabel::Feedback,
        }
    }
}

label_enum! {
    /// What became of a forwarded model list looked at to learn the model
    /// ids the upstream offers (`store::known`).
    pub enum KnownListResult {
        /// The id set changed and was written.
        Recorded => "recorded",
        /// Same ids as recorded: nothing written.
        Unchanged => "unchanged",
        /// The write failed.
        Failed => "failed",
    }
}

label_enum! {
    pub(super) enum ReloadResult {
        Ok => "ok",
        Failed => "failed",
    }
}

label_enum! {
    pub(super) enum BypassScope {
        ModelAccess => "model_access",
        AdminAccess => "admin_access",
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) gate: Gate,
    pub(super) route: RouteLabel,
    pub(super) status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RouteLabels {
    pub(super) gate: Gate,
    pub(super) route: RouteLabel,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct DecisionLabels {
    pub(super) gate: Gate,
    pub(super) outcome: Outcome,
    pub(super) organization: OrgLabel,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub(super) gate: Gate,
    pub(super) outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct StoreErrorLabels {
    pub(super) kind: StoreErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct UpstreamErrorLabels {
    pub(super) gate: Gate,
    pub(super) kind: UpstreamErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ShapeLabels {
    pub(super) shape: ShapeLabel,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct KnownListLabels {
    pub(super) gate: Gate,
    pub(super) result: KnownListResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReloadLabels {
    pub(super) result: ReloadResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct BypassLabels {
    pub(super) scope: BypassScope,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct BuildLabels {
    pub(super) version: &'static str,
    pub(super) commit: &'static str,
}
