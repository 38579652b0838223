//! The shapes of model-list responses Open WebUI 0.12 produces (see
//! `docs/open-webui.md`, "Responses that show model ids").

use serde::{Deserialize, Serialize};

/// How a model-list response body is laid out, so the filter knows where the
/// model ids are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListShape {
    /// `{"data": [{"id": ...}, ...], ...}` (`/api/models`, `/openai/models`, `/ollama/v1/models`).
    Data,
    /// `{"models": [{"model": ..., "name": ...}, ...]}` (`/ollama/api/tags`).
    OllamaModels,
    /// `{"items": [{"id": ...}], "total": N}` (`/api/v1/models/list`); `total` is fixed up.
    Items,
    /// A bare JSON array of model objects (`/api/v1/models/base`, `/all`, `/export`).
    BareList,
    /// One model object (`/api/v1/models/model?id=X`); forbidden becomes 404.
    Single,
    /// `/api/config`: `default_models` and `default_pinned_models` are
    /// comma-separated model ids; the rest is passed as is. Served to
    /// visitors too (the login page), so a request with no credential
    /// passes: Open WebUI then leaves the model fields out.
    AppConfig,
    /// `/api/v1/tasks/config`: `TASK_MODEL` and `TASK_MODEL_EXTERNAL` name
    /// one model each; one the user may not use is shown as `""`.
    TaskConfig,
    /// `/api/usage`: `model_ids`, the models in use right now (by anyone).
    Usage,
    /// One stored chat (`ChatResponse`): its selected models and each
    /// message's model fields (`gate::redact`). A shared chat is served to
    /// visitors too; they see no model ids.
    Chat,
    /// A JSON array of stored chats.
    Chats,
    /// One channel message: a model's reply names its model in `meta`.
    ChannelMessage,
    /// A JSON array of channel messages (a channel, a thread, the pins).
    ChannelMessages,
    /// One folder: `data.model_ids`, the models its chats start with
    /// (another user's, when the folder is shared).
    Folder,
    /// A JSON array of folders.
    Folders,
    /// A JSON array of groups: `data.config.default_models`, chosen by an
    /// admin.
    Groups,
    /// The user's settings: `ui.models`, `ui.pinnedModels` (merged with the
    /// admin's default interface settings).
    UserSettings,
    /// Search results: `<@M:id|label>` mentions in channel-message snippets.
    SearchResults,
    /// `/api/v1/chats/stats/usage`: per chat, usage counts keyed by model.
    ChatStats,
    /// `/api/v1/chats/stats/export`: a page of per-chat statistics (counts
    /// keyed by model, each message's model); one per line when streamed.
    ChatStatsExports,
    /// One chat's statistics (`/stats/export/{chat_id}`).
    ChatStatsExport,
    /// `/api/v1/users/usage`: heatmaps keyed by model, the top models, the
    /// most used one.
    UserUsage,
    /// `/api/v1/evaluations/feedbacks/user`: the rated model and its
    /// siblings (an arena comparison).
    Feedbacks,
    /// One feedback, with the snapshot of its chat.
    Feedback,
}

/// What the gate does with a request that carries no credential at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visitors {
    /// Refused (401): Open WebUI serves the route to signed-in users only.
    Refused,
    /// Passed unchanged: Open WebUI answers visitors without model ids.
    Unchanged,
    /// Filtered as for a user who may use no model: Open WebUI serves
    /// visitors the document (an open shared chat) with its model ids.
    SeeNothing,
}

impl ListShape {
    pub fn visitors(self) -> Visitors {
        match self {
            ListShape::AppConfig => Visitors::Unchanged,
            ListShape::Chat => Visitors::SeeNothing,
            _ => Visitors::Refused,
        }
    }

    /// Documents (chats, channel messages) rather than lists of models:
    /// read up to `access.max_unlisted_body_bytes`, as chat saves are, and
    /// never cached (each is read by few users, and may be large).
    pub fn is_document(self) -> bool {
        matches!(
            self,
            ListShape::Chat
                | ListShape::Chats
                | ListShape::ChannelMessage
                | ListShape::ChannelMessages
        )
    }

    /// Whether the filtered answer may be shared by users of the same
    /// organizations (see `proxy::list_cache`): what every user is sent
    /// alike, not each user's own documents.
    pub fn cacheable(self) -> bool {
        matches!(
            self,
            ListShape::Data
                | ListShape::OllamaModels
                | ListShape::Items
                | ListShape::BareList
                | ListShape::Single
                | ListShape::AppConfig
                | ListShape::TaskConfig
                | ListShape::Usage
        )
    }

    /// The shape of each line when Open WebUI streams the response as NDJSON
    /// (`application/x-ndjson`) instead: the export of one's chats, the
    /// streamed statistics export.
    pub fn line_shape(self) -> Option<ListShape> {
        match self {
            ListShape::Chats => Some(ListShape::Chat),
            ListShape::ChatStatsExports => Some(ListShape::ChatStatsExport),
            _ => None,
        }
    }
}
