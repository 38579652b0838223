//! The OpenAPI 3.1 document, generated from [`ROUTES`]: paths, methods,
//! parameters, bodies and the error responses each route can give follow
//! from the table; only the schemas are written by hand (tests compare
//! them with the structs they describe).

use serde_json::{json, Map, Value};

use super::handlers::AUDIT_MAX;
use super::input::MAX_BODY_BYTES;
use super::routes::{path_params, Access, Route, PATH_PARAMS, ROUTES};

pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(route.verb.openapi_key().into(), operation(route));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "modelgate management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Organizations (with their enforce/shadow mode), memberships, Open WebUI \
                 group bindings, model rules (exact ids and globs, allow or deny), access \
                 explanations and the audit log, on the admin listener. Users may be named \
                 by id or email. Every write is one transaction that \
                 records the caller as the audit actor (`api:token` for the admin token, \
                 `api:<user id>` for an Open WebUI admin session) and runs the same \
                 function as the CLI. Bodies are JSON (`Content-Type: application/json`, \
                 at most {MAX_BODY_BYTES} bytes, unknown fields refused). Ids in the path \
                 are one percent-encoded segment each (`openai%2Fgpt-4o`). Errors have \
                 the shape of every modelgate refusal: `{{\"detail\": m, \"error\": \
                 {{\"message\": m, \"type\": t, \"code\": c}}}}`; `code` is stable and, \
                 for operator failures, the CLI's `--json` error code."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "MODELGATE_ADMIN_TOKEN (or admin.token_file), or an Open WebUI \
                                    session token or API key of a user whose role is admin."
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "token",
                    "description": "Open WebUI's session cookie, of a user whose role is admin."
                }
            },
            "schemas": schemas(),
        },
    })
}

fn operation(route: &Route) -> Value {
    let mut parameters: Vec<Value> = path_params(route.path)
        .map(|name| {
            let description = PATH_PARAMS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, d)| d);
            json!({
                "name": name, "in": "path", "required": true,
                "description": description, "schema": {"type": "string", "minLength": 1},
            })
        })
        .collect();
    parameters.extend(route.query.iter().map(|q| {
        json!({
            "name": q.name, "in": "query", "required": q.required,
            "description": q.description, "schema": {"type": q.kind},
        })
    }));

    let success = json!({
        "description": "OK",
        "content": {"application/json": {"schema": schema_ref(route.response)}},
    });
    let mut responses = Map::new();
    responses.insert("200".into(), success.clone());
    if route.creates {
        let mut created = success;
        created["description"] = json!("Created");
        responses.insert("201".into(), created);
    }
    for (status, why) in errors(route) {
        responses.insert(
            status.to_string(),
            json!({
                "description": why,
                "content": {"application/json": {"schema": schema_ref("Error")}},
            }),
        );
    }

    let mut op = json!({
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses,
        "security": match route.access {
            Access::Admin => json!([{"adminToken": []}, {"sessionCookie": []}]),
            Access::Public => json!([]),
        },
    });
    if let Some(body) = route.body {
        op["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": schema_ref(body)}},
        });
    }
    op
}

/// The error statuses a route can answer, from what it takes.
fn errors(route: &Route) -> Vec<(u16, &'static str)> {
    let mut out = Vec::new();
    let takes_args = route.body.is_some() || !route.query.is_empty();
    if takes_args || path_params(route.path).next().is_some() {
        out.push((400, "Bad request: JSON, a field or a parameter is invalid"));
    }
    if route.access == Access::Admin {
        out.push((401, "No valid credential"));
        out.push((403, "The session's user is not an administrator"));
    }
    if path_params(route.path).next().is_some() || route.body.is_some() {
        out.push((404, "Unknown organization, user, membership or model link"));
    }
    if route.body.is_some() {
        out.push((408, "The body did not arrive in time"));
        out.push((
            409,
            "Conflict: the organization id exists under another name, or a group name is ambiguous",
        ));
        out.push((413, "The body is larger than the limit"));
        out.push((415, "The body is not application/json"));
        if route.body == Some("EnableModel") {
            out.push((
                422,
                "An exact model id no known model has (a typo?): the message names close ids; `force` accepts it",
            ));
        }
    }
    if route.access == Access::Admin {
        out.push((500, "The database task failed"));
        out.push((503, "The database cannot be read or written right now"));
    }
    out
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

/// Response and request schemas. The store and ops structs they describe
/// are `Serialize`; tests check the property names against real values.
fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "required": ["detail", "error"],
            "properties": {
                "detail": {"type": "string"},
                "error": {
                    "type": "object",
                    "required": ["message", "type", "code"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "code": {"type": "string", "description": "Stable, machine-readable."},
                    },
                },
            },
        },
        "CreateOrganization": {
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "name"],
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1,
                         "description": "An existing id with another name is refused (409)."},
            },
        },
        "RenameOrganization": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}},
        },
        "SetMode": {
            "type": "object",
            "additionalProperties": false,
            "required": ["mode"],
            "properties": {"mode": {"type": "string", "enum": ["enforce", "shadow"]}},
        },
        "BindGroup": {
            "type": "object",
            "additionalProperties": false,
            "required": ["group"],
            "properties": {"group": {"type": "string", "minLength": 1,
                                     "description": "Open WebUI group id, or a name exactly one group has."}},
        },
        "AddMember": {
            "type": "object",
            "additionalProperties": false,
            "required": ["user"],
            "properties": {
                "user": {"type": "string", "minLength": 1, "description": "Open WebUI user id or email."},
                "role": {"type": "string", "enum": ["member", "admin"], "default": "member"},
            },
        },
        "EnableModel": {
            "type": "object",
            "additionalProperties": false,
            "required": ["model"],
            "properties": {
                "model": {"type": "string", "minLength": 1,
                          "description": "An exact model id (a base model: its presets follow it) \
                                          or a glob: `*` matches any run of characters, `/` included; \
                                          `\\*` is a literal star."},
                "effect": {"type": "string", "enum": ["allow", "deny"], "default": "allow",
                           "description": "A deny wins over every allow of every organization of the user."},
                "force": {"type": "boolean", "default": false,
                          "description": "Accept an exact id that no model the gate has seen matches."},
            },
        },
        "WriteReport": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The CLI command: `org create`, `member add`, ..."},
                "organization": {"type": "string"},
                "subject": nullable("string"),
                "role": {"type": ["string", "null"], "enum": ["member", "admin", null]},
                "outcome": {"type": "string",
                            "enum": ["created", "reactivated", "updated", "deactivated", "unchanged"]},
                "actor": {"type": "string"},
                "note": nullable("string"),
            },
        },
        "Organization": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "created_at": nullable("integer"),
                "active_members": {"type": "integer"},
                "active_models": {"type": "integer", "description": "Active exact links."},
                "active_rules": {"type": "integer", "description": "Active glob and deny rules."},
                "bound_groups": {"type": "integer"},
                "mode": {"type": "string", "enum": ["enforce", "shadow"]},
            },
        },
        "GroupBinding": {
            "type": "object",
            "properties": {
                "organization_id": {"type": "string"},
                "group_id": {"type": "string"},
                "group_name": {"type": ["string", "null"], "description": "NULL once the group is deleted in Open WebUI."},
                "members": {"type": "integer", "description": "Direct members of the group now."},
                "is_active": {"type": "boolean"},
                "created_at": nullable("integer"),
            },
        },
        "GroupList": {"type": "array", "items": schema_ref("GroupBinding")},
        "OrganizationList": {"type": "array", "items": schema_ref("Organization")},
        "Member": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "organization_id": {"type": "string"},
                "user_id": {"type": "string"},
                "role": nullable("string"),
                "is_active": {"type": "boolean"},
                "joined_at": nullable("integer"),
                "email": nullable("string"),
            },
        },
        "MemberList": {"type": "array", "items": schema_ref("Member")},
        "ModelEntry": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "organization_id": {"type": "string"},
                "model_id": {"type": "string", "description": "The id, or the pattern of a glob rule."},
                "effect": {"type": "string", "enum": ["allow", "deny"]},
                "pattern": {"type": "boolean", "description": "A glob rather than one exact id."},
                "is_active": {"type": "boolean"},
                "created_at": nullable("integer"),
                "updated_at": nullable("integer"),
                "name": nullable("string"),
            },
        },
        "ModelList": {"type": "array", "items": schema_ref("ModelEntry")},
        "AccessExplanation": {
            "type": "object",
            "description": "The CLI's `access --json` output.",
            "properties": {
                "user_id": {"type": "string"},
                "known": {"type": "boolean", "description": "A user row or any membership exists."},
                "role": nullable("string"),
                "organizations": {"type": "array", "items": {"type": "string"}},
                "memberships": {"type": "array", "description": "How the user is in each organization: explicitly (group null) or through a bound Open WebUI group.", "items": {
                    "type": "object",
                    "properties": {
                        "organization": {"type": "string"},
                        "group_id": nullable("string"),
                        "group_name": nullable("string"),
                    },
                }},
                "shadow_organizations": {"type": "array", "items": {"type": "string"}},
                "rules": {"type": "array", "description": "Glob and deny rules of the user's organizations.", "items": {
                    "type": "object",
                    "properties": {
                        "organization": {"type": "string"},
                        "pattern": {"type": "string"},
                        "effect": {"type": "string", "enum": ["allow", "deny"]},
                    },
                }},
                "permitted_models": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string"},
                        "organization": {"type": "string"},
                        "preset_of": nullable("string"),
                    },
                }},
                "model": {
                    "type": ["object", "null"],
                    "description": "The decision for the requested model, with its reason chain.",
                    "properties": {
                        "requested": {"type": "string"},
                        "chain": {"type": "object", "description": "The preset → base steps and how the walk ended."},
                        "decision": {"type": "object", "description": "`decision`: allowed (root, organization, and the allow pattern if one granted it), denied, or would_deny (shadow mode: let through), with the `reason`."},
                        "explanation": {"type": "string", "description": "One line, e.g. `my-preset → gpt-4o (root) → permitted by organization acme`."},
                    },
                },
            },
        },
        "AuditEntry": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "table_name": {"type": "string"},
                "action": {"type": "string", "enum": ["INSERT", "UPDATE", "DELETE"]},
                "row_id": nullable("string"),
                "organization_id": nullable("string"),
                "subject": {"type": ["string", "null"], "description": "The user id or model id."},
                "old_values": {"description": "The row before the change (JSON)."},
                "new_values": {"description": "The row after the change (JSON)."},
                "actor": {"type": ["string", "null"], "description": "NULL for a writer other than modelgate."},
                "changed_at": {"type": "integer", "description": "Unix seconds."},
            },
        },
        "AuditLog": {"type": "array", "maxItems": AUDIT_MAX, "items": schema_ref("AuditEntry")},
        "OpenApiDocument": {"type": "object", "description": "This document."},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{self, Deserialize, Deserializer, Visitor};
    use std::collections::BTreeSet;

    fn schema(name: &str) -> Value {
        document()["components"]["schemas"][name].clone()
    }

    fn documented(name: &str) -> BTreeSet<String> {
        schema(name)["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(value: &impl serde::Serialize) -> BTreeSet<String> {
        serde_json::to_value(value)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn every_route_is_documented_once_with_its_method() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(operations, ROUTES.len());
        for r in ROUTES {
            let op = &doc["paths"][r.path][r.verb.openapi_key()];
            assert_eq!(op["operationId"], r.operation_id, "{}", r.path);
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
    }

    /// The field names a derived `Deserialize` accepts: serde hands them
    /// to `deserialize_struct`, which records them and stops.
    fn accepted_fields<T: for<'de> Deserialize<'de>>() -> BTreeSet<String> {
        struct Capture(&'static [&'static str]);
        #[derive(Debug)]
        struct Stop;
        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("stop")
            }
        }
        impl std::error::Error for Stop {}
        impl de::Error for Stop {
            fn custom<M: std::fmt::Display>(_: M) -> Stop {
                Stop
            }
        }
        impl<'de> Deserializer<'de> for &mut Capture {
            type Error = Stop;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Stop> {
                self.0 = fields;
                Err(Stop)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut capture = Capture(&[]);
        let _ = T::deserialize(&mut capture);
        capture.0.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn request_schemas_name_exactly_the_accepted_fields() {
        use super::super::handlers::{
            AddMember, BindGroup, CreateOrganization, EnableModel, RenameOrganization, SetMode,
        };
        assert_eq!(
            documented("CreateOrganization"),
            accepted_fields::<CreateOrganization>()
        );
        assert_eq!(documented("AddMember"), accepted_fields::<AddMember>());
        assert_eq!(documented("EnableModel"), accepted_fields::<EnableModel>());
        assert_eq!(
            documented("RenameOrganization"),
            accepted_fields::<RenameOrganization>()
        );
        assert_eq!(documented("SetMode"), accepted_fields::<SetMode>());
        assert_eq!(documented("BindGroup"), accepted_fields::<BindGroup>());
    }

    #[test]
    fn response_schemas_name_exactly_the_serialized_fields() {
        use crate::ops::access::{AccessExplanation, PermittedModel};
        use crate::ops::manage::{ModelEntry, WriteReport};
        use crate::store::admin::{AuditEntry, Member, OrgModel, Organization, WriteOutcome};

        let report = WriteReport {
            command: "org create",
            organization: "o".into(),
            subject: None,
            role: None,
            outcome: WriteOutcome::Created,
            actor: "a".into(),
            note: None,
        };
        assert_eq!(documented("WriteReport"), keys(&report));
        let org = Organization {
            id: "o".into(),
            name: "O".into(),
            created_at: None,
            active_members: 0,
            active_models: 0,
            active_rules: 0,
            bound_groups: 0,
            mode: crate::store::Mode::Enforce,
        };
        assert_eq!(documented("Organization"), keys(&org));
        let member = Member {
            id: "m".into(),
            organization_id: "o".into(),
            user_id: "u".into(),
            role: None,
            is_active: true,
            joined_at: None,
            email: None,
        };
        assert_eq!(documented("Member"), keys(&member));
        let entry = ModelEntry {
            link: OrgModel {
                id: "l".into(),
                organization_id: "o".into(),
                model_id: "m".into(),
                effect: crate::store::Effect::Allow,
                pattern: false,
                is_active: true,
                created_at: None,
                updated_at: None,
            },
            name: None,
        };
        assert_eq!(documented("ModelEntry"), keys(&entry));
        let audit = AuditEntry {
            id: 1,
            table_name: "t".into(),
            action: "INSERT".into(),
            row_id: None,
            organization_id: None,
            subject: None,
            old_values: None,
            new_values: None,
            actor: None,
            changed_at: 0,
        };
        assert_eq!(documented("AuditEntry"), keys(&audit));
        let explanation = AccessExplanation {
            user_id: "u".into(),
            known: true,
            role: None,
            organizations: vec![],
            memberships: vec![crate::store::report::MembershipSource {
                organization: "o".into(),
                group_id: None,
                group_name: None,
            }],
            shadow_organizations: vec![],
            permitted_models: vec![PermittedModel {
                model: "m".into(),
                organization: "o".into(),
                preset_of: None,
            }],
            rules: vec![crate::store::RuleView {
                organization: "o".into(),
                pattern: "a/*".into(),
                effect: crate::store::Effect::Allow,
            }],
            model: None,
        };
        assert_eq!(documented("AccessExplanation"), keys(&explanation));
        let permitted = &schema("AccessExplanation")["properties"]["permitted_models"]["items"];
        let permitted: BTreeSet<String> = permitted["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(permitted, keys(&explanation.permitted_models[0]));
        for (field, value) in [
            ("memberships", keys(&explanation.memberships[0])),
            ("rules", keys(&explanation.rules[0])),
        ] {
            let items = &schema("AccessExplanation")["properties"][field]["items"]["properties"];
            let names: BTreeSet<String> = items.as_object().unwrap().keys().cloned().collect();
            assert_eq!(names, value, "{field}");
        }
        let binding = crate::store::admin::GroupBinding {
            organization_id: "o".into(),
            group_id: "g".into(),
            group_name: None,
            members: 0,
            is_active: true,
            created_at: None,
        };
        assert_eq!(documented("GroupBinding"), keys(&binding));
    }
}
