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

use crate::routes::{alerts, deployments, feedback, inference, monitoring, v1};
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
        deployments::history, deployments::status, deployments::report, deployments::model_archive,
        inference::infer, inference::model_metadata, inference::deployment_invocations,
        monitoring::put_reference, monitoring::report, monitoring::windows, monitoring::abuse, monitoring::drift, monitoring::profile,
        feedback::post_feedback, feedback::performance,
        alerts::list, alerts::metrics, alerts::evaluate, alerts::put, alerts::delete, alerts::all,
        alerts::get_trigger, alerts::put_trigger, alerts::delete_trigger, alerts::retrain,
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
        (name = "inference", description = "Calling a deployment: Open Inference Protocol v2 (also /v2/models/{name}/versions/{version}/…, /ready, /v2/health/*) and MLflow's /invocations"),
    )
)]
struct NativeApi;

/// The document as JSON text.
pub fn openapi_json() -> String {
    NativeApi::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_string())
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
    let api = NativeApi::openapi();
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
