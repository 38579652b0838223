//! The built-in route table, read from the Open WebUI 0.12.4 source
//! (`open_webui/main.py`, `routers/*.py`). Prefixes come from the
//! `app.include_router(..., prefix=...)` calls in `main.py`.
//!
//! Order matters only where patterns overlap, which inside Open WebUI is the
//! `/openai` router: its `/{path:path}` passthrough is registered last in
//! `routers/openai.py`, so every earlier `/openai` route is listed here (as
//! `pass` where it names no model) to keep it from being taken for the
//! passthrough.

use super::{ModelLocation, RefuseReason, RouteEntry, RouteKind};
use crate::gate::shape::ListShape;

/// Operator switches that change the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    /// Let `/api/v1/audio/realtime` through unchecked: its model id arrives
    /// in the first WebSocket frame, which modelgate does not inspect.
    pub allow_realtime_audio: bool,
    /// Treat `/openai/{path:path}` as a model call on `model` (required)
    /// instead of refusing it.
    pub allow_openai_passthrough: bool,
}

fn entry(methods: &[&str], path: &str, kind: RouteKind) -> RouteEntry {
    RouteEntry {
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        path: path.to_owned(),
        kind,
        models: Vec::new(),
        required: false,
        shape: None,
        reason: None,
    }
}

fn pass(methods: &[&str], path: &str) -> RouteEntry {
    entry(methods, path, RouteKind::Pass)
}

fn call(path: &str, models: Vec<ModelLocation>) -> RouteEntry {
    RouteEntry {
        models,
        ..entry(&["POST"], path, RouteKind::ModelCall)
    }
}

/// A route whose body names its model in `model`, and whose body Open WebUI
/// forwards upstream, where OpenRouter also runs the `models` fallbacks.
fn model(path: &str) -> RouteEntry {
    call(path, vec![field("model"), fallbacks()])
}

fn fallbacks() -> ModelLocation {
    ModelLocation::IdList("models".to_owned())
}

fn required(mut e: RouteEntry) -> RouteEntry {
    e.required = true;
    e
}

fn list(path: &str, shape: ListShape) -> RouteEntry {
    RouteEntry {
        shape: Some(shape),
        ..entry(&["GET"], path, RouteKind::ModelList)
    }
}

/// A response that carries model ids inside a document (a chat, a channel
/// message), for the given methods.
fn document(methods: &[&str], path: &str, shape: ListShape) -> RouteEntry {
    RouteEntry {
        shape: Some(shape),
        ..entry(methods, path, RouteKind::ModelList)
    }
}

fn refuse(methods: &[&str], path: &str, reason: RefuseReason) -> RouteEntry {
    RouteEntry {
        reason: Some(reason),
        ..entry(methods, path, RouteKind::Refuse)
    }
}

fn field(name: &str) -> ModelLocation {
    ModelLocation::Field(name.to_owned())
}

/// `path` and `path/{url_idx}`, as the Ollama router registers most routes.
fn with_idx(path: &str, make: impl Fn(&str) -> RouteEntry) -> [RouteEntry; 2] {
    [make(path), make(&format!("{path}/{{url_idx}}"))]
}

pub(super) fn entries(switches: Switches) -> Vec<RouteEntry> {
    let mut v = Vec::new();

    // ---- routers/ollama.py, prefix /ollama (registered first) ----
    v.extend(with_idx("/ollama/api/tags", |p| {
        list(p, ListShape::OllamaModels)
    }));
    // `show_model_info`: `payload.get('model', payload.get('name'))`.
    v.push(call(
        "/ollama/api/show",
        vec![field("model"), field("name")],
    ));
    for p in ["embed", "embeddings", "generate", "chat"] {
        v.extend(with_idx(&format!("/ollama/api/{p}"), model));
    }
    for p in [
        "completions",
        "embeddings",
        "chat/completions",
        "messages",
        "responses",
    ] {
        v.extend(with_idx(&format!("/ollama/v1/{p}"), model));
    }
    v.extend(with_idx("/ollama/v1/models", |p| list(p, ListShape::Data)));

    // ---- routers/openai.py, prefix /openai, in registration order ----
    v.push(pass(&["GET"], "/openai/config"));
    v.push(pass(&["POST"], "/openai/config/update"));
    // `speech` forwards the raw body to the upstream, which reads `model`.
    v.push(model("/openai/audio/speech"));
    v.push(list("/openai/models", ListShape::Data));
    v.push(list("/openai/models/{url_idx}", ListShape::Data));
    v.push(pass(&["GET"], "/openai/models/{url_idx}/catalog"));
    v.push(pass(&["POST"], "/openai/models/{url_idx}/download"));
    v.push(pass(
        &["GET"],
        "/openai/models/{url_idx}/download/status/{job_id}",
    ));
    v.push(pass(&["POST"], "/openai/models/{url_idx}/load"));
    v.push(pass(&["POST"], "/openai/models/{url_idx}/unload"));
    v.push(pass(&["GET"], "/openai/models/{url_idx}/sse"));
    v.push(pass(&["DELETE"], "/openai/models/{url_idx}"));
    v.push(pass(&["POST"], "/openai/verify"));
    v.push(model("/openai/chat/completions"));
    v.push(model("/openai/responses"));
    // `proxy`: GET, POST, PUT, DELETE (and HEAD, added by Starlette). It
    // parses any body as JSON whatever the content type and forwards it.
    let passthrough = "/openai/{path:path}";
    let methods = ["GET", "POST", "PUT", "DELETE"];
    if switches.allow_openai_passthrough {
        // Without `model` the upstream picks its own default (OpenRouter
        // does), so a missing model is refused.
        v.push(required(RouteEntry {
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            ..model(passthrough)
        }));
    } else {
        v.push(refuse(
            &methods,
            passthrough,
            RefuseReason::OpenaiPassthrough,
        ));
    }

    // ---- routers, prefixes from main.py ----
    let tasks = [
        "title",
        "follow_up",
        "tags",
        "image_prompt",
        "queries",
        "auto",
        "emoji",
        "moa",
    ];
    for t in tasks {
        v.push(model(&format!("/api/v1/tasks/{t}/completions")));
    }
    // `edit_images`: `EditImageForm.model`, else the configured edit model.
    v.push(model("/api/v1/images/edit"));
    // `routers/audio/realtime.py` (`@router.websocket('/realtime')`): the
    // model id is in the first frame, `{"type":"auth",...,"model_id":...}`.
    if !switches.allow_realtime_audio {
        v.push(refuse(
            &["GET"],
            "/api/v1/audio/realtime",
            RefuseReason::RealtimeAudio,
        ));
    }
    // `post_new_message` → `model_response_handler`: `MessageForm.content`
    // mentions `<@M:id|label>` make the server answer as that model.
    // A reply to a message a model wrote is answered by that model
    // (`reply_to_message.meta['model_id']`), resolved through the store.
    // Channel messages written by a model name it in `meta.model_id` and
    // `meta.model_name`; channels can hold members of any organization.
    // `/{id}/messages/pinned` is registered before `/{id}/messages/{message_id}`.
    let channel = "/api/v1/channels/{id}/messages";
    v.push(document(&["GET"], channel, ListShape::ChannelMessages));
    v.push(document(
        &["GET"],
        &format!("{channel}/pinned"),
        ListShape::ChannelMessages,
    ));
    v.push(document(
        &["GET"],
        &format!("{channel}/{{message_id}}"),
        ListShape::ChannelMessage,
    ));
    v.push(document(
        &["GET"],
        &format!("{channel}/{{message_id}}/thread"),
        ListShape::ChannelMessages,
    ));
    for action in ["pin", "update"] {
        v.push(document(
            &["POST"],
            &format!("{channel}/{{message_id}}/{action}"),
            ListShape::ChannelMessage,
        ));
    }
    v.push(call(
        "/api/v1/channels/{id}/messages/post",
        vec![
            ModelLocation::ChannelMentions("content".into()),
            ModelLocation::ReplyTo("reply_to_id".into()),
        ],
    ));
    // Stored chats: internal messages (sub-agent tasks, timers) in the
    // history are run by the server after the next completion, with their
    // own `model` (`utils/subagents.py`, `process_pending_internal_messages`).
    // `ChatForm.chat` on create and update, `ChatsImportForm.chats[].chat`.
    let internal = |p: &str| vec![ModelLocation::InternalMessages(p.into())];
    v.push(call(
        "/api/v1/chats/new",
        internal("/chat/history/messages"),
    ));
    v.push(call(
        "/api/v1/chats/import",
        internal("/chats/*/chat/history/messages"),
    ));
    // `/{id}` also matches the router's literal POST routes (`/read`,
    // `/config`, `/tags`, ...): they carry no `chat`, so they name nothing.
    // A member of a shared folder may update another user's chat (its
    // title), and is answered with that whole chat: redacted.
    v.push(RouteEntry {
        shape: Some(ListShape::Chat),
        ..call("/api/v1/chats/{id}", internal("/chat/history/messages"))
    });
    // Stored chats name models in `chat.models` and in every message;
    // another user's chat (shared, or cloned from a share) can name models
    // the reader may not use, so every `ChatResponse` is redacted. The
    // one-segment GET routes registered before `/{id}` are listed first.
    let chats = "/api/v1/chats";
    // `/all` streams the user's own chats as NDJSON (an export of any size):
    // redacted line by line as it passes.
    for p in ["list", "config", "search", "pinned", "archived", "shared"] {
        v.push(pass(&["GET"], &format!("{chats}/{p}")));
    }
    // Statistics derived from one's chats: counts keyed by model id.
    v.push(list(&format!("{chats}/stats/usage"), ListShape::ChatStats));
    v.push(list(
        &format!("{chats}/stats/export"),
        ListShape::ChatStatsExports,
    ));
    v.push(list(
        &format!("{chats}/stats/export/{{chat_id}}"),
        ListShape::ChatStatsExport,
    ));
    for p in ["all", "all/archived", "all/db", "folder/{folder_id}"] {
        v.push(document(
            &["GET"],
            &format!("{chats}/{p}"),
            ListShape::Chats,
        ));
    }
    // `get_shared_chat_by_id` serves open shares to visitors too.
    v.push(document(
        &["GET"],
        &format!("{chats}/share/{{share_id}}"),
        ListShape::Chat,
    ));
    v.push(document(
        &["GET"],
        &format!("{chats}/{{id}}"),
        ListShape::Chat,
    ));
    for p in [
        "pin",
        "fork",
        "clone",
        "clone/shared",
        "archive",
        "share",
        "folder",
    ] {
        v.push(document(
            &["POST"],
            &format!("{chats}/{{id}}/{p}"),
            ListShape::Chat,
        ));
    }
    v.push(document(
        &["POST"],
        &format!("{chats}/shared/{{id}}/access/update"),
        ListShape::Chat,
    ));
    v.push(document(
        &["POST", "DELETE"],
        &format!("{chats}/{{id}}/messages/{{message_id}}"),
        ListShape::Chat,
    ));
    // `compact_chat_by_id`: `CompactChatForm.model`, else the model stored
    // in the chat (user-editable), so a missing model is refused.
    v.push(required(model("/api/v1/chats/{id}/compact")));
    // routers/models.py: lists. `/model/toggle?id=` and `/model/delete`
    // manage model rows and call no model; they pass.
    v.push(list("/api/v1/models/list", ListShape::Items));
    v.push(list("/api/v1/models/all", ListShape::BareList));
    v.push(list("/api/v1/models/base", ListShape::BareList));
    v.push(list("/api/v1/models/export", ListShape::BareList));
    v.push(list("/api/v1/models/model", ListShape::Single));
    // Presets: nobody may point one at a model they cannot use themselves
    // (`ModelForm.base_model_id`; null registers an upstream model). Open
    // WebUI resolves the base when it calls, so a later swap is also seen
    // by the egress gate; `/model/update/version` restores a stored version
    // the request does not show, and only the egress can check what it runs.
    let base = || vec![ModelLocation::NullableField("base_model_id".into())];
    v.push(call("/api/v1/models/create", base()));
    v.push(call("/api/v1/models/model/update", base()));
    let each_base = || {
        vec![ModelLocation::EachOf {
            list: "models".into(),
            field: "base_model_id".into(),
        }]
    };
    // `ModelsImportForm.models: list[dict]`, `SyncModelsForm.models`.
    v.push(call("/api/v1/models/import", each_base()));
    v.push(call("/api/v1/models/sync", each_base()));
    // `AutomationForm.data: AutomationData(model_id: str)`, run later by
    // `utils/automations.py` (`automation.data['model_id']`).
    let automation = || vec![ModelLocation::Pointer("/data/model_id".into())];
    v.push(required(call("/api/v1/automations/create", automation())));
    v.push(required(call(
        "/api/v1/automations/{id}/update",
        automation(),
    )));

    // Responses that show model ids outside the lists: the admin-chosen
    // task models (`routers/tasks.py`, `get_task_config`, any signed-in user).
    v.push(list("/api/v1/tasks/config", ListShape::TaskConfig));
    // `routers/users.py`: the user's groups (`data.config.default_models`,
    // set by an admin) and settings (`ui.models` merged with the admin's
    // default interface settings).
    v.push(list("/api/v1/users/groups", ListShape::Groups));
    v.push(list("/api/v1/users/user/settings", ListShape::UserSettings));
    // `routers/search.py`: channel-message snippets keep `<@M:...>` mentions.
    v.push(list("/api/v1/search", ListShape::SearchResults));
    // `routers/folders.py`: `data.model_ids` of one's own folders and of
    // folders others share (`/shared` is registered before `/{id}`).
    let folders = "/api/v1/folders";
    v.push(list(&format!("{folders}/shared"), ListShape::Folders));
    v.push(list(&format!("{folders}/{{id}}"), ListShape::Folder));
    for p in ["update", "update/expanded"] {
        v.push(document(
            &["POST"],
            &format!("{folders}/{{id}}/{p}"),
            ListShape::Folder,
        ));
    }
    // `routers/groups.py`: the groups a user belongs to.
    v.push(list("/api/v1/groups/", ListShape::Groups));
    // `routers/users.py` `/usage`: one's usage by model.
    v.push(list("/api/v1/users/usage", ListShape::UserUsage));
    // `routers/evaluations.py`: one's feedback names the rated model, its
    // arena siblings, and keeps a snapshot of the chat.
    let evaluations = "/api/v1/evaluations";
    v.push(list(
        &format!("{evaluations}/feedbacks/user"),
        ListShape::Feedbacks,
    ));
    v.push(document(
        &["POST"],
        &format!("{evaluations}/feedback"),
        ListShape::Feedback,
    ));
    v.push(document(
        &["GET", "POST"],
        &format!("{evaluations}/feedback/{{id}}"),
        ListShape::Feedback,
    ));
    // `routers/notes.py`: the chat behind a note.
    let notes = "/api/v1/notes/{id}";
    v.push(document(
        &["GET", "POST"],
        &format!("{notes}/chat"),
        ListShape::Chat,
    ));
    v.push(list(&format!("{notes}/chats"), ListShape::Chats));

    // ---- main.py app routes (registered after the routers) ----
    // `get_app_config`: default and pinned models, for signed-in users.
    v.push(list("/api/config", ListShape::AppConfig));
    // `get_current_usage`: the models in use by anyone right now.
    v.push(list("/api/usage", ListShape::Usage));
    v.push(list("/api/models", ListShape::Data));
    v.push(list("/api/v1/models", ListShape::Data));
    v.push(list("/api/models/base", ListShape::Data));
    v.push(model("/api/embeddings"));
    v.push(model("/api/v1/embeddings"));
    for p in ["/api/chat/completions", "/api/v1/chat/completions"] {
        v.push(call(
            p,
            vec![field("model"), fallbacks(), ModelLocation::MessageIds],
        ));
    }
    // `resolve_chat_message_tool_call` resumes with the model stored in the
    // chat (`utils/tool_approval.py`), which the user can edit.
    v.push(refuse(
        &["POST"],
        "/api/v1/chats/{id}/messages/{message_id}/resolve",
        RefuseReason::StoredModel,
    ));
    v.push(model("/api/message/count_tokens"));
    v.push(model("/api/v1/messages/count_tokens"));
    v.push(model("/api/message"));
    v.push(model("/api/v1/messages"));
    v.push(model("/api/chat/completed"));
    v.push(model("/api/chat/actions/{action_id}"));
    v
}
