//! Route classification: which requests name a model, which list models,
//! and which must be refused because the model cannot be seen on the wire.
//!
//! Matching copies Starlette (`starlette/routing.py`, `compile_path` and
//! `Route.matches`), because a route modelgate reads differently from Open
//! WebUI is a bypass:
//! * a pattern is `^literal(param)literal...$`, case-sensitive, where
//!   `{name}` is `[^/]+` and `{name:path}` is `.*`;
//! * Python's `$` also matches just before a final `"\n"`, and `.` does not
//!   match `"\n"`: `/api/chat/completions%0A` reaches the chat handler;
//! * a route whose path matches but whose method does not is only a partial
//!   match, and the router keeps looking: `PUT /openai/chat/completions`
//!   reaches the `/openai/{path:path}` passthrough;
//! * a route that accepts GET also accepts HEAD.
//!
//! The first entry whose path *and* method match wins, so the table keeps
//! Open WebUI's registration order wherever patterns overlap.

mod defaults;
mod pattern;

use std::sync::Arc;

use http::Method;
use serde::Deserialize;

use crate::gate::shape::ListShape;
pub use defaults::Switches;
use pattern::Pattern;

/// What modelgate does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteClass {
    /// Stream through untouched.
    Pass,
    /// The body names the model(s) the server will call: check them.
    /// Shared: the route table hands it out for every request.
    ModelCall(Arc<CallSpec>),
    /// The response lists models: filter it.
    ModelList(ListShape),
    /// The model cannot be checked on this route: refuse.
    Refuse(RefuseReason),
}

/// Where a model-calling route's body names its model(s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSpec {
    pub locations: Vec<ModelLocation>,
    /// When no location names a model, the server picks one modelgate cannot
    /// see (from a stored chat, or the upstream's default): refuse instead.
    pub required: bool,
    /// The response names models too (a chat update answers with the whole
    /// stored chat): redacted as this shape for the user.
    pub response: Option<ListShape>,
}

impl RouteClass {
    /// A model-calling route.
    pub fn call(spec: CallSpec) -> RouteClass {
        RouteClass::ModelCall(Arc::new(spec))
    }
}

impl CallSpec {
    /// Whether the body carries whole chat histories (inline images
    /// included), read up to `access.max_unlisted_body_bytes` rather than
    /// `access.max_body_bytes`.
    pub fn carries_histories(&self) -> bool {
        self.locations
            .iter()
            .any(|l| matches!(l, ModelLocation::InternalMessages(_)))
    }
}

/// One place in a JSON body that names a model.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelLocation {
    /// A top-level string field: `"model"`, `"model_id"`, `"name"`.
    Field(String),
    /// A JSON pointer through objects, like `/data/model_id`.
    Pointer(String),
    /// `message_ids`: a list `[{model_id, message_id}]` or a dict
    /// `{model_id: message_id}`; one upstream call per model (main.py,
    /// `chat_completion`).
    MessageIds,
    /// A top-level field naming a model when it is a string; absent or
    /// `null` names none. A preset's `base_model_id`: null registers an
    /// upstream model, a string points the preset at the model it calls.
    NullableField(String),
    /// `field` of every object in the top-level list `list` (absent or
    /// null names none): the presets of a bulk import or sync.
    EachOf { list: String, field: String },
    /// A top-level list of model ids, each one the upstream may run:
    /// OpenRouter's `models` fallback list, which Open WebUI forwards in the
    /// body it sends upstream (`payload = {**form_data}`).
    IdList(String),
    /// A stored chat's messages that the server later runs by itself: the
    /// `model` of every internal message (`meta.internal = true`: sub-agent
    /// tasks and timers, run by `utils/subagents.py` after the next
    /// completion) in the message map at this pointer. A `*` step walks
    /// every element of an array (`/chats/*/chat/history/messages`).
    InternalMessages(String),
    /// A top-level field holding the id of a channel message this one
    /// replies to: Open WebUI answers the reply as the model that wrote that
    /// message (its `meta.model_id`), which only the store can tell.
    ReplyTo(String),
    /// A text field holding `<@M:model_id|label>` mentions
    /// (`utils/channels.py`, `extract_mentions`).
    ChannelMentions(String),
}

/// Why a route is refused by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefuseReason {
    /// `/api/v1/audio/realtime`: the model id travels in the first WebSocket
    /// frame, after the upgrade (`routers/audio/realtime.py`).
    RealtimeAudio,
    /// `/openai/{path:path}` checks no model access at all
    /// (`routers/openai.py`, `proxy`).
    OpenaiPassthrough,
    /// The server takes the model from a stored chat, which the user can
    /// edit (`utils/tool_approval.py`, `build_tool_approval_resume_payload`).
    StoredModel,
    /// Refused by an operator's route entry.
    Configured,
}

impl RefuseReason {
    /// A short stable code for logs and error bodies.
    pub fn code(self) -> &'static str {
        match self {
            RefuseReason::RealtimeAudio => "realtime_audio_disabled",
            RefuseReason::OpenaiPassthrough => "openai_passthrough_disabled",
            RefuseReason::StoredModel => "stored_model_unverifiable",
            RefuseReason::Configured => "route_refused",
        }
    }
}

/// What kind of route an entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    Pass,
    ModelCall,
    ModelList,
    Refuse,
}

/// One `[[routes]]` entry of the configuration.
///
/// ```toml
/// [[routes]]
/// methods = ["POST"]
/// path = "/api/v1/custom/{id}/run"
/// kind = "model_call"
/// models = [{ field = "model" }, { pointer = "/data/model_id" }, "message_ids"]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    pub methods: Vec<String>,
    pub path: String,
    pub kind: RouteKind,
    /// `model_call` only.
    #[serde(default)]
    pub models: Vec<ModelLocation>,
    /// `model_call` only; see [`CallSpec::required`].
    #[serde(default)]
    pub required: bool,
    /// `model_list`: how the response lists models; `model_call`: how its
    /// response names models, if it does.
    #[serde(default)]
    pub shape: Option<ListShape>,
    /// `refuse` only; defaults to [`RefuseReason::Configured`].
    #[serde(default)]
    pub reason: Option<RefuseReason>,
}

/// A route entry that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("route {path:?}: {problem}")]
    Pattern { path: String, problem: String },
    #[error("route {path:?}: invalid method {method:?}")]
    Method { path: String, method: String },
    #[error("route {path:?}: {problem}")]
    Kind { path: String, problem: &'static str },
}

#[derive(Clone, Debug)]
struct Compiled {
    /// What every path the pattern matches starts with: most routes are
    /// ruled out by this one comparison.
    prefix: Prefix,
    methods: Vec<Method>,
    pattern: Pattern,
    class: RouteClass,
}

/// A route's literal prefix, compared last bytes first: the table's ~90
/// prefixes nearly all open with `/api/v1/` and end where they differ, so
/// one word comparison rules most out without a `memcmp` call each (which
/// was 2.7% of a chat call).
#[derive(Clone, Debug)]
struct Prefix {
    text: Box<str>,
    /// The prefix's last (up to) eight bytes, read as by [`tail_word`].
    tail: u64,
}

impl Prefix {
    fn new(text: &str) -> Prefix {
        Prefix {
            tail: tail_word(text.as_bytes(), text.len()),
            text: text.into(),
        }
    }

    fn starts(&self, path: &str) -> bool {
        let n = self.text.len();
        path.len() >= n
            && tail_word(path.as_bytes(), n) == self.tail
            && path.as_bytes()[..n] == *self.text.as_bytes()
    }
}

/// `bytes[end - 8..end]` as a little-endian word, or fewer bytes (zero
/// extended) when `end` is under 8. `end` ≤ `bytes.len()`.
fn tail_word(bytes: &[u8], end: usize) -> u64 {
    match bytes.get(end.saturating_sub(8)..end) {
        Some(&[a, b, c, d, e, f, g, h]) => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        Some(short) => short
            .iter()
            .rev()
            .fold(0, |word, &byte| word << 8 | u64::from(byte)),
        None => 0,
    }
}

/// Method + routing path → [`RouteClass`], first match wins.
#[derive(Clone, Debug)]
pub struct RouteTable {
    routes: Vec<Compiled>,
}

impl RouteTable {
    /// Open WebUI 0.12.4's model routes, with both risky switches off.
    pub fn open_webui_defaults() -> Self {
        match Self::from_entries(defaults::entries(Switches::default())) {
            Ok(table) => table,
            // The defaults are constants checked by `defaults_compile`; an
            // error here is a programming error, not request data.
            Err(e) => panic!("built-in route table is invalid: {e}"),
        }
    }

    /// The defaults shaped by `switches`, extended by operator entries.
    ///
    /// Override rule: operator entries are matched **before** every default,
    /// so an entry with the same path and method replaces the default, and a
    /// broader operator pattern shadows the defaults it covers.
    pub fn open_webui(switches: Switches, user: Vec<RouteEntry>) -> Result<Self, RouteError> {
        let mut entries = user;
        entries.extend(defaults::entries(switches));
        Self::from_entries(entries)
    }

    /// Exactly these entries, in this order.
    pub fn from_entries(entries: Vec<RouteEntry>) -> Result<Self, RouteError> {
        let routes = entries
            .into_iter()
            .map(compile)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { routes })
    }

    /// Classify a request. `routing_path` must come from
    /// [`crate::gate::path::routing_path`]. Unlisted routes pass.
    pub fn classify(&self, method: &Method, routing_path: &str) -> RouteClass {
        self.routes
            .iter()
            .find(|r| {
                r.prefix.starts(routing_path)
                    && method_matches(&r.methods, method)
                    && r.pattern.matches(routing_path)
            })
            .map_or(RouteClass::Pass, |r| r.class.clone())
    }
}

/// Starlette adds HEAD to every route that has GET (`Route.__init__`).
fn method_matches(methods: &[Method], method: &Method) -> bool {
    methods
        .iter()
        .any(|m| m == method || (*m == Method::GET && *method == Method::HEAD))
}

fn compile(entry: RouteEntry) -> Result<Compiled, RouteError> {
    let path = entry.path;
    let pattern = Pattern::parse(&path).map_err(|problem| RouteError::Pattern {
        path: path.clone(),
        problem,
    })?;
    if entry.methods.is_empty() {
        return Err(RouteError::Kind {
            path,
            problem: "no methods",
        });
    }
    let mut methods = Vec::with_capacity(entry.methods.len());
    for m in &entry.methods {
        // Case matters: uvicorn passes the method as sent and Starlette
        // compares it to upper-case names, so `post` never reaches a handler.
        match Method::from_bytes(m.as_bytes()) {
            Ok(parsed) if m.bytes().all(|b| !b.is_ascii_lowercase()) => methods.push(parsed),
            _ => {
                return Err(RouteError::Method {
                    path,
                    method: m.clone(),
                })
            }
        }
    }
    let kind_err = |problem| RouteError::Kind {
        path: path.clone(),
        problem,
    };
    let is_call = entry.kind == RouteKind::ModelCall;
    if !is_call && (!entry.models.is_empty() || entry.required) {
        return Err(kind_err(
            "`models`/`required` only belong to kind = \"model_call\"",
        ));
    }
    if entry.kind == RouteKind::Pass && entry.shape.is_some()
        || entry.kind == RouteKind::Refuse && entry.shape.is_some()
    {
        return Err(kind_err(
            "`shape` only belongs to kind = \"model_list\" or \"model_call\"",
        ));
    }
    if entry.kind != RouteKind::Refuse && entry.reason.is_some() {
        return Err(kind_err("`reason` only belongs to kind = \"refuse\""));
    }
    let class = match entry.kind {
        RouteKind::Pass => RouteClass::Pass,
        RouteKind::ModelCall => {
            if entry.models.is_empty() {
                return Err(kind_err("kind = \"model_call\" needs `models`"));
            }
            for loc in &entry.models {
                if let ModelLocation::Pointer(p) = loc {
                    if !p.starts_with('/') {
                        return Err(kind_err("a `pointer` must start with '/'"));
                    }
                }
            }
            RouteClass::call(CallSpec {
                locations: entry.models,
                required: entry.required,
                response: entry.shape,
            })
        }
        RouteKind::ModelList => match entry.shape {
            Some(shape) => RouteClass::ModelList(shape),
            None => return Err(kind_err("kind = \"model_list\" needs `shape`")),
        },
        RouteKind::Refuse => RouteClass::Refuse(entry.reason.unwrap_or(RefuseReason::Configured)),
    };
    Ok(Compiled {
        prefix: Prefix::new(pattern.literal_prefix()),
        methods,
        pattern,
        class,
    })
}

/// Requests the proxy buffers and checks for a top-level `model` even when
/// the route is not in the table, in case Open WebUI adds a model route we
/// do not know yet. FastAPI reads JSON bodies for DELETE too, so it counts.
pub fn is_defence_in_depth_candidate(method: &Method, routing_path: &str) -> bool {
    let writes = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    writes.contains(method)
        && ["/api", "/openai", "/ollama"].iter().any(|prefix| {
            routing_path == *prefix
                || routing_path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/') || rest == "\n")
        })
}

/// Entry point for `cargo fuzz`: classifying any method and raw path never
/// panics and depends on nothing but the decoded path.
#[cfg(fuzzing)]
pub mod fuzz {
    use std::fmt::Write as _;
    use std::sync::OnceLock;

    use super::*;
    use crate::gate::path::routing_path;

    fn tables() -> &'static (RouteTable, RouteTable) {
        static TABLES: OnceLock<(RouteTable, RouteTable)> = OnceLock::new();
        TABLES.get_or_init(|| {
            let custom = RouteTable::open_webui(Switches::default(), Vec::new())
                .expect("the defaults compile");
            (RouteTable::open_webui_defaults(), custom)
        })
    }

    /// `data` is `METHOD raw-path`, as on a request line.
    pub fn routes(data: &[u8]) {
        let Some(space) = data.iter().position(|&b| b == b' ') else {
            return;
        };
        let (Ok(method), Ok(raw)) = (
            Method::from_bytes(&data[..space]),
            std::str::from_utf8(&data[space + 1..]),
        ) else {
            return;
        };
        let (table, same) = tables();
        let path = routing_path(raw);
        let class = table.classify(&method, &path);
        assert_eq!(class, table.classify(&method, &path), "deterministic");
        assert_eq!(
            class,
            same.classify(&method, &path),
            "same table, same answer"
        );
        let _ = is_defence_in_depth_candidate(&method, &path);
        // Starlette lets HEAD in wherever GET is, and the defaults name no
        // HEAD-only route.
        if method == Method::GET || method == Method::HEAD {
            let other = if method == Method::GET {
                Method::HEAD
            } else {
                Method::GET
            };
            assert_eq!(class, table.classify(&other, &path), "HEAD is GET");
        }
        // A query string never changes the route.
        if !raw.contains(['?', '#']) {
            let with_query = format!("{raw}?model=x#y");
            assert_eq!(routing_path(&with_query), path);
        }
        // Spelling every byte of the decoded path as `%XX` reaches the same
        // route: decoding happens once, before matching.
        let mut encoded = String::with_capacity(path.len() * 3);
        for b in path.bytes() {
            let _ = write!(encoded, "%{b:02X}");
        }
        let decoded = routing_path(&encoded);
        assert_eq!(decoded, path, "percent-encoding round-trips");
        assert_eq!(table.classify(&method, &decoded), class);
    }
}

#[cfg(test)]
mod tests;
