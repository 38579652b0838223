use http::Method;

use super::*;
use crate::gate::path::routing_path;

fn classify(method: Method, raw: &str) -> RouteClass {
    RouteTable::open_webui_defaults().classify(&method, &routing_path(raw))
}

fn fields(names: &[&str]) -> Vec<ModelLocation> {
    names
        .iter()
        .map(|n| ModelLocation::Field((*n).into()))
        .collect()
}

/// `model` and OpenRouter's `models` fallback list.
fn model_fields() -> Vec<ModelLocation> {
    vec![
        ModelLocation::Field("model".into()),
        ModelLocation::IdList("models".into()),
    ]
}

fn call_on_model() -> RouteClass {
    RouteClass::call(CallSpec {
        locations: model_fields(),
        required: false,
        response: None,
    })
}

fn call_on(names: &[&str]) -> RouteClass {
    RouteClass::call(CallSpec {
        locations: fields(names),
        required: false,
        response: None,
    })
}

#[test]
fn defaults_compile() {
    for s in [
        Switches::default(),
        Switches {
            allow_realtime_audio: true,
            allow_openai_passthrough: true,
        },
    ] {
        RouteTable::open_webui(s, Vec::new()).unwrap();
    }
}

#[test]
fn chat_completions_read_model_and_message_ids() {
    let want = RouteClass::call(CallSpec {
        locations: vec![
            ModelLocation::Field("model".into()),
            ModelLocation::IdList("models".into()),
            ModelLocation::MessageIds,
        ],
        required: false,
        response: None,
    });
    assert_eq!(classify(Method::POST, "/api/chat/completions"), want);
    assert_eq!(classify(Method::POST, "/api/v1/chat/completions"), want);
    // Encoded forms reach the same handler in uvicorn.
    assert_eq!(classify(Method::POST, "/api/chat%2Fcompletions"), want);
    assert_eq!(classify(Method::POST, "/api/ch%61t/completions"), want);
    // Python's `$` matches before a final newline.
    assert_eq!(classify(Method::POST, "/api/chat/completions%0A"), want);
}

#[test]
fn near_misses_are_not_the_chat_route() {
    for raw in [
        "/api/chat/completions/",
        "/api//chat/completions",
        "/api/./chat/completions",
        "/API/chat/completions",
        "/api/chat/completions%0A%0A",
        "/api/chat%252Fcompletions",
    ] {
        assert_eq!(classify(Method::POST, raw), RouteClass::Pass, "{raw}");
    }
    // GET on a POST-only route is a partial match in Starlette: not a call.
    assert_eq!(
        classify(Method::GET, "/api/chat/completions"),
        RouteClass::Pass
    );
}

#[test]
fn other_main_routes() {
    for p in [
        "/api/chat/completed",
        "/api/chat/actions/some-action",
        "/api/embeddings",
        "/api/v1/embeddings",
        "/api/message",
        "/api/v1/messages",
        "/api/message/count_tokens",
        "/api/v1/messages/count_tokens",
        "/openai/chat/completions",
        "/openai/responses",
        "/openai/audio/speech",
        "/api/v1/images/edit",
        "/ollama/v1/messages/3",
    ] {
        assert_eq!(classify(Method::POST, p), call_on_model(), "{p}");
    }
}

#[test]
fn ollama_routes_with_and_without_index() {
    for p in ["embed", "embeddings", "generate", "chat"] {
        assert_eq!(
            classify(Method::POST, &format!("/ollama/api/{p}")),
            call_on_model()
        );
        assert_eq!(
            classify(Method::POST, &format!("/ollama/api/{p}/0")),
            call_on_model()
        );
        assert_eq!(
            classify(Method::POST, &format!("/ollama/api/{p}/")),
            RouteClass::Pass
        );
    }
    for p in [
        "completions",
        "embeddings",
        "chat/completions",
        "messages",
        "responses",
    ] {
        assert_eq!(
            classify(Method::POST, &format!("/ollama/v1/{p}")),
            call_on_model()
        );
        assert_eq!(
            classify(Method::POST, &format!("/ollama/v1/{p}/1")),
            call_on_model()
        );
    }
    assert_eq!(
        classify(Method::POST, "/ollama/api/show"),
        call_on(&["model", "name"])
    );
}

#[test]
fn tasks() {
    for t in [
        "title",
        "follow_up",
        "tags",
        "image_prompt",
        "queries",
        "auto",
        "emoji",
        "moa",
    ] {
        let p = format!("/api/v1/tasks/{t}/completions");
        assert_eq!(classify(Method::POST, &p), call_on_model(), "{p}");
    }
}

#[test]
fn indirect_routes() {
    let auto = RouteClass::call(CallSpec {
        locations: vec![ModelLocation::Pointer("/data/model_id".into())],
        required: true,
        response: None,
    });
    assert_eq!(classify(Method::POST, "/api/v1/automations/create"), auto);
    assert_eq!(
        classify(Method::POST, "/api/v1/automations/abc/update"),
        auto
    );
    assert_eq!(
        classify(Method::POST, "/api/v1/channels/c1/messages/post"),
        RouteClass::call(CallSpec {
            locations: vec![
                ModelLocation::ChannelMentions("content".into()),
                ModelLocation::ReplyTo("reply_to_id".into()),
            ],
            required: false,
            response: None,
        })
    );
    assert_eq!(
        classify(Method::POST, "/api/v1/chats/c1/compact"),
        RouteClass::call(CallSpec {
            locations: model_fields(),
            required: true,
            response: None,
        })
    );
    assert_eq!(
        classify(Method::POST, "/api/v1/chats/c1/messages/m1/resolve"),
        RouteClass::Refuse(RefuseReason::StoredModel)
    );
    assert_eq!(
        classify(Method::GET, "/api/v1/audio/realtime"),
        RouteClass::Refuse(RefuseReason::RealtimeAudio)
    );
}

#[test]
fn model_lists_including_head() {
    use ListShape::*;
    for (p, shape) in [
        ("/api/models", Data),
        ("/api/v1/models", Data),
        ("/api/models/base", Data),
        ("/openai/models", Data),
        ("/openai/models/0", Data),
        ("/ollama/api/tags", OllamaModels),
        ("/ollama/api/tags/1", OllamaModels),
        ("/ollama/v1/models", Data),
        ("/ollama/v1/models/1", Data),
        ("/api/v1/models/list?query=x&page=1", Items),
        ("/api/v1/models/base", BareList),
        ("/api/v1/models/all", BareList),
        ("/api/v1/models/export", BareList),
        ("/api/v1/models/model?id=gpt-4o", Single),
        ("/api/mod%65ls", Data),
    ] {
        assert_eq!(
            classify(Method::GET, p),
            RouteClass::ModelList(shape),
            "{p}"
        );
        assert_eq!(
            classify(Method::HEAD, p),
            RouteClass::ModelList(shape),
            "HEAD {p}"
        );
    }
    // Toggling and deleting rows calls no model: they pass.
    assert_eq!(
        classify(Method::POST, "/api/v1/models/model/toggle?id=x"),
        RouteClass::Pass
    );
    // Writing a preset names the model it will call: its base is checked.
    let base = RouteClass::call(CallSpec {
        locations: vec![ModelLocation::NullableField("base_model_id".into())],
        required: false,
        response: None,
    });
    assert_eq!(classify(Method::POST, "/api/v1/models/model/update"), base);
    assert_eq!(classify(Method::POST, "/api/v1/models/create"), base);
    assert_eq!(
        classify(Method::POST, "/api/v1/models/model/delete"),
        RouteClass::Pass
    );
}

#[test]
fn openai_passthrough_catches_the_rest_of_openai() {
    let refused = RouteClass::Refuse(RefuseReason::OpenaiPassthrough);
    for (m, p) in [
        (Method::POST, "/openai/completions"),
        (Method::POST, "/openai/chat/completions/"),
        (Method::POST, "/openai//chat/completions"),
        (Method::POST, "/openai/./chat/completions"),
        (Method::POST, "/openai/"),
        (Method::POST, "/openai/embeddings"),
        // Method mismatch on an earlier route falls through to the catch-all.
        (Method::PUT, "/openai/chat/completions"),
        (Method::DELETE, "/openai/responses"),
        (Method::HEAD, "/openai/anything"),
        (Method::GET, "/openai/config/update"),
    ] {
        assert_eq!(classify(m.clone(), p), refused, "{m} {p}");
    }
    // Routes registered before the catch-all keep their own class.
    assert_eq!(
        classify(Method::POST, "/openai/config/update"),
        RouteClass::Pass
    );
    assert_eq!(classify(Method::GET, "/openai/config"), RouteClass::Pass);
    assert_eq!(classify(Method::POST, "/openai/verify"), RouteClass::Pass);
    assert_eq!(
        classify(Method::DELETE, "/openai/models/0"),
        RouteClass::Pass
    );
    // PATCH is not among the catch-all's methods: 405 upstream.
    assert_eq!(classify(Method::PATCH, "/openai/x"), RouteClass::Pass);
    // `.*` stops at a newline that is not the last character.
    assert_eq!(classify(Method::POST, "/openai/a%0Ab"), RouteClass::Pass);
    assert_eq!(classify(Method::POST, "/openai/a%0A"), refused);
}

#[test]
fn switches_turn_refusals_into_checks() {
    let t = RouteTable::open_webui(
        Switches {
            allow_realtime_audio: true,
            allow_openai_passthrough: true,
        },
        Vec::new(),
    )
    .unwrap();
    let call = RouteClass::call(CallSpec {
        locations: model_fields(),
        required: true,
        response: None,
    });
    assert_eq!(t.classify(&Method::POST, "/openai/completions"), call);
    assert_eq!(t.classify(&Method::HEAD, "/openai/x"), call);
    assert_eq!(
        t.classify(&Method::GET, "/api/v1/audio/realtime"),
        RouteClass::Pass
    );
}

#[derive(serde::Deserialize)]
struct Cfg {
    routes: Vec<RouteEntry>,
}

fn entries(toml_text: &str) -> Vec<RouteEntry> {
    toml::from_str::<Cfg>(toml_text).unwrap().routes
}

#[test]
fn entries_load_from_toml_and_override_defaults() {
    let user = entries(
        r#"
        [[routes]]
        methods = ["POST"]
        path = "/api/v1/custom/{id}/run"
        kind = "model_call"
        models = [{ field = "model" }, { pointer = "/data/model_id" }, "message_ids", { channel_mentions = "text" }]

        [[routes]]
        methods = ["POST"]
        path = "/api/chat/completions"
        kind = "refuse"

        [[routes]]
        methods = ["GET"]
        path = "/api/v1/custom/models"
        kind = "model_list"
        shape = "bare_list"

        [[routes]]
        methods = ["POST"]
        path = "/api/v1/chats/{id}/messages/{message_id}/resolve"
        kind = "pass"
        "#,
    );
    let t = RouteTable::open_webui(Switches::default(), user).unwrap();
    assert_eq!(
        t.classify(&Method::POST, "/api/v1/custom/x/run"),
        RouteClass::call(CallSpec {
            locations: vec![
                ModelLocation::Field("model".into()),
                ModelLocation::Pointer("/data/model_id".into()),
                ModelLocation::MessageIds,
                ModelLocation::ChannelMentions("text".into()),
            ],
            required: false,
            response: None,
        })
    );
    // Operator entries come first, so they override defaults...
    assert_eq!(
        t.classify(&Method::POST, "/api/chat/completions"),
        RouteClass::Refuse(RefuseReason::Configured)
    );
    assert_eq!(
        t.classify(&Method::POST, "/api/v1/chats/a/messages/b/resolve"),
        RouteClass::Pass
    );
    // ...only for the methods they name; the rest of the defaults remain.
    assert_eq!(
        t.classify(&Method::POST, "/api/v1/chat/completions"),
        classify(Method::POST, "/api/v1/chat/completions")
    );
    assert_eq!(
        t.classify(&Method::GET, "/api/v1/custom/models"),
        RouteClass::ModelList(ListShape::BareList)
    );
}

#[test]
fn bad_entries_are_rejected() {
    let bad = [
        r#"[[routes]]
        methods = ["POST"]
        path = "/x"
        kind = "model_call""#,
        r#"[[routes]]
        methods = ["GET"]
        path = "/x"
        kind = "model_list""#,
        r#"[[routes]]
        methods = ["post"]
        path = "/x"
        kind = "pass""#,
        r#"[[routes]]
        methods = []
        path = "/x"
        kind = "pass""#,
        r#"[[routes]]
        methods = ["GET"]
        path = "/x/{a:int}"
        kind = "pass""#,
        r#"[[routes]]
        methods = ["GET"]
        path = "/x"
        kind = "pass"
        shape = "data""#,
        r#"[[routes]]
        methods = ["POST"]
        path = "/x"
        kind = "model_call"
        models = [{ pointer = "data/model_id" }]"#,
    ];
    for text in bad {
        assert!(RouteTable::from_entries(entries(text)).is_err(), "{text}");
    }
    // Unknown keys are a TOML error.
    let unknown =
        "[[routes]]\nmethods = [\"GET\"]\npath = \"/x\"\nkind = \"pass\"\nfield = \"model\"";
    assert!(toml::from_str::<Cfg>(unknown).is_err());
}

#[test]
fn defence_in_depth_candidates() {
    assert!(is_defence_in_depth_candidate(
        &Method::POST,
        "/api/v1/new/thing"
    ));
    assert!(is_defence_in_depth_candidate(&Method::PUT, "/openai/x"));
    assert!(is_defence_in_depth_candidate(
        &Method::PATCH,
        "/ollama/api/new"
    ));
    assert!(is_defence_in_depth_candidate(&Method::DELETE, "/api/x"));
    assert!(is_defence_in_depth_candidate(&Method::POST, "/api"));
    assert!(!is_defence_in_depth_candidate(&Method::GET, "/api/models"));
    assert!(!is_defence_in_depth_candidate(&Method::POST, "/apix/y"));
    assert!(!is_defence_in_depth_candidate(
        &Method::POST,
        "/ws/socket.io/"
    ));
    assert!(!is_defence_in_depth_candidate(&Method::POST, "/oauth/x"));
}

#[test]
fn responses_that_show_model_ids_are_rewritten() {
    use crate::gate::shape::ListShape::{AppConfig, TaskConfig, Usage};
    assert_eq!(
        classify(Method::GET, "/api/config"),
        RouteClass::ModelList(AppConfig)
    );
    assert_eq!(
        classify(Method::GET, "/api/v1/tasks/config"),
        RouteClass::ModelList(TaskConfig)
    );
    assert_eq!(
        classify(Method::GET, "/api/usage"),
        RouteClass::ModelList(Usage)
    );
}

#[test]
fn chats_and_channel_messages_are_redacted() {
    use crate::gate::shape::ListShape::{ChannelMessage, ChannelMessages, Chat, Chats};
    let cases = [
        (Method::GET, "/api/v1/chats/share/s1", Chat),
        (Method::GET, "/api/v1/chats/c1", Chat),
        (Method::HEAD, "/api/v1/chats/c1", Chat),
        (Method::POST, "/api/v1/chats/c1/clone/shared", Chat),
        (Method::POST, "/api/v1/chats/c1/clone", Chat),
        (Method::POST, "/api/v1/chats/c1/fork", Chat),
        (Method::POST, "/api/v1/chats/shared/c1/access/update", Chat),
        (Method::DELETE, "/api/v1/chats/c1/messages/m1", Chat),
        (Method::GET, "/api/v1/chats/all/archived", Chats),
        (Method::GET, "/api/v1/chats/folder/f1", Chats),
        (Method::GET, "/api/v1/channels/ch/messages", ChannelMessages),
        (
            Method::GET,
            "/api/v1/channels/ch/messages/pinned",
            ChannelMessages,
        ),
        (
            Method::GET,
            "/api/v1/channels/ch/messages/m1",
            ChannelMessage,
        ),
        (
            Method::GET,
            "/api/v1/channels/ch/messages/m1/thread",
            ChannelMessages,
        ),
        (
            Method::POST,
            "/api/v1/channels/ch/messages/m1/pin",
            ChannelMessage,
        ),
        (
            Method::POST,
            "/api/v1/channels/ch/messages/m1/update",
            ChannelMessage,
        ),
    ];
    for (method, path, shape) in cases {
        assert_eq!(
            classify(method.clone(), path),
            RouteClass::ModelList(shape),
            "{method} {path}"
        );
    }
    // Open WebUI's own one-segment routes come before `/{id}` and return
    // title lists, not chats.
    for p in ["list", "config", "search", "pinned", "archived", "shared"] {
        assert_eq!(
            classify(Method::GET, &format!("/api/v1/chats/{p}")),
            RouteClass::Pass,
            "{p}"
        );
    }
    // A chat update is still checked for the internal messages it stores,
    // and its answer (the whole chat) redacted.
    assert!(matches!(
        classify(Method::POST, "/api/v1/chats/c1"),
        RouteClass::ModelCall(spec) if spec.response == Some(Chat)
    ));
    use crate::gate::shape::ListShape::{
        ChatStats, ChatStatsExport, ChatStatsExports, Feedback, Feedbacks, Folder, Folders, Groups,
        SearchResults, UserSettings, UserUsage,
    };
    for (method, path, shape) in [
        (Method::GET, "/api/v1/folders/shared", Folders),
        (Method::GET, "/api/v1/folders/f1", Folder),
        (Method::POST, "/api/v1/folders/f1/update", Folder),
        (Method::POST, "/api/v1/folders/f1/update/expanded", Folder),
        (Method::GET, "/api/v1/groups/", Groups),
        (Method::GET, "/api/v1/users/groups", Groups),
        (Method::GET, "/api/v1/users/user/settings", UserSettings),
        (Method::GET, "/api/v1/search", SearchResults),
        (Method::GET, "/api/v1/chats/all", Chats),
        (Method::GET, "/api/v1/chats/stats/usage", ChatStats),
        (Method::GET, "/api/v1/chats/stats/export", ChatStatsExports),
        (
            Method::GET,
            "/api/v1/chats/stats/export/c1",
            ChatStatsExport,
        ),
        (Method::GET, "/api/v1/users/usage", UserUsage),
        (Method::GET, "/api/v1/evaluations/feedbacks/user", Feedbacks),
        (Method::POST, "/api/v1/evaluations/feedback", Feedback),
        (Method::GET, "/api/v1/evaluations/feedback/f1", Feedback),
        (Method::GET, "/api/v1/notes/n1/chat", Chat),
        (Method::POST, "/api/v1/notes/n1/chat", Chat),
        (Method::GET, "/api/v1/notes/n1/chats", Chats),
    ] {
        assert_eq!(
            classify(method.clone(), path),
            RouteClass::ModelList(shape),
            "{method} {path}"
        );
    }
    assert!(matches!(
        classify(Method::POST, "/api/v1/channels/ch/messages/post"),
        RouteClass::ModelCall(_)
    ));
}

#[test]
fn a_prefix_matches_exactly_the_paths_that_start_with_it() {
    let prefixes = [
        "",
        "/",
        "/api",
        "/api/",
        "/api/v1/",
        "/api/v1/chats/",
        "/api/v1/models",
        "/api/v1/models/model",
        "/openai/",
        "/ollama/api/chat",
    ];
    let paths = [
        "",
        "/",
        "/a",
        "/api",
        "/apj",
        "/api/",
        "/api/v1",
        "/api/v1/",
        "/api/v2/",
        "/api/v1/chats",
        "/api/v1/chats/",
        "/api/v1/chats/abc",
        "/api/v1/chatz/abc",
        "/api/v1/models",
        "/api/v1/models/",
        "/api/v1/models/model/x",
        "/api/v1/modelz/model/x",
        "/xpi/v1/models/model/x",
        "/openai/chat/completions",
        "/ollama/api/chat",
        "/ollama/api/chat\n",
        "/ollama/api/cha",
    ];
    for prefix in prefixes {
        let compiled = Prefix::new(prefix);
        for path in paths {
            assert_eq!(
                compiled.starts(path),
                path.starts_with(prefix),
                "prefix {prefix:?}, path {path:?}"
            );
        }
    }
}
