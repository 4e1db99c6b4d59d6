//! `runs/search`: MLflow's filter grammar, Sextant's OR and parentheses,
//! ordering with missing values last, and pagination.

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    search_runs_filters,
    search_runs_order_and_pages,
    keyset_pages_match_the_full_order,
    children_by_parent_tag
);

/// Twelve runs: `lr` alternates 0.01/0.1, `acc` = i/12, `team` on every
/// third run, `loss` only on odd runs.
async fn seed(app: &TestApp) -> (String, Vec<String>) {
    let experiment_id = app
        .create_experiment(&format!("search-{}", uuid::Uuid::new_v4().simple()))
        .await;
    let mut run_ids = Vec::new();
    for idx in 0..12_i64 {
        let body = json!({"experiment_id": experiment_id, "run_name": format!("run-{idx:02}"), "start_time": 1_000 + idx});
        let run_id = app.post("runs/create", body).await.ok()["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut metrics =
            vec![json!({"key": "acc", "value": idx as f64 / 12.0, "timestamp": 1, "step": 0})];
        if idx % 2 == 1 {
            metrics.push(
                json!({"key": "loss", "value": 1.0 - idx as f64 / 12.0, "timestamp": 1, "step": 0}),
            );
        }
        let mut tags = vec![];
        if idx % 3 == 0 {
            tags.push(json!({"key": "team", "value": if idx % 2 == 0 { "Alpha" } else { "beta" }}));
        }
        let params = vec![json!({"key": "lr", "value": if idx % 2 == 0 { "0.01" } else { "0.1" }})];
        app.post(
            "runs/log-batch",
            json!({"run_id": run_id, "metrics": metrics, "params": params, "tags": tags}),
        )
        .await
        .ok();
        run_ids.push(run_id);
    }
    (experiment_id, run_ids)
}

async fn names(app: &TestApp, experiment_id: &str, filter: &str) -> Vec<String> {
    let body = app.post("runs/search", json!({"experiment_ids": [experiment_id], "filter": filter, "order_by": ["attributes.run_name ASC"]})).await.ok();
    run_names(&body)
}

fn run_names(body: &Value) -> Vec<String> {
    body["runs"].as_array().map_or_else(Vec::new, |runs| {
        runs.iter()
            .map(|r| r["info"]["run_name"].as_str().unwrap().to_string())
            .collect()
    })
}

fn expect(indices: &[i64]) -> Vec<String> {
    indices.iter().map(|idx| format!("run-{idx:02}")).collect()
}

async fn search_runs_filters(app: TestApp) {
    let (experiment_id, run_ids) = seed(&app).await;
    let cases: &[(&str, &[i64])] = &[
        ("metrics.acc > 0.5 and params.lr = '0.01'", &[8, 10]),
        ("metrics.acc >= 0.5 AND params.lr = '0.01'", &[6, 8, 10]),
        ("params.lr = '0.1' AND metrics.loss < 0.2", &[11]),
        // Runs without `team` match neither `=` nor `!=`, only IS NULL.
        ("tags.team != 'Alpha'", &[3, 9]),
        ("tags.team IS NULL AND metrics.acc < 0.2", &[1, 2]),
        ("tags.team IS NOT NULL", &[0, 3, 6, 9]),
        ("tags.team LIKE 'alpha'", &[]),
        ("tags.team ILIKE 'alpha'", &[0, 6]),
        ("tags.team LIKE 'A%'", &[0, 6]),
        ("attributes.run_name LIKE 'run-1%'", &[10, 11]),
        // Sextant's extension: OR and parentheses.
        (
            "params.lr = '0.01' AND metrics.acc > 0.75 OR tags.team = 'beta'",
            &[3, 9, 10],
        ),
        (
            "params.lr = '0.01' AND (metrics.acc > 0.75 OR tags.team = 'beta')",
            &[10],
        ),
        (
            "(metrics.acc < 0.1 OR metrics.acc > 0.9) AND attributes.status = 'RUNNING'",
            &[0, 1, 11],
        ),
        ("attributes.start_time > 1009", &[10, 11]),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            names(&app, &experiment_id, filter).await,
            expect(expected),
            "filter: {filter}"
        );
    }
    let first_two = format!("attributes.run_id IN ('{}', '{}')", run_ids[0], run_ids[1]);
    assert_eq!(
        names(&app, &experiment_id, &first_two).await,
        expect(&[0, 1])
    );

    for bad in [
        "metrics.acc > 'x'",
        "params.lr = 0.01",
        "foo.bar = 'x'",
        "metrics.acc >",
        "(params.lr = '0.1'",
        "attributes.nope = 'x'",
    ] {
        let reply = app
            .post(
                "runs/search",
                json!({"experiment_ids": [experiment_id], "filter": bad}),
            )
            .await;
        reply.error(400, "INVALID_PARAMETER_VALUE");
    }
    app.post("runs/delete", json!({"run_id": run_ids[0]}))
        .await
        .ok();
    let deleted = app
        .post(
            "runs/search",
            json!({"experiment_ids": [experiment_id], "run_view_type": "DELETED_ONLY"}),
        )
        .await
        .ok();
    assert_eq!(run_names(&deleted), expect(&[0]));
    let all = app
        .post(
            "runs/search",
            json!({"experiment_ids": [experiment_id], "run_view_type": "ALL"}),
        )
        .await
        .ok();
    assert_eq!(all["runs"].as_array().map(Vec::len), Some(12));
}

async fn search_runs_order_and_pages(app: TestApp) {
    let (experiment_id, _) = seed(&app).await;
    // Default order: newest start_time first.
    let default = app
        .post(
            "runs/search",
            json!({"experiment_ids": [experiment_id], "max_results": 3}),
        )
        .await
        .ok();
    assert_eq!(run_names(&default), expect(&[11, 10, 9]));
    // Missing values sort last in both directions.
    let by_loss = app
        .post(
            "runs/search",
            json!({"experiment_ids": [experiment_id], "order_by": ["metrics.loss DESC"]}),
        )
        .await
        .ok();
    let order = run_names(&by_loss);
    assert_eq!(&order[..6], expect(&[1, 3, 5, 7, 9, 11]).as_slice());
    let by_loss_asc = app
        .post(
            "runs/search",
            json!({"experiment_ids": [experiment_id], "order_by": ["metrics.loss ASC"]}),
        )
        .await
        .ok();
    assert_eq!(
        &run_names(&by_loss_asc)[..6],
        expect(&[11, 9, 7, 5, 3, 1]).as_slice()
    );
    let by_param = app
        .post("runs/search", json!({"experiment_ids": [experiment_id], "order_by": ["params.lr DESC", "metrics.acc ASC"], "max_results": 2}))
        .await
        .ok();
    assert_eq!(run_names(&by_param), expect(&[1, 3]));

    let by_acc = all_pages(&app, &experiment_id, &["metrics.acc DESC"], "", 5).await;
    assert_eq!(by_acc, expect(&[11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]));
    // Pages that cross from runs with the ordering metric to runs without it.
    for page_size in [1, 4, 5, 7] {
        let by_loss = all_pages(&app, &experiment_id, &["metrics.loss DESC"], "", page_size).await;
        assert_eq!(
            by_loss,
            expect(&[1, 3, 5, 7, 9, 11, 10, 8, 6, 4, 2, 0]),
            "page size {page_size}"
        );
    }
    app.post(
        "runs/search",
        json!({"experiment_ids": [experiment_id], "page_token": "not-a-token"}),
    )
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
    app.post(
        "runs/search",
        json!({"experiment_ids": [experiment_id], "max_results": 50001}),
    )
    .await
    .error(400, "INVALID_PARAMETER_VALUE");
}

async fn all_pages(
    app: &TestApp,
    experiment_id: &str,
    order_by: &[&str],
    filter: &str,
    page_size: i64,
) -> Vec<String> {
    let mut collected = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"experiment_ids": [experiment_id], "order_by": order_by, "filter": filter, "max_results": page_size});
        if let Some(token) = &token {
            body["page_token"] = json!(token);
        }
        let page = app.post("runs/search", body).await.ok();
        collected.extend(run_names(&page));
        match page["next_page_token"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
        assert!(
            collected.len() <= 12,
            "pagination does not end: {collected:?}"
        );
    }
    collected
}

/// Whatever the order (ties, missing values, both directions, several
/// keys), walking the pages gives exactly the one-page answer.
async fn keyset_pages_match_the_full_order(app: TestApp) {
    let (experiment_id, run_ids) = seed(&app).await;
    app.post(
        "runs/update",
        json!({"run_id": run_ids[4], "status": "FINISHED", "end_time": 5}),
    )
    .await
    .ok();
    app.post(
        "runs/update",
        json!({"run_id": run_ids[7], "status": "FINISHED", "end_time": 9}),
    )
    .await
    .ok();
    let orders: &[&[&str]] = &[
        &[],
        &["params.lr DESC"],
        &["params.lr ASC", "metrics.loss DESC"],
        &["tags.team ASC"],
        &["tags.team DESC", "metrics.acc ASC"],
        &["metrics.loss ASC"],
        &["metrics.loss DESC", "params.lr ASC"],
        &["attributes.end_time DESC"],
        &["attributes.status ASC", "attributes.run_name DESC"],
    ];
    for order_by in orders {
        for filter in ["", "params.lr = '0.1' OR tags.team IS NOT NULL"] {
            let full = all_pages(&app, &experiment_id, order_by, filter, 1000).await;
            for page_size in [1, 2, 5] {
                let paged = all_pages(&app, &experiment_id, order_by, filter, page_size).await;
                assert_eq!(
                    paged, full,
                    "order {order_by:?}, filter {filter:?}, page size {page_size}"
                );
            }
        }
    }
    let sorted = all_pages(&app, &experiment_id, &["tags.team ASC"], "", 1000).await;
    assert_eq!(
        &sorted[..4],
        expect(&[6, 0, 9, 3]).as_slice(),
        "Alpha before beta, missing last"
    );
    let a_token = app
        .post("runs/search", json!({"experiment_ids": [experiment_id], "order_by": ["params.lr DESC"], "max_results": 2}))
        .await
        .ok()["next_page_token"]
        .as_str()
        .unwrap()
        .to_string();
    // A token only fits the order it came from.
    app.post("runs/search", json!({"experiment_ids": [experiment_id], "order_by": ["params.lr DESC", "metrics.acc ASC"], "page_token": a_token}))
        .await
        .error(400, "INVALID_PARAMETER_VALUE");
}

/// `tags.mlflow.parentRunId = 'P'` (the runs table's "children" link, and
/// what MLflow's UI asks) answers through its own index, alone or combined.
async fn children_by_parent_tag(app: TestApp) {
    let experiment = app.create_experiment("nested").await;
    let parent = app.create_run(&experiment, "parent").await;
    let mut children = Vec::new();
    for name in ["child-a", "child-b"] {
        let child = app.create_run(&experiment, name).await;
        app.post(
            "runs/set-tag",
            json!({"run_id": child, "key": "mlflow.parentRunId", "value": parent}),
        )
        .await
        .ok();
        children.push(child);
    }
    let other = app.create_run(&experiment, "other").await;
    app.post(
        "runs/set-tag",
        json!({"run_id": other, "key": "mlflow.parentRunId", "value": "someone-else"}),
    )
    .await
    .ok();
    let names = |filter: String| {
        let app = &app;
        let experiment = experiment.clone();
        async move {
            let reply = app
                .post(
                    "runs/search",
                    json!({"experiment_ids": [experiment], "filter": filter, "order_by": ["attributes.run_name ASC"]}),
                )
                .await
                .ok();
            reply["runs"]
                .as_array()
                .map(|runs| {
                    runs.iter()
                        .map(|r| r["info"]["run_name"].as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    assert_eq!(
        names(format!("tags.mlflow.parentRunId = '{parent}'")).await,
        ["child-a", "child-b"]
    );
    assert_eq!(
        names(format!(
            "tags.mlflow.parentRunId = '{parent}' and attributes.run_name = 'child-b'"
        ))
        .await,
        ["child-b"]
    );
    assert_eq!(
        names(format!(
            "tags.mlflow.parentRunId = '{parent}' OR attributes.run_name = 'parent'"
        ))
        .await,
        ["child-a", "child-b", "parent"]
    );
    assert_eq!(
        names(format!("tags.mlflow.parentRunId != '{parent}'")).await,
        ["other"]
    );
    assert!(names("tags.mlflow.parentRunId = 'nobody'".into())
        .await
        .is_empty());
}
