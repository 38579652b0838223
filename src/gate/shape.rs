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
}
