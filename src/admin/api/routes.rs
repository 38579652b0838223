//! The management API's one route table. The router matches requests
//! against [`ROUTES`] and the OpenAPI document is generated from it, so a
//! route cannot be served without being documented, nor documented without
//! being served.
//!
//! Adding an endpoint: one [`Route`] line here (its method, path template,
//! query parameters and body/response schema names), one [`Op`] variant
//! with its arm in `handlers::run`, and the schemas it names in
//! `openapi::schemas` when they are new.

use http::Method;

/// The methods the API serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
        }
    }

    /// The key of an operation in an OpenAPI path item.
    pub fn openapi_key(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    fn of(method: &Method) -> Option<Verb> {
        match *method {
            Method::GET => Some(Verb::Get),
            Method::POST => Some(Verb::Post),
            Method::PUT => Some(Verb::Put),
            Method::PATCH => Some(Verb::Patch),
            Method::DELETE => Some(Verb::Delete),
            _ => None,
        }
    }
}

/// What a route does; `handlers::run` has one arm per variant. Two routes
/// may share one (the path and the query form of a model id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ListOrganizations,
    CreateOrganization,
    GetOrganization,
    RenameOrganization,
    SetMode,
    ListGroups,
    BindGroup,
    UnbindGroup,
    ListMembers,
    AddMember,
    RemoveMember,
    ListModels,
    EnableModel,
    DisableModel,
    Explain,
    Audit,
    OpenApi,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The admin token or an Open WebUI admin session (`require_admin`).
    Admin,
    /// Anyone who can reach the admin listener (the OpenAPI document: it is
    /// the repository's text, nothing secret).
    Public,
}

/// A query parameter a route accepts; any other one is refused (400), so a
/// typo such as `?limt=5` is not silently ignored.
#[derive(Clone, Copy, Debug)]
pub struct QueryParam {
    pub name: &'static str,
    pub required: bool,
    /// JSON Schema type: `string` or `integer`.
    pub kind: &'static str,
    pub description: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub verb: Verb,
    /// OpenAPI path template: literal segments and `{name}` captures, each
    /// capture exactly one percent-decoded segment.
    pub path: &'static str,
    pub op: Op,
    /// Unique per route (OpenAPI `operationId`).
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub query: &'static [QueryParam],
    /// The request body's schema in `components.schemas`; a route with a
    /// body requires `Content-Type: application/json`.
    pub body: Option<&'static str>,
    /// The success response's schema in `components.schemas`.
    pub response: &'static str,
    /// A write that answers 201 when it created the row, 200 when the row
    /// existed (re-activated, updated or unchanged).
    pub creates: bool,
}

/// How each path capture is described in the document.
pub const PATH_PARAMS: &[(&str, &str)] = &[
    ("org", "Organization id."),
    ("user", "Open WebUI user id, or the user's email."),
    (
        "group",
        "Open WebUI group id, or a name exactly one group has (percent-encoded).",
    ),
    (
        "model",
        "Model id or pattern as ONE path segment, percent-encoded: `/` as `%2F` \
         (`openai%2Fgpt-4o`, `openai%2F*`), `%` as `%25`; `:` may stay. Clients \
         or proxies that decode `%2F` can use the query form `?model=` instead.",
    ),
];

const MODEL_QUERY: QueryParam = QueryParam {
    name: "model",
    required: true,
    kind: "string",
    description: "Model id, percent-encoded as a query value (`openai%2Fgpt-4o`; `+` means a space, so a literal `+` is `%2B`).",
};

const ORG: &str = "/api/v1/organizations/{org}";

/// Defaults shared by every route, so each entry below names only what is
/// its own.
const fn route(verb: Verb, path: &'static str, op: Op, operation_id: &'static str) -> Route {
    Route {
        verb,
        path,
        op,
        operation_id,
        summary: "",
        access: Access::Admin,
        query: &[],
        body: None,
        response: "WriteReport",
        creates: false,
    }
}

pub const ROUTES: &[Route] = &[
    Route {
        summary: "List organizations with their active member and model counts.",
        response: "OrganizationList",
        ..route(
            Verb::Get,
            "/api/v1/organizations",
            Op::ListOrganizations,
            "listOrganizations",
        )
    },
    Route {
        summary: "Create an organization (`org create`); an existing id with another name \
                  is refused with 409 (rename it with PATCH).",
        body: Some("CreateOrganization"),
        creates: true,
        ..route(
            Verb::Post,
            "/api/v1/organizations",
            Op::CreateOrganization,
            "createOrganization",
        )
    },
    Route {
        summary: "One organization with its active member and model counts.",
        response: "Organization",
        ..route(Verb::Get, ORG, Op::GetOrganization, "getOrganization")
    },
    Route {
        summary: "Rename an organization (`org rename`).",
        body: Some("RenameOrganization"),
        ..route(
            Verb::Patch,
            ORG,
            Op::RenameOrganization,
            "renameOrganization",
        )
    },
    Route {
        summary: "Enforce the organization's rules, or run them in shadow mode: would-be \
                  refusals are let through, logged and counted as `would_deny` \
                  (`org mode`).",
        body: Some("SetMode"),
        ..route(
            Verb::Put,
            "/api/v1/organizations/{org}/mode",
            Op::SetMode,
            "setMode",
        )
    },
    Route {
        summary: "Open WebUI groups bound to the organization, unbound ones included \
                  (`org groups`).",
        response: "GroupList",
        ..route(
            Verb::Get,
            "/api/v1/organizations/{org}/groups",
            Op::ListGroups,
            "listGroups",
        )
    },
    Route {
        summary: "Bind an Open WebUI group: its members, and its subgroups' members, are \
                  members of the organization (`org bind-group`).",
        body: Some("BindGroup"),
        creates: true,
        ..route(
            Verb::Post,
            "/api/v1/organizations/{org}/groups",
            Op::BindGroup,
            "bindGroup",
        )
    },
    Route {
        summary: "Remove a group binding (`org unbind-group`).",
        ..route(
            Verb::Delete,
            "/api/v1/organizations/{org}/groups/{group}",
            Op::UnbindGroup,
            "unbindGroup",
        )
    },
    Route {
        summary: "Memberships of an organization, inactive ones included (`member list`).",
        response: "MemberList",
        ..route(
            Verb::Get,
            "/api/v1/organizations/{org}/members",
            Op::ListMembers,
            "listMembers",
        )
    },
    Route {
        summary: "Add a member, re-activate a membership or change its role (`member add`).",
        body: Some("AddMember"),
        creates: true,
        ..route(
            Verb::Post,
            "/api/v1/organizations/{org}/members",
            Op::AddMember,
            "addMember",
        )
    },
    Route {
        summary: "Deactivate a membership; the row and its history stay (`member remove`).",
        ..route(
            Verb::Delete,
            "/api/v1/organizations/{org}/members/{user}",
            Op::RemoveMember,
            "removeMember",
        )
    },
    Route {
        summary: "Model rules of an organization: exact links and glob/deny rules, inactive \
                  ones included (`model list`).",
        response: "ModelList",
        ..route(
            Verb::Get,
            "/api/v1/organizations/{org}/models",
            Op::ListModels,
            "listModels",
        )
    },
    Route {
        summary: "Allow or deny an exact model id or a glob such as `openai/*` (`model \
                  enable`, `model deny`). A deny wins over every allow; an exact id no known \
                  model matches is refused unless `force`.",
        body: Some("EnableModel"),
        creates: true,
        ..route(
            Verb::Post,
            "/api/v1/organizations/{org}/models",
            Op::EnableModel,
            "enableModel",
        )
    },
    Route {
        summary: "Remove an allow or a deny, the id or pattern in the path (`model disable`).",
        ..route(
            Verb::Delete,
            "/api/v1/organizations/{org}/models/{model}",
            Op::DisableModel,
            "disableModel",
        )
    },
    Route {
        summary: "Remove an allow or a deny, the id or pattern in the query (`model disable`).",
        query: &[MODEL_QUERY],
        ..route(
            Verb::Delete,
            "/api/v1/organizations/{org}/models",
            Op::DisableModel,
            "disableModelByQuery",
        )
    },
    Route {
        summary: "Why a user may or may not use a model (`access USER [MODEL]`): the \
                  user's organizations and permitted models, and the decision for MODEL \
                  through its preset chain, read fresh from the database.",
        query: &[
            QueryParam {
                name: "user",
                required: true,
                kind: "string",
                description: "Open WebUI user id, or the user's email.",
            },
            QueryParam {
                name: "model",
                required: false,
                kind: "string",
                description: "Model id (percent-encoded); without it, no decision is made.",
            },
        ],
        response: "AccessExplanation",
        ..route(Verb::Get, "/api/v1/explain", Op::Explain, "explain")
    },
    Route {
        summary: "The permission change log, newest first (`audit`).",
        query: &[QueryParam {
            name: "limit",
            required: false,
            kind: "integer",
            description: "How many entries, 1 to 1000 (default 50).",
        }],
        response: "AuditLog",
        ..route(Verb::Get, "/api/v1/audit", Op::Audit, "audit")
    },
    Route {
        summary: "This document (OpenAPI 3.1).",
        access: Access::Public,
        response: "OpenApiDocument",
        ..route(Verb::Get, "/api/v1/openapi.json", Op::OpenApi, "openapi")
    },
];

/// What the table says about a request.
#[derive(Debug)]
pub enum Lookup {
    /// The route, with its captures raw (still percent-encoded).
    Found(&'static Route, Vec<(&'static str, String)>),
    /// The path exists, the method does not: the `Allow` list.
    WrongMethod(Vec<Verb>),
    NotFound,
}

pub fn lookup(method: &Method, path: &str) -> Lookup {
    let verb = Verb::of(method);
    let mut allow = Vec::new();
    for route in ROUTES {
        let Some(captures) = captures(route.path, path) else {
            continue;
        };
        if Some(route.verb) == verb {
            return Lookup::Found(route, captures);
        }
        if !allow.contains(&route.verb) {
            allow.push(route.verb);
        }
    }
    if allow.is_empty() {
        Lookup::NotFound
    } else {
        Lookup::WrongMethod(allow)
    }
}

/// The template's captures in `path`, segment by segment; `None` when the
/// path has another shape. A capture never spans a `/` and is never empty.
fn captures(template: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let mut want = template.split('/');
    let mut have = path.split('/');
    let mut out = Vec::new();
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(out),
            (Some(w), Some(h)) => match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) if !h.is_empty() => out.push((name, h.to_string())),
                Some(_) => return None,
                None if w == h => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

/// The `{name}` captures of a template, in order.
pub fn path_params(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: Method, path: &str) -> (Op, Vec<(&'static str, String)>) {
        match lookup(&method, path) {
            Lookup::Found(r, c) => (r.op, c),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn captures_are_single_raw_segments() {
        assert_eq!(
            found(Method::GET, "/api/v1/organizations/acme"),
            (Op::GetOrganization, vec![("org", "acme".into())])
        );
        assert_eq!(
            found(
                Method::DELETE,
                "/api/v1/organizations/acme/models/openai%2Fgpt-4o"
            ),
            (
                Op::DisableModel,
                vec![("org", "acme".into()), ("model", "openai%2Fgpt-4o".into())]
            )
        );
        // An unencoded `/` makes another path, which no route has.
        assert!(matches!(
            lookup(
                &Method::DELETE,
                "/api/v1/organizations/acme/models/openai/gpt-4o"
            ),
            Lookup::NotFound
        ));
        for path in [
            "/api/v1/organizations/",
            "/api/v1/organizations//members",
            "/api/v1/organization",
            "/api/v1",
            "/api/v2/organizations",
        ] {
            assert!(
                matches!(lookup(&Method::GET, path), Lookup::NotFound),
                "{path}"
            );
        }
    }

    #[test]
    fn a_known_path_with_another_method_lists_the_allowed_ones() {
        match lookup(&Method::PUT, "/api/v1/organizations/acme/models") {
            Lookup::WrongMethod(allow) => {
                assert_eq!(allow, vec![Verb::Get, Verb::Post, Verb::Delete])
            }
            other => panic!("{other:?}"),
        }
        match lookup(&Method::DELETE, "/api/v1/audit") {
            Lookup::WrongMethod(allow) => assert_eq!(allow, vec![Verb::Get]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_table_is_consistent() {
        let mut seen = Vec::new();
        for r in ROUTES {
            assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
            assert!(!r.summary.is_empty(), "{} has no summary", r.operation_id);
            let key = (r.verb, r.path);
            assert!(!seen.contains(&key), "{key:?} twice");
            seen.push(key);
            assert_eq!(
                ROUTES
                    .iter()
                    .filter(|o| o.operation_id == r.operation_id)
                    .count(),
                1,
                "{}",
                r.operation_id
            );
            for p in path_params(r.path) {
                assert!(PATH_PARAMS.iter().any(|(n, _)| *n == p), "{p} undocumented");
                assert!(
                    r.query.iter().all(|q| q.name != p),
                    "{p} both in the path and the query of {}",
                    r.path
                );
            }
            assert_eq!(
                r.body.is_some(),
                matches!(r.verb, Verb::Post | Verb::Put | Verb::Patch),
                "{}",
                r.path
            );
            assert!(!r.creates || r.verb == Verb::Post);
        }
    }
}
