//! The web UI's routes: each page fetches what the caller may see (the
//! same `Principal` checks as the API), hands it to `sextant-ui` and sends
//! the markup with the page's security headers. Actions on pages call the
//! JSON APIs from the browser, so they are checked by the API's own rules.
//!
//! Sign-in (`--auth`) makes a session token kept in an HttpOnly cookie
//! (`guard` accepts it like a Bearer token); state-changing requests made
//! with it carry the session's CSRF token.

use std::collections::{BTreeSet, HashMap};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use sextant_core::{Permission, Readable, ResourceKind, ViewType};
use sextant_governance::Principal;
use sextant_ui::pages;
use sextant_ui::pages::artifact::Preview;
use sextant_ui::{Markup, Viewer, CONTENT_SECURITY_POLICY};

use crate::error::{ApiError, ApiResult};
use crate::guard::{Access, AuditNote, RouteSpec};
use crate::AppState;

/// The cookie that carries a web session's token.
pub(crate) const SESSION_COOKIE: &str = "sextant_session";

const PAGE: Access = Access::Page;

pub(crate) static ROUTES: &[RouteSpec] = &[
    route!(GET "/", PAGE, experiments),
    route!(GET "/experiments/{experiment_id}", PAGE, experiment_runs),
    route!(GET "/runs", PAGE, runs_of_several),
    route!(GET "/experiments/{experiment_id}/runs/{run_id}", PAGE, run_page),
    route!(GET "/compare", PAGE, compare),
    route!(GET "/models", PAGE, models),
    route!(GET "/models/{name}", PAGE, model_page),
    route!(GET "/models/{name}/versions/{version}", PAGE, version_page),
    route!(GET "/datasets", PAGE, datasets),
    route!(GET "/datasets/{name}/versions/{version}", PAGE, dataset_version_page),
    route!(GET "/ui/datasets/profile", PAGE, dataset_profile),
    route!(GET "/deployments", PAGE, deployments),
    route!(GET "/deployments/{name}", PAGE, deployment_page),
    route!(GET "/drift", PAGE, drift_page),
    route!(GET "/ui/drift/report", PAGE, drift_report),
    route!(GET "/governance", PAGE, governance),
    route!(GET "/me", PAGE, me),
    route!(GET "/ui/api/series", PAGE, series),
    route!(GET "/ui/artifacts/preview", PAGE, artifact_preview),
    route!(GET "/ui/artifacts/raw", PAGE, artifact_raw),
    route!(POST "/ui/views", Access::SignedIn { mutates: true }, save_view),
    route!(GET "/v/{view_id}", PAGE, open_view),
    route!(GET "/login", Access::Public, login_form),
    route!(POST "/login", Access::Public, login),
    route!(POST "/logout", Access::Public, logout),
    route!(GET "/static/sextant.css", Access::Public, stylesheet),
    route!(GET "/static/sextant.js", Access::Public, script),
];

/// The web session a request came with, put there by the guard.
#[derive(Debug, Clone)]
pub(crate) struct Session(pub(crate) String);

/// The session token in a request's cookies.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|value| !value.is_empty())
}

fn viewer(principal: &Principal, session: Option<&Session>) -> Viewer {
    match principal.caller() {
        None => Viewer::local(),
        Some(caller) => Viewer {
            username: Some(caller.username.clone()),
            is_admin: caller.is_admin,
            csrf_token: session.map(|s| sextant_governance::csrf_token(&s.0)),
        },
    }
}

/// A page with its security headers.
fn html(markup: Markup) -> Response {
    html_with(StatusCode::OK, markup)
}

fn html_with(status: StatusCode, markup: Markup) -> Response {
    html_document(status, markup.into_string(), CONTENT_SECURITY_POLICY)
}

/// An HTML answer under `content_security_policy`, never sniffed, cached or
/// leaking its URL to other origins.
fn html_document(
    status: StatusCode,
    body: String,
    content_security_policy: &'static str,
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(content_security_policy),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_found(what: &str, viewer: &Viewer) -> Response {
    html_with(StatusCode::NOT_FOUND, sextant_ui::not_found(what, viewer))
}

/// The query's pairs, repeated keys kept; never fails.
fn pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn first(pairs: &[(String, String)], key: &str) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

fn all(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A comma-separated list (also given as repeated keys), trimmed, unique, in order.
fn list(pairs: &[(String, String)], key: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    all(pairs, key)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && seen.insert(v.clone()))
        .collect()
}

fn view_type(text: &str) -> ViewType {
    match text {
        "deleted" => ViewType::DeletedOnly,
        "all" => ViewType::All,
        _ => ViewType::ActiveOnly,
    }
}

fn like_filter(field: &str, search: &str) -> Option<String> {
    (!search.is_empty()).then(|| {
        let escaped = search.replace('\\', "\\\\").replace('\'', "\\'");
        format!("{field} ILIKE '%{escaped}%'")
    })
}

fn may(principal: &Principal, kind: ResourceKind, id: &str, permission: Permission) -> bool {
    principal.may(kind, id, permission)
}

// -------------------------------------------------------------- experiments

async fn experiments(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    uri: Uri,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let query = pairs(&uri);
    let search = first(&query, "search");
    let view = match first(&query, "view").as_str() {
        "deleted" => "deleted",
        "all" => "all",
        _ => "active",
    }
    .to_string();
    let page_token = first(&query, "page");
    let found = state
        .store()
        .search_experiments(
            view_type(&view),
            like_filter("name", &search).as_deref(),
            &["last_update_time DESC".to_string()],
            200,
            (!page_token.is_empty()).then_some(page_token.as_str()),
            &principal.visible(ResourceKind::Experiment),
        )
        .await;
    let (experiments, next_page, error) = match found {
        Ok(page) => (page.items, page.next_page_token, None),
        Err(err) => (
            Vec::new(),
            None,
            Some(ApiError::from(err).message().to_string()),
        ),
    };
    let ids: Vec<String> = experiments
        .iter()
        .map(|e| e.experiment_id.clone())
        .collect();
    let activity = state
        .store()
        .experiment_activity(&ids)
        .await
        .unwrap_or_default();
    let rows = experiments
        .into_iter()
        .map(|experiment| {
            let (runs, latest) = activity
                .get(&experiment.experiment_id)
                .copied()
                .unwrap_or((0, 0));
            pages::experiments::ExperimentRow {
                may_edit: may(
                    &principal,
                    ResourceKind::Experiment,
                    &experiment.experiment_id,
                    Permission::Edit,
                ),
                may_manage: may(
                    &principal,
                    ResourceKind::Experiment,
                    &experiment.experiment_id,
                    Permission::Manage,
                ),
                runs,
                last_activity: latest.max(experiment.last_update_time),
                experiment,
            }
        })
        .collect();
    html(pages::experiments::render(
        &pages::experiments::ExperimentsPage {
            rows,
            search,
            view,
            next_page,
            may_create: principal.has_scope(sextant_core::TokenScope::Write),
            error,
        },
        &viewer,
    ))
}

// --------------------------------------------------------------------- runs

async fn experiment_runs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    Path(experiment_id): Path<String>,
    uri: Uri,
) -> Response {
    let base = format!("/experiments/{experiment_id}");
    runs_page(
        state,
        principal,
        session,
        vec![experiment_id],
        base,
        Vec::new(),
        uri,
    )
    .await
}

async fn runs_of_several(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    uri: Uri,
) -> Response {
    let ids = list(&pairs(&uri), "experiments");
    let scope = vec![("experiments".to_string(), ids.join(","))];
    runs_page(state, principal, session, ids, "/runs".into(), scope, uri).await
}

/// Most runs on one page of the table.
const RUNS_PER_PAGE: i64 = 100;

async fn runs_page(
    state: AppState,
    principal: Principal,
    session: Option<Extension<Session>>,
    experiment_ids: Vec<String>,
    base: String,
    scope: Vec<(String, String)>,
    uri: Uri,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let mut experiments = Vec::new();
    for id in &experiment_ids {
        let readable = crate::resource::canonical_experiment_id(id)
            .ok()
            .filter(|id| may(&principal, ResourceKind::Experiment, id, Permission::Read));
        if let Some(id) = readable {
            if let Ok(experiment) = state.store().get_experiment(&id).await {
                experiments.push(experiment);
            }
        }
    }
    if experiments.is_empty() {
        return not_found("This experiment", &viewer);
    }
    let query = pairs(&uri);
    let filter = first(&query, "filter");
    let order = first(&query, "order");
    let view = match first(&query, "view").as_str() {
        "deleted" => "deleted",
        "all" => "all",
        _ => "active",
    }
    .to_string();
    let page_token = first(&query, "page");
    let ids: Vec<String> = experiments
        .iter()
        .map(|e| e.experiment_id.clone())
        .collect();
    let order_by: Vec<String> = if order.is_empty() {
        Vec::new()
    } else {
        vec![order.clone()]
    };
    let found = state
        .store()
        .search_runs(
            &ids,
            (!filter.is_empty()).then_some(filter.as_str()),
            view_type(&view),
            RUNS_PER_PAGE,
            &order_by,
            (!page_token.is_empty()).then_some(page_token.as_str()),
        )
        .await;
    let (runs, next_page, error) = match found {
        Ok(page) => (page.items, page.next_page_token, None),
        Err(err) => (
            Vec::new(),
            None,
            Some(ApiError::from(err).message().to_string()),
        ),
    };
    let keys = |pick: &dyn Fn(&sextant_core::Run) -> Vec<String>| -> Vec<String> {
        runs.iter()
            .flat_map(pick)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let param_keys = keys(&|r| r.data.params.iter().map(|p| p.key.clone()).collect());
    let metric_keys = keys(&|r| r.data.metrics.iter().map(|m| m.key.clone()).collect());
    let tag_keys = keys(&|r| r.data.tags.iter().map(|t| t.key.clone()).collect());
    let chosen = all(&query, "cols");
    let columns: Vec<String> = if chosen.is_empty() {
        // By default: the params that differ among the listed runs, then
        // the metrics.
        let differing = param_keys.iter().filter(|key| {
            let values: BTreeSet<Option<&str>> = runs
                .iter()
                .map(|r| {
                    r.data
                        .params
                        .iter()
                        .find(|p| &&p.key == key)
                        .map(|p| p.value.as_str())
                })
                .collect();
            values.len() > 1
        });
        differing
            .take(8)
            .map(|k| format!("params.{k}"))
            .chain(metric_keys.iter().take(6).map(|k| format!("metrics.{k}")))
            .collect()
    } else {
        chosen
            .into_iter()
            .filter(|c| c != "-" && c.contains('.'))
            .collect()
    };
    let stat = pages::runs::MetricStat::parse(&first(&query, "stat"));
    let run_ids: Vec<String> = runs.iter().map(|r| r.info.run_id.clone()).collect();
    let summaries = if stat == pages::runs::MetricStat::Last {
        HashMap::new()
    } else {
        let metric_columns: Vec<String> = columns
            .iter()
            .filter_map(|c| c.strip_prefix("metrics.").map(str::to_string))
            .collect();
        state
            .store()
            .metric_extremes(&run_ids, &metric_columns)
            .await
            .unwrap_or_default()
    };
    let children = state
        .store()
        .child_counts(&run_ids)
        .await
        .unwrap_or_default();
    let all_allow = |permission| {
        ids.iter()
            .all(|id| may(&principal, ResourceKind::Experiment, id, permission))
    };
    let data = pages::runs::RunsPage {
        base,
        scope,
        rows: runs
            .into_iter()
            .map(|run| pages::runs::RunRow {
                children: children.get(&run.info.run_id).copied().unwrap_or(0),
                run,
            })
            .collect(),
        filter,
        order,
        view,
        stat,
        group_by: first(&query, "group"),
        columns,
        param_keys,
        metric_keys,
        tag_keys,
        summaries,
        page_token,
        next_page,
        error,
        may_edit: all_allow(Permission::Edit),
        may_manage: all_allow(Permission::Manage),
        experiments,
    };
    html(pages::runs::render(&data, &viewer))
}

// ---------------------------------------------------------------------- run

/// A run the principal may read, or `None`.
async fn readable_run(
    state: &AppState,
    principal: &Principal,
    run_id: &str,
) -> Option<sextant_core::Run> {
    let run = state.store().get_run(run_id).await.ok()?;
    may(
        principal,
        ResourceKind::Experiment,
        &run.info.experiment_id,
        Permission::Read,
    )
    .then_some(run)
}

async fn run_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    Path((experiment_id, run_id)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let Some(run) = readable_run(&state, &principal, &run_id).await else {
        return not_found("This run", &viewer);
    };
    if run.info.experiment_id != experiment_id {
        return Redirect::to(&pages::runs::run_href(&run)).into_response();
    }
    let Ok(experiment) = state.store().get_experiment(&experiment_id).await else {
        return not_found("This run's experiment", &viewer);
    };
    let child_ids = state
        .store()
        .child_run_ids(&run.info.run_id)
        .await
        .unwrap_or_default();
    let (children, _) = readable_runs(&state, &principal, &child_ids).await;
    let versions = state
        .store()
        .search_model_versions(
            Some(&format!("run_id = '{}'", run.info.run_id)),
            200,
            &[],
            None,
            &principal.visible(ResourceKind::RegisteredModel),
        )
        .await
        .map(|page| page.items)
        .unwrap_or_default();
    let dir = first(&pairs(&uri), "dir");
    let (artifacts, artifact_error) =
        match super::artifacts::list_under_uri(&state, &run.info.artifact_uri, &dir).await {
            Ok(listing) => (
                listing
                    .files
                    .into_iter()
                    .map(|file| pages::run::ArtifactEntry {
                        path: file
                            .path
                            .rsplit('/')
                            .next()
                            .unwrap_or(&file.path)
                            .to_string(),
                        is_dir: file.is_dir,
                        size: file.file_size,
                    })
                    .collect(),
                None,
            ),
            Err(err) => (Vec::new(), Some(err.message().to_string())),
        };
    let may_edit = may(
        &principal,
        ResourceKind::Experiment,
        &experiment_id,
        Permission::Edit,
    );
    html(pages::run::render(
        &pages::run::RunPage {
            experiment,
            run,
            children,
            versions,
            artifact_dir: dir,
            artifacts,
            artifact_error,
            may_edit,
        },
        &viewer,
    ))
}

// ------------------------------------------------------------------ compare

/// Runs by id that the principal may read, in the order asked; how many
/// were left out.
async fn readable_runs(
    state: &AppState,
    principal: &Principal,
    ids: &[String],
) -> (Vec<sextant_core::Run>, usize) {
    let mut by_experiment: HashMap<String, Vec<String>> = HashMap::new();
    for id in ids {
        if let Ok(Some(experiment)) = state.governance().experiment_of_run(id).await {
            let experiment = experiment.to_string();
            if may(
                principal,
                ResourceKind::Experiment,
                &experiment,
                Permission::Read,
            ) {
                by_experiment
                    .entry(experiment)
                    .or_default()
                    .push(id.clone());
            }
        }
    }
    let mut found: HashMap<String, sextant_core::Run> = HashMap::new();
    for (experiment, run_ids) in by_experiment {
        for chunk in run_ids.chunks(500) {
            let quoted: Vec<String> = chunk
                .iter()
                .map(|id| format!("'{}'", id.replace('\'', "")))
                .collect();
            let filter = format!("attributes.run_id IN ({})", quoted.join(","));
            if let Ok(page) = state
                .store()
                .search_runs(
                    std::slice::from_ref(&experiment),
                    Some(&filter),
                    ViewType::All,
                    1000,
                    &[],
                    None,
                )
                .await
            {
                for run in page.items {
                    found.insert(run.info.run_id.clone(), run);
                }
            }
        }
    }
    let runs: Vec<sextant_core::Run> = ids.iter().filter_map(|id| found.remove(id)).collect();
    let missing = ids.len() - runs.len();
    (runs, missing)
}

async fn compare(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    uri: Uri,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let mut ids = list(&pairs(&uri), "runs");
    ids.truncate(pages::compare::MAX_COMPARED);
    let (runs, missing) = readable_runs(&state, &principal, &ids).await;
    html(pages::compare::render(
        &pages::compare::ComparePage { runs, missing },
        &viewer,
    ))
}

// ------------------------------------------------------------------- series

/// `GET /ui/api/series?runs=a,b&metric=loss&x=step|time|relative|metric:K
/// &smooth=ema:0.6&px=800[&xmin=&xmax=][&group=params.K]`: each run's
/// series (or each group's mean ± std), smoothed at full resolution, then
/// cut to about `px` buckets keeping each bucket's extremes. Charts never
/// receive raw history.
/// Buckets one chart answer spreads over its series (each bucket is up to
/// two points).
const SERIES_POINT_BUDGET: usize = 20_000;

async fn series(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    uri: Uri,
) -> ApiResult<Response> {
    use sextant_ui::chart::{downsample, smooth, Point, Smoothing};
    let query = pairs(&uri);
    let metric = first(&query, "metric");
    if metric.is_empty() {
        return Err(ApiError::missing("metric"));
    }
    let mut ids = list(&query, "runs");
    ids.truncate(pages::compare::MAX_COMPARED);
    let (runs, _) = readable_runs(&state, &principal, &ids).await;
    let run_ids: Vec<String> = runs.iter().map(|r| r.info.run_id.clone()).collect();
    let x_mode = first(&query, "x");
    let smoothing = Smoothing::parse(&first(&query, "smooth"));
    let px: usize = first(&query, "px").parse().unwrap_or(800).clamp(50, 4000);
    let bound = |key: &str| {
        first(&query, key)
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    };
    let (xmin, xmax) = (bound("xmin"), bound("xmax"));
    let cache = state.series_cache();
    let series = cache.histories(state.store(), &run_ids, &metric).await?;
    let x_series = match x_mode.strip_prefix("metric:") {
        Some(other) => Some(cache.histories(state.store(), &run_ids, other).await?),
        None => None,
    };
    // Each run's points, x as asked, smoothed at full resolution.
    let mut shaped: Vec<(&sextant_core::Run, Vec<Point>)> = Vec::new();
    for run in &runs {
        let Some(history) = series.get(&run.info.run_id) else {
            continue;
        };
        let first_ts = history.first().map_or(0, |p| p.1);
        let x_of_step: Option<HashMap<i64, f64>> = x_series.as_ref().map(|all| {
            all.get(&run.info.run_id)
                .map(|points| {
                    points
                        .iter()
                        .map(|(step, _, value)| (*step, *value))
                        .collect()
                })
                .unwrap_or_default()
        });
        let mut points: Vec<Point> = history
            .iter()
            .filter_map(|(step, ts, value)| {
                let x = match (x_mode.as_str(), &x_of_step) {
                    (_, Some(map)) => *map.get(step)?,
                    ("time", _) => *ts as f64,
                    ("relative", _) => (*ts - first_ts) as f64,
                    _ => *step as f64,
                };
                Some(Point { x, y: *value })
            })
            .collect();
        if x_of_step.is_some() {
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
        }
        let smoothed = smooth(&points, smoothing);
        let visible: Vec<Point> = smoothed
            .into_iter()
            .filter(|p| xmin.is_none_or(|lo| p.x >= lo) && xmax.is_none_or(|hi| p.x <= hi))
            .collect();
        shaped.push((run, visible));
    }
    let (lo, hi) = shaped
        .iter()
        .flat_map(|(_, p)| p.iter())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.x), hi.max(p.x))
        });
    let (lo, hi) = (xmin.unwrap_or(lo), xmax.unwrap_or(hi));
    let name_of = |run: &sextant_core::Run| {
        if run.info.run_name.is_empty() {
            run.info.run_id.clone()
        } else {
            run.info.run_name.clone()
        }
    };
    let group_key = first(&query, "group");
    let out: Vec<serde_json::Value> = if let Some(param) = group_key.strip_prefix("params.") {
        // Mean ± standard deviation per bucket over each group's runs.
        let mut groups: std::collections::BTreeMap<String, Vec<Vec<Option<f64>>>> =
            Default::default();
        let width = if hi > lo { (hi - lo) / px as f64 } else { 1.0 };
        for (run, points) in &shaped {
            let value = run
                .data
                .params
                .iter()
                .find(|p| p.key == param)
                .map_or("(none)".to_string(), |p| p.value.clone());
            let mut grid = vec![None; px];
            for bucket in downsample(points, px, lo, hi) {
                let index = (((bucket.x - lo) / width) as usize).min(px - 1);
                grid[index] = Some(bucket.y);
            }
            groups.entry(value).or_default().push(grid);
        }
        groups
            .into_iter()
            .map(|(value, grids)| {
                let points: Vec<[f64; 4]> = (0..px)
                    .filter_map(|index| {
                        let ys: Vec<f64> = grids.iter().filter_map(|g| g[index]).collect();
                        if ys.is_empty() {
                            return None;
                        }
                        let mean = ys.iter().sum::<f64>() / ys.len() as f64;
                        let std = (ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / ys.len() as f64).sqrt();
                        Some([lo + (index as f64 + 0.5) * width, mean, mean - std, mean + std])
                    })
                    .collect();
                serde_json::json!({"name": format!("{group_key}={value} ({} runs)", grids.len()), "points": points})
            })
            .collect()
    } else {
        // About two points per pixel for a few series; with many, fewer
        // buckets each (their min/max band keeps every extreme), so a
        // hundred runs stay a few hundred kilobytes. Values go out as f32
        // (what a canvas draws), x at full precision (wall time in ms).
        let buckets_per_series = px.min((SERIES_POINT_BUDGET / shaped.len().max(1)).max(100));
        shaped
            .iter()
            .map(|(run, points)| {
                let buckets: Vec<(f64, f32, f32, f32)> =
                    downsample(points, buckets_per_series, lo, hi)
                        .into_iter()
                        .map(|b| (b.x, b.y as f32, b.min as f32, b.max as f32))
                        .collect();
                serde_json::json!({"run": run.info.run_id, "name": name_of(run), "points": buckets})
            })
            .collect()
    };
    Ok(
        axum::Json(serde_json::json!({"metric": metric, "x": x_mode, "series": out}))
            .into_response(),
    )
}

// ---------------------------------------------------------------- artifacts

/// The run's artifact at `path` (relative to the run's root), if the
/// principal may read the run.
async fn run_artifact(
    state: &AppState,
    principal: &Principal,
    uri: &Uri,
) -> Result<(sextant_artifacts::ArtifactPath, String), (StatusCode, String)> {
    let query = pairs(uri);
    let run_id = first(&query, "run");
    let relative = first(&query, "path");
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            "No such artifact, or you may not see it".to_string(),
        )
    };
    let run = readable_run(state, principal, &run_id)
        .await
        .ok_or_else(not_found)?;
    let root = sextant_artifacts::proxied_path(&run.info.artifact_uri)
        .and_then(Result::ok)
        .ok_or_else(not_found)?;
    let relative = sextant_artifacts::ArtifactPath::parse(&relative)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    if relative.is_root() {
        return Err(not_found());
    }
    let full =
        sextant_artifacts::ArtifactPath::parse(&format!("{}/{}", root.as_str(), relative.as_str()))
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok((full, relative.file_name().to_string()))
}

/// What a file's extension says it is; anything that could run in a
/// browser (HTML, SVG, XML, script) is downloaded, never displayed.
fn kind_of(name: &str) -> (&'static str, bool) {
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => ("image/png", true),
        "jpg" | "jpeg" => ("image/jpeg", true),
        "gif" => ("image/gif", true),
        "webp" => ("image/webp", true),
        "txt" | "log" | "md" | "yaml" | "yml" | "py" | "cfg" | "ini" | "toml" | "json" | "csv"
        | "tsv" => ("text/plain; charset=utf-8", true),
        _ if name == "MLmodel" || name == "requirements.txt" => ("text/plain; charset=utf-8", true),
        _ => ("application/octet-stream", false),
    }
}

async fn artifact_raw(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    uri: Uri,
) -> Response {
    let (path, name) = match run_artifact(&state, &principal, &uri).await {
        Ok(found) => found,
        Err((status, message)) => return (status, message).into_response(),
    };
    let download = match state.artifacts().get(&path).await {
        Ok(download) => download,
        Err(err) => return ApiError::from(err).into_response(),
    };
    use futures::TryStreamExt;
    let (content_type, inline) = kind_of(&name);
    let mut response =
        Body::from_stream(download.body.map_err(std::io::Error::other)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Whatever the file holds, it runs nothing in this origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
        ),
    );
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        name.replace(['"', '\\', '\r', '\n'], "_")
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Most bytes of a file read for a preview.
const PREVIEW_BYTES: usize = 512 * 1024;

async fn artifact_preview(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    uri: Uri,
) -> Response {
    let (path, name) = match run_artifact(&state, &principal, &uri).await {
        Ok(found) => found,
        Err((status, message)) => return (status, message).into_response(),
    };
    let raw_href = format!("/ui/artifacts/raw?{}", uri.query().unwrap_or(""));
    let (content_type, inline) = kind_of(&name);
    let body = if content_type.starts_with("image/") {
        Preview::Image(raw_href.clone())
    } else if !inline && !name.ends_with(".parquet") {
        Preview::Download(raw_href.clone())
    } else {
        match read_head(&state, &path).await {
            Err(err) => Preview::Text(format!("cannot read this file: {err}")),
            Ok(bytes) if name.ends_with(".parquet") => {
                parquet_head(bytes).map_or_else(|err| Preview::Text(err), Preview::Table)
            }
            Ok(bytes) if name.ends_with(".csv") || name.ends_with(".tsv") => {
                csv_head(&bytes, if name.ends_with(".tsv") { b'\t' } else { b',' })
            }
            Ok(bytes) if name.ends_with(".json") => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let pretty = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or(text);
                Preview::Text(pretty)
            }
            Ok(bytes) => Preview::Text(String::from_utf8_lossy(&bytes).into_owned()),
        }
    };
    html(pages::artifact::render(&name, &raw_href, &body))
}

async fn read_head(
    state: &AppState,
    path: &sextant_artifacts::ArtifactPath,
) -> Result<Vec<u8>, String> {
    use futures::StreamExt;
    let download = state
        .artifacts()
        .get(path)
        .await
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let mut body = download.body;
    let whole = download.size as usize <= 8 * PREVIEW_BYTES;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= PREVIEW_BYTES && !whole {
            break;
        }
    }
    Ok(bytes)
}

/// The first rows of a CSV file as a table (the header first).
fn csv_head(bytes: &[u8], delimiter: u8) -> Preview {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let rows: Vec<Vec<String>> = reader
        .records()
        .take(51)
        .filter_map(Result::ok)
        .map(|record| {
            record
                .iter()
                .map(|cell| sextant_ui::format::clip(cell, 80))
                .collect()
        })
        .collect();
    Preview::Table(rows)
}

/// The first rows of a Parquet file as a table (the schema's names first).
fn parquet_head(bytes: Vec<u8>) -> Result<Vec<Vec<String>>, String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let reader = builder
        .with_batch_size(50)
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in reader.take(1) {
        let batch = batch.map_err(|e| e.to_string())?;
        rows.push(
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        );
        for row in 0..batch.num_rows().min(50) {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|column| arrow_cast_free::cell(column.as_ref(), row))
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// A cell of an Arrow column as text, for previews (the common types; the
/// rest show their type name).
mod arrow_cast_free {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
    use arrow_array::Array;
    use arrow_schema::DataType;

    pub(super) fn cell(column: &dyn Array, row: usize) -> String {
        if column.is_null(row) {
            return "null".into();
        }
        match column.data_type() {
            DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_string(),
            DataType::Int32 => column.as_primitive::<Int32Type>().value(row).to_string(),
            DataType::Float64 => {
                sextant_ui::format::number(column.as_primitive::<Float64Type>().value(row))
            }
            DataType::Float32 => sextant_ui::format::number(f64::from(
                column.as_primitive::<Float32Type>().value(row),
            )),
            DataType::Utf8 => sextant_ui::format::clip(column.as_string::<i32>().value(row), 80),
            DataType::LargeUtf8 => {
                sextant_ui::format::clip(column.as_string::<i64>().value(row), 80)
            }
            DataType::Boolean => column.as_boolean().value(row).to_string(),
            other => format!("({other})"),
        }
    }
}

// ----------------------------------------------------------------- registry

/// Where each registered model's versions serve, over the deployments the
/// principal may read.
async fn serving_by_model(
    state: &AppState,
    principal: &Principal,
) -> HashMap<String, Vec<pages::registry::Serving>> {
    let mut by_model: HashMap<String, Vec<pages::registry::Serving>> = HashMap::new();
    let Ok(records) = state
        .store()
        .list_deployments(&principal.visible(ResourceKind::Deployment))
        .await
    else {
        return by_model;
    };
    for record in records {
        let Ok(spec) = super::deployments::stored_spec(&record) else {
            continue;
        };
        for arm in spec.arms {
            by_model
                .entry(arm.model.name.clone())
                .or_default()
                .push(pages::registry::Serving {
                    deployment: record.name.clone(),
                    version: arm.model.version,
                    arm: arm.name,
                    weight: arm.weight,
                });
        }
    }
    by_model
}

async fn models(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    uri: Uri,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let query = pairs(&uri);
    let search = first(&query, "search");
    let page_token = first(&query, "page");
    let found = state
        .store()
        .search_registered_models(
            like_filter("name", &search).as_deref(),
            200,
            &["name ASC".to_string()],
            (!page_token.is_empty()).then_some(page_token.as_str()),
            &principal.visible(ResourceKind::RegisteredModel),
        )
        .await;
    let (models, next_page, error) = match found {
        Ok(page) => (page.items, page.next_page_token, None),
        Err(err) => (
            Vec::new(),
            None,
            Some(ApiError::from(err).message().to_string()),
        ),
    };
    let mut serving = serving_by_model(&state, &principal).await;
    let rows = models
        .into_iter()
        .map(|model| pages::registry::ModelRow {
            serving: serving.remove(&model.name).unwrap_or_default(),
            model,
        })
        .collect();
    html(pages::registry::render_models(
        &pages::registry::ModelsPage {
            rows,
            search,
            next_page,
            may_create: principal.has_scope(sextant_core::TokenScope::Write),
            error,
        },
        &viewer,
    ))
}

async fn model_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    Path(name): Path<String>,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    if !may(
        &principal,
        ResourceKind::RegisteredModel,
        &name,
        Permission::Read,
    ) {
        return not_found("This model", &viewer);
    }
    let Ok(model) = state.store().get_registered_model(&name).await else {
        return not_found("This model", &viewer);
    };
    let escaped = name.replace('\'', "\\'");
    let versions = state
        .store()
        .search_model_versions(
            Some(&format!("name = '{escaped}'")),
            10_000,
            &["version_number DESC".to_string()],
            None,
            &Readable::All,
        )
        .await
        .map(|page| page.items)
        .unwrap_or_default();
    let entries: Vec<sextant_core::AuditEntry> = state
        .store()
        .query_audit(&sextant_store::AuditQuery {
            resource_type: Some("registered_model".into()),
            resource_id: Some(name.clone()),
            actor: None,
            action: None,
            since: None,
            until: None,
            after_seq: None,
            limit: 500,
        })
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| entry.entry.outcome == "ok")
        .collect();
    let rollbacks = alias_rollbacks(&model.aliases, &entries);
    let history = entries
        .into_iter()
        .rev()
        .map(|entry| pages::registry::HistoryEntry {
            ts: entry.entry.ts,
            actor: entry.entry.actor,
            action: format!(
                "{} {}",
                entry.entry.method,
                entry
                    .entry
                    .action
                    .rsplit("/mlflow/")
                    .next()
                    .unwrap_or(&entry.entry.action)
            ),
            detail: entry.entry.after.unwrap_or(entry.entry.detail),
        })
        .collect();
    let requests = state
        .store()
        .list_transition_requests(&sextant_store::TransitionFilter {
            name: Some(name.clone()),
            version: None,
            status: None,
        })
        .await
        .unwrap_or_default();
    let serving = serving_by_model(&state, &principal)
        .await
        .remove(&name)
        .unwrap_or_default();
    html(pages::registry::render_model(
        &pages::registry::ModelPage {
            versions,
            serving,
            history,
            rollbacks,
            requests,
            workflow: state.governance().auth_enabled(),
            may_edit: may(
                &principal,
                ResourceKind::RegisteredModel,
                &name,
                Permission::Edit,
            ),
            may_approve: may(
                &principal,
                ResourceKind::RegisteredModel,
                &name,
                Permission::Approve,
            ),
            model,
        },
        &viewer,
    ))
}

/// For each alias, the version it pointed at before it moved to the one it
/// points at now: the latest audited move (`before`/`after` of a set-alias
/// call or an approved request) that ended on the current version.
fn alias_rollbacks(
    aliases: &[sextant_core::RegisteredModelAlias],
    entries: &[sextant_core::AuditEntry],
) -> Vec<pages::registry::AliasRollback> {
    let moves: Vec<(String, Option<i64>, Option<i64>)> = entries
        .iter()
        .filter_map(|entry| {
            let read = |json: &Option<String>| {
                json.as_deref()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            };
            let (before, after) = (read(&entry.entry.before), read(&entry.entry.after));
            let alias = after.as_ref()?.get("alias")?.as_str()?.to_string();
            let version = |v: &Option<serde_json::Value>| {
                v.as_ref()
                    .and_then(|v| v.get("version"))
                    .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            };
            Some((alias, version(&before), version(&after)))
        })
        .collect();
    aliases
        .iter()
        .filter_map(|alias| {
            let previous = moves
                .iter()
                .rev()
                .find(|(name, _, after)| *name == alias.alias && *after == Some(alias.version))
                .and_then(|(_, before, _)| *before)
                .filter(|previous| *previous != alias.version)?;
            Some(pages::registry::AliasRollback {
                alias: alias.alias.clone(),
                current: alias.version,
                previous,
            })
        })
        .collect()
}

/// A file of a model version (its `MLmodel`, its input example), at most
/// 64 KiB, read from its storage location.
async fn version_file(state: &AppState, location: &str, file: &str) -> Option<String> {
    let root = sextant_artifacts::proxied_path(location)?.ok()?;
    let path = sextant_artifacts::ArtifactPath::parse(&format!("{}/{file}", root.as_str())).ok()?;
    let bytes = read_head(state, &path).await.ok()?;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]).into_owned();
    Some(text)
}

/// What the version page shows of a version's validation (None when the
/// model has no spec and the version was never validated).
async fn validation_view(
    state: &AppState,
    name: &str,
    version: i64,
) -> Option<pages::registry::ValidationView> {
    let store = state.store();
    let found = store.version_validation(name, version).await.ok().flatten();
    let Some(found) = found else {
        let has_spec = store.validation_spec(name).await.ok().flatten().is_some();
        return has_spec.then(|| pages::registry::ValidationView {
            status: "not validated".into(),
            message: Some(format!(
                "POST /api/v1/registered-models/{name}/versions/{version}/validation runs it"
            )),
            finished_at: None,
            overridden: None,
            assertions: Vec::new(),
            report_href: None,
        });
    };
    let report: Option<sextant_validate::Report> = found
        .report
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let mut assertions: Vec<pages::registry::AssertionView> = report
        .iter()
        .flat_map(|r| r.assertions())
        .map(|a| pages::registry::AssertionView {
            id: a.id.clone(),
            verdict: serde_json::to_value(a.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            blocking: a.severity == sextant_validate::Severity::Blocking,
            message: a.message.clone(),
        })
        .collect();
    assertions.sort_by_key(|a| !(a.verdict == "failed" || a.verdict == "error"));
    Some(pages::registry::ValidationView {
        status: found.status.as_str().into(),
        message: found.message,
        finished_at: found.finished_at,
        overridden: found.override_by.zip(found.override_reason),
        assertions,
        report_href: report.is_some().then(|| {
            format!(
                "/api/v1/registered-models/{}/versions/{version}/validation/report.html",
                sextant_ui::encode(name)
            )
        }),
    })
}

async fn version_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    if !may(
        &principal,
        ResourceKind::RegisteredModel,
        &name,
        Permission::Read,
    ) {
        return not_found("This model version", &viewer);
    }
    let Ok(found) = state.store().get_model_version(&name, &version).await else {
        return not_found("This model version", &viewer);
    };
    let run = match &found.run_id {
        Some(run_id) => readable_run(&state, &principal, run_id).await,
        None => None,
    };
    // Who may read the model may read its version's files (as the
    // artifact proxy lets them).
    let mlmodel = version_file(&state, &found.storage_location, "MLmodel").await;
    let example_file = mlmodel.as_deref().and_then(|text| {
        text.lines()
            .skip_while(|line| !line.starts_with("saved_input_example_info:"))
            .find_map(|line| {
                line.trim()
                    .strip_prefix("artifact_path:")
                    .map(|p| p.trim().to_string())
            })
    });
    let input_example = match example_file {
        Some(file) => version_file(&state, &found.storage_location, &file).await,
        None => None,
    };
    let serving = serving_by_model(&state, &principal)
        .await
        .remove(&name)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.version == found.version)
        .collect();
    let validation = validation_view(&state, &found.name, found.version).await;
    html(pages::registry::render_version(
        &pages::registry::VersionPage {
            validation,
            run,
            mlmodel,
            input_example,
            serving,
            workflow: state.governance().auth_enabled(),
            may_edit: may(
                &principal,
                ResourceKind::RegisteredModel,
                &name,
                Permission::Edit,
            ),
            version: found,
        },
        &viewer,
    ))
}

// -------------------------------------------------------------- deployments

fn version_row(version: &super::datasets::DatasetVersion) -> pages::datasets::VersionRow {
    pages::datasets::VersionRow {
        digest: version.digest.clone(),
        kind: version.kind.clone(),
        bytes: version.bytes,
        files: version.files.len(),
        source: version.source.clone(),
        created_at: version.created_at,
        created_by: version.created_by.clone(),
    }
}

async fn datasets(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    match super::datasets::all_datasets(&state).await {
        Ok(all) => html(pages::datasets::render_list(
            &pages::datasets::DatasetsPage {
                datasets: all
                    .iter()
                    .map(|(name, versions)| pages::datasets::DatasetRow {
                        name: name.clone(),
                        versions: versions.iter().map(version_row).collect(),
                    })
                    .collect(),
            },
            &viewer,
        )),
        Err(err) => html_with(
            StatusCode::INTERNAL_SERVER_ERROR,
            sextant_ui::error_page(&format!("{err:?}"), &viewer),
        ),
    }
}

async fn dataset_version_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    Path((name, version)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let Ok(axum::Json(found)) =
        super::datasets::get_version(State(state.clone()), Path((name.clone(), version.clone())))
            .await
    else {
        return not_found(&format!("Dataset {name} version {version}"), &viewer);
    };
    let others = super::datasets::versions_of(&state, &name)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|v| v.digest != found.digest)
        .map(|v| pages::datasets::short_digest(&v.digest).to_string())
        .collect();
    let query = pairs(&uri);
    html(pages::datasets::render_version(
        &pages::datasets::VersionPage {
            version: version_row(&found),
            files: found
                .files
                .iter()
                .map(|f| pages::datasets::FileRow {
                    path: f.path.clone(),
                    bytes: f.bytes,
                    sha256: f.sha256.clone(),
                    chunks: f.chunks.len(),
                })
                .collect(),
            name,
            others,
            target: first(&query, "target"),
            compare: first(&query, "compare"),
        },
        &viewer,
    ))
}

/// A version's profile report, for its page's sandboxed frame; a profile
/// that cannot be made says why inside the frame.
async fn dataset_profile(State(state): State<AppState>, uri: Uri) -> Response {
    let query = pairs(&uri);
    let nonempty = |key: &str| Some(first(&query, key)).filter(|v| !v.is_empty());
    let request = super::profiles::ProfileQuery {
        target: nonempty("target"),
        compare: nonempty("compare"),
    };
    let (name, version) = (first(&query, "name"), first(&query, "version"));
    let (status, body) = match super::profiles::report(&state, &name, &version, &request).await {
        Ok(report) => (StatusCode::OK, report.to_html()),
        Err(err) => frame_error(err, "The profile could not be made.").await,
    };
    html_document(status, body, REPORT_CONTENT_SECURITY_POLICY)
}

async fn deployments(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let records = state
        .store()
        .list_deployments(&principal.visible(ResourceKind::Deployment))
        .await
        .unwrap_or_default();
    let rows = records
        .iter()
        .filter_map(|record| {
            let spec = super::deployments::stored_spec(record).ok()?;
            let (status, healthy) = deployment_status(&state, &record.name);
            Some(pages::deployments::DeploymentRow {
                deployment: as_deployment(record, spec),
                status,
                healthy,
            })
        })
        .collect();
    html(pages::deployments::render_list(
        &pages::deployments::DeploymentsPage {
            rows,
            may_create: principal.has_scope(sextant_core::TokenScope::Write),
        },
        &viewer,
    ))
}

fn as_deployment(
    record: &sextant_store::DeploymentRecord,
    spec: sextant_core::DeploymentSpec,
) -> sextant_core::Deployment {
    sextant_core::Deployment {
        name: record.name.clone(),
        revision: record.revision,
        spec,
        description: record.description.clone(),
        created_by: record.created_by.clone(),
        creation_time: record.creation_time,
        last_updated_time: record.last_updated_time,
    }
}

fn deployment_status(state: &AppState, name: &str) -> (String, bool) {
    match state.serving().and_then(|s| s.deployment(name)) {
        None => ("loading".into(), false),
        Some(slot) => match slot.latest() {
            (_, Some(failure)) => (format!("failing: {failure}"), false),
            (_, None) => ("ready".into(), true),
        },
    }
}

async fn deployment_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    Path(name): Path<String>,
) -> Response {
    use pages::deployments::{ArmTraffic, DriftGrid, FeatureImportance, Importance, Named};
    let viewer = viewer(&principal, session.as_deref());
    if !may(
        &principal,
        ResourceKind::Deployment,
        &name,
        Permission::Read,
    ) {
        return not_found("This deployment", &viewer);
    }
    let Ok(record) = state.store().get_deployment(&name).await else {
        return not_found("This deployment", &viewer);
    };
    let Ok(spec) = super::deployments::stored_spec(&record) else {
        return html_with(
            StatusCode::INTERNAL_SERVER_ERROR,
            sextant_ui::error_page("The deployment's stored spec cannot be read", &viewer),
        );
    };
    let (status, healthy) = deployment_status(&state, &name);
    let history = state
        .store()
        .deployment_history(&name, 50)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            Some(sextant_core::DeploymentRevision {
                revision: r.revision,
                spec: crate::serving::controller::decode_spec(&r.spec).ok()?,
                action: r.action,
                reason: r.reason,
                actor: r.actor,
                time: r.time,
            })
        })
        .collect();
    let mut traffic = Vec::new();
    let mut monitoring = Vec::new();
    let mut prediction_distribution = Vec::new();
    let mut drift = None;
    let mut importance = Vec::new();
    let mut explain_example = None;
    if let Some(serving) = state.serving() {
        explain_example = serving.deployment(&name).and_then(|slot| {
            let live = slot.live();
            live.arms
                .first()
                .map(|arm| example_request(&arm.model.model))
        });
        for (arm, intervals) in serving.traffic(&name) {
            let pick = |f: &dyn Fn(&crate::serving::traffic::Interval) -> Option<f64>| {
                intervals
                    .iter()
                    .filter_map(|i| f(i).map(|v| (i.end_ms, v)))
                    .collect::<Vec<_>>()
            };
            traffic.push(ArmTraffic {
                requests_per_second: pick(&|i| Some(i.requests_per_second)),
                p50_ms: pick(&|i| i.p50_ms),
                p99_ms: pick(&|i| i.p99_ms),
                error_rate: pick(&|i| Some(i.error_rate)),
                arm,
            });
        }
        if let Some(monitor) = serving.monitor(&name) {
            let now = crate::serving::now_micros();
            let hour = std::time::Duration::from_secs(3600);
            for version in monitor.versions() {
                let label = format!("v{}", version.model.version);
                // Explanations need no reference profile.
                if let Some(explained) = version.explanations.report(now, hour) {
                    importance.push(Importance {
                        label: label.clone(),
                        output: explained.output,
                        explained_rows: explained.explained_rows,
                        top_driver: explained.top_driver,
                        reference_top_driver: explained.reference_top_driver,
                        top_driver_changed: explained.top_driver_changed,
                        features: explained
                            .features
                            .into_iter()
                            .map(|f| FeatureImportance {
                                name: f.name,
                                mean_abs_shap: f.mean_abs_shap,
                                reference_mean_abs_shap: f.reference_mean_abs_shap,
                                drift: f.drift,
                                drifted: f.drifted,
                            })
                            .collect(),
                    });
                }
                let Some(report) = version.report(now, hour) else {
                    continue;
                };
                monitoring.push(Named {
                    name: format!("{label} rows"),
                    value: report.rows.to_string(),
                });
                monitoring.push(Named {
                    name: format!("{label} outlier rate"),
                    value: format!("{:.2}%", report.outlier_rate * 100.0),
                });
                monitoring.push(Named {
                    name: format!("{label} drifted features"),
                    value: format!("{} of {}", report.drifted_features, report.features.len()),
                });
                for feature in report.features.iter().filter(|f| f.missing_share > 0.0) {
                    monitoring.push(Named {
                        name: format!("{label} missing {}", feature.name),
                        value: format!("{:.2}%", feature.missing_share * 100.0),
                    });
                }
                if let Some(prediction) = &report.prediction {
                    prediction_distribution.push(Named {
                        name: format!("{label} PSI"),
                        value: sextant_ui::format::number(prediction.psi),
                    });
                    if let Some(mean) = prediction.mean {
                        prediction_distribution.push(Named {
                            name: format!("{label} mean"),
                            value: sextant_ui::format::number(mean),
                        });
                    }
                    prediction_distribution.push(Named {
                        name: format!("{label} drifted"),
                        value: prediction.drifted.to_string(),
                    });
                }
                if drift.is_none() {
                    if let Some(windows) =
                        version.windows(now, std::time::Duration::from_secs(6 * 3600))
                    {
                        let features: Vec<String> =
                            report.features.iter().map(|f| f.name.clone()).collect();
                        let windows: Vec<_> = windows.into_iter().filter(|w| w.rows > 0).collect();
                        let cells = (0..features.len())
                            .map(|idx| {
                                windows
                                    .iter()
                                    .map(|w| w.features.get(idx).map(|f| (f.psi, f.drifted)))
                                    .collect()
                            })
                            .collect();
                        drift = Some(DriftGrid {
                            windows: windows.iter().map(|w| w.start_us / 1000).collect(),
                            features,
                            cells,
                        });
                    }
                }
            }
        }
    }
    let performance = super::feedback::performance_of(&state, &name, &Default::default())
        .await
        .ok()
        .map(|report| {
            let mut items = Vec::new();
            for version in report["versions"].as_array().into_iter().flatten() {
                let label = format!("v{}", version["model"]["version"].as_str().unwrap_or("?"));
                let overall = &version["overall"];
                for (group, prefix) in [("metrics", ""), ("estimated", "estimated ")] {
                    for (key, value) in overall[group].as_object().into_iter().flatten() {
                        if let Some(number) = value.as_f64() {
                            items.push(Named {
                                name: format!("{label} {prefix}{key}"),
                                value: sextant_ui::format::number(number),
                            });
                        }
                    }
                }
                for key in ["coverage", "labelled", "predictions"] {
                    if let Some(number) = overall[key].as_f64() {
                        items.push(Named {
                            name: format!("{label} {key}"),
                            value: sextant_ui::format::number(number),
                        });
                    }
                }
            }
            items
        })
        .unwrap_or_default();
    let alerts = state
        .store()
        .alert_rules(Some(&name))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|rule| {
            let rule_state: serde_json::Value =
                serde_json::from_str(&rule.state).unwrap_or_default();
            vec![
                rule.name,
                rule_state["alert"]["state"]
                    .as_str()
                    .unwrap_or("inactive")
                    .to_string(),
                rule_state["last_value"]
                    .as_f64()
                    .map(sextant_ui::format::number)
                    .unwrap_or_default(),
                rule_state["alert"]["active_at_us"]
                    .as_i64()
                    .map(|us| sextant_ui::format::time(us / 1000))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let alert_history = state
        .store()
        .alert_events(Some(&name), 50)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|event| {
            vec![
                event.rule,
                event.status,
                event.value,
                sextant_ui::format::time(event.time / 1000),
            ]
        })
        .collect();
    let abuse = super::monitoring::abuse(State(state.clone()), Path(name.clone()))
        .await
        .map(|json| {
            json.0["report"]["clients"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|client| {
                    let signals: Vec<&str> = client["signals"]
                        .as_object()?
                        .iter()
                        .filter(|(_, on)| on.as_bool() == Some(true))
                        .map(|(name, _)| name.as_str())
                        .collect();
                    (!signals.is_empty()).then(|| {
                        vec![
                            client["client"].as_str().unwrap_or("").to_string(),
                            signals.join(", "),
                            client["requests_in_window"]
                                .as_f64()
                                .map(sextant_ui::format::number)
                                .unwrap_or_default(),
                        ]
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let retraining = state
        .store()
        .trigger_runs(&name, 20)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|run| {
            vec![
                run.id,
                run.status,
                run.reason,
                sextant_ui::format::time(run.started_at / 1000),
            ]
        })
        .collect();
    html(pages::deployments::render(
        &pages::deployments::DeploymentPage {
            drift_href: drift_href(&name),
            deployment: as_deployment(&record, spec),
            status,
            healthy,
            traffic,
            history,
            drift,
            monitoring,
            prediction_distribution,
            performance,
            alerts,
            alert_history,
            abuse,
            retraining,
            importance,
            explain_example: explain_example.filter(|_| {
                may(
                    &principal,
                    ResourceKind::Deployment,
                    &name,
                    Permission::Invoke,
                )
            }),
            may_edit: may(
                &principal,
                ResourceKind::Deployment,
                &name,
                Permission::Edit,
            ),
        },
        &viewer,
    ))
}

/// A scoring request for the model's declared inputs, zeros and empty
/// strings, for the page's "explain a prediction" form to start from.
fn example_request(model: &sextant_serve::Model) -> String {
    use sextant_serve::DataType;
    let inputs = model.declared_inputs();
    let zero = |dtype: DataType| match dtype {
        DataType::Bytes => serde_json::json!(""),
        DataType::Bool => serde_json::json!(false),
        _ => serde_json::json!(0),
    };
    let body = match inputs.as_slice() {
        // One matrix: a row of its width.
        [matrix] if matrix.shape.len() == 2 => {
            let width = usize::try_from(matrix.shape[1]).unwrap_or(1).clamp(1, 1000);
            serde_json::json!({ "instances": [vec![zero(matrix.dtype); width]] })
        }
        columns => {
            let record: serde_json::Map<String, serde_json::Value> = columns
                .iter()
                .map(|c| (c.name.clone(), zero(c.dtype)))
                .collect();
            serde_json::json!({ "dataframe_records": [record] })
        }
    };
    serde_json::to_string_pretty(&body).unwrap_or_default()
}

// --------------------------------------------------------------- governance

/// The drift page comparing a deployment's last hour with the 24 hours
/// before it, in fixed times (so the link keeps meaning the same report).
fn drift_href(deployment: &str) -> String {
    const HOUR_MS: i64 = 3_600_000;
    let now = crate::serving::now_micros() / 1000;
    let (split, start) = (now - HOUR_MS, now - 25 * HOUR_MS);
    format!(
        "/drift?ref.deployment={name}&ref.start={start}&ref.end={split}&cur.deployment={name}&cur.start={split}&cur.end={now}",
        name = sextant_ui::encode(deployment)
    )
}

/// One table source of the drift page from the URL (`ref.*` or `cur.*`).
fn source_fields(query: &[(String, String)], prefix: &str) -> pages::drift::SourceFields {
    let keys = pages::drift::SourceFields::keys(prefix);
    let value = |idx: usize| first(query, &keys[idx].0);
    pages::drift::SourceFields {
        run: value(0),
        path: value(1),
        dataset: value(2),
        deployment: value(3),
        span: value(4),
        start: value(5),
        end: value(6),
        version: value(7),
    }
}

/// The `POST /api/v1/drift` source the fields describe; a number that does
/// not parse is an error naming the field.
fn table_source(
    fields: &pages::drift::SourceFields,
    label: &str,
) -> Result<crate::tables::TableSource, String> {
    let text = |value: &String| (!value.is_empty()).then(|| value.trim().to_string());
    let number = |value: &String, name: &str| -> Result<Option<i64>, String> {
        match text(value) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{label} {name} '{v}' is not a whole number")),
        }
    };
    Ok(crate::tables::TableSource {
        run_id: text(&fields.run),
        path: text(&fields.path),
        dataset: text(&fields.dataset),
        deployment: text(&fields.deployment),
        span: text(&fields.span),
        start: number(&fields.start, "start")?,
        end: number(&fields.end, "end")?,
        model_version: number(&fields.version, "model version")?,
    })
}

async fn drift_page(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    uri: Uri,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let query = pairs(&uri);
    let (reference, current) = (source_fields(&query, "ref"), source_fields(&query, "cur"));
    let report_query = (!reference.is_empty() && !current.is_empty())
        .then(|| uri.query().unwrap_or("").to_string());
    let deployments = state
        .store()
        .list_deployments(&principal.visible(ResourceKind::Deployment))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.name)
        .collect();
    html(pages::drift::render(
        &pages::drift::DriftPage {
            reference,
            current,
            methods: first(&query, "methods"),
            target: first(&query, "target"),
            prediction: first(&query, "prediction"),
            report_query,
            deployments,
        },
        &viewer,
    ))
}

/// The policy of the drift report's frame: the report's inline CSS and SVG,
/// nothing else, and no script even if a column name tried.
const REPORT_CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox";

/// The drift report itself, for the drift page's sandboxed frame: the same
/// report as `POST /api/v1/drift` with `format: html`, read with the
/// viewer's rights.
async fn drift_report(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    uri: Uri,
) -> Response {
    let query = pairs(&uri);
    let nonempty = |key: &str| Some(first(&query, key)).filter(|v| !v.is_empty());
    let request = table_source(&source_fields(&query, "ref"), "reference").and_then(|reference| {
        Ok(super::monitoring::DriftRequest {
            reference,
            current: table_source(&source_fields(&query, "cur"), "current")?,
            methods: nonempty("methods"),
            target: nonempty("target"),
            prediction: nonempty("prediction"),
            ..Default::default()
        })
    });
    let (status, body) = match request {
        Err(message) => (
            StatusCode::BAD_REQUEST,
            pages::drift::error_document(&message).into_string(),
        ),
        Ok(request) => match super::monitoring::drift_report(&state, &principal, request).await {
            Ok(report) => (
                StatusCode::OK,
                sextant_monitor::drift::html::render(&report),
            ),
            Err(err) => frame_error(err, "The report could not be made.").await,
        },
    };
    html_document(status, body, REPORT_CONTENT_SECURITY_POLICY)
}

/// A report frame's document for an API error: its status and message.
async fn frame_error(err: ApiError, fallback: &str) -> (StatusCode, String) {
    let response = err.into_response();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| fallback.into());
    (status, pages::drift::error_document(&message).into_string())
}

async fn governance(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    uri: Uri,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let requests: Vec<sextant_core::TransitionRequest> = state
        .store()
        .list_transition_requests(&sextant_store::TransitionFilter {
            name: None,
            version: None,
            status: None,
        })
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            may(
                &principal,
                ResourceKind::RegisteredModel,
                &r.name,
                Permission::Read,
            )
        })
        .collect();
    let may_approve_any = requests.iter().any(|r| {
        may(
            &principal,
            ResourceKind::RegisteredModel,
            &r.name,
            Permission::Approve,
        )
    });
    let admin = principal.is_admin() && state.governance().auth_enabled();
    let (users, groups, grants, audit) = if admin {
        let query = pairs(&uri);
        let (actor, resource_type, resource_id) = (
            first(&query, "actor"),
            first(&query, "resource_type"),
            first(&query, "resource_id"),
        );
        let (since, until) = (first(&query, "since"), first(&query, "until"));
        let after_seq = first(&query, "page").parse::<i64>().ok();
        let nonempty = |s: &String| (!s.is_empty()).then(|| s.clone());
        let entries = state
            .store()
            .query_audit(&sextant_store::AuditQuery {
                resource_type: nonempty(&resource_type),
                resource_id: nonempty(&resource_id),
                actor: nonempty(&actor),
                action: None,
                since: sextant_ui::format::parse_time(&since),
                until: sextant_ui::format::parse_time(&until),
                after_seq,
                limit: 201,
            })
            .await
            .unwrap_or_default();
        let more = entries.len() > 200;
        let entries: Vec<_> = entries.into_iter().take(200).collect();
        let next_page = more
            .then(|| entries.last().map(|e| e.seq.to_string()))
            .flatten();
        let verification = state.store().verify_audit(None).await.ok();
        (
            state.store().list_users().await.ok(),
            state.store().list_groups().await.ok(),
            state.store().list_grants(None).await.ok(),
            Some(pages::governance::AuditView {
                entries,
                actor,
                resource_type,
                resource_id,
                since,
                until,
                chain_ok: verification.as_ref().is_some_and(|v| v.first_bad.is_none()),
                chain_problem: verification.as_ref().and_then(|v| {
                    v.first_bad
                        .as_ref()
                        .map(|(seq, why)| format!("entry {seq}: {why}"))
                }),
                checked: verification.map_or(0, |v| v.entries_checked),
                next_page,
            }),
        )
    } else {
        (None, None, None, None)
    };
    html(pages::governance::render(
        &pages::governance::GovernancePage {
            requests,
            may_approve_any,
            users,
            groups,
            grants,
            audit,
        },
        &viewer,
    ))
}

/// Keeps a page's state (`{"target": "/compare?runs=…"}`) under a short id
/// and answers `{"view_id", "url"}`; the link opens the same page.
async fn save_view(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(Extension<AuditNote>, axum::Json<serde_json::Value>)> {
    let request: serde_json::Value = serde_json::from_slice(&body).map_err(|err| {
        ApiError::User(
            sextant_api::ErrorCode::InvalidParameterValue,
            format!("The body must be JSON such as {{\"target\": \"/compare?runs=…\"}}: {err}"),
        )
    })?;
    let Some(target) = request.get("target").and_then(|t| t.as_str()) else {
        return Err(ApiError::User(
            sextant_api::ErrorCode::InvalidParameterValue,
            "Missing value for required parameter 'target' (a string: the page's path and query)"
                .into(),
        ));
    };
    let view_id = state.store().save_view(target, principal.name()).await?;
    let note = AuditNote {
        resource: Some(("view".into(), view_id.clone())),
        ..AuditNote::default()
    };
    Ok((
        Extension(note),
        axum::Json(serde_json::json!({ "view_id": view_id, "url": format!("/v/{view_id}") })),
    ))
}

/// A saved view: the browser goes to the page it keeps.
async fn open_view(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
    Path(view_id): Path<String>,
) -> Response {
    match state.store().view(&view_id).await {
        Ok(Some(target)) => redirect_within(&target),
        Ok(None) => not_found("This view", &viewer(&principal, session.as_deref())),
        Err(err) => ApiError::from(err).into_response(),
    }
}

async fn me(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<Session>>,
) -> Response {
    let viewer = viewer(&principal, session.as_deref());
    let Some(caller) = principal.caller() else {
        return Redirect::to("/").into_response();
    };
    let user = state.store().get_user(&caller.username).await.ok();
    let tokens = state
        .store()
        .list_tokens(Some(caller.user_id))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.name != sextant_governance::SESSION_TOKEN_NAME)
        .collect();
    html(pages::account::render_me(
        &pages::account::MePage {
            username: caller.username.clone(),
            is_admin: caller.is_admin,
            groups: user.map(|u| u.groups).unwrap_or_default(),
            tokens,
        },
        &viewer,
    ))
}

// ------------------------------------------------------------ sign in, out

/// Where to go after signing in: a path on this site only (never
/// `//host`, never a URL), so the login page cannot redirect elsewhere.
/// A 303 to a path on this server that came from a user (a saved view, a
/// sign-in's `next`): bytes a `Location` header cannot carry are
/// percent-encoded instead of failing.
fn redirect_within(target: &str) -> Response {
    let mut location = String::with_capacity(target.len());
    for byte in target.bytes() {
        if byte.is_ascii_graphic() {
            location.push(byte as char);
        } else {
            location.push_str(&format!("%{byte:02X}"));
        }
    }
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => Redirect::to("/").into_response(),
    }
}

fn safe_next(next: &str) -> String {
    if next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(char::is_control)
    {
        next.to_string()
    } else {
        "/".to_string()
    }
}

async fn login_form(State(state): State<AppState>, uri: Uri) -> Response {
    if !state.governance().auth_enabled() {
        return Redirect::to("/").into_response();
    }
    html(pages::account::render_login(
        &safe_next(&first(&pairs(&uri), "next")),
        None,
    ))
}

async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !state.governance().auth_enabled() {
        return Redirect::to("/").into_response();
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let (username, password, next) = (
        first(&form, "username"),
        form.iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        safe_next(&first(&form, "next")),
    );
    match state.governance().start_session(&username, &password).await {
        Ok(secret) => {
            let secure = headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.eq_ignore_ascii_case("https"));
            let cookie = format!(
                "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                sextant_governance::SESSION_LIFETIME_MS / 1000,
                if secure { "; Secure" } else { "" }
            );
            let mut response = redirect_within(&next);
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(sextant_governance::AuthError::Store(err)) => ApiError::from(err).into_response(),
        Err(_) => html_with(
            StatusCode::UNAUTHORIZED,
            pages::account::render_login(&next, Some("Unknown user or wrong password.")),
        ),
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut response = Redirect::to("/login").into_response();
    if let Some(secret) = session_cookie(&headers) {
        // Another site's page must not sign the user out either.
        if first(&form, "csrf_token") != sextant_governance::csrf_token(&secret) {
            return ApiError::User(
                sextant_api::ErrorCode::PermissionDenied,
                "This form is not from this site (CSRF token missing or wrong)".into(),
            )
            .into_response();
        }
        let _ = state.governance().end_session(&secret).await;
    }
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sextant_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

// ------------------------------------------------------------------- assets

async fn stylesheet() -> Response {
    asset(sextant_ui::CSS, "text/css; charset=utf-8")
}

async fn script() -> Response {
    asset(sextant_ui::JS, "text/javascript; charset=utf-8")
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_never_redirects_off_site() {
        assert_eq!(safe_next("/experiments/1"), "/experiments/1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "evil",
            "/x\r\nSet-Cookie: a=b",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    #[test]
    fn the_session_is_read_from_its_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sextant_session=sxt_abc; b=2"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("sxt_abc"));
    }
}
