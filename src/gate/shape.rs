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
}

impl ListShape {
    /// Whether a request without any credential is passed unchanged
    /// (Open WebUI answers it without model ids) rather than refused.
    pub fn serves_visitors(self) -> bool {
        matches!(self, ListShape::AppConfig)
    }
}
