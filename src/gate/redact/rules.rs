//! Where the documents that are not lists name models, one table per
//! [`ListShape`](crate::gate::shape::ListShape) that uses rules (read in
//! Open WebUI 0.12.4's routers and models; see `docs/open-webui.md`).

use super::Ids::{Chat, CommaList, Keys, List, Mentions, Nested, One};
use super::Step::{Each, Key, Values};
use super::{Ids, Rule, Step};

const fn rule(path: &'static [Step], ids: Ids) -> Rule {
    Rule { path, ids }
}

/// `/api/config`.
pub(in crate::gate) const APP_CONFIG: &[Rule] = &[
    rule(&[Key("default_models")], CommaList),
    rule(&[Key("default_pinned_models")], CommaList),
    rule(
        &[Key("ui"), Key("default_interface_settings"), Key("models")],
        List,
    ),
];
/// `/api/v1/tasks/config`.
pub(in crate::gate) const TASK_CONFIG: &[Rule] = &[
    rule(&[Key("TASK_MODEL")], One),
    rule(&[Key("TASK_MODEL_EXTERNAL")], One),
];
/// `/api/usage`.
pub(in crate::gate) const USAGE: &[Rule] = &[rule(&[Key("model_ids")], List)];
/// `FolderModel`.
pub(in crate::gate) const FOLDER: &[Rule] = &[rule(&[Key("data"), Key("model_ids")], List)];
pub(in crate::gate) const FOLDERS: &[Rule] = &[rule(&[Each], Nested(FOLDER))];
/// `GroupResponse` list.
pub(in crate::gate) const GROUPS: &[Rule] = &[rule(
    &[Each, Key("data"), Key("config"), Key("default_models")],
    List,
)];
/// `UserSettings`.
pub(in crate::gate) const USER_SETTINGS: &[Rule] = &[
    rule(&[Key("ui"), Key("models")], List),
    rule(&[Key("ui"), Key("pinnedModels")], List),
];
/// `SearchResponse`.
pub(in crate::gate) const SEARCH_RESULTS: &[Rule] = &[
    rule(&[Key("items"), Each, Key("snippet")], Mentions),
    rule(&[Key("items"), Each, Key("preview")], Mentions),
];
/// `ChatUsageStatsListResponse`.
pub(in crate::gate) const CHAT_STATS: &[Rule] = &[
    rule(&[Key("items"), Each, Key("models")], Keys),
    rule(&[Key("items"), Each, Key("history_models")], Keys),
];
/// `ChatStatsExport`.
pub(in crate::gate) const CHAT_STATS_EXPORT: &[Rule] = &[
    rule(&[Key("stats"), Key("models")], Keys),
    rule(&[Key("stats"), Key("history_models")], Keys),
    rule(
        &[
            Key("chat"),
            Key("history"),
            Key("messages"),
            Values,
            Key("model"),
        ],
        One,
    ),
];
/// `ChatStatsExportList`.
pub(in crate::gate) const CHAT_STATS_EXPORTS: &[Rule] =
    &[rule(&[Key("items"), Each], Nested(CHAT_STATS_EXPORT))];
/// `UserUsageResponse`.
pub(in crate::gate) const USER_USAGE: &[Rule] = &[
    rule(&[Key("heatmap"), Each, Key("models")], Keys),
    rule(&[Key("weekly_heatmap"), Each, Key("models")], Keys),
    rule(&[Key("cumulative_heatmap"), Each, Key("models")], Keys),
    rule(&[Key("insights"), Key("most_used_model")], One),
    rule(&[Key("top_models"), Each, Key("model_id")], One),
];
/// `FeedbackModel` (a list entry has no `snapshot`).
pub(in crate::gate) const FEEDBACK: &[Rule] = &[
    rule(&[Key("data"), Key("model_id")], One),
    rule(&[Key("data"), Key("sibling_model_ids")], List),
    rule(&[Key("meta"), Key("model_id")], One),
    rule(&[Key("snapshot"), Key("chat")], Chat),
];
/// `FeedbackListResponse`.
pub(in crate::gate) const FEEDBACKS: &[Rule] = &[rule(&[Key("items"), Each], Nested(FEEDBACK))];
