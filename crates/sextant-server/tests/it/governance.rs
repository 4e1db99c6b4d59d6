//! Governance with authentication on: the permission matrix over every
//! route, the promotion workflow, the audit chain and credential failures.

use reqwest::Method;
use serde_json::{json, Value};
use sextant_core::Permission;
use sextant_server::guard::{Access, Target};
use sextant_server::{route_table, Auth};
use sqlx::Connection;

use crate::helpers::{spawn_app_with, Backend, TestApp, ADMIN_PASSWORD};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Anonymous,
    Other,
    Reader,
    Editor,
    Manager,
    Approver,
    Admin,
}

const ROLES: [Role; 7] = [
    Role::Anonymous,
    Role::Other,
    Role::Reader,
    Role::Editor,
    Role::Manager,
    Role::Approver,
    Role::Admin,
];

impl Role {
    fn username(self) -> &'static str {
        match self {
            Role::Anonymous => "",
            Role::Other => "other",
            Role::Reader => "reader",
            Role::Editor => "editor",
            Role::Manager => "manager",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

struct Client<'a> {
    app: &'a TestApp,
    authorization: Option<String>,
}

impl Client<'_> {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .app
            .no_redirect
            .request(method.clone(), self.app.url(path));
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        if let Some(body) = body {
            request = match method {
                Method::PUT if path.contains("mlflow-artifacts") => {
                    request.body(body.as_str().unwrap_or_default().to_string())
                }
                _ => request.json(&body),
            };
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, body_out) = self.send(method.clone(), path, body).await;
        assert_eq!(status, 200, "{method} {path}: {body_out}");
        body_out
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Users for every role, each with a token (Bearer) for speed.
struct People<'a> {
    app: &'a TestApp,
    tokens: Vec<(Role, String)>,
}

impl<'a> People<'a> {
    async fn create(app: &'a TestApp) -> People<'a> {
        let admin = Client {
            app,
            authorization: Some(basic("admin", ADMIN_PASSWORD)),
        };
        let mut tokens = Vec::new();
        for role in ROLES {
            if role == Role::Anonymous {
                continue;
            }
            if role != Role::Admin {
                admin
                    .ok(
                        Method::POST,
                        "/api/v1/users",
                        Some(json!({ "username": role.username(), "password": format!("password-{}", role.username()) })),
                    )
                    .await;
            }
            let token = admin
                .ok(
                    Method::POST,
                    "/api/v1/tokens",
                    Some(json!({ "name": "test", "username": role.username() })),
                )
                .await;
            tokens.push((role, format!("Bearer {}", token["token"].as_str().unwrap())));
        }
        People { app, tokens }
    }

    fn as_(&self, role: Role) -> Client<'a> {
        Client {
            app: self.app,
            authorization: self
                .tokens
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, t)| t.clone()),
        }
    }
}

/// Resources owned by the manager, shared as each role needs.
struct Fixture {
    experiment: String,
    experiment_name: String,
    run: String,
    logged_model: String,
    model: String,
    request: i64,
    deployment: String,
}

async fn fixture(people: &People<'_>, tag: &str) -> Fixture {
    fixture_with(people, tag, false).await
}

/// A fixture; `with_deployment` also deploys its model version (as `dep-<tag>`).
async fn fixture_with(people: &People<'_>, tag: &str, with_deployment: bool) -> Fixture {
    let manager = people.as_(Role::Manager);
    let admin = people.as_(Role::Admin);
    let editor = people.as_(Role::Editor);
    let experiment_name = format!("exp-{tag}");
    let experiment = manager
        .ok(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({ "name": experiment_name })),
        )
        .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = manager
        .ok(
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            Some(json!({ "experiment_id": experiment })),
        )
        .await["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let logged_model = manager
        .ok(
            Method::POST,
            "/api/2.0/mlflow/logged-models",
            Some(json!({ "experiment_id": experiment, "name": "lm" })),
        )
        .await["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_string();
    let model = format!("model-{tag}");
    manager
        .ok(
            Method::POST,
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({ "name": model })),
        )
        .await;
    manager
        .ok(
            Method::POST,
            "/api/2.0/mlflow/model-versions/create",
            Some(json!({ "name": model, "source": format!("mlflow-artifacts:/{experiment}/{run}/artifacts/model"), "run_id": run })),
        )
        .await;
    for (resource_type, id, user, permission) in [
        ("experiment", experiment.as_str(), "reader", "read"),
        ("experiment", &experiment, "editor", "edit"),
        ("registered_model", &model, "reader", "read"),
        ("registered_model", &model, "editor", "edit"),
        ("registered_model", &model, "approver", "approve"),
        ("registered_model", &model, "editor", "deploy"),
    ] {
        admin
            .ok(
                Method::PUT,
                "/api/v1/permissions",
                Some(json!({ "resource_type": resource_type, "resource_id": id, "principal": format!("user:{user}"), "permission": permission })),
            )
            .await;
    }
    // The version's files: a model a deployment can load.
    let root = format!("/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/model");
    let stump = crate::serving::xgboost_stump(1, 0.5, 0.1, -0.1);
    for (file, body) in [
        ("MLmodel", crate::serving::MLMODEL.to_string()),
        ("model.json", stump),
    ] {
        let (status, reply) = manager
            .send(
                Method::PUT,
                &format!("{root}/{file}"),
                Some(Value::String(body)),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
    }
    let deployment = format!("dep-{tag}");
    let deployment_grants: &[(&str, &str)] = if with_deployment {
        admin
            .ok(
                Method::POST,
                "/api/v1/deployments",
                Some(json!({ "name": deployment, "model": format!("{model}/1") })),
            )
            .await;
        &[
            ("reader", "read"),
            ("editor", "edit"),
            ("manager", "manage"),
        ]
    } else {
        &[]
    };
    for &(user, permission) in deployment_grants {
        admin
            .ok(
                Method::PUT,
                "/api/v1/permissions",
                Some(json!({ "resource_type": "deployment", "resource_id": deployment, "principal": format!("user:{user}"), "permission": permission })),
            )
            .await;
    }
    let request = editor
        .ok(
            Method::POST,
            "/api/v1/transition-requests",
            Some(json!({ "name": model, "version": 1, "alias": "champion", "comment": "ship it" })),
        )
        .await["request_id"]
        .as_i64()
        .unwrap();
    Fixture {
        experiment,
        experiment_name,
        run,
        logged_model,
        model,
        request,
        deployment,
    }
}

/// How one route is called in the matrix, and who may call it when the
/// access rule alone does not say (rules checked by the handler).
struct Case {
    method: Method,
    /// The route's path pattern, as in `route_table()`.
    pattern: &'static str,
    /// The concrete path; `{exp}`, `{run}`, `{lm}`, `{model}`, `{req}`,
    /// `{expname}` and `{uniq}` are filled in.
    path: &'static str,
    body: Option<Value>,
    allowed: Option<&'static [Role]>,
}

fn case(method: Method, pattern: &'static str, path: &'static str, body: Option<Value>) -> Case {
    Case {
        method,
        pattern,
        path,
        body,
        allowed: None,
    }
}

fn same(method: Method, pattern: &'static str, body: Option<Value>) -> Case {
    case(method, pattern, pattern, body)
}

fn who(mut case: Case, allowed: &'static [Role]) -> Case {
    case.allowed = Some(allowed);
    case
}

/// The roles an access rule admits.
fn allowed_by_rule(access: &Access) -> Vec<Role> {
    use Role::*;
    match access {
        Access::Public => ROLES.to_vec(),
        Access::SignedIn { .. } | Access::Scrape | Access::Page => ROLES[1..].to_vec(),
        Access::Admin { .. } => vec![Admin],
        // Approve implies read on the registered model, not its experiment.
        Access::On(Permission::Read, Target::Model | Target::ModelPath) => {
            vec![Reader, Editor, Manager, Approver, Admin]
        }
        Access::On(Permission::Read, _) => vec![Reader, Editor, Manager, Admin],
        Access::On(Permission::Edit | Permission::Invoke, _) => vec![Editor, Manager, Admin],
        Access::On(Permission::Manage, _) => vec![Manager, Admin],
        Access::On(Permission::Approve, _) => vec![Approver, Admin],
        Access::On(Permission::Deploy, _) => vec![Admin],
    }
}

fn cases() -> Vec<Case> {
    use Method as M;
    use Role::*;
    vec![
        // tracking
        same(
            M::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "new-{uniq}"})),
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/experiments/get",
            "/api/2.0/mlflow/experiments/get?experiment_id={exp}",
            None,
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/experiments/get-by-name",
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name={expname}",
            None,
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/experiments/search",
            Some(json!({})),
        ),
        same(M::GET, "/api/2.0/mlflow/experiments/search", None),
        same(
            M::POST,
            "/api/2.0/mlflow/experiments/update",
            Some(json!({"experiment_id": "{exp}", "new_name": "renamed-{uniq}"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/experiments/delete",
            Some(json!({"experiment_id": "{exp}"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/experiments/restore",
            Some(json!({"experiment_id": "{exp}"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/experiments/set-experiment-tag",
            Some(json!({"experiment_id": "{exp}", "key": "k", "value": "v"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/experiments/delete-experiment-tag",
            Some(json!({"experiment_id": "{exp}", "key": "k"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/create",
            Some(json!({"experiment_id": "{exp}"})),
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/runs/get",
            "/api/2.0/mlflow/runs/get?run_id={run}",
            None,
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/update",
            Some(json!({"run_id": "{run}", "status": "FINISHED"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/delete",
            Some(json!({"run_id": "{run}"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/restore",
            Some(json!({"run_id": "{run}"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/search",
            Some(json!({"experiment_ids": ["{exp}"]})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/log-metric",
            Some(json!({"run_id": "{run}", "key": "m", "value": 1.0, "timestamp": 1})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/log-parameter",
            Some(json!({"run_id": "{run}", "key": "p", "value": "1"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/log-batch",
            Some(
                json!({"run_id": "{run}", "metrics": [{"key": "m", "value": 2.0, "timestamp": 2}]}),
            ),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/set-tag",
            Some(json!({"run_id": "{run}", "key": "t", "value": "v"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/delete-tag",
            Some(json!({"run_id": "{run}", "key": "t"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/log-inputs",
            Some(json!({"run_id": "{run}", "datasets": []})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/outputs",
            Some(json!({"run_id": "{run}", "models": []})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/runs/log-model",
            Some(json!({"run_id": "{run}", "model_json": "{}"})),
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/metrics/get-history",
            "/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=m",
            None,
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/metrics/get-history-bulk-interval",
            "/api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={run}&metric_key=m",
            None,
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/artifacts/list",
            "/api/2.0/mlflow/artifacts/list?run_id={run}",
            None,
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/logged-models",
            Some(json!({"experiment_id": "{exp}", "name": "lm2"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/logged-models/search",
            Some(json!({"experiment_ids": ["{exp}"]})),
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/logged-models/{model_id}",
            "/api/2.0/mlflow/logged-models/{lm}",
            None,
        ),
        case(
            M::PATCH,
            "/api/2.0/mlflow/logged-models/{model_id}",
            "/api/2.0/mlflow/logged-models/{lm}",
            Some(json!({"model_id": "{lm}", "status": "LOGGED_MODEL_READY"})),
        ),
        case(
            M::DELETE,
            "/api/2.0/mlflow/logged-models/{model_id}",
            "/api/2.0/mlflow/logged-models/{lm}",
            None,
        ),
        case(
            M::PATCH,
            "/api/2.0/mlflow/logged-models/{model_id}/tags",
            "/api/2.0/mlflow/logged-models/{lm}/tags",
            Some(json!({"tags": [{"key": "k", "value": "v"}]})),
        ),
        case(
            M::DELETE,
            "/api/2.0/mlflow/logged-models/{model_id}/tags/{tag_key}",
            "/api/2.0/mlflow/logged-models/{lm}/tags/k",
            None,
        ),
        case(
            M::POST,
            "/api/2.0/mlflow/logged-models/{model_id}/params",
            "/api/2.0/mlflow/logged-models/{lm}/params",
            Some(json!({"params": [{"key": "a", "value": "1"}]})),
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/logged-models/{model_id}/artifacts/directories",
            "/api/2.0/mlflow/logged-models/{lm}/artifacts/directories",
            None,
        ),
        // registry
        same(
            M::POST,
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({"name": "new-model-{uniq}"})),
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/registered-models/get",
            "/api/2.0/mlflow/registered-models/get?name={model}",
            None,
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/registered-models/rename",
            Some(json!({"name": "{model}", "new_name": "renamed-model-{uniq}"})),
        ),
        same(
            M::PATCH,
            "/api/2.0/mlflow/registered-models/update",
            Some(json!({"name": "{model}", "description": "d"})),
        ),
        same(
            M::DELETE,
            "/api/2.0/mlflow/registered-models/delete",
            Some(json!({"name": "{model}"})),
        ),
        same(M::GET, "/api/2.0/mlflow/registered-models/search", None),
        same(
            M::POST,
            "/api/2.0/mlflow/registered-models/get-latest-versions",
            Some(json!({"name": "{model}"})),
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/registered-models/get-latest-versions",
            "/api/2.0/mlflow/registered-models/get-latest-versions?name={model}",
            None,
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/registered-models/set-tag",
            Some(json!({"name": "{model}", "key": "k", "value": "v"})),
        ),
        same(
            M::DELETE,
            "/api/2.0/mlflow/registered-models/delete-tag",
            Some(json!({"name": "{model}", "key": "k"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/registered-models/alias",
            Some(json!({"name": "{model}", "alias": "candidate", "version": "1"})),
        ),
        same(
            M::DELETE,
            "/api/2.0/mlflow/registered-models/alias",
            Some(json!({"name": "{model}", "alias": "candidate"})),
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/registered-models/alias",
            "/api/2.0/mlflow/registered-models/alias?name={model}&alias=candidate",
            None,
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/model-versions/create",
            Some(
                json!({"name": "{model}", "source": "mlflow-artifacts:/{exp}/{run}/artifacts/model"}),
            ),
        ),
        case(
            M::GET,
            "/api/2.0/mlflow/model-versions/get",
            "/api/2.0/mlflow/model-versions/get?name={model}&version=1",
            None,
        ),
        same(
            M::PATCH,
            "/api/2.0/mlflow/model-versions/update",
            Some(json!({"name": "{model}", "version": "1", "description": "d"})),
        ),
        same(
            M::DELETE,
            "/api/2.0/mlflow/model-versions/delete",
            Some(json!({"name": "{model}", "version": "1"})),
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/model-versions/transition-stage",
            Some(json!({"name": "{model}", "version": "1", "stage": "None"})),
        ),
        same(M::GET, "/api/2.0/mlflow/model-versions/search", None),
        case(
            M::GET,
            "/api/2.0/mlflow/model-versions/get-download-uri",
            "/api/2.0/mlflow/model-versions/get-download-uri?name={model}&version=1",
            None,
        ),
        same(
            M::POST,
            "/api/2.0/mlflow/model-versions/set-tag",
            Some(json!({"name": "{model}", "version": "1", "key": "k", "value": "v"})),
        ),
        same(
            M::DELETE,
            "/api/2.0/mlflow/model-versions/delete-tag",
            Some(json!({"name": "{model}", "version": "1", "key": "k"})),
        ),
        // artifacts
        case(
            M::GET,
            "/api/2.0/mlflow-artifacts/artifacts",
            "/api/2.0/mlflow-artifacts/artifacts?path={exp}",
            None,
        ),
        // Readers of a registered model may download the files of the run its version came from.
        who(
            case(
                M::GET,
                "/api/2.0/mlflow-artifacts/artifacts/{*path}",
                "/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/model/f.txt",
                None,
            ),
            &[Reader, Editor, Manager, Approver, Admin],
        ),
        case(
            M::PUT,
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            "/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/model/f.txt",
            Some(json!("hello")),
        ),
        case(
            M::DELETE,
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            "/api/2.0/mlflow-artifacts/artifacts/{exp}/{run}/artifacts/model/f.txt",
            None,
        ),
        // root
        same(M::GET, "/", None),
        same(M::GET, "/health", None),
        // the web UI: pages show what the caller may read (a 404 page for
        // what they may not), sign-in answers anyone
        same(M::GET, "/", None),
        case(
            M::GET,
            "/experiments/{experiment_id}",
            "/experiments/{exp}",
            None,
        ),
        case(M::GET, "/runs", "/runs?experiments={exp}", None),
        case(
            M::GET,
            "/experiments/{experiment_id}/runs/{run_id}",
            "/experiments/{exp}/runs/{run}",
            None,
        ),
        case(M::GET, "/compare", "/compare?runs={run}", None),
        same(M::GET, "/models", None),
        case(M::GET, "/models/{name}", "/models/{model}", None),
        case(
            M::GET,
            "/models/{name}/versions/{version}",
            "/models/{model}/versions/1",
            None,
        ),
        same(M::GET, "/deployments", None),
        case(M::GET, "/deployments/{name}", "/deployments/{dep}", None),
        same(M::GET, "/governance", None),
        same(M::GET, "/datasets", None),
        case(
            M::GET,
            "/datasets/{name}/versions/{version}",
            "/datasets/none/versions/latest",
            None,
        ),
        case(
            M::GET,
            "/ui/datasets/profile",
            "/ui/datasets/profile?name=none&version=latest",
            None,
        ),
        same(M::GET, "/drift", None),
        // A report on tables the caller may not read says so inside the
        // frame, with the API's 403; readers get the report (here a 404 for
        // the missing file).
        who(
            case(
                M::GET,
                "/ui/drift/report",
                "/ui/drift/report?ref.run={run}&ref.path=x.csv&cur.run={run}&cur.path=y.csv",
                None,
            ),
            &[Reader, Editor, Manager, Admin],
        ),
        same(M::GET, "/me", None),
        case(
            M::GET,
            "/ui/api/series",
            "/ui/api/series?runs={run}&metric=m",
            None,
        ),
        case(
            M::GET,
            "/ui/artifacts/preview",
            "/ui/artifacts/preview?run={run}&path=model/MLmodel",
            None,
        ),
        case(
            M::GET,
            "/ui/artifacts/raw",
            "/ui/artifacts/raw?run={run}&path=model/MLmodel",
            None,
        ),
        same(
            M::POST,
            "/ui/views",
            Some(json!({"target": "/compare?runs={run}"})),
        ),
        case(M::GET, "/v/{view_id}", "/v/000000000000", None),
        same(M::GET, "/login", None),
        who(same(M::POST, "/login", Some(json!({}))), &[]),
        same(M::POST, "/logout", None),
        same(M::GET, "/static/sextant.css", None),
        same(M::GET, "/static/sextant.js", None),
        same(M::GET, "/version", None),
        same(M::GET, "/api/3.0/mlflow/server-info", None),
        // native API
        who(
            same(
                M::POST,
                "/api/v1/bootstrap",
                Some(json!({"token": "sxt_bogus", "password": "whatever-long"})),
            ),
            &[],
        ),
        same(M::GET, "/api/v1/openapi.json", None),
        same(M::GET, "/api/v1/docs", None),
        same(M::GET, "/api/v1/me", None),
        same(M::GET, "/api/v1/users", None),
        same(
            M::POST,
            "/api/v1/users",
            Some(json!({"username": "u{uniq}", "password": "password-long"})),
        ),
        who(
            case(
                M::GET,
                "/api/v1/users/{username}",
                "/api/v1/users/reader",
                None,
            ),
            &[Reader, Admin],
        ),
        who(
            case(
                M::PATCH,
                "/api/v1/users/{username}",
                "/api/v1/users/reader",
                Some(json!({"password": "another-password"})),
            ),
            &[Reader, Admin],
        ),
        case(
            M::DELETE,
            "/api/v1/users/{username}",
            "/api/v1/users/nobody",
            None,
        ),
        same(M::GET, "/api/v1/groups", None),
        same(M::POST, "/api/v1/groups", Some(json!({"name": "g{uniq}"}))),
        case(
            M::GET,
            "/api/v1/groups/{name}",
            "/api/v1/groups/nogroup",
            None,
        ),
        case(
            M::DELETE,
            "/api/v1/groups/{name}",
            "/api/v1/groups/nogroup",
            None,
        ),
        case(
            M::PUT,
            "/api/v1/groups/{name}/members/{username}",
            "/api/v1/groups/nogroup/members/reader",
            None,
        ),
        case(
            M::DELETE,
            "/api/v1/groups/{name}/members/{username}",
            "/api/v1/groups/nogroup/members/reader",
            None,
        ),
        same(M::GET, "/api/v1/tokens", None),
        same(M::POST, "/api/v1/tokens", Some(json!({"name": "mine"}))),
        case(
            M::DELETE,
            "/api/v1/tokens/{token_id}",
            "/api/v1/tokens/tok_missing",
            None,
        ),
        who(
            case(
                M::GET,
                "/api/v1/permissions",
                "/api/v1/permissions?resource_type=experiment&resource_id={exp}",
                None,
            ),
            &[Manager, Admin],
        ),
        who(
            same(
                M::PUT,
                "/api/v1/permissions",
                Some(
                    json!({"resource_type": "experiment", "resource_id": "{exp}", "principal": "user:other", "permission": "read"}),
                ),
            ),
            &[Manager, Admin],
        ),
        who(
            same(
                M::DELETE,
                "/api/v1/permissions",
                Some(
                    json!({"resource_type": "experiment", "resource_id": "{exp}", "principal": "user:reader", "permission": "read"}),
                ),
            ),
            &[Manager, Admin],
        ),
        who(
            case(
                M::GET,
                "/api/v1/registered-models/{name}/policy",
                "/api/v1/registered-models/{model}/policy",
                None,
            ),
            &[Reader, Editor, Manager, Approver, Admin],
        ),
        case(
            M::PUT,
            "/api/v1/registered-models/{name}/policy",
            "/api/v1/registered-models/{model}/policy",
            Some(
                json!({"protected_stages": ["Production"], "protected_aliases": ["champion"], "allow_self_approval": false}),
            ),
        ),
        // Quality gates. The bodies are refused (400) once the guard let the
        // caller through, so no spec lands on the shared model.
        case(
            M::GET,
            "/api/v1/registered-models/{name}/validation-spec",
            "/api/v1/registered-models/{model}/validation-spec",
            None,
        ),
        case(
            M::PUT,
            "/api/v1/registered-models/{name}/validation-spec",
            "/api/v1/registered-models/{model}/validation-spec",
            Some(json!({"spec": "task: {type: regression, label: y}\ntests: []\n"})),
        ),
        case(
            M::DELETE,
            "/api/v1/registered-models/{name}/validation-spec",
            "/api/v1/registered-models/{model}/validation-spec",
            None,
        ),
        case(
            M::GET,
            "/api/v1/registered-models/{name}/versions/{version}/validation",
            "/api/v1/registered-models/{model}/versions/1/validation",
            None,
        ),
        case(
            M::POST,
            "/api/v1/registered-models/{name}/versions/{version}/validation",
            "/api/v1/registered-models/{model}/versions/1/validation",
            None,
        ),
        case(
            M::GET,
            "/api/v1/registered-models/{name}/versions/{version}/validation/report.html",
            "/api/v1/registered-models/{model}/versions/1/validation/report.html",
            None,
        ),
        case(
            M::POST,
            "/api/v1/registered-models/{name}/versions/{version}/validation/override",
            "/api/v1/registered-models/{model}/versions/1/validation/override",
            Some(json!({"reason": "r"})),
        ),
        same(
            M::POST,
            "/api/v1/transition-requests",
            Some(json!({"name": "{model}", "version": 1, "stage": "Staging"})),
        ),
        same(M::GET, "/api/v1/transition-requests", None),
        who(
            case(
                M::GET,
                "/api/v1/transition-requests/{request_id}",
                "/api/v1/transition-requests/{req}",
                None,
            ),
            &[Reader, Editor, Manager, Approver, Admin],
        ),
        who(
            case(
                M::POST,
                "/api/v1/transition-requests/{request_id}/approve",
                "/api/v1/transition-requests/{req}/approve",
                Some(json!({"comment": "ok"})),
            ),
            &[Approver, Admin],
        ),
        who(
            case(
                M::POST,
                "/api/v1/transition-requests/{request_id}/reject",
                "/api/v1/transition-requests/{req}/reject",
                Some(json!({"comment": "no"})),
            ),
            &[Approver, Admin],
        ),
        who(
            case(
                M::POST,
                "/api/v1/transition-requests/{request_id}/cancel",
                "/api/v1/transition-requests/{req}/cancel",
                Some(json!({})),
            ),
            &[Editor, Admin],
        ),
        same(M::GET, "/api/v1/audit", None),
        same(M::GET, "/api/v1/audit/export", None),
        same(M::GET, "/api/v1/audit/verify", None),
        // reproducibility: datasets, manifests, lineage
        same(
            M::POST,
            "/api/v1/datasets/chunks/missing",
            Some(json!({"chunks": []})),
        ),
        case(
            M::PUT,
            "/api/v1/datasets/chunks/{sha256}",
            "/api/v1/datasets/chunks/0000000000000000000000000000000000000000000000000000000000000000",
            Some(json!({})),
        ),
        case(
            M::GET,
            "/api/v1/datasets/chunks/{sha256}",
            "/api/v1/datasets/chunks/0000000000000000000000000000000000000000000000000000000000000000",
            None,
        ),
        same(M::GET, "/api/v1/datasets", None),
        case(
            M::POST,
            "/api/v1/datasets/{name}/versions",
            "/api/v1/datasets/d-{uniq}/versions",
            Some(json!({"kind": "file", "files": []})),
        ),
        case(
            M::GET,
            "/api/v1/datasets/{name}/versions/{version}",
            "/api/v1/datasets/none/versions/latest",
            None,
        ),
        case(
            M::GET,
            "/api/v1/datasets/{name}/versions/{version}/profile",
            "/api/v1/datasets/none/versions/latest/profile",
            None,
        ),
        case(
            M::GET,
            "/api/v1/datasets/{name}/versions/{version}/profile.html",
            "/api/v1/datasets/none/versions/latest/profile.html",
            None,
        ),
        case(
            M::GET,
            "/api/v1/lineage",
            "/api/v1/lineage?of=runs:/{run}",
            None,
        ),
        same(
            M::POST,
            "/api/v1/run-manifests",
            Some(json!({"run_id": "{run}", "artifact_path": "sextant/environment.json",
                        "sha256": "0000000000000000000000000000000000000000000000000000000000000000"})),
        ),
        case(
            M::GET,
            "/api/v1/run-manifests",
            "/api/v1/run-manifests?run_id={run}",
            None,
        ),
        // deployments
        same(M::GET, "/api/v1/deployments", None),
        who(
            same(
                M::POST,
                "/api/v1/deployments",
                Some(json!({"name": "new-{uniq}", "model": "{model}/1"})),
            ),
            // Deploying needs deploy on the registered model, which only
            // admins grant (here to the editor).
            &[Editor, Admin],
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}",
            "/api/v1/deployments/{dep}",
            None,
        ),
        case(
            M::PATCH,
            "/api/v1/deployments/{name}",
            "/api/v1/deployments/{dep}",
            Some(json!({"description": "x"})),
        ),
        case(
            M::DELETE,
            "/api/v1/deployments/{name}",
            "/api/v1/deployments/{dep}",
            None,
        ),
        who(
            case(
                M::POST,
                "/api/v1/deployments/{name}/canary",
                "/api/v1/deployments/{dep}/canary",
                Some(json!({"model": "{model}/1"})),
            ),
            // Edit on the deployment and deploy on the model it will serve.
            &[Editor, Admin],
        ),
        who(
            case(
                M::POST,
                "/api/v1/deployments/{name}/ab",
                "/api/v1/deployments/{dep}/ab",
                Some(json!({"model": "{model}/1"})),
            ),
            // Edit on the deployment and deploy on the model it will serve.
            &[Editor, Admin],
        ),
        who(
            case(
                M::POST,
                "/api/v1/deployments/{name}/shadow",
                "/api/v1/deployments/{dep}/shadow",
                Some(json!({"model": "{model}/1"})),
            ),
            // Edit on the deployment and deploy on the model it will serve.
            &[Editor, Admin],
        ),
        case(
            M::POST,
            "/api/v1/deployments/{name}/promote",
            "/api/v1/deployments/{dep}/promote",
            Some(json!({})),
        ),
        case(
            M::POST,
            "/api/v1/deployments/{name}/rollback",
            "/api/v1/deployments/{dep}/rollback",
            Some(json!({})),
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/history",
            "/api/v1/deployments/{dep}/history",
            None,
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/status",
            "/api/v1/deployments/{dep}/status",
            None,
        ),
        case(
            M::GET,
            "/api/v1/progress/{id}",
            "/api/v1/progress/0123456789abcdef-{uniq}",
            None,
        ),
        case(
            M::POST,
            "/api/v1/deployments/{name}/report",
            "/api/v1/deployments/{dep}/report",
            Some(json!({"replica": "r", "revision": 1, "arms": {}})),
        ),
        case(
            M::PUT,
            "/api/v1/deployments/{name}/monitoring/reference",
            "/api/v1/deployments/{dep}/monitoring/reference",
            Some(json!({})),
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/monitoring",
            "/api/v1/deployments/{dep}/monitoring",
            None,
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/monitoring/windows",
            "/api/v1/deployments/{dep}/monitoring/windows",
            None,
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/monitoring/abuse",
            "/api/v1/deployments/{dep}/monitoring/abuse",
            None,
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/monitoring/profile",
            "/api/v1/deployments/{dep}/monitoring/profile",
            None,
        ),
        case(
            M::POST,
            "/api/v1/deployments/{name}/feedback",
            "/api/v1/deployments/{dep}/feedback",
            Some(json!({"prediction_id": "00000000-0000-4000-8000-000000000000", "label": 1})),
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/performance",
            "/api/v1/deployments/{dep}/performance",
            None,
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/alerts",
            "/api/v1/deployments/{dep}/alerts",
            None,
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/alerts/metrics",
            "/api/v1/deployments/{dep}/alerts/metrics",
            None,
        ),
        case(
            M::POST,
            "/api/v1/deployments/{name}/alerts/evaluate",
            "/api/v1/deployments/{dep}/alerts/evaluate",
            None,
        ),
        case(
            M::PUT,
            "/api/v1/deployments/{name}/alerts/{rule}",
            "/api/v1/deployments/{dep}/alerts/r-{uniq}",
            Some(
                json!({"metric": "accuracy", "condition": {"threshold": {"op": "<", "value": 0.5}}}),
            ),
        ),
        case(
            M::DELETE,
            "/api/v1/deployments/{name}/alerts/{rule}",
            "/api/v1/deployments/{dep}/alerts/r-{uniq}",
            None,
        ),
        case(
            M::GET,
            "/api/v1/deployments/{name}/retrain-trigger",
            "/api/v1/deployments/{dep}/retrain-trigger",
            None,
        ),
        case(
            M::PUT,
            "/api/v1/deployments/{name}/retrain-trigger",
            "/api/v1/deployments/{dep}/retrain-trigger",
            Some(json!({"webhook": "http://127.0.0.1:9/retrain"})),
        ),
        case(
            M::DELETE,
            "/api/v1/deployments/{name}/retrain-trigger",
            "/api/v1/deployments/{dep}/retrain-trigger",
            None,
        ),
        case(
            M::POST,
            "/api/v1/deployments/{name}/retrain",
            "/api/v1/deployments/{dep}/retrain",
            Some(json!({})),
        ),
        same(M::GET, "/api/v1/alerts", None),
        // Signed in; the handler checks READ on what each source names.
        who(
            case(
                M::POST,
                "/api/v1/drift",
                "/api/v1/drift",
                Some(json!({
                    "reference": {"deployment": "{dep}", "span": "1h"},
                    "current": {"deployment": "{dep}", "span": "1h"},
                })),
            ),
            &[Reader, Editor, Manager, Admin],
        ),
        case(
            M::PUT,
            "/api/v1/deployments/{name}/prediction-log/{*file}",
            "/api/v1/deployments/{dep}/prediction-log/2026-01-01/part.parquet",
            Some(json!({})),
        ),
        case(
            M::GET,
            "/api/v1/model-versions/archive",
            "/api/v1/model-versions/archive?name={model}&version=1",
            None,
        ),
        // inference
        same(M::GET, "/v2", None),
        same(M::GET, "/v2/", None),
        same(M::GET, "/v2/health/live", None),
        same(M::GET, "/v2/health/ready", None),
        same(M::POST, "/v2/repository/index", Some(json!({}))),
        case(M::GET, "/v2/models/{name}", "/v2/models/{dep}", None),
        case(
            M::GET,
            "/v2/models/{name}/ready",
            "/v2/models/{dep}/ready",
            None,
        ),
        case(
            M::POST,
            "/v2/models/{name}/infer",
            "/v2/models/{dep}/infer",
            Some(oip_row()),
        ),
        case(
            M::GET,
            "/v2/models/{name}/versions/{version}",
            "/v2/models/{dep}/versions/1",
            None,
        ),
        case(
            M::GET,
            "/v2/models/{name}/versions/{version}/ready",
            "/v2/models/{dep}/versions/1/ready",
            None,
        ),
        case(
            M::POST,
            "/v2/models/{name}/versions/{version}/infer",
            "/v2/models/{dep}/versions/1/infer",
            Some(oip_row()),
        ),
        case(
            M::POST,
            "/v2/models/{name}/explain",
            "/v2/models/{dep}/explain",
            Some(oip_row()),
        ),
        case(
            M::POST,
            "/v2/models/{name}/versions/{version}/explain",
            "/v2/models/{dep}/versions/1/explain",
            Some(oip_row()),
        ),
        case(
            M::POST,
            "/deployments/{name}/explain",
            "/deployments/{dep}/explain",
            Some(json!({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[0, 0, 0]]}})),
        ),
        case(
            M::POST,
            "/invocations",
            "/invocations?deployment={dep}",
            Some(json!({"instances": [[0, 0, 0]]})),
        ),
        case(
            M::POST,
            "/deployments/{name}/invocations",
            "/deployments/{dep}/invocations",
            Some(json!({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[0, 0, 0]]}})),
        ),
        same(M::GET, "/ping", None),
        same(M::GET, "/metrics", None),
    ]
}

fn oip_row() -> Value {
    json!({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [0, 0, 0]}]})
}

fn fill(text: &str, f: &Fixture, uniq: &str) -> String {
    text.replace("{exp}", &f.experiment)
        .replace("{expname}", &f.experiment_name)
        .replace("{run}", &f.run)
        .replace("{lm}", &f.logged_model)
        .replace("{model}", &f.model)
        .replace("{req}", &f.request.to_string())
        .replace("{dep}", &f.deployment)
        .replace("{uniq}", uniq)
}

fn fill_json(value: &Value, f: &Fixture, uniq: &str) -> Value {
    serde_json::from_str(&fill(&value.to_string(), f, uniq)).unwrap()
}

/// Every route × every role → allowed (anything but 401/403, never a 5xx)
/// or refused (401 anonymous, 403 signed in), from one table. A route
/// without a row, or a row without a route, fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_matrix_covers_every_route() {
    let app = spawn_app_with(Backend::Sqlite, Auth::Enabled).await;
    let people = People::create(&app).await;
    let table = route_table();
    let cases = cases();
    for route in &table {
        assert!(
            cases
                .iter()
                .any(|c| c.method == route.method && c.pattern == route.path),
            "route {} {} has no row in the permission matrix",
            route.method,
            route.path
        );
    }
    let mut failures = Vec::new();
    let mut counter = 0;
    for case in &cases {
        let route = table
            .iter()
            .find(|r| r.method == case.method && r.path == case.pattern)
            .unwrap_or_else(|| {
                panic!("matrix row {} {} names no route", case.method, case.pattern)
            });
        let allowed: Vec<Role> = match case.allowed {
            Some(roles) => roles.to_vec(),
            None => allowed_by_rule(&route.access),
        };
        for role in ROLES {
            counter += 1;
            let uniq = format!("{counter}");
            let names_deployment = case.path.contains("{dep}")
                || case
                    .body
                    .as_ref()
                    .is_some_and(|b| b.to_string().contains("{dep}"));
            let fixture = fixture_with(&people, &uniq, names_deployment).await;
            let path = fill(case.path, &fixture, &uniq);
            let body = case.body.as_ref().map(|b| fill_json(b, &fixture, &uniq));
            let (status, reply) = people
                .as_(role)
                .send(case.method.clone(), &path, body)
                .await;
            // A page sends a browser without credentials to sign in.
            let page = matches!(route.access, Access::Page);
            let refused = status == 401 || status == 403 || (page && status == 303);
            let expected_refusal = match (role, page) {
                (Role::Anonymous, true) => 303,
                (Role::Anonymous, false) => 401,
                _ => 403,
            };
            let wrong = if status >= 500 {
                Some(format!("server error {status}"))
            } else if allowed.contains(&role) && refused {
                Some(format!("refused with {status} but should be allowed"))
            } else if !allowed.contains(&role) && status != expected_refusal
                // The bootstrap route checks its own token, and signing in
                // its own password: 401 for all.
                && !((route.path == "/api/v1/bootstrap" || route.path == "/login") && status == 401)
            {
                Some(format!(
                    "answered {status} but should be {expected_refusal}"
                ))
            } else {
                None
            };
            if let Some(wrong) = wrong {
                failures.push(format!(
                    "{} {} as {role:?}: {wrong}: {reply}",
                    case.method, path
                ));
            }
            if refused && reply.is_object() {
                assert!(
                    reply["error_code"].is_string() && reply["message"].is_string(),
                    "{reply}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn workflow_through_the_native_api(app: TestApp) {
    let people = People::create(&app).await;
    let f = fixture(&people, "wf").await;
    let editor = people.as_(Role::Editor);
    let approver = people.as_(Role::Approver);
    let reader = people.as_(Role::Reader);
    // Direct moves to protected targets are refused, naming the workflow.
    for (path, body) in [
        (
            "/api/2.0/mlflow/registered-models/alias",
            json!({"name": f.model, "alias": "champion", "version": "1"}),
        ),
        (
            "/api/2.0/mlflow/model-versions/transition-stage",
            json!({"name": f.model, "version": "1", "stage": "Production"}),
        ),
    ] {
        for client in [&editor, &people.as_(Role::Admin)] {
            let (status, reply) = client.send(Method::POST, path, Some(body.clone())).await;
            assert_eq!(status, 403, "{reply}");
            assert_eq!(reply["error_code"], "PERMISSION_DENIED");
            assert!(
                reply["message"]
                    .as_str()
                    .unwrap()
                    .contains("transition request"),
                "{reply}"
            );
        }
    }
    // The requester may not approve; a reader may not either.
    let approve = format!("/api/v1/transition-requests/{}/approve", f.request);
    let (status, reply) = editor.send(Method::POST, &approve, Some(json!({}))).await;
    assert_eq!(status, 403, "{reply}");
    let (status, _) = reader.send(Method::POST, &approve, Some(json!({}))).await;
    assert_eq!(status, 403);
    // Nothing moved yet.
    let (status, _) = reader
        .send(
            Method::GET,
            &format!(
                "/api/2.0/mlflow/registered-models/alias?name={}&alias=champion",
                f.model
            ),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let decided = approver
        .ok(
            Method::POST,
            &approve,
            Some(json!({"comment": "metrics look good"})),
        )
        .await;
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["decided_by"], "approver");
    let moved = reader
        .ok(
            Method::GET,
            &format!(
                "/api/2.0/mlflow/registered-models/alias?name={}&alias=champion",
                f.model
            ),
            None,
        )
        .await;
    assert_eq!(moved["model_version"]["version"], "1");
    // Deciding twice is a conflict.
    let (status, reply) = approver.send(Method::POST, &approve, Some(json!({}))).await;
    assert_eq!(status, 409, "{reply}");
    // A stage request, rejected.
    let staging = editor
        .ok(
            Method::POST,
            "/api/v1/transition-requests",
            Some(json!({"name": f.model, "version": "1", "stage": "production", "comment": "go"})),
        )
        .await;
    assert_eq!(staging["target"], "Production");
    let rejected = approver
        .ok(
            Method::POST,
            &format!(
                "/api/v1/transition-requests/{}/reject",
                staging["request_id"]
            ),
            Some(json!({"comment": "not yet"})),
        )
        .await;
    assert_eq!(rejected["status"], "rejected");
    let version = reader
        .ok(
            Method::GET,
            &format!(
                "/api/2.0/mlflow/model-versions/get?name={}&version=1",
                f.model
            ),
            None,
        )
        .await;
    assert_eq!(version["model_version"]["current_stage"], "None");
    // Listed per model and per version, with comments and decisions.
    let listed = reader
        .ok(
            Method::GET,
            &format!("/api/v1/transition-requests?name={}&version=1", f.model),
            None,
        )
        .await;
    let requests = listed["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["comment"], "ship it");
    assert_eq!(requests[0]["decision_comment"], "metrics look good");
    assert_eq!(requests[1]["status"], "rejected");
    // Another user sees none of it.
    let other = people.as_(Role::Other);
    let hidden = other
        .ok(Method::GET, "/api/v1/transition-requests", None)
        .await;
    assert_eq!(hidden["requests"], json!([]));
    // Every step is in the audit log, with before and after.
    let admin = people.as_(Role::Admin);
    let audit = admin
        .ok(
            Method::GET,
            &format!(
                "/api/v1/audit?resource_type=registered_model&resource_id={}",
                f.model
            ),
            None,
        )
        .await;
    let entries = audit["entries"].as_array().unwrap();
    let approval = entries
        .iter()
        .find(|e| e["action"].as_str().unwrap().ends_with("/approve") && e["outcome"] == "ok")
        .expect("approval audited");
    assert_eq!(approval["actor"], "approver");
    assert!(
        approval["before"]
            .as_str()
            .unwrap()
            .contains("\"version\":null"),
        "{approval}"
    );
    assert!(
        approval["after"]
            .as_str()
            .unwrap()
            .contains("\"version\":1"),
        "{approval}"
    );
    assert!(entries
        .iter()
        .any(|e| e["outcome"] == "denied" && e["actor"] == "editor"));
    let verify = admin.ok(Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(verify["ok"], true, "{verify}");
}

async fn runs_and_models_are_invisible_without_read(app: TestApp) {
    let people = People::create(&app).await;
    let f = fixture(&people, "vis").await;
    let other = people.as_(Role::Other);
    let reader = people.as_(Role::Reader);
    let body = json!({"experiment_ids": [f.experiment, "0"]});
    let seen = reader
        .ok(
            Method::POST,
            "/api/2.0/mlflow/runs/search",
            Some(body.clone()),
        )
        .await;
    assert_eq!(seen["runs"].as_array().unwrap().len(), 1);
    let hidden = other
        .ok(Method::POST, "/api/2.0/mlflow/runs/search", Some(body))
        .await;
    assert!(
        hidden.get("runs").is_none_or(|r| r == &json!([])),
        "{hidden}"
    );
    let experiments = other
        .ok(
            Method::POST,
            "/api/2.0/mlflow/experiments/search",
            Some(json!({})),
        )
        .await;
    assert!(
        experiments
            .get("experiments")
            .is_none_or(|e| e == &json!([])),
        "{experiments}"
    );
    let models = other
        .ok(
            Method::GET,
            "/api/2.0/mlflow/registered-models/search",
            None,
        )
        .await;
    assert!(
        models
            .get("registered_models")
            .is_none_or(|m| m == &json!([])),
        "{models}"
    );
    let versions = reader
        .ok(Method::GET, "/api/2.0/mlflow/model-versions/search", None)
        .await;
    assert_eq!(versions["model_versions"].as_array().unwrap().len(), 1);
    // A search that names no experiment covers what the caller may read:
    // for a user who may read none, nothing (it once meant everything).
    for body in [json!({}), json!({"experiment_ids": []})] {
        let logged = other
            .ok(
                Method::POST,
                "/api/2.0/mlflow/logged-models/search",
                Some(body.clone()),
            )
            .await;
        assert!(
            logged.get("models").is_none_or(|m| m == &json!([])),
            "{logged}"
        );
        let seen = reader
            .ok(
                Method::POST,
                "/api/2.0/mlflow/logged-models/search",
                Some(body),
            )
            .await;
        assert_eq!(seen["models"].as_array().map(Vec::len), Some(1), "{seen}");
    }
    for (path, key) in [
        ("/api/2.0/mlflow/model-versions/search", "model_versions"),
        ("/api/v1/deployments", "deployments"),
    ] {
        let listed = other.ok(Method::GET, path, None).await;
        assert!(
            listed.get(key).is_none_or(|m| m == &json!([])),
            "{path}: {listed}"
        );
    }
    // A registry reader (approve implies read on the model) reaches the
    // version's files, and nothing else of the run.
    let manager = people.as_(Role::Manager);
    let approver = people.as_(Role::Approver);
    let base = format!(
        "/api/2.0/mlflow-artifacts/artifacts/{}/{}/artifacts",
        f.experiment, f.run
    );
    for file in ["model/MLmodel", "notes.txt"] {
        manager
            .ok(
                Method::PUT,
                &format!("{base}/{file}"),
                Some(json!("content")),
            )
            .await;
    }
    assert_eq!(
        approver
            .send(Method::GET, &format!("{base}/model/MLmodel"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        approver
            .send(Method::GET, &format!("{base}/notes.txt"), None)
            .await
            .0,
        403
    );
    assert_eq!(
        other
            .send(Method::GET, &format!("{base}/model/MLmodel"), None)
            .await
            .0,
        403
    );
    // LIKE wildcards in the path match nothing but themselves.
    let wildcard = format!(
        "/api/2.0/mlflow-artifacts/artifacts/{}/________/artifacts/model/MLmodel",
        f.experiment
    );
    assert_eq!(approver.send(Method::GET, &wildcard, None).await.0, 403);
    // Registering files one cannot read, to read them through the registry,
    // is refused.
    other
        .ok(
            Method::POST,
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({"name": "exfil"})),
        )
        .await;
    let own = other
        .ok(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "exfil-own"})),
        )
        .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let own_run = other
        .ok(
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            Some(json!({"experiment_id": own})),
        )
        .await["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (source, run_id) in [
        (
            format!(
                "mlflow-artifacts:/{}/{}/artifacts/model",
                f.experiment, f.run
            ),
            None,
        ),
        (format!("runs:/{}/model", f.run), None),
        (format!("runs:/{}/model", f.run), Some(f.run.clone())),
        ("s3://bucket/elsewhere".to_string(), Some(f.run.clone())),
        (format!("models:/{}", f.logged_model), None),
        // The probe's source: the permission check once read the host as
        // the experiment while serving read the path.
        (
            format!(
                "mlflow-artifacts://{own}/{}/{}/artifacts",
                f.experiment, f.run
            ),
            Some(own_run.clone()),
        ),
        (
            format!(
                "mlflow-artifacts://{own}/{}/{}/artifacts",
                f.experiment, f.run
            ),
            Some(f.run.clone()),
        ),
    ] {
        let (status, reply) = other
            .send(
                Method::POST,
                "/api/2.0/mlflow/model-versions/create",
                Some(json!({"name": "exfil", "source": source, "run_id": run_id})),
            )
            .await;
        // Refused as a source outside its run (400) or as files the
        // caller may not read (403).
        assert!(matches!(status, 400 | 403), "{source}: {status} {reply}");
    }
    let (status, reply) = other
        .send(
            Method::GET,
            "/api/v1/model-versions/archive?name=exfil&version=1",
            None,
        )
        .await;
    assert_eq!(status, 404, "no version was registered: {reply}");
    other
        .ok(
            Method::POST,
            "/api/2.0/mlflow/model-versions/create",
            Some(json!({"name": "exfil", "source": "s3://bucket/mine"})),
        )
        .await;
    // A grant to a group reaches its members.
    let admin = people.as_(Role::Admin);
    admin
        .ok(Method::POST, "/api/v1/groups", Some(json!({"name": "ds"})))
        .await;
    admin
        .ok(Method::PUT, "/api/v1/groups/ds/members/other", None)
        .await;
    admin
        .ok(Method::PUT, "/api/v1/permissions", Some(json!({"resource_type": "experiment", "resource_id": f.experiment, "principal": "group:ds", "permission": "read"})))
        .await;
    other
        .ok(
            Method::GET,
            &format!("/api/2.0/mlflow/runs/get?run_id={}", f.run),
            None,
        )
        .await;
    // A renamed model keeps its grants.
    people
        .as_(Role::Manager)
        .ok(
            Method::POST,
            "/api/2.0/mlflow/registered-models/rename",
            Some(json!({"name": f.model, "new_name": "renamed"})),
        )
        .await;
    reader
        .ok(
            Method::GET,
            "/api/2.0/mlflow/registered-models/get?name=renamed",
            None,
        )
        .await;
}

async fn audit_verify_names_the_first_tampered_entry(app: TestApp) {
    let people = People::create(&app).await;
    fixture(&people, "tamper").await;
    let admin = people.as_(Role::Admin);
    let verdict = admin.ok(Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    let total = verdict["entries_checked"].as_i64().unwrap();
    assert!(total > 10, "{verdict}");
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&any_url(&app.database_url))
        .await
        .expect("connect");
    // The database refuses changes to the log...
    let refused = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 5")
        .execute(&mut conn)
        .await
        .expect_err("the audit log is append-only");
    assert!(refused.to_string().contains("append-only"), "{refused}");
    // ...until someone with access to it drops the guard rails.
    let drops: &[&str] = if app.database_url.starts_with("sqlite") {
        &[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ]
    } else {
        &["DROP TRIGGER audit_log_no_change ON audit_log"]
    };
    for sql in drops {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 5")
        .execute(&mut conn)
        .await
        .unwrap();
    let verdict = admin.ok(Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(verdict["ok"], false);
    assert_eq!(verdict["first_bad_seq"], 5, "{verdict}");
    assert!(
        verdict["problem"].as_str().unwrap().contains("edited"),
        "{verdict}"
    );
    // Restoring the field but deleting an earlier entry is caught at that entry.
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(&mut conn)
        .await
        .unwrap();
    let verdict = admin.ok(Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(verdict["first_bad_seq"], 3, "{verdict}");
    assert!(
        verdict["problem"].as_str().unwrap().contains("missing"),
        "{verdict}"
    );
}

/// A head hash kept from an earlier verification catches a cut tail, which
/// the chain alone cannot.
async fn a_kept_head_hash_catches_a_cut_tail(app: TestApp) {
    let people = People::create(&app).await;
    let admin = people.as_(Role::Admin);
    let first = admin.ok(Method::GET, "/api/v1/audit/verify", None).await;
    let head = first["head_hash"].as_str().unwrap().to_string();
    fixture(&people, "tail").await;
    let later = admin
        .ok(
            Method::GET,
            &format!("/api/v1/audit/verify?expected_head={head}"),
            None,
        )
        .await;
    assert_eq!(later["ok"], true, "{later}");
    let later_head = later["head_hash"].as_str().unwrap().to_string();
    let cut_from = later["entries_checked"].as_i64().unwrap() - 3;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&any_url(&app.database_url))
        .await
        .expect("connect");
    let drops: &[&str] = if app.database_url.starts_with("sqlite") {
        &["DROP TRIGGER audit_log_no_delete"]
    } else {
        &["DROP TRIGGER audit_log_no_change ON audit_log"]
    };
    for sql in drops {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    sqlx::query(&format!("DELETE FROM audit_log WHERE seq > {cut_from}"))
        .execute(&mut conn)
        .await
        .unwrap();
    // The chain that is left is intact...
    let alone = admin.ok(Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(alone["ok"], true, "{alone}");
    // ...but it no longer reaches the kept head.
    let kept = admin
        .ok(
            Method::GET,
            &format!("/api/v1/audit/verify?expected_head={later_head}"),
            None,
        )
        .await;
    assert_eq!(kept["ok"], false, "{kept}");
    assert!(
        kept["problem"]
            .as_str()
            .unwrap()
            .contains("removed from its end"),
        "{kept}"
    );
}

fn any_url(url: &str) -> String {
    sqlx::any::install_default_drivers();
    url.to_string()
}

async fn credential_failures_are_401_and_say_nothing_more(app: TestApp) {
    let people = People::create(&app).await;
    let admin = people.as_(Role::Admin);
    let path = "/api/v1/me";
    let unknown = Client {
        app: &app,
        authorization: Some(basic("nobody", "password-x")),
    };
    let wrong = Client {
        app: &app,
        authorization: Some(basic("reader", "wrong-password")),
    };
    let (s1, r1) = unknown.send(Method::GET, path, None).await;
    let (s2, r2) = wrong.send(Method::GET, path, None).await;
    assert_eq!((s1, s2), (401, 401));
    // No hint whether the user exists.
    assert_eq!(r1, r2);
    assert_eq!(r1["error_code"], "UNAUTHENTICATED");
    for header in [
        "Basic !!!",
        "Basic bm9jb2xvbg==",
        "Bearer",
        "Bearer not-a-token",
        "Digest abc",
        "Basic /w==",
    ] {
        let client = Client {
            app: &app,
            authorization: Some(header.to_string()),
        };
        let (status, reply) = client.send(Method::GET, path, None).await;
        assert_eq!(status, 401, "{header}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(
            !message.contains("panicked") && !message.contains("sqlx"),
            "{message}"
        );
    }
    // Right password works (and is cached).
    let right = Client {
        app: &app,
        authorization: Some(basic("reader", "password-reader")),
    };
    assert_eq!(
        right.ok(Method::GET, path, None).await["username"],
        "reader"
    );
    // A password change locks the old one out at once.
    admin
        .ok(
            Method::PATCH,
            "/api/v1/users/reader",
            Some(json!({"password": "new-password-1"})),
        )
        .await;
    assert_eq!(right.send(Method::GET, path, None).await.0, 401);
    // Revocation and expiry.
    let token = people.as_(Role::Reader);
    let listed = token.ok(Method::GET, "/api/v1/tokens", None).await;
    let token_id = listed["tokens"][0]["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        listed.to_string().find("sxt_").is_none(),
        "secrets are never listed"
    );
    token
        .ok(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), None)
        .await;
    let (status, reply) = token.send(Method::GET, path, None).await;
    assert_eq!(status, 401);
    assert!(
        reply["message"].as_str().unwrap().contains("revoked"),
        "{reply}"
    );
    let short = admin
        .ok(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "short", "username": "editor", "expires_in_seconds": 1})),
        )
        .await;
    let short = Client {
        app: &app,
        authorization: Some(format!("Bearer {}", short["token"].as_str().unwrap())),
    };
    short.ok(Method::GET, path, None).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, reply) = short.send(Method::GET, path, None).await;
    assert_eq!(status, 401);
    assert!(
        reply["message"].as_str().unwrap().contains("expired"),
        "{reply}"
    );
    // A read-only token cannot write.
    let read_only = admin
        .ok(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({"name": "ro", "username": "editor", "scopes": ["read"]})),
        )
        .await;
    let read_only = Client {
        app: &app,
        authorization: Some(format!("Bearer {}", read_only["token"].as_str().unwrap())),
    };
    read_only.ok(Method::GET, path, None).await;
    let (status, _) = read_only
        .send(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "ro"})),
        )
        .await;
    assert_eq!(status, 403);
    // A disabled user is locked out.
    admin
        .ok(
            Method::PATCH,
            "/api/v1/users/editor",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(
        people
            .as_(Role::Editor)
            .send(Method::GET, path, None)
            .await
            .0,
        401
    );
}

/// With authentication on, run data writes are audited in the metric
/// writer's transaction, interleaved correctly with the other writer's
/// entries; refused writes are audited as failures.
async fn run_data_writes_are_audited_with_the_data(app: TestApp) {
    let people = People::create(&app).await;
    let f = fixture(&people, "rundata").await;
    let editor = people.as_(Role::Editor);
    let admin = people.as_(Role::Admin);
    let mut writes = Vec::new();
    for step in 0..20 {
        let editor = &editor;
        let run = f.run.clone();
        writes.push(async move {
            editor
                .ok(Method::POST, "/api/2.0/mlflow/runs/log-metric", Some(json!({"run_id": run, "key": "loss", "value": 1.0 / (step as f64 + 1.0), "timestamp": 1, "step": step})))
                .await
        });
    }
    futures::future::join_all(writes).await;
    editor
        .ok(
            Method::POST,
            "/api/2.0/mlflow/runs/log-parameter",
            Some(json!({"run_id": f.run, "key": "lr", "value": "0.1"})),
        )
        .await;
    // Changing a param is refused by the writer: audited as a failure.
    let (status, _) = editor
        .send(
            Method::POST,
            "/api/2.0/mlflow/runs/log-parameter",
            Some(json!({"run_id": f.run, "key": "lr", "value": "0.2"})),
        )
        .await;
    assert_eq!(status, 400);
    let entries = admin
        // The entries name the run written, not only its experiment.
        .ok(
            Method::GET,
            &format!(
                "/api/v1/audit?actor=editor&resource_type=run&resource_id={}&max_results=10000",
                f.run
            ),
            None,
        )
        .await["entries"]
        .as_array()
        .unwrap()
        .clone();
    let count = |suffix: &str, outcome: &str| {
        entries
            .iter()
            .filter(|e| e["action"].as_str().unwrap().ends_with(suffix) && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("/runs/log-metric", "ok"), 20);
    assert_eq!(count("/runs/log-parameter", "ok"), 1);
    assert_eq!(count("/runs/log-parameter", "failed"), 1);
    let verify = admin.ok(Method::GET, "/api/v1/audit/verify", None).await;
    assert_eq!(verify["ok"], true, "{verify}");
}

/// `--default-permission read`: every signed-in user reads everything,
/// changes nothing without a grant, and anonymous callers still get 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_permission_read_opens_reading_only() {
    let options = sextant_server::Options {
        default_permission: Some(Permission::Read),
        ..sextant_server::Options::with_auth(Auth::Enabled)
    };
    let app = crate::helpers::spawn_app_with_options(Backend::Sqlite, options).await;
    let people = People::create(&app).await;
    let f = fixture(&people, "default").await;
    let other = people.as_(Role::Other);
    let runs = other
        .ok(
            Method::POST,
            "/api/2.0/mlflow/runs/search",
            Some(json!({"experiment_ids": [f.experiment]})),
        )
        .await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1));
    let models = other
        .ok(
            Method::GET,
            "/api/2.0/mlflow/registered-models/search",
            None,
        )
        .await;
    assert_eq!(
        models["registered_models"].as_array().map(Vec::len),
        Some(1)
    );
    let (status, _) = other
        .send(
            Method::POST,
            "/api/2.0/mlflow/runs/log-metric",
            Some(json!({"run_id": f.run, "key": "m", "value": 1.0, "timestamp": 1})),
        )
        .await;
    assert_eq!(status, 403);
    let anonymous = people.as_(Role::Anonymous);
    assert_eq!(
        anonymous
            .send(Method::POST, "/api/2.0/mlflow/runs/search", Some(json!({})))
            .await
            .0,
        401
    );
}

mod without_auth {
    use super::*;

    /// Without authentication, writes to runs (metrics, params, tags, status)
    /// carry no audit entry (each would only say "anonymous"); everything
    /// else still does.
    async fn without_auth_only_run_data_goes_unaudited(app: TestApp) {
        let experiment = app.create_experiment("open").await;
        let run = app.create_run(&experiment, "r").await;
        app.post(
            "runs/log-metric",
            json!({"run_id": run, "key": "m", "value": 1.0, "timestamp": 1}),
        )
        .await
        .ok();
        app.post("runs/update", json!({"run_id": run, "status": "FINISHED"}))
            .await
            .ok();
        app.post(
            "experiments/set-experiment-tag",
            json!({"experiment_id": experiment, "key": "team", "value": "fraud"}),
        )
        .await
        .ok();
        let client = Client {
            app: &app,
            authorization: None,
        };
        let entries = client.ok(Method::GET, "/api/v1/audit", None).await["entries"]
            .as_array()
            .unwrap()
            .clone();
        let actions: Vec<&str> = entries
            .iter()
            .map(|e| {
                e["action"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("/api/2.0/mlflow")
            })
            .collect();
        assert_eq!(
            actions,
            [
                "/experiments/create",
                "/runs/create",
                "/experiments/set-experiment-tag"
            ]
        );
        assert!(entries.iter().all(|e| e["actor"] == "anonymous"));
    }

    crate::backend_tests!(without_auth_only_run_data_goes_unaudited);
}

crate::auth_backend_tests!(
    run_data_writes_are_audited_with_the_data,
    workflow_through_the_native_api,
    runs_and_models_are_invisible_without_read,
    audit_verify_names_the_first_tampered_entry,
    a_kept_head_hash_catches_a_cut_tail,
    credential_failures_are_401_and_say_nothing_more,
    the_last_administrator_stays,
    deploying_needs_a_grant_only_admins_give,
    only_admins_choose_where_an_experiments_files_go,
);

/// An experiment's artifact location decides which files its runs reach:
/// users get the server's default, admins may choose; and a run records
/// who created it, whatever the client claims.
async fn only_admins_choose_where_an_experiments_files_go(app: TestApp) {
    let people = People::create(&app).await;
    let editor = people.as_(Role::Editor);
    for location in ["/etc", "mlflow-artifacts:/1", "s3://other-team/bucket"] {
        let (status, reply) = editor
            .send(
                Method::POST,
                "/api/2.0/mlflow/experiments/create",
                Some(json!({"name": format!("e-{location}"), "artifact_location": location})),
            )
            .await;
        assert_eq!(status, 403, "{location}: {reply}");
    }
    let experiment = editor
        .ok(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "plain"})),
        )
        .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    people
        .as_(Role::Admin)
        .ok(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "chosen", "artifact_location": "s3://bucket/chosen"})),
        )
        .await;
    let run = editor
        .ok(
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            Some(json!({"experiment_id": experiment, "user_id": "someone-else"})),
        )
        .await;
    assert_eq!(run["run"]["info"]["user_id"], "editor", "{run}");
    // So is a model version: its author is who registered it.
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap();
    editor
        .ok(
            Method::POST,
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({"name": "authored"})),
        )
        .await;
    let version = editor
        .ok(
            Method::POST,
            "/api/2.0/mlflow/model-versions/create",
            Some(json!({"name": "authored", "source": format!("runs:/{run_id}/model"), "run_id": run_id})),
        )
        .await;
    assert_eq!(version["model_version"]["user_id"], "editor", "{version}");
}

/// Serving a model runs its code on the server: creating or changing a
/// deployment needs deploy on the registered model, which its manager
/// cannot grant (even to themselves); only an admin can.
async fn deploying_needs_a_grant_only_admins_give(app: TestApp) {
    let people = People::create(&app).await;
    let f = fixture(&people, "dep").await;
    let manager = people.as_(Role::Manager);
    let create = json!({"name": "by-manager", "model": format!("{}/1", f.model)});
    let (status, reply) = manager
        .send(Method::POST, "/api/v1/deployments", Some(create.clone()))
        .await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("deploy"),
        "{reply}"
    );
    for principal in ["user:manager", "user:other"] {
        let (status, reply) = manager
            .send(
                Method::PUT,
                "/api/v1/permissions",
                Some(json!({"resource_type": "registered_model", "resource_id": f.model, "principal": principal, "permission": "deploy"})),
            )
            .await;
        assert_eq!(status, 403, "{principal}: {reply}");
    }
    people
        .as_(Role::Admin)
        .ok(
            Method::PUT,
            "/api/v1/permissions",
            Some(json!({"resource_type": "registered_model", "resource_id": f.model, "principal": "user:manager", "permission": "deploy"})),
        )
        .await;
    manager
        .ok(Method::POST, "/api/v1/deployments", Some(create))
        .await;
}

/// The last active admin cannot be demoted, disabled or deleted (a fuzzer
/// once did all three); with a second admin each may go. When no admin is
/// left anyway (a database from before this rule), a restart with
/// `SEXTANT_ADMIN_PASSWORD` brings `admin` back.
async fn the_last_administrator_stays(app: TestApp) {
    let people = People::create(&app).await;
    let admin = people.as_(Role::Admin);
    for (method, body) in [
        (Method::PATCH, Some(json!({"is_admin": false}))),
        (Method::PATCH, Some(json!({"disabled": true}))),
        (Method::DELETE, None),
    ] {
        let (status, reply) = admin
            .send(method.clone(), "/api/v1/users/admin", body)
            .await;
        assert_eq!(status, 409, "{method}: {reply}");
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .contains("last active administrator"),
            "{reply}"
        );
    }
    admin.ok(Method::GET, "/api/v1/users", None).await;
    // With a second admin, the first may step down.
    admin
        .ok(
            Method::PATCH,
            "/api/v1/users/approver",
            Some(json!({"is_admin": true})),
        )
        .await;
    admin
        .ok(
            Method::PATCH,
            "/api/v1/users/admin",
            Some(json!({"is_admin": false})),
        )
        .await;
    let approver = people.as_(Role::Approver);
    let (status, _) = approver
        .send(Method::DELETE, "/api/v1/users/approver", None)
        .await;
    assert_eq!(status, 409, "the new last admin stays too");
    // A database where no admin is left: the restart's bootstrap restores one.
    let mut db = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET is_admin = 0")
        .execute(&mut db)
        .await
        .unwrap();
    let store = sextant_store::Store::open(&sextant_store::StoreConfig {
        database_url: app.database_url.clone(),
        default_artifact_root: "mlflow-artifacts:/".into(),
        max_connections: 2,
    })
    .await
    .unwrap();
    assert_eq!(store.count_active_admins().await.unwrap(), 0);
    let governance = sextant_governance::Governance::new(store.clone(), true, None);
    governance
        .bootstrap(Some("a restored admin password"))
        .await
        .unwrap();
    assert_eq!(store.count_active_admins().await.unwrap(), 1);
    let user = store.get_user("admin").await.unwrap();
    assert!(user.is_admin && !user.disabled);
    let restored = Client {
        app: &app,
        authorization: Some(basic("admin", "a restored admin password")),
    };
    restored.ok(Method::GET, "/api/v1/users", None).await;
}

type Spelling = &'static [(&'static str, Option<&'static str>)];

/// How a request spells the resource it names: `R` is the victim's,
/// `O` one of the attacker's own, `0R` and ` R` other spellings of the
/// victim's experiment id. Runs: `run_id`, `run_uuid`, both, empty or null,
/// agreeing or not.
const RUN_SPELLINGS: &[Spelling] = &[
    &[("run_id", Some("R"))],
    &[("run_uuid", Some("R"))],
    &[("run_id", Some("")), ("run_uuid", Some("R"))],
    &[("run_id", None), ("run_uuid", Some("R"))],
    &[("run_id", Some("R")), ("run_uuid", Some(""))],
    &[("run_id", Some("R")), ("run_uuid", Some("R"))],
    &[("run_id", Some("O")), ("run_uuid", Some("R"))],
    &[("run_id", Some("R")), ("run_uuid", Some("O"))],
    &[("run_id", Some("O")), ("run_id", Some("R"))],
    &[("run_uuid", Some("O")), ("run_uuid", Some("R"))],
];

const EXPERIMENT_SPELLINGS: &[Spelling] = &[
    &[("experiment_id", Some("R"))],
    &[("experiment_id", Some("0R"))],
    &[("experiment_id", Some(" R"))],
    &[("experiment_id", Some("O")), ("experiment_id", Some("R"))],
];

const MODEL_SPELLINGS: &[Spelling] = &[
    &[("name", Some("R"))],
    &[("name", Some("O")), ("name", Some("R"))],
];

/// One spelling applied to a matrix row: the resource's fields replaced in
/// the query string (GET) or the JSON body. `None` when the row cannot
/// carry the spelling (a repeated key in a JSON object).
fn respell(
    case: &Case,
    path: &str,
    body: Option<&Value>,
    spelling: Spelling,
    victim: &str,
    own: &str,
) -> Option<(String, Option<Value>)> {
    let value = |v: &str| match v {
        "R" => victim.to_string(),
        "O" => own.to_string(),
        "0R" => format!("0{victim}"),
        " R" => format!(" {victim}"),
        other => other.to_string(),
    };
    let fields: Vec<&str> = spelling.iter().map(|(f, _)| *f).collect();
    if case.method == Method::GET {
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| !fields.contains(&k.as_ref()) && k != "run_uuid")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (field, v) in spelling {
            // A null has no spelling in a query string: leave the key out.
            if let Some(v) = v {
                pairs.push((field.to_string(), value(v)));
            }
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        return Some((format!("{route}?{query}"), None));
    }
    if fields.len()
        != fields
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
    {
        return None;
    }
    let mut body = body.cloned().unwrap_or_else(|| json!({}));
    let object = body.as_object_mut()?;
    for field in &fields {
        object.remove(*field);
    }
    object.remove("run_uuid");
    for (field, v) in spelling {
        object.insert(
            field.to_string(),
            v.map_or(Value::Null, |v| Value::String(value(v))),
        );
    }
    Some((path.to_string(), Some(body)))
}

/// Every route that names a run, an experiment or a registered model in
/// its fields, under every prefix, with every spelling of those fields: a
/// user without a grant never gets through (and the victim's run is
/// unchanged afterwards), and the resource's manager gets the same answer
/// whichever spelling names it, or a 400 when two spellings name
/// different resources. The probe that found `run_id=&run_uuid=R` is one
/// of these rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_resource_names_the_resource_that_is_checked() {
    let app = spawn_app_with(Backend::Sqlite, Auth::Enabled).await;
    let people = People::create(&app).await;
    let attacker = people.as_(Role::Other);
    let manager = people.as_(Role::Manager);
    let admin = people.as_(Role::Admin);
    let own_experiment = attacker
        .ok(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            Some(json!({"name": "attacker-own"})),
        )
        .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let own_run = attacker
        .ok(
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            Some(json!({"experiment_id": own_experiment})),
        )
        .await["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let own_model = "attacker-own-model".to_string();
    attacker
        .ok(
            Method::POST,
            "/api/2.0/mlflow/registered-models/create",
            Some(json!({"name": own_model})),
        )
        .await;
    let table = route_table();
    let target_of = |case: &Case| {
        table
            .iter()
            .find(|route| route.method == case.method && route.path == case.pattern)
            .and_then(|route| match route.access {
                Access::On(_, target) => Some(target),
                _ => None,
            })
    };
    let spelled: Vec<(Case, Target)> = cases()
        .into_iter()
        .filter_map(|case| {
            let target = target_of(&case)?;
            matches!(
                target,
                Target::Run | Target::Experiment | Target::NewRun | Target::Model
            )
            .then_some((case, target))
        })
        .collect();
    let count = |wanted: fn(&Target) -> bool| spelled.iter().filter(|(_, t)| wanted(t)).count();
    assert!(count(|t| matches!(t, Target::Run)) >= 14);
    assert!(count(|t| matches!(t, Target::Experiment | Target::NewRun)) >= 8);
    assert!(count(|t| matches!(t, Target::Model)) >= 20);
    let prefixes = [
        "/api/2.0/mlflow",
        "/api/3.0/mlflow",
        "/ajax-api/2.0/mlflow",
        "/ajax-api/3.0/mlflow",
    ];
    let mut failures = Vec::new();
    for (case_idx, (case, target)) in spelled.iter().enumerate() {
        let (spellings, victim_of, own): (&[Spelling], fn(&Fixture) -> String, &str) = match target
        {
            Target::Run => (RUN_SPELLINGS, |f| f.run.clone(), &own_run),
            Target::Model => (MODEL_SPELLINGS, |f| f.model.clone(), &own_model),
            _ => (
                EXPERIMENT_SPELLINGS,
                |f| f.experiment.clone(),
                &own_experiment,
            ),
        };
        let uniq = format!("spell{case_idx}");
        let fixture = fixture(&people, &uniq).await;
        let victim = victim_of(&fixture);
        let victim_view = || async {
            let (_, run) = admin
                .send(
                    Method::GET,
                    &format!("/api/2.0/mlflow/runs/get?run_id={}", fixture.run),
                    None,
                )
                .await;
            let (_, model) = admin
                .send(
                    Method::GET,
                    &format!(
                        "/api/2.0/mlflow/registered-models/get?name={}",
                        fixture.model
                    ),
                    None,
                )
                .await;
            let (_, experiment) = admin
                .send(
                    Method::GET,
                    &format!(
                        "/api/2.0/mlflow/experiments/get?experiment_id={}",
                        fixture.experiment
                    ),
                    None,
                )
                .await;
            json!([run, model, experiment])
        };
        let before = victim_view().await;
        let path = fill(case.path, &fixture, &uniq);
        let body = case.body.as_ref().map(|b| fill_json(b, &fixture, &uniq));
        let prefixed: Vec<&str> = if path.starts_with("/api/2.0/mlflow") {
            prefixes.to_vec()
        } else {
            vec![""]
        };
        for prefix in prefixed {
            let path = if prefix.is_empty() {
                path.clone()
            } else {
                path.replacen("/api/2.0/mlflow", prefix, 1)
            };
            for spelling in spellings {
                let Some((path, body)) =
                    respell(case, &path, body.as_ref(), spelling, &victim, own)
                else {
                    continue;
                };
                let (status, reply) = attacker
                    .send(case.method.clone(), &path, body.clone())
                    .await;
                if !matches!(status, 400 | 403 | 404) {
                    failures.push(format!(
                        "attacker {} {path} {spelling:?}: {status} {reply}",
                        case.method
                    ));
                }
            }
        }
        let after = victim_view().await;
        if before != after {
            failures.push(format!(
                "{} {}: the victim's resources changed\nbefore {before}\nafter  {after}",
                case.method, case.pattern
            ));
        }
        // The manager: every agreeing spelling gets the answer the plain
        // one gets (on a fixture of its own), disagreeing ones are refused
        // as ambiguous, never resolved to either resource.
        let mut plain_status = None;
        for (spelling_idx, spelling) in spellings.iter().enumerate() {
            let uniq = format!("{uniq}-{spelling_idx}");
            let fresh = self::fixture(&people, &uniq).await;
            let path = fill(case.path, &fresh, &uniq);
            let body = case.body.as_ref().map(|b| fill_json(b, &fresh, &uniq));
            let victim = victim_of(&fresh);
            let Some((path, body)) = respell(case, &path, body.as_ref(), spelling, &victim, own)
            else {
                continue;
            };
            let names_other = spelling.iter().any(|(_, v)| *v == Some("O"));
            let (status, reply) = manager.send(case.method.clone(), &path, body).await;
            let expected = if names_other {
                400
            } else {
                *plain_status.get_or_insert(status)
            };
            if status != expected || matches!(status, 401 | 403) || status >= 500 {
                failures.push(format!(
                    "manager {} {path} {spelling:?}: {status} (expected {expected}) {reply}",
                    case.method
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
