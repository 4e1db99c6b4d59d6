//! How a request names the resource it acts on.
//!
//! MLflow's clients name a run as `run_id`, `run_uuid` or both, an
//! experiment by id or by name, artifacts by a path whose first segment is
//! the experiment. The guard checks permissions on what these functions
//! return and the handlers act on what they return: there is no second
//! reading of the same field that could pick another resource (an empty
//! `run_id` beside someone else's `run_uuid` was such a reading).

use std::collections::HashMap;

use axum::extract::Path;
use axum::http::request::Parts;
use axum::http::Method;
use axum::RequestPartsExt;
use sextant_artifacts::ArtifactPath;

use crate::error::{ApiError, ApiResult};
use crate::serving::Serving;

/// The run a request names. An empty field counts as absent; two fields
/// that name different runs are refused rather than one of them chosen.
pub(crate) fn run_id(run_id: Option<String>, run_uuid: Option<String>) -> ApiResult<String> {
    let run_id = run_id.filter(|id| !id.is_empty());
    let run_uuid = run_uuid.filter(|id| !id.is_empty());
    match (run_id, run_uuid) {
        (Some(run_id), Some(run_uuid)) if run_id != run_uuid => Err(ApiError::invalid(format!(
            "run_id '{run_id}' and run_uuid '{run_uuid}' name different runs; send one of them"
        ))),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Err(ApiError::missing("run_id")),
    }
}

/// An experiment id in its one spelling (`"007"` and `" 7"` are experiment
/// `7`), so a permission granted on `7` is the permission checked.
pub(crate) fn experiment_id(value: Option<String>) -> ApiResult<String> {
    let text = value
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::missing("experiment_id"))?;
    canonical_experiment_id(&text)
}

/// The experiment a new run goes to: MLflow puts runs that name none into
/// the default experiment `0`.
pub(crate) fn experiment_id_or_default(value: Option<String>) -> ApiResult<String> {
    match value.filter(|id| !id.is_empty()) {
        None => Ok("0".to_string()),
        Some(text) => canonical_experiment_id(&text),
    }
}

pub(crate) fn canonical_experiment_id(text: &str) -> ApiResult<String> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .map(|id| id.to_string())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value '{text}' for parameter 'experiment_id' supplied: experiment ids are numbers"
            ))
        })
}

/// An artifact-proxy path and the experiment whose files it holds: its
/// first segment when that is an experiment id in its one spelling. Other
/// paths (the root, which lists every experiment, or a location an admin
/// chose) belong to no experiment, so only admins reach them.
pub(crate) struct ArtifactTarget {
    pub(crate) path: ArtifactPath,
    pub(crate) experiment: Option<String>,
}

pub(crate) fn artifact_target(path: &str) -> ApiResult<ArtifactTarget> {
    let path = ArtifactPath::parse(path)?;
    let experiment = path
        .as_str()
        .split('/')
        .next()
        .filter(|first| canonical_experiment_id(first).is_ok_and(|id| id == *first))
        .map(str::to_string);
    Ok(ArtifactTarget { path, experiment })
}

/// The query of an artifact listing (`GET …/artifacts?path=`).
#[derive(serde::Deserialize)]
pub(crate) struct ArtifactQuery {
    pub(crate) path: Option<String>,
}

#[derive(serde::Deserialize)]
struct InvocationsQuery {
    deployment: Option<String>,
}

/// The deployment MLflow's `/invocations` calls: `?deployment=NAME`, else
/// the only deployment served. The message says why there is none.
pub(crate) fn invoked_deployment(query: &str, serving: Option<&Serving>) -> Result<String, String> {
    let named: InvocationsQuery = crate::extract::parse_request(&Method::GET, query, &[])
        .map_err(|err| err.message().to_string())?;
    if let Some(name) = named.deployment {
        return if name.is_empty() {
            Err("the deployment parameter is empty".to_string())
        } else {
            Ok(name)
        };
    }
    let serving = serving.ok_or_else(|| "this server serves no deployments".to_string())?;
    serving.sole_deployment().ok_or_else(|| {
        let names = serving.deployment_names();
        if names.is_empty() {
            "nothing is deployed".to_string()
        } else {
            format!(
                "several deployments are served ({}); call /deployments/NAME/invocations or add ?deployment=NAME",
                names.join(", ")
            )
        }
    })
}

/// A route's path parameters, decoded as the handlers' `Path` extractors
/// decode them; empty for routes without any.
pub(crate) async fn path_params(parts: &mut Parts) -> HashMap<String, String> {
    parts
        .extract::<Path<HashMap<String, String>>>()
        .await
        .map(|Path(params)| params)
        .unwrap_or_default()
}

/// The deployment a serving route calls, read as its handler reads it: the
/// `{name}` path parameter, or for MLflow's `/invocations` the query or the
/// only deployment. `Ok(None)` for routes that call no deployment (health,
/// server metadata, metrics).
pub(crate) async fn called_deployment(
    parts: &mut Parts,
    serving: Option<&Serving>,
) -> Result<Option<String>, String> {
    if let Some(name) = path_params(parts).await.remove("name") {
        return Ok(Some(name));
    }
    if parts.uri.path() != "/invocations" {
        return Ok(None);
    }
    invoked_deployment(parts.uri.query().unwrap_or(""), serving).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_named_once() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(run_id(some("a"), None).unwrap(), "a");
        assert_eq!(run_id(None, some("a")).unwrap(), "a");
        assert_eq!(run_id(some(""), some("a")).unwrap(), "a");
        assert_eq!(run_id(some("a"), some("")).unwrap(), "a");
        assert_eq!(run_id(some("a"), some("a")).unwrap(), "a");
        assert!(run_id(some("a"), some("b")).is_err());
        assert!(run_id(some(""), some("")).is_err());
        assert!(run_id(None, None).is_err());
    }

    #[test]
    fn experiment_ids_have_one_spelling() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(experiment_id(some("007")).unwrap(), "7");
        assert_eq!(experiment_id(some(" 7")).unwrap(), "7");
        assert!(experiment_id(some("x")).is_err());
        assert!(experiment_id(some("-1")).is_err());
        assert!(experiment_id(None).is_err());
        assert_eq!(experiment_id_or_default(some("")).unwrap(), "0");
        assert_eq!(experiment_id_or_default(None).unwrap(), "0");
    }

    #[test]
    fn artifact_paths_name_their_experiment() {
        assert_eq!(
            artifact_target("12/abc/artifacts").unwrap().experiment,
            Some("12".into())
        );
        assert_eq!(artifact_target("").unwrap().experiment, None);
        assert_eq!(artifact_target("x/abc").unwrap().experiment, None);
        assert_eq!(artifact_target("012/abc").unwrap().experiment, None);
        assert!(artifact_target("1/../2/abc").is_err());
    }
}
