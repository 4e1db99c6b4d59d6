//! The inference APIs: the Open Inference Protocol (KServe V2) under
//! `/v2`, MLflow's scoring protocol (`/invocations`, `/ping`), and
//! Prometheus' `/metrics`. Handlers take only [`Serving`], so the same
//! functions serve inside `sextant server` and in a replica.
//!
//! Errors on OIP routes carry the protocol's `{"error": …}` together with
//! Sextant's `error_code` and `message`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRef, Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sextant_api::inference as wire;
use sextant_api::ErrorCode;
use sextant_governance::Principal;
use sextant_serve::model::Layout;

use crate::serving::{self, Answer, LiveDeployment, Pick, PredictFailure, Serving};
use crate::AppState;

impl FromRef<AppState> for Serving {
    fn from_ref(state: &AppState) -> Serving {
        state
            .serving()
            .cloned()
            .expect("the server's router mounts inference routes only with serving on")
    }
}

/// An inference error: status, code and message, in the protocol's body.
pub(crate) struct InferenceError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// `Retry-After`, when the caller is told how long to wait.
    retry_after_seconds: Option<u64>,
}

impl InferenceError {
    fn new(code: ErrorCode, message: impl Into<String>) -> InferenceError {
        InferenceError {
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    fn bad(message: impl Into<String>) -> InferenceError {
        InferenceError::new(ErrorCode::InvalidParameterValue, message)
    }

    fn not_found(message: impl Into<String>) -> InferenceError {
        InferenceError::new(ErrorCode::ResourceDoesNotExist, message)
    }
}

impl From<PredictFailure> for InferenceError {
    fn from(failure: PredictFailure) -> InferenceError {
        match failure {
            PredictFailure::Input(message) => InferenceError::bad(message),
            PredictFailure::Overloaded(message) => {
                InferenceError::new(ErrorCode::TemporarilyUnavailable, message)
            }
            PredictFailure::Model(message) => {
                InferenceError::new(ErrorCode::InternalError, message)
            }
        }
    }
}

impl From<serving::BadRequest> for InferenceError {
    fn from(err: serving::BadRequest) -> InferenceError {
        InferenceError::bad(err.0)
    }
}

impl IntoResponse for InferenceError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.message,
            "error_code": self.code.as_str(),
            "message": self.message,
        });
        let mut response = (self.status, Json(body)).into_response();
        let retry_after = match self.retry_after_seconds {
            Some(seconds) => HeaderValue::from(seconds),
            None if self.status == StatusCode::SERVICE_UNAVAILABLE => HeaderValue::from_static("1"),
            None => return response,
        };
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after);
        response
    }
}

type InferenceResult<T> = Result<T, InferenceError>;

/// 429 for a caller the abuse monitor flagged, on a deployment that
/// throttles them; a map lookup, and nothing at all on one that does not.
fn refuse_flagged_caller(
    serving: &Serving,
    live: &LiveDeployment,
    caller: Option<&str>,
) -> InferenceResult<()> {
    if !live.spec.settings.throttle_abusive_callers {
        return Ok(());
    }
    let now = crate::serving::now_micros();
    match serving.abuse().flagged_until(&live.name, caller, now) {
        None => Ok(()),
        Some(until) => {
            let mut refusal = InferenceError::new(
                ErrorCode::RequestLimitExceeded,
                format!(
                    "requests from '{}' are throttled: they look like abuse or model extraction \
                     (see /api/v1/deployments/{}/monitoring/abuse)",
                    caller.unwrap_or("anonymous"),
                    live.name
                ),
            );
            refusal.retry_after_seconds = Some(((until - now) as u64).div_ceil(1_000_000).max(1));
            Err(refusal)
        }
    }
}

/// 413: the body is over the limit.
fn too_large() -> InferenceError {
    InferenceError::new(
        ErrorCode::RequestTooLarge,
        format!(
            "the request body exceeds {} bytes",
            crate::extract::MAX_JSON_BODY
        ),
    )
}

/// Refuses a request whose `Content-Length` is over the limit with 413
/// before reading its body, so the client gets the answer instead of
/// writing megabytes into a connection about to close.
pub(crate) async fn refuse_oversized(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > crate::extract::MAX_JSON_BODY as u64) {
        return too_large().into_response();
    }
    next.run(request).await
}

/// The request body, or the reason it could not be read (too large: 413).
fn body_bytes(body: Result<Bytes, BytesRejection>) -> InferenceResult<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            InferenceError::new(
                ErrorCode::BadRequest,
                format!("cannot read the request body: {rejection}"),
            )
        }
    })
}

fn live(serving: &Serving, name: &str) -> InferenceResult<Arc<LiveDeployment>> {
    serving
        .deployment(name)
        .map(|slot| slot.live())
        .ok_or_else(|| {
            InferenceError::not_found(format!(
                "Deployment '{name}' does not exist (or is not loaded yet)"
            ))
        })
}

/// Who is calling: the signed-in principal, else the first address of
/// `X-Forwarded-For`, else the peer.
fn caller(
    principal: Option<&Principal>,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<String> {
    if let Some(principal) = principal.filter(|p| p.name() != "anonymous") {
        return Some(principal.name().to_string());
    }
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    forwarded.or_else(|| peer.map(|p| p.ip().to_string()))
}

/// Routes to an arm: pinned by version, or by the deployment's policy; an
/// A/B test keys stickiness on its header, else on the caller.
fn pick(
    live: &LiveDeployment,
    version: Option<&str>,
    headers: &HeaderMap,
    caller: Option<&str>,
) -> InferenceResult<Pick> {
    let key = match live.sticky_header() {
        Some(header) => headers.get(header).and_then(|v| v.to_str().ok()).or(caller),
        None => caller,
    };
    live.choose(version, key).ok_or_else(|| match version {
        Some(v) => InferenceError::not_found(format!(
            "Deployment '{}' does not serve version {v}",
            live.name
        )),
        None => InferenceError::new(ErrorCode::TemporarilyUnavailable, "no arm takes traffic"),
    })
}

fn answer_headers(response: &mut Response, answer: &Answer) {
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-sextant-prediction-id", &answer.prediction_id);
    set("x-sextant-model", &answer.model.name);
    set("x-sextant-model-version", &answer.model.version.to_string());
    set("x-sextant-arm", &answer.arm);
    if let Some((outlier, _, _)) = outlier_fields(answer) {
        set("x-sextant-outlier", if outlier { "true" } else { "false" });
    }
}

/// Whether any row is an outlier, the highest score, and each row's flag
/// when the request had several rows. `None` while the deployment's
/// reference window is still filling.
fn outlier_fields(answer: &Answer) -> Option<(bool, f64, Option<Vec<bool>>)> {
    let verdicts = answer.outliers.as_ref().filter(|v| !v.is_empty())?;
    let outlier = verdicts.iter().any(|v| v.outlier);
    let score = verdicts
        .iter()
        .map(|v| v.score)
        .filter(|s| s.is_finite())
        .fold(0.0f64, f64::max);
    let per_row = (verdicts.len() > 1).then(|| verdicts.iter().map(|v| v.outlier).collect());
    Some((outlier, score, per_row))
}

#[derive(Deserialize)]
pub(crate) struct ModelPath {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

/// `POST /v2/models/{name}[/versions/{version}]/infer`.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "inference",
    params(("name" = String, Path, description = "The deployment")),
    request_body = wire::OipInferenceRequest,
    responses((status = 200, body = wire::OipInferenceResponse), (status = 400, body = wire::OipError),
              (status = 404, body = wire::OipError), (status = 503, body = wire::OipError)))]
pub(crate) async fn infer(
    State(serving): State<Serving>,
    Path(path): Path<ModelPath>,
    principal: Option<axum::Extension<Principal>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> InferenceResult<Response> {
    let OipCall {
        live,
        request,
        inputs,
        caller,
        pick,
    } = oip_call(&serving, &path, principal.as_deref(), peer, &headers, body)?;
    let binary_outputs = request.binary_outputs();
    let top_k = explain_top_k(request.parameters.as_ref())?;
    let explained_inputs = top_k.as_ref().map(|_| inputs.clone());
    let mut answer = serving
        .predict(&live, pick, inputs, Layout::Tensors, caller)
        .await?;
    let explanations = match (top_k, explained_inputs) {
        (Some((k, options)), Some(inputs)) => {
            let (explanation, _) = serving
                .explain(&live, pick, inputs, Layout::Tensors, &options)
                .await?;
            Some(serving::explain::top_contributions(&explanation, k))
        }
        _ => None,
    };
    // (output, in binary?) in the order asked, or every output.
    let outputs: Vec<(sextant_serve::NamedTensor, bool)> =
        match request.outputs.filter(|r| !r.is_empty()) {
            None => std::mem::take(&mut answer.outputs)
                .into_iter()
                .map(|o| (o, binary_outputs))
                .collect(),
            Some(requested) => {
                let mut chosen = Vec::with_capacity(requested.len());
                for wanted in requested {
                    let output = answer
                        .outputs
                        .iter()
                        .find(|o| o.name == wanted.name)
                        .ok_or_else(|| {
                            let names: Vec<&str> =
                                answer.outputs.iter().map(|o| o.name.as_str()).collect();
                            InferenceError::bad(format!(
                                "unknown output '{}'; the model has {}",
                                wanted.name,
                                names.join(", ")
                            ))
                        })?;
                    chosen.push((output.clone(), binary_outputs || wanted.binary()));
                }
                chosen
            }
        };
    let mut parameters = wire::Parameters::new();
    parameters.insert("prediction_id".into(), answer.prediction_id.clone().into());
    parameters.insert("arm".into(), answer.arm.clone().into());
    parameters.insert("registered_model".into(), answer.model.name.clone().into());
    if let Some(explanations) = explanations {
        parameters.insert("explanations".into(), explanations);
    }
    if let Some((outlier, score, per_row)) = outlier_fields(&answer) {
        parameters.insert("outlier".into(), outlier.into());
        parameters.insert("outlier_score".into(), score.into());
        if let Some(per_row) = per_row {
            parameters.insert("outliers".into(), per_row.into());
        }
    }
    let mut binary_body = Vec::new();
    let response = wire::OipInferenceResponse {
        model_name: live.name.clone(),
        model_version: answer.model.version.to_string(),
        id: request.id.unwrap_or_else(|| answer.prediction_id.clone()),
        parameters,
        outputs: outputs
            .into_iter()
            .map(|(output, binary)| match binary {
                true => serving::oip_binary_output(output, &mut binary_body),
                false => serving::oip_output(output),
            })
            .collect(),
    };
    let mut http = if binary_body.is_empty() {
        Json(response).into_response()
    } else {
        // The JSON header, then the outputs' bytes; the header's length
        // tells the client where the JSON ends.
        let mut bytes = serde_json::to_vec(&response)
            .map_err(|e| InferenceError::new(ErrorCode::InternalError, e.to_string()))?;
        let json_length = bytes.len();
        bytes.extend_from_slice(&binary_body);
        let mut http = bytes.into_response();
        let headers = http.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(INFERENCE_HEADER_LENGTH, HeaderValue::from(json_length));
        http
    };
    answer_headers(&mut http, &answer);
    Ok(http)
}

/// An OIP request ready to run: the deployment's snapshot, the request
/// (its inputs taken out, decoded), who calls and the arm that answers.
struct OipCall {
    live: Arc<LiveDeployment>,
    request: wire::OipInferenceRequest,
    inputs: Vec<sextant_serve::NamedTensor>,
    caller: Option<String>,
    pick: Pick,
}

/// What infer and explain share: the body (JSON, or JSON then binary
/// tensors), the inputs, the caller (refused when flagged), the arm.
fn oip_call(
    serving: &Serving,
    path: &ModelPath,
    principal: Option<&Principal>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> InferenceResult<OipCall> {
    let body = body_bytes(body)?;
    let live = live(serving, &path.name)?;
    let (json, binary) = split_binary_body(headers, &body)?;
    let mut request: wire::OipInferenceRequest = serde_json::from_slice(json)
        .map_err(|e| InferenceError::bad(format!("invalid inference request: {e}")))?;
    let inputs = serving::oip_inputs(std::mem::take(&mut request.inputs), binary)?;
    let caller = caller(principal, headers, peer.map(|p| (p.0).0));
    refuse_flagged_caller(serving, &live, caller.as_deref())?;
    let pick = pick(&live, path.version.as_deref(), headers, caller.as_deref())?;
    Ok(OipCall {
        live,
        request,
        inputs,
        caller,
        pick,
    })
}

/// `parameters.explain_top_k` of an infer request (with the explain
/// parameters, `method` and so on, under `explain_*`).
fn explain_top_k(
    parameters: Option<&wire::Parameters>,
) -> InferenceResult<Option<(usize, serving::explain::ExplainRequest)>> {
    let Some(parameters) = parameters else {
        return Ok(None);
    };
    let Some(k) = parameters.get("explain_top_k") else {
        return Ok(None);
    };
    let k = k.as_u64().filter(|&k| k >= 1).ok_or_else(|| {
        InferenceError::bad("parameter 'explain_top_k' must be a whole number of at least 1")
    })?;
    let renamed: Vec<(String, serde_json::Value)> = parameters
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix("explain_")
                .filter(|k| *k != "top_k")
                .map(|k| (k.to_owned(), value.clone()))
        })
        .collect();
    let options = serving::explain::ExplainRequest::from_json(renamed.iter().map(|(k, v)| (k, v)))
        .map_err(InferenceError::bad)?;
    Ok(Some((k as usize, options)))
}

/// The wire form of an explanation by `pick` of `live`.
fn explain_response(
    live: &LiveDeployment,
    pick: Pick,
    explanation: sextant_serve::Explanation,
    background_rows: Option<usize>,
) -> wire::ExplainResponse {
    let arm = &live.arms[pick.index()];
    let (m, k) = (explanation.features.len(), explanation.outputs.len());
    let values = (0..explanation.rows)
        .map(|row| {
            (0..m)
                .map(|f| (0..k).map(|o| explanation.value(row, f, o)).collect())
                .collect()
        })
        .collect();
    let predictions = explanation
        .predictions
        .chunks(k.max(1))
        .map(<[f64]>::to_vec)
        .collect();
    wire::ExplainResponse {
        model_name: live.name.clone(),
        model_version: arm.model_ref().version.to_string(),
        registered_model: arm.model_ref().name.clone(),
        arm: arm.name.clone(),
        method: explanation.method.name().into(),
        value_function: explanation.method.value_function().into(),
        output_space: explanation.output_space.name().into(),
        background_rows: explanation.background_hash.as_ref().and(background_rows),
        additivity_error: explanation.additivity_error(),
        background_hash: explanation.background_hash,
        features: explanation.features,
        outputs: explanation.outputs,
        base_values: explanation.base_values,
        values,
        predictions,
    }
}

/// `POST /v2/models/{name}[/versions/{version}]/explain`: SHAP values of
/// the rows of an inference request. `parameters` may name the `method`
/// (`tree_path_dependent`, `tree_interventional`, `linear`, `kernel`),
/// and for KernelSHAP `samples` and `seed`.
#[utoipa::path(post, path = "/v2/models/{name}/explain", tag = "inference",
    params(("name" = String, Path, description = "The deployment")),
    request_body = wire::OipInferenceRequest,
    responses((status = 200, body = wire::ExplainResponse), (status = 400, body = wire::OipError),
              (status = 404, body = wire::OipError), (status = 503, body = wire::OipError)))]
pub(crate) async fn explain(
    State(serving): State<Serving>,
    Path(path): Path<ModelPath>,
    principal: Option<axum::Extension<Principal>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> InferenceResult<Json<wire::ExplainResponse>> {
    let OipCall {
        live,
        request,
        inputs,
        pick,
        ..
    } = oip_call(&serving, &path, principal.as_deref(), peer, &headers, body)?;
    let options = serving::explain::ExplainRequest::from_json(request.parameters.iter().flatten())
        .map_err(InferenceError::bad)?;
    let (explanation, rows) = serving
        .explain(&live, pick, inputs, Layout::Tensors, &options)
        .await?;
    Ok(Json(explain_response(&live, pick, explanation, rows)))
}

/// `POST /deployments/{name}/explain`: SHAP values of the rows of a
/// scoring request (any of MLflow's `/invocations` formats). The options
/// are in the JSON body's `params` or the query string (`?method=kernel`).
#[utoipa::path(post, path = "/deployments/{name}/explain", tag = "inference",
    params(("name" = String, Path, description = "The deployment"),
           ("method" = Option<String>, Query, description = "tree_path_dependent, tree_interventional, linear or kernel"),
           ("samples" = Option<u64>, Query, description = "KernelSHAP coalitions per row"),
           ("seed" = Option<u64>, Query, description = "KernelSHAP sampler seed")),
    request_body(content = Object, description = "One of dataframe_split, dataframe_records, instances, inputs (JSON, with optional params), or CSV with a header row"),
    responses((status = 200, body = wire::ExplainResponse), (status = 400, body = wire::OipError),
              (status = 404, body = wire::OipError), (status = 503, body = wire::OipError)))]
pub(crate) async fn deployment_explain(
    State(serving): State<Serving>,
    Path(name): Path<String>,
    uri: axum::http::Uri,
    principal: Option<axum::Extension<Principal>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> InferenceResult<Json<wire::ExplainResponse>> {
    let body = body_bytes(body)?;
    let live = live(&serving, &name)?;
    let (inputs, layout, given) = scoring_inputs(&headers, &body)?;
    let mut params: Vec<(String, serde_json::Value)> = given.into_iter().collect();
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let value = match key.as_ref() {
            "samples" | "seed" => value
                .parse::<u64>()
                .map(serde_json::Value::from)
                .unwrap_or_else(|_| serde_json::Value::String(value.into_owned())),
            _ => serde_json::Value::String(value.into_owned()),
        };
        params.push((key.into_owned(), value));
    }
    let options = serving::explain::ExplainRequest::from_json(params.iter().map(|(k, v)| (k, v)))
        .map_err(InferenceError::bad)?;
    let caller = caller(principal.as_deref(), &headers, peer.map(|p| (p.0).0));
    refuse_flagged_caller(&serving, &live, caller.as_deref())?;
    let pick = pick(&live, None, &headers, caller.as_deref())?;
    let (explanation, rows) = serving
        .explain(&live, pick, inputs, layout, &options)
        .await?;
    Ok(Json(explain_response(&live, pick, explanation, rows)))
}

/// Triton's binary tensor data extension: a request whose
/// `Inference-Header-Content-Length` says how much of the body is JSON;
/// the rest is the inputs' raw elements.
const INFERENCE_HEADER_LENGTH: HeaderName =
    HeaderName::from_static("inference-header-content-length");

fn split_binary_body<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
) -> InferenceResult<(&'a [u8], &'a [u8])> {
    let Some(value) = headers.get(&INFERENCE_HEADER_LENGTH) else {
        return Ok((body, &[]));
    };
    let length = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n <= body.len())
        .ok_or_else(|| {
            InferenceError::bad(format!(
                "Inference-Header-Content-Length must be a byte count within the {}-byte body",
                body.len()
            ))
        })?;
    Ok(body.split_at(length))
}

/// `GET /v2/models/{name}[/versions/{version}]`: the inputs a caller
/// sends (the signature's columns, or the model's own inputs) and the
/// outputs it gets.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "inference", params(("name" = String, Path)),
    responses((status = 200, body = wire::OipModelMetadata), (status = 404, body = wire::OipError)))]
pub(crate) async fn model_metadata(
    State(serving): State<Serving>,
    Path(path): Path<ModelPath>,
) -> InferenceResult<Json<wire::OipModelMetadata>> {
    let live = live(&serving, &path.name)?;
    let index = match path.version.as_deref() {
        Some(version) => live
            .choose(Some(version), None)
            .ok_or_else(|| {
                InferenceError::not_found(format!(
                    "Deployment '{}' does not serve version {version}",
                    live.name
                ))
            })?
            .index(),
        None => live
            .arms
            .iter()
            .position(|a| a.name == live.spec.primary().name)
            .unwrap_or(0),
    };
    let arm = &live.arms[index];
    let model = &arm.model.model;
    let tensor = |spec: sextant_serve::TensorSpec| wire::OipMetadataTensor {
        name: spec.name,
        datatype: spec.dtype.as_oip(),
        shape: spec.shape,
    };
    let mut versions: Vec<String> = live
        .arms
        .iter()
        .map(|a| a.model_ref().version.to_string())
        .collect();
    versions.dedup();
    let mut parameters = wire::Parameters::new();
    parameters.insert(
        "registered_model".into(),
        arm.model_ref().name.clone().into(),
    );
    parameters.insert("arm".into(), arm.name.clone().into());
    parameters.insert("revision".into(), live.revision.into());
    Ok(Json(wire::OipModelMetadata {
        name: live.name.clone(),
        versions,
        platform: model.info().engine.to_string(),
        inputs: model.declared_inputs().into_iter().map(tensor).collect(),
        outputs: model
            .info()
            .outputs
            .clone()
            .into_iter()
            .map(tensor)
            .collect(),
        parameters,
    }))
}

/// `GET /v2/models/{name}[/versions/{version}]/ready`: 200 when serving.
pub(crate) async fn model_ready(
    State(serving): State<Serving>,
    Path(path): Path<ModelPath>,
) -> InferenceResult<StatusCode> {
    let live = live(&serving, &path.name)?;
    if let Some(version) = path.version.as_deref() {
        live.choose(Some(version), None).ok_or_else(|| {
            InferenceError::not_found(format!(
                "Deployment '{}' does not serve version {version}",
                live.name
            ))
        })?;
    }
    Ok(StatusCode::OK)
}

/// `GET /v2/health/live`.
pub(crate) async fn live_probe() -> StatusCode {
    StatusCode::OK
}

/// `GET /v2/health/ready`: 200 once every deployment serves its latest
/// revision, 400 (the protocol's "false") before.
pub(crate) async fn ready_probe(State(serving): State<Serving>) -> StatusCode {
    if serving.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// `GET /v2`: server metadata.
pub(crate) async fn server_metadata() -> Json<wire::OipServerMetadata> {
    Json(wire::OipServerMetadata {
        name: "sextant".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec!["model_repository".into()],
    })
}

/// `POST /v2/repository/index` (Triton's model repository extension):
/// every deployment the caller may read, with its state. A replica (no
/// guard, no principal) lists the one deployment it serves.
pub(crate) async fn repository_index(
    State(serving): State<Serving>,
    principal: Option<axum::Extension<Principal>>,
) -> Json<serde_json::Value> {
    let readable = principal.map_or(sextant_core::Readable::All, |p| {
        p.visible(sextant_core::ResourceKind::Deployment)
    });
    let models: Vec<serde_json::Value> = serving
        .deployment_names()
        .into_iter()
        .filter(|name| readable.contains(name))
        .filter_map(|name| serving.deployment(&name).map(|slot| (name, slot)))
        .map(|(name, slot)| {
            let live = slot.live();
            let (_, failure) = slot.latest();
            serde_json::json!({
                "name": name,
                "version": live.spec.primary().model.version.to_string(),
                "state": if failure.is_some() { "UNAVAILABLE" } else { "READY" },
                "reason": failure.unwrap_or_default(),
            })
        })
        .collect();
    Json(serde_json::Value::Array(models))
}

/// `POST /invocations`: MLflow's scoring protocol, for the only deployment
/// (or the one named by `?deployment=`).
pub(crate) async fn invocations(
    State(serving): State<Serving>,
    uri: axum::http::Uri,
    principal: Option<axum::Extension<Principal>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> InferenceResult<Response> {
    let body = body_bytes(body)?;
    let name = crate::resource::invoked_deployment(uri.query().unwrap_or(""), Some(&serving))
        .map_err(InferenceError::bad)?;
    score(
        serving,
        name,
        principal.as_deref(),
        peer.map(|p| (p.0).0),
        headers,
        body,
    )
    .await
}

/// `POST /deployments/{name}/invocations`.
#[utoipa::path(post, path = "/deployments/{name}/invocations", tag = "inference",
    params(("name" = String, Path, description = "The deployment")),
    request_body(content = Object, description = "One of dataframe_split, dataframe_records, instances, inputs (JSON), or CSV with a header row (Content-Type: text/csv)"),
    responses((status = 200, description = "{\"predictions\": …}, with the prediction id, model version and arm in headers"),
              (status = 400, body = wire::OipError), (status = 404, body = wire::OipError)))]
pub(crate) async fn deployment_invocations(
    State(serving): State<Serving>,
    Path(name): Path<String>,
    principal: Option<axum::Extension<Principal>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> InferenceResult<Response> {
    let body = body_bytes(body)?;
    score(
        serving,
        name,
        principal.as_deref(),
        peer.map(|p| (p.0).0),
        headers,
        body,
    )
    .await
}

/// The rows of a scoring request (CSV by its content type, else JSON),
/// with the JSON's `params`.
fn scoring_inputs(
    headers: &HeaderMap,
    body: &[u8],
) -> InferenceResult<(
    Vec<sextant_serve::NamedTensor>,
    Layout,
    serving::ScoringParams,
)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    if content_type.starts_with("text/csv") {
        Ok((
            serving::read_csv_columns(body)?,
            Layout::Columns,
            Default::default(),
        ))
    } else if content_type.starts_with("application/json")
        || content_type.is_empty()
        // What `curl -d` sends when no type is given: the body is still JSON.
        || content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.starts_with("text/plain")
    {
        Ok(serving::scoring_json_with_params(body)?)
    } else {
        Err(InferenceError::new(
            ErrorCode::BadRequest,
            format!("unsupported content type '{content_type}': send application/json or text/csv"),
        ))
    }
}

async fn score(
    serving: Serving,
    name: String,
    principal: Option<&Principal>,
    peer: Option<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> InferenceResult<Response> {
    let live = live(&serving, &name)?;
    let (inputs, layout, _) = scoring_inputs(&headers, &body)?;
    let caller = caller(principal, &headers, peer);
    refuse_flagged_caller(&serving, &live, caller.as_deref())?;
    let pick = pick(&live, None, &headers, caller.as_deref())?;
    let answer = serving.predict(&live, pick, inputs, layout, caller).await?;
    let predictions = serving::mlflow_predictions(
        &answer.outputs,
        answer.default_output,
        answer.engine == "python",
    );
    let mut body = serde_json::json!({
        "predictions": predictions,
        "prediction_id": answer.prediction_id,
        "model_version": answer.model.version.to_string(),
        "arm": answer.arm,
    });
    if let Some((outlier, score, per_row)) = outlier_fields(&answer) {
        body["outlier"] = outlier.into();
        body["outlier_score"] = score.into();
        if let Some(per_row) = per_row {
            body["outliers"] = per_row.into();
        }
    }
    let mut response = Json(body).into_response();
    answer_headers(&mut response, &answer);
    Ok(response)
}

/// `GET /ping`: MLflow's scoring-server health check.
pub(crate) async fn ping(State(serving): State<Serving>) -> StatusCode {
    if serving.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /metrics`: Prometheus' text format.
pub(crate) async fn metrics(State(serving): State<Serving>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = serving.metrics().render();
            if let Some(leader) = serving.leader_metric() {
                text.push_str(&leader);
            }
            text.push_str(&crate::serving::monitoring::render_metrics(
                &serving.monitors(),
                crate::serving::now_micros(),
            ));
            text
        },
    )
        .into_response()
}
