//! The OpenAPI 3 document of the native API, generated from the handlers'
//! `utoipa::path` attributes and the DTOs' schemas (so it cannot drift from
//! the code), and a human-readable page rendered from it on the server: no
//! script, no font, nothing fetched from the internet.

use std::fmt::Write;

use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{RefOr, Schema};
use utoipa::OpenApi;

use crate::routes::{
    alerts, datasets, deployments, feedback, inference, lineage, manifests, monitoring, profiles,
    v1, validation,
};
use sextant_api::v1 as dto;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sextant native API",
        description = "Users, groups, API tokens, permissions, the promotion workflow, the audit log, \
deployments and the inference APIs (Open Inference Protocol v2 under /v2, MLflow's scoring protocol). \
Authenticate with HTTP Basic (username and password) or `Authorization: Bearer <token>`. \
MLflow's REST API is served beside it under /api/2.0/mlflow with the same credentials.",
    ),
    paths(
        v1::bootstrap, v1::me,
        v1::list_users, v1::create_user, v1::get_user, v1::update_user, v1::delete_user,
        v1::list_groups, v1::create_group, v1::get_group, v1::delete_group, v1::add_member, v1::remove_member,
        v1::list_tokens, v1::create_token, v1::revoke_token,
        v1::list_grants, v1::grant, v1::revoke,
        v1::get_policy, v1::set_policy,
        v1::create_request, v1::list_requests, v1::get_request, v1::approve, v1::reject, v1::cancel,
        v1::audit_list, v1::audit_export, v1::audit_verify,
        deployments::create, deployments::list, deployments::get, deployments::update, deployments::delete,
        deployments::canary, deployments::ab_test, deployments::shadow, deployments::promote, deployments::rollback,
        deployments::history, deployments::status, deployments::progress, deployments::report, deployments::model_archive,
        inference::infer, inference::model_metadata, inference::deployment_invocations,
        inference::explain, inference::deployment_explain,
        monitoring::put_reference, monitoring::report, monitoring::windows, monitoring::abuse, monitoring::drift, monitoring::profile,
        feedback::post_feedback, feedback::performance,
        alerts::list, alerts::metrics, alerts::evaluate, alerts::put, alerts::delete, alerts::all,
        alerts::get_trigger, alerts::put_trigger, alerts::delete_trigger, alerts::retrain,
        manifests::record, manifests::check, lineage::lineage,
        datasets::missing_chunks, datasets::put_chunk, datasets::get_chunk, datasets::list, datasets::create_version, datasets::get_version, profiles::get_profile, profiles::get_profile_html,
        validation::get_spec, validation::put_spec, validation::delete_spec, validation::get_validation,
        validation::report_html, validation::run_validation, validation::override_validation,
    ),
    components(schemas(dto::Error)),
    tags(
        (name = "users", description = "Accounts and the first admin"),
        (name = "groups", description = "Groups of users, for grants"),
        (name = "tokens", description = "API tokens: shown once, stored hashed, with scopes and expiry"),
        (name = "permissions", description = "read, edit, manage, approve, invoke on experiments, registered models, deployments"),
        (name = "workflow", description = "Protected stages and aliases; transition requests and their decisions"),
        (name = "audit", description = "The append-only, hash-chained audit log"),
        (name = "deployments", description = "Registered model versions served under a name: update, blue-green, canary, A/B test, shadow, promote, rollback"),
        (name = "monitoring", description = "A deployment's reference profile; feature and prediction drift, missing values and outliers per model version and window"),
        (name = "lineage", description = "Environment manifests of runs (`sextant exec`), their hashes kept in the audit log; datasets stored by content in deduplicated chunks (`sextant datasets`)"),
        (name = "validation", description = "Quality gates: a registered model's validation spec, run on every new version; versions that fail cannot move to an alias, a stage or a deployment"),
        (name = "inference", description = "Calling a deployment: Open Inference Protocol v2 (also /v2/models/{name}/versions/{version}/…, /ready, /v2/health/*) and MLflow's /invocations"),
    )
)]
struct NativeApi;

/// The error answers any route can give, whatever its handler: a bad
/// request or content type (400, 415), missing or refused credentials (401,
/// 403), something that does not exist (404), a body or URI too large
/// (413, 414), a failure on our side (500). Every one has the `Error` body.
const COMMON_ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "The request is malformed or a field has a wrong value",
    ),
    (
        "401",
        "Authentication is required (servers started with --auth)",
    ),
    (
        "403",
        "The caller may not do this, or the request came from another origin",
    ),
    ("404", "The resource does not exist"),
    (
        "409",
        "The request conflicts with the resource's state (it exists, or changed since)",
    ),
    ("413", "The request body is too large"),
    ("414", "The request URI is too long"),
    ("415", "The request body's content type is not accepted"),
    (
        "500",
        "A failure on the server's side; the server log has the details",
    ),
];

/// The generated document with what holds for every route added: the
/// common error answers and the two ways to authenticate.
pub fn document() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let mut api = NativeApi::openapi();
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, description) in COMMON_ERRORS {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(*description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("Error")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
            }
        }
    }
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "basic",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
    );
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    api
}

/// Request bodies whose fields come in alternative forms, which the
/// generated schema cannot say: each form's required fields, and the
/// fields it may carry (every other field must be absent or null). The
/// handlers accept exactly these forms (`tables::load`,
/// `v1::create_request`).
const FORMS: &[(&str, &[(&[&str], &[&str])])] = &[
    (
        "TableSource",
        &[
            (&["run_id", "path"], &["run_id", "path"]),
            (&["run_id", "dataset"], &["run_id", "dataset"]),
            (
                &["deployment"],
                &["deployment", "start", "end", "span", "model_version"],
            ),
        ],
    ),
    (
        "CreateTransitionRequest",
        &[
            (
                &["stage"],
                &[
                    "name",
                    "version",
                    "stage",
                    "archive_existing_versions",
                    "comment",
                ],
            ),
            (
                &["alias"],
                &[
                    "name",
                    "version",
                    "alias",
                    "archive_existing_versions",
                    "comment",
                ],
            ),
        ],
    ),
];

/// Bodies whose fields are all optional may be left out (the handler
/// reads an empty object), which the generated document does not say.
fn optional_empty_bodies(document: &mut serde_json::Value) {
    let schemas = document["components"]["schemas"].clone();
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let body = &mut operation["requestBody"];
            let Some(reference) = body
                .pointer("/content/application~1json/schema/$ref")
                .and_then(|r| r.as_str())
                .map(str::to_string)
            else {
                continue;
            };
            let name = reference.rsplit('/').next().unwrap_or_default();
            let required = schemas[name]["required"]
                .as_array()
                .is_some_and(|fields| !fields.is_empty());
            if !required && schemas[name]["oneOf"].is_null() {
                body["required"] = serde_json::Value::Bool(false);
            }
        }
    }
}

fn add_forms(document: &mut serde_json::Value) {
    for (schema, forms) in FORMS {
        let Some(target) = document.pointer_mut(&format!("/components/schemas/{schema}")) else {
            continue;
        };
        let names: Vec<String> = target["properties"]
            .as_object()
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        let branches: Vec<serde_json::Value> = forms
            .iter()
            .map(|(required, allowed)| {
                let mut properties = serde_json::Map::new();
                for name in &names {
                    if !allowed.contains(&name.as_str()) {
                        properties.insert(name.clone(), serde_json::json!({"type": "null"}));
                    } else if required.contains(&name.as_str()) {
                        properties
                            .insert(name.clone(), serde_json::json!({"not": {"type": "null"}}));
                    }
                }
                serde_json::json!({"required": required, "properties": properties})
            })
            .collect();
        target["oneOf"] = serde_json::Value::Array(branches);
    }
}

/// The document as JSON text.
pub fn openapi_json() -> String {
    let mut document = serde_json::to_value(document()).unwrap_or_default();
    add_forms(&mut document);
    optional_empty_bodies(&mut document);
    serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_string())
}

pub(crate) async fn serve_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}

pub(crate) async fn serve_docs() -> Html<String> {
    Html(render_docs())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn schema_name(schema: &RefOr<Schema>) -> String {
    match schema {
        RefOr::Ref(reference) => reference
            .ref_location
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        RefOr::T(_) => "inline".to_string(),
    }
}

fn render_docs() -> String {
    let api = document();
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title><style>\
         body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4;color:#222}}\
         h2{{border-bottom:1px solid #ccc;margin-top:2em}} .op{{margin:1em 0;padding:.5em 1em;border-left:4px solid #48a}}\
         code,pre{{background:#f4f4f4;padding:0 .2em}} pre{{padding:.5em;overflow:auto}} .m{{font-weight:bold;text-transform:uppercase}}\
         table{{border-collapse:collapse}} td,th{{border:1px solid #ddd;padding:.2em .5em;text-align:left}}</style></head><body>\
         <h1>{title}</h1><p>{description}</p><p>Machine-readable: <a href=\"openapi.json\">openapi.json</a>, the OpenAPI document this page is rendered from.</p>",
        title = escape(&api.info.title),
        description = escape(api.info.description.as_deref().unwrap_or_default()),
    );
    let mut by_tag: std::collections::BTreeMap<String, Vec<(String, &'static str, &Operation)>> =
        Default::default();
    for (path, item) in &api.paths.paths {
        let operations = [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                let tag = operation
                    .tags
                    .as_ref()
                    .and_then(|t| t.first().cloned())
                    .unwrap_or_default();
                by_tag
                    .entry(tag)
                    .or_default()
                    .push((path.clone(), method, operation));
            }
        }
    }
    for (tag, operations) in by_tag {
        let _ = write!(page, "<h2>{}</h2>", escape(&tag));
        for (path, method, operation) in operations {
            let _ = write!(
                page,
                "<div class=\"op\"><p><span class=\"m\">{method}</span> <code>{}</code></p>",
                escape(&path)
            );
            let text = operation
                .description
                .as_deref()
                .or(operation.summary.as_deref())
                .unwrap_or_default();
            let _ = write!(page, "<p>{}</p>", escape(text));
            if let Some(parameters) = &operation.parameters {
                page.push_str("<table><tr><th>parameter</th><th>in</th><th>description</th></tr>");
                for parameter in parameters {
                    let location = match parameter.parameter_in {
                        ParameterIn::Path => "path",
                        ParameterIn::Query => "query",
                        ParameterIn::Header => "header",
                        ParameterIn::Cookie => "cookie",
                    };
                    let _ = write!(
                        page,
                        "<tr><td><code>{}</code></td><td>{location}</td><td>{}</td></tr>",
                        escape(&parameter.name),
                        escape(parameter.description.as_deref().unwrap_or_default())
                    );
                }
                page.push_str("</table>");
            }
            if let Some(body) = &operation.request_body {
                for content in body.content.values() {
                    if let Some(schema) = &content.schema {
                        let _ = write!(
                            page,
                            "<p>Body: <a href=\"#{0}\"><code>{0}</code></a></p>",
                            escape(&schema_name(schema))
                        );
                    }
                }
            }
            page.push_str("<p>Responses: ");
            for (status, response) in &operation.responses.responses {
                let description = match response {
                    RefOr::T(r) => {
                        let schema = r
                            .content
                            .values()
                            .find_map(|c| c.schema.as_ref().map(schema_name));
                        match schema {
                            Some(name) => {
                                format!("<a href=\"#{0}\"><code>{0}</code></a>", escape(&name))
                            }
                            None => escape(&r.description),
                        }
                    }
                    RefOr::Ref(r) => escape(&r.ref_location),
                };
                let _ = write!(page, "<b>{}</b> {description}; ", escape(status));
            }
            page.push_str("</p></div>");
        }
    }
    page.push_str("<h2>Schemas</h2>");
    if let Some(components) = &api.components {
        for (name, schema) in &components.schemas {
            let json = serde_json::to_string_pretty(schema).unwrap_or_default();
            let _ = write!(
                page,
                "<h3 id=\"{0}\">{0}</h3><pre>{1}</pre>",
                escape(name),
                escape(&json)
            );
        }
    }
    page.push_str("</body></html>");
    page
}
