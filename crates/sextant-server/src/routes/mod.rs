//! Route table. MLflow mounts every route under `/api/2.0`, `/api/3.0` and
//! the UI's `/ajax-api/…` prefixes; so does Sextant.

/// `route!(METHOD "path", access, handler)`: one row of a route table.
macro_rules! route {
    ($method:ident $path:literal, $access:expr, $handler:expr) => {
        $crate::guard::RouteSpec {
            method: ::axum::http::Method::$method,
            path: $path,
            access: $access,
            handler: |filter| ::axum::routing::on(filter, $handler),
        }
    };
}

pub(crate) mod alerts;
mod artifacts;
pub(crate) mod datasets;
pub(crate) mod deployments;
pub(crate) mod feedback;
pub(crate) mod inference;
pub(crate) mod lineage;
pub(crate) mod manifests;
mod meta;
pub(crate) mod monitoring;
pub(crate) mod profiles;
mod registry;
mod tracking;
pub(crate) mod ui;
pub(crate) mod v1;
pub(crate) mod validation;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use sextant_api::ErrorCode;
use sextant_core::Permission::{self, Edit, Manage, Read};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::extract::MAX_JSON_BODY;
use crate::guard::{guard, is_guarded, Access, GuardContext, RouteSpec, Target};
use crate::AppState;

use Target::{
    Artifact, Deployment, Experiment, ExperimentName, LoggedModel, Model, NewRun, Run, Runs,
};

const fn on_(permission: Permission, target: Target) -> Access {
    Access::On(permission, target)
}
const SEARCH: Access = Access::SignedIn { mutates: false };
const CREATE: Access = Access::SignedIn { mutates: true };
const PUBLIC: Access = Access::Public;
const RUN: Target = Run;
const EXPERIMENT: Target = Experiment;
const MODEL: Target = Model;

/// MLflow's REST API, mounted under `/api/2.0/mlflow`, `/api/3.0/mlflow`
/// and the UI's `/ajax-api/…` twins. Permissions follow MLflow's auth
/// plugin: reading needs read, changing needs edit, deleting needs manage.
static MLFLOW_ROUTES: &[RouteSpec] = &[
    // experiments
    route!(POST "/experiments/create", CREATE, tracking::create_experiment),
    route!(GET "/experiments/get", on_(Read, EXPERIMENT), tracking::get_experiment),
    route!(GET "/experiments/get-by-name", on_(Read, ExperimentName), tracking::get_experiment_by_name),
    route!(POST "/experiments/search", SEARCH, tracking::search_experiments),
    route!(GET "/experiments/search", SEARCH, tracking::search_experiments),
    route!(POST "/experiments/update", on_(Edit, EXPERIMENT), tracking::update_experiment),
    route!(POST "/experiments/delete", on_(Manage, EXPERIMENT), tracking::delete_experiment),
    route!(POST "/experiments/restore", on_(Manage, EXPERIMENT), tracking::restore_experiment),
    route!(POST "/experiments/set-experiment-tag", on_(Edit, EXPERIMENT), tracking::set_experiment_tag),
    route!(POST "/experiments/delete-experiment-tag", on_(Edit, EXPERIMENT), tracking::delete_experiment_tag),
    // runs
    route!(POST "/runs/create", on_(Edit, NewRun), tracking::create_run),
    route!(GET "/runs/get", on_(Read, RUN), tracking::get_run),
    route!(POST "/runs/update", on_(Edit, RUN), tracking::update_run),
    route!(POST "/runs/delete", on_(Manage, RUN), tracking::delete_run),
    route!(POST "/runs/restore", on_(Manage, RUN), tracking::restore_run),
    route!(POST "/runs/search", SEARCH, tracking::search_runs),
    route!(POST "/runs/log-metric", on_(Edit, RUN), tracking::log_metric),
    route!(POST "/runs/log-parameter", on_(Edit, RUN), tracking::log_param),
    route!(POST "/runs/log-batch", on_(Edit, RUN), tracking::log_batch),
    route!(POST "/runs/set-tag", on_(Edit, RUN), tracking::set_tag),
    route!(POST "/runs/delete-tag", on_(Edit, RUN), tracking::delete_tag),
    route!(POST "/runs/log-inputs", on_(Edit, RUN), tracking::log_inputs),
    route!(POST "/runs/outputs", on_(Edit, RUN), tracking::log_outputs),
    route!(POST "/runs/log-model", on_(Edit, RUN), tracking::log_model),
    route!(GET "/metrics/get-history", on_(Read, RUN), tracking::get_metric_history),
    route!(GET "/metrics/get-history-bulk-interval", on_(Read, Runs), tracking::get_metric_history_bulk_interval),
    route!(GET "/artifacts/list", on_(Read, RUN), tracking::list_run_artifacts),
    // MLflow 3 logged models
    route!(POST "/logged-models", on_(Edit, EXPERIMENT), tracking::create_logged_model),
    route!(POST "/logged-models/search", SEARCH, tracking::search_logged_models),
    route!(GET "/logged-models/{model_id}", on_(Read, LoggedModel), tracking::get_logged_model),
    route!(PATCH "/logged-models/{model_id}", on_(Edit, LoggedModel), tracking::finalize_logged_model),
    route!(DELETE "/logged-models/{model_id}", on_(Manage, LoggedModel), tracking::delete_logged_model),
    route!(PATCH "/logged-models/{model_id}/tags", on_(Edit, LoggedModel), tracking::set_logged_model_tags),
    route!(DELETE "/logged-models/{model_id}/tags/{tag_key}", on_(Edit, LoggedModel), tracking::delete_logged_model_tag),
    route!(POST "/logged-models/{model_id}/params", on_(Edit, LoggedModel), tracking::log_logged_model_params),
    route!(GET "/logged-models/{model_id}/artifacts/directories", on_(Read, LoggedModel), tracking::list_logged_model_artifacts),
    // registry
    route!(POST "/registered-models/create", CREATE, registry::create_registered_model),
    route!(GET "/registered-models/get", on_(Read, MODEL), registry::get_registered_model),
    route!(POST "/registered-models/rename", on_(Edit, MODEL), registry::rename_registered_model),
    route!(PATCH "/registered-models/update", on_(Edit, MODEL), registry::update_registered_model),
    route!(DELETE "/registered-models/delete", on_(Manage, MODEL), registry::delete_registered_model),
    route!(GET "/registered-models/search", SEARCH, registry::search_registered_models),
    route!(POST "/registered-models/get-latest-versions", on_(Read, MODEL), registry::get_latest_versions),
    route!(GET "/registered-models/get-latest-versions", on_(Read, MODEL), registry::get_latest_versions),
    route!(POST "/registered-models/set-tag", on_(Edit, MODEL), registry::set_registered_model_tag),
    route!(DELETE "/registered-models/delete-tag", on_(Edit, MODEL), registry::delete_registered_model_tag),
    route!(POST "/registered-models/alias", on_(Edit, MODEL), registry::set_alias),
    route!(DELETE "/registered-models/alias", on_(Edit, MODEL), registry::delete_alias),
    route!(GET "/registered-models/alias", on_(Read, MODEL), registry::get_version_by_alias),
    route!(POST "/model-versions/create", on_(Edit, MODEL), registry::create_model_version),
    route!(GET "/model-versions/get", on_(Read, MODEL), registry::get_model_version),
    route!(PATCH "/model-versions/update", on_(Edit, MODEL), registry::update_model_version),
    route!(DELETE "/model-versions/delete", on_(Manage, MODEL), registry::delete_model_version),
    route!(POST "/model-versions/transition-stage", on_(Edit, MODEL), registry::transition_stage),
    route!(GET "/model-versions/search", SEARCH, registry::search_model_versions),
    route!(GET "/model-versions/get-download-uri", on_(Read, MODEL), registry::get_download_uri),
    route!(POST "/model-versions/set-tag", on_(Edit, MODEL), registry::set_model_version_tag),
    route!(DELETE "/model-versions/delete-tag", on_(Edit, MODEL), registry::delete_model_version_tag),
];

/// The `mlflow-artifacts` proxy, under `/api/2.0/mlflow-artifacts` (and
/// `/ajax-api/…`). Paths start with the experiment id.
static ARTIFACT_ROUTES: &[RouteSpec] = &[
    route!(GET "/artifacts", on_(Read, Artifact), artifacts::list),
    route!(GET "/artifacts/{*path}", on_(Read, Artifact), artifacts::download),
    RouteSpec {
        method: Method::PUT,
        path: "/artifacts/{*path}",
        access: on_(Edit, Artifact),
        handler: |filter| on(filter, artifacts::upload).layer(DefaultBodyLimit::disable()),
    },
    route!(DELETE "/artifacts/{*path}", on_(Edit, Artifact), artifacts::remove),
];

const INVOKE: Access = Access::On(Permission::Invoke, Deployment);

/// The inference APIs at the root: the Open Inference Protocol under `/v2`
/// (the deployment's name is the model name), MLflow's scoring protocol,
/// and Prometheus. Calling a deployment needs `invoke` on it.
pub(crate) static INFERENCE_ROUTES: &[RouteSpec] = &[
    route!(GET "/v2", PUBLIC, inference::server_metadata),
    route!(GET "/v2/", PUBLIC, inference::server_metadata),
    route!(GET "/v2/health/live", PUBLIC, inference::live_probe),
    route!(GET "/v2/health/ready", PUBLIC, inference::ready_probe),
    route!(POST "/v2/repository/index", SEARCH, inference::repository_index),
    route!(GET "/v2/models/{name}", INVOKE, inference::model_metadata),
    route!(GET "/v2/models/{name}/ready", INVOKE, inference::model_ready),
    route!(POST "/v2/models/{name}/infer", INVOKE, inference::infer),
    route!(GET "/v2/models/{name}/versions/{version}", INVOKE, inference::model_metadata),
    route!(GET "/v2/models/{name}/versions/{version}/ready", INVOKE, inference::model_ready),
    route!(POST "/v2/models/{name}/versions/{version}/infer", INVOKE, inference::infer),
    route!(POST "/v2/models/{name}/explain", INVOKE, inference::explain),
    route!(POST "/v2/models/{name}/versions/{version}/explain", INVOKE, inference::explain),
    route!(POST "/invocations", INVOKE, inference::invocations),
    route!(POST "/deployments/{name}/invocations", INVOKE, inference::deployment_invocations),
    route!(POST "/deployments/{name}/explain", INVOKE, inference::deployment_explain),
    route!(GET "/ping", PUBLIC, inference::ping),
    route!(GET "/metrics", Access::Scrape, inference::metrics),
];

/// Routes at the root: health, version, the landing page.
static ROOT_ROUTES: &[RouteSpec] = &[
    route!(GET "/health", PUBLIC, meta::health),
    route!(GET "/version", PUBLIC, meta::version),
    route!(GET "/api/3.0/mlflow/server-info", PUBLIC, meta::server_info),
];

const MLFLOW_PREFIXES: &[&str] = &[
    "/api/2.0/mlflow",
    "/api/3.0/mlflow",
    "/ajax-api/2.0/mlflow",
    "/ajax-api/3.0/mlflow",
];
const ARTIFACT_PREFIXES: &[&str] = &[
    "/api/2.0/mlflow-artifacts",
    "/ajax-api/2.0/mlflow-artifacts",
];

/// One route as the outside sees it: method, full path, rule.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    /// With the first of its prefixes, e.g. `/api/2.0/mlflow/runs/get`.
    pub path: String,
    pub access: Access,
}

/// Every route of the server with its access rule, one per method and path
/// (each MLflow route once, under `/api/2.0/mlflow`).
pub fn route_table() -> Vec<RouteInfo> {
    let groups: [(&[RouteSpec], &str); 6] = [
        (MLFLOW_ROUTES, MLFLOW_PREFIXES[0]),
        (ARTIFACT_ROUTES, ARTIFACT_PREFIXES[0]),
        (ROOT_ROUTES, ""),
        (ui::ROUTES, ""),
        (INFERENCE_ROUTES, ""),
        (v1::ROUTES, v1::PREFIX),
    ];
    groups
        .iter()
        .flat_map(|(specs, prefix)| {
            specs.iter().map(move |spec| RouteInfo {
                method: spec.method.clone(),
                path: format!("{prefix}{}", spec.path),
                access: spec.access,
            })
        })
        .collect()
}

fn build(specs: &'static [RouteSpec], state: &AppState) -> Router<AppState> {
    specs.iter().fold(Router::new(), |router, spec| {
        let filter =
            MethodFilter::try_from(spec.method.clone()).expect("route tables use standard methods");
        let handler: MethodRouter<AppState> = (spec.handler)(filter);
        if !is_guarded(spec, state) {
            return router.route(spec.path, handler);
        }
        let guarded = handler.route_layer(axum::middleware::from_fn_with_state(
            GuardContext {
                state: state.clone(),
                spec,
            },
            guard,
        ));
        router.route(spec.path, guarded)
    })
}

pub(crate) fn router(state: AppState) -> Router {
    let mlflow = build(MLFLOW_ROUTES, &state);
    let artifacts = build(ARTIFACT_ROUTES, &state);
    let mut app = build(ROOT_ROUTES, &state)
        .merge(build(ui::ROUTES, &state))
        .nest(v1::PREFIX, build(v1::ROUTES, &state));
    for prefix in MLFLOW_PREFIXES {
        app = app.nest(prefix, mlflow.clone());
    }
    for prefix in ARTIFACT_PREFIXES {
        app = app.nest(prefix, artifacts.clone());
    }
    // Inference is counted per arm by its handlers; every other route here.
    let mut app = app.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        count_api_request,
    ));
    if state.serving().is_some() {
        app = app.merge(
            build(INFERENCE_ROUTES, &state)
                .layer(axum::middleware::from_fn(inference::refuse_oversized)),
        );
    }
    let origin = std::sync::Arc::new(state.options().origin.clone());
    let hidden = std::sync::Arc::new(crate::error::HiddenPaths::new(
        [(state.artifacts().description().to_string(), "<artifacts>")]
            .into_iter()
            .filter(|(path, _)| path.starts_with('/'))
            .chain(state.serving().map(|serving| {
                (
                    serving.config().cache_dir.display().to_string(),
                    "<model cache>",
                )
            })),
    ));
    app.fallback(endpoint_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            deployments::follow_progress,
        ))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn_with_state(
            origin,
            crate::origin::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            hidden,
            crate::error::json_errors,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Records a request to an API route in `/metrics`
/// (`sextant_http_requests_total`, `sextant_http_request_duration_seconds`),
/// labelled by the route's template so that ids in paths add no series.
async fn count_api_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    route: axum::extract::MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some(serving) = state.serving() else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    serving.metrics().api_request(
        method.as_str(),
        route.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// A serving replica's routes: the inference APIs without the tracking
/// server, the registry or the native API. With `check_callers`, a replica
/// following a server lets a call through only when that server says the
/// caller may invoke the deployment (`serving::replica_auth`).
pub(crate) fn serving_router(
    serving: crate::serving::Serving,
    check_callers: bool,
    origin: crate::origin::OriginPolicy,
) -> Router {
    use axum::routing::{get, post};
    let auth = match (check_callers, serving.source()) {
        (true, crate::serving::Source::Remote(server)) => Some(std::sync::Arc::new(
            crate::serving::replica_auth::ReplicaAuth::new(server.clone(), serving.clone()),
        )),
        _ => None,
    };
    let router = Router::new()
        .route("/v2", get(inference::server_metadata))
        .route("/v2/", get(inference::server_metadata))
        .route("/v2/health/live", get(inference::live_probe))
        .route("/v2/health/ready", get(inference::ready_probe))
        .route("/v2/repository/index", post(inference::repository_index))
        .route("/v2/models/{name}", get(inference::model_metadata))
        .route("/v2/models/{name}/ready", get(inference::model_ready))
        .route("/v2/models/{name}/infer", post(inference::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(inference::model_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(inference::model_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(inference::infer),
        )
        .route("/v2/models/{name}/explain", post(inference::explain))
        .route(
            "/v2/models/{name}/versions/{version}/explain",
            post(inference::explain),
        )
        .route("/invocations", post(inference::invocations))
        .route(
            "/deployments/{name}/invocations",
            post(inference::deployment_invocations),
        )
        .route(
            "/deployments/{name}/explain",
            post(inference::deployment_explain),
        )
        .route("/ping", get(inference::ping))
        .route("/health", get(inference::ping))
        .route("/metrics", get(inference::metrics));
    let router = match auth {
        Some(auth) => router.route_layer(axum::middleware::from_fn_with_state(
            auth,
            crate::serving::replica_auth::guard,
        )),
        None => router,
    };
    router
        .layer(axum::middleware::from_fn(inference::refuse_oversized))
        .fallback(endpoint_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(origin),
            crate::origin::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(crate::error::HiddenPaths::new([(
                serving.config().cache_dir.display().to_string(),
                "<model cache>",
            )])),
            crate::error::json_errors,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(serving)
}

async fn endpoint_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::User(
        ErrorCode::EndpointNotFound,
        format!("No endpoint at {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(sextant_api::ErrorBody {
            error_code: ErrorCode::EndpointNotFound.as_str(),
            message: format!("{method} is not supported on {}", uri.path()),
        }),
    )
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    ApiError::Internal("a request handler panicked".into()).into_response()
}

/// `{}`: the body MLflow returns for RPCs with an empty response.
pub(crate) fn empty() -> Json<serde_json::Value> {
    Json(serde_json::json!({}))
}

/// A required string field, or MLflow's "missing parameter" error.
pub(crate) fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::missing(field))
}
