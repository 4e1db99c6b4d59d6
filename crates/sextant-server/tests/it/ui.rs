//! The web UI over HTTP: every page answers with its key content on both
//! backends; with authentication, a user sees only what they may read
//! (not even a name or a count of the rest), signs in and out with a
//! session cookie, and cannot change anything without the session's CSRF
//! token; user content never becomes markup.

use reqwest::header;
use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN_PASSWORD};
use crate::serving::{create_deployment, register, v1};

crate::backend_tests!(
    every_page_answers_with_its_content,
    user_content_never_becomes_markup,
    views_keep_long_states_under_short_links,
    drift_reports_render_as_pages,
    charts_see_every_write
);
mod secured {
    use super::{a_user_sees_only_what_they_may_read, sessions_sign_in_out_and_need_csrf};
    crate::auth_backend_tests!(
        a_user_sees_only_what_they_may_read,
        sessions_sign_in_out_and_need_csrf
    );
}

async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let response = app
        .no_redirect
        .get(app.url(path))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[track_caller]
fn contains_all(html: &str, what: &[&str]) {
    for piece in what {
        assert!(
            html.contains(piece),
            "{piece:?} missing from:\n{}",
            &html[..html.len().min(3000)]
        );
    }
}

async fn log_run(app: &TestApp, experiment: &str, name: &str, lr: &str, steps: i64) -> String {
    let run = app.create_run(experiment, name).await;
    let metrics: Vec<Value> = (0..steps)
        .map(|step| json!({"key": "loss", "value": 1.0 / (step as f64 + 1.0), "timestamp": 1_700_000_000_000_i64 + step, "step": step}))
        .collect();
    for chunk in metrics.chunks(900) {
        app.post(
            "runs/log-batch",
            json!({"run_id": run, "metrics": chunk, "params": if chunk[0]["step"] == 0 { json!([{"key": "lr", "value": lr}, {"key": "depth", "value": "3"}]) } else { json!([]) }}),
        )
        .await
        .ok();
    }
    run
}

async fn every_page_answers_with_its_content(app: TestApp) {
    let experiment = app.create_experiment("ui-pages").await;
    let first = log_run(&app, &experiment, "first", "0.1", 3000).await;
    let second = log_run(&app, &experiment, "second", "0.2", 10).await;
    let child = log_run(&app, &experiment, "child", "0.1", 1).await;
    app.post(
        "runs/set-tag",
        json!({"run_id": child, "key": "mlflow.parentRunId", "value": first}),
    )
    .await
    .ok();
    // Experiments: name, run count.
    let (status, html) = page(&app, "/").await;
    assert_eq!(status, 200);
    contains_all(
        &html,
        &["ui-pages", "<td class=\"num\">3</td>", "/static/sextant.js"],
    );
    // Runs: the differing param is a column by default, the shared one is not.
    let (status, html) = page(&app, &format!("/experiments/{experiment}")).await;
    assert_eq!(status, 200);
    contains_all(
        &html,
        &[
            "first",
            "second",
            "title=\"params.lr\"",
            "title=\"metrics.loss\"",
            "1 children",
        ],
    );
    assert!(
        !html.contains("title=\"params.depth\""),
        "a param equal in every run is not a default column"
    );
    // A filter with OR; a bad filter is shown inline, not as a broken page.
    let (status, html) = page(&app, &format!("/experiments/{experiment}?filter=params.lr%20%3D%20%270.1%27%20OR%20params.lr%20%3D%20%270.2%27")).await;
    assert_eq!(status, 200);
    contains_all(&html, &["first", "second"]);
    let (status, html) = page(
        &app,
        &format!("/experiments/{experiment}?filter=params.lr%20%3D%3D"),
    )
    .await;
    assert_eq!(status, 200);
    contains_all(&html, &["filter-error", "Invalid filter"]);
    // Sort, summary statistic, grouping, chosen columns.
    let (_, html) = page(&app, &format!("/experiments/{experiment}?order=metrics.loss%20DESC&stat=min&group=params.lr&cols=metrics.loss")).await;
    contains_all(&html, &["params.lr = 0.1", "μ ", "▾"]);
    // A run: params, metrics, the chart panel, the child, the artifacts.
    let (status, html) = page(&app, &format!("/experiments/{experiment}/runs/{first}")).await;
    assert_eq!(status, 200);
    contains_all(
        &html,
        &[
            "first",
            "lr",
            "0.1",
            "loss",
            "chart-panel",
            "Child runs (1)",
            "Artifacts",
        ],
    );
    // A run under the wrong experiment's path goes to the right one.
    let (status, _) = page(&app, &format!("/experiments/0/runs/{first}")).await;
    assert_eq!(status, 303);
    // Compare and the series endpoint: at most about px buckets, spikes kept.
    let (status, html) = page(&app, &format!("/compare?runs={first},{second}")).await;
    assert_eq!(status, 200);
    contains_all(&html, &["Compare 2 runs", "compare-data", "lr"]);
    let (status, body) = page(
        &app,
        &format!("/ui/api/series?runs={first},{second}&metric=loss&px=100&smooth=ema:0.5"),
    )
    .await;
    assert_eq!(status, 200);
    let series: Value = serde_json::from_str(&body).unwrap();
    let long = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "first")
        .unwrap();
    let points = long["points"].as_array().unwrap();
    assert!(
        points.len() <= 200 && points.len() > 100,
        "{} points",
        points.len()
    );
    assert_eq!(points[0][0], 0.0, "starts at step 0");
    let (_, body) = page(
        &app,
        &format!("/ui/api/series?runs={first}&metric=loss&px=100&xmin=100&xmax=200"),
    )
    .await;
    let zoomed: Value = serde_json::from_str(&body).unwrap();
    let xs: Vec<f64> = zoomed["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .collect();
    assert!(
        xs.iter().all(|x| (100.0..=200.0).contains(x)),
        "zoom re-queries the range: {xs:?}"
    );
    let (_, body) = page(
        &app,
        &format!("/ui/api/series?runs={first},{second}&metric=loss&px=50&group=params.lr"),
    )
    .await;
    let grouped: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(grouped["series"].as_array().unwrap().len(), 2, "{grouped}");
    // Registry, deployments, governance.
    register(&app, "ui-model", 1, None).await;
    create_deployment(&app, "ui-dep", "ui-model/1").await;
    let (status, html) = page(&app, "/models").await;
    assert_eq!(status, 200);
    contains_all(&html, &["ui-model", "ui-dep"]);
    let (status, html) = page(&app, "/models/ui-model").await;
    assert_eq!(status, 200);
    contains_all(&html, &["Deployed and retired", "v1", "serving"]);
    // An alias moved from v1 to v2 offers to go back to v1.
    register(&app, "ui-model", 2, None).await;
    for version in ["1", "2"] {
        app.post(
            "registered-models/alias",
            json!({"name": "ui-model", "alias": "champion", "version": version}),
        )
        .await
        .ok();
    }
    let (_, html) = page(&app, "/models/ui-model").await;
    contains_all(
        &html,
        &[
            "@champion → v2, before v1",
            "Roll back to v1",
            r#"name="version" value="1""#,
        ],
    );
    // A version's source run links to the run page, which finds its experiment.
    let link = html
        .split(r#"href="/experiments/-/runs/"#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to the source run")
        .to_string();
    let response = app
        .no_redirect
        .get(app.url(&format!("/experiments/-/runs/{link}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let (status, _) = page(&app, response.headers()[header::LOCATION].to_str().unwrap()).await;
    assert_eq!(status, 200);
    let (status, html) = page(&app, "/models/ui-model/versions/1").await;
    assert_eq!(status, 200);
    contains_all(&html, &["MLmodel", "Lineage"]);
    let (status, html) = page(&app, "/deployments").await;
    assert_eq!(status, 200);
    contains_all(&html, &["ui-dep", "ui-model v1", "100%"]);
    for _ in 0..3 {
        app.client
            .post(app.url("/v2/models/ui-dep/infer"))
            .json(&json!({"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [[0.0, 0.0, 0.0]]}]}))
            .send()
            .await
            .unwrap();
    }
    app.serving.sample_traffic();
    let (status, html) = page(&app, "/deployments/ui-dep").await;
    assert_eq!(status, 200);
    contains_all(&html, &["Traffic", "requests/s", "Revisions", "create"]);
    let (status, _) = page(&app, "/deployments/no-such").await;
    assert_eq!(status, 404);
    assert_eq!(page(&app, "/governance").await.0, 200);
    // Assets, with the page's security headers.
    let response = app.client.get(app.url("/")).send().await.unwrap();
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    for asset in ["/static/sextant.css", "/static/sextant.js"] {
        let (status, text) = page(&app, asset).await;
        assert_eq!(status, 200);
        assert!(text.len() > 1000);
    }
}

async fn user_content_never_becomes_markup(app: TestApp) {
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let experiment = app.create_experiment(&format!("exp {evil}")).await;
    let run = app.create_run(&experiment, &format!("run {evil}")).await;
    app.post(
        "runs/log-parameter",
        json!({"run_id": run, "key": "p", "value": evil}),
    )
    .await
    .ok();
    app.post(
        "runs/set-tag",
        json!({"run_id": run, "key": "t", "value": evil}),
    )
    .await
    .ok();
    for path in [
        "/".to_string(),
        format!("/experiments/{experiment}"),
        format!("/experiments/{experiment}/runs/{run}"),
        format!("/compare?runs={run}"),
    ] {
        let (status, html) = page(&app, &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!html.contains("<script>alert"), "{path}: {html}");
        assert!(!html.contains("<img src=x"), "{path}");
        assert!(
            html.contains("&lt;script&gt;") || html.contains("\\u003cscript"),
            "{path}: escaped text is there"
        );
    }
    // Active artifacts are downloaded, never shown; everything raw is sandboxed.
    for (file, body) in [
        ("page.html", "<script>alert(3)</script>"),
        (
            "image.svg",
            "<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(4)\"/>",
        ),
    ] {
        let upload = app
            .client
            .put(app.url(&format!(
                "/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/{file}"
            )))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status(), 200);
        let raw = app
            .client
            .get(app.url(&format!("/ui/artifacts/raw?run={run}&path={file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), 200);
        let headers = raw.headers();
        assert!(
            headers[header::CONTENT_DISPOSITION]
                .to_str()
                .unwrap()
                .starts_with("attachment"),
            "{file}"
        );
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("sandbox"),
            "{file}"
        );
        assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
        let (_, preview) = page(
            &app,
            &format!("/ui/artifacts/preview?run={run}&path={file}"),
        )
        .await;
        assert!(
            preview.contains("No preview") && !preview.contains("alert("),
            "{preview}"
        );
    }
}

/// Two users: `alice` owns an experiment and a model; `bob` has no grant.
pub(super) async fn a_user_sees_only_what_they_may_read(app: TestApp) {
    let admin = ("admin", ADMIN_PASSWORD);
    for user in ["alice", "bob"] {
        let reply = app
            .client
            .post(app.url("/api/v1/users"))
            .basic_auth(admin.0, Some(admin.1))
            .json(&json!({"username": user, "password": format!("{user}-password")}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    let as_user = |user: &'static str| {
        let client = app.no_redirect.clone();
        let base = app.base.clone();
        move |method: reqwest::Method, path: &str| {
            client
                .request(method, format!("{base}{path}"))
                .basic_auth(user, Some(format!("{user}-password")))
        }
    };
    let alice = as_user("alice");
    let bob = as_user("bob");
    let made: Value = alice(reqwest::Method::POST, "/api/2.0/mlflow/experiments/create")
        .json(&json!({"name": "alice-secret-experiment"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let experiment = made["experiment_id"].as_str().unwrap().to_string();
    let run: Value = alice(reqwest::Method::POST, "/api/2.0/mlflow/runs/create")
        .json(&json!({"experiment_id": experiment, "run_name": "alice-secret-run"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    alice(
        reqwest::Method::POST,
        "/api/2.0/mlflow/registered-models/create",
    )
    .json(&json!({"name": "alice-secret-model"}))
    .send()
    .await
    .unwrap();
    let text = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    // alice sees her things.
    let (_, html) = text(alice(reqwest::Method::GET, "/")).await;
    assert!(html.contains("alice-secret-experiment"));
    let (_, html) = text(alice(reqwest::Method::GET, "/models")).await;
    assert!(html.contains("alice-secret-model"));
    // bob sees none of them anywhere, not even a name or a count.
    for path in ["/", "/models", "/deployments", "/governance", "/me"] {
        let (status, html) = text(bob(reqwest::Method::GET, path)).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !html.contains("alice-secret"),
            "{path} shows alice's resources to bob"
        );
    }
    for path in [
        format!("/experiments/{experiment}"),
        format!("/experiments/{experiment}/runs/{run_id}"),
        "/models/alice-secret-model".to_string(),
        "/models/alice-secret-model/versions/1".to_string(),
        format!("/runs?experiments={experiment}"),
    ] {
        let (status, html) = text(bob(reqwest::Method::GET, &path)).await;
        assert_eq!(status, 404, "{path}");
        assert!(!html.contains("alice-secret"), "{path}");
    }
    let (_, html) = text(bob(
        reqwest::Method::GET,
        &format!("/compare?runs={run_id}"),
    ))
    .await;
    assert!(
        !html.contains("alice-secret") && html.contains("Compare 0 runs"),
        "{html}"
    );
    let (_, body) = text(bob(
        reqwest::Method::GET,
        &format!("/ui/api/series?runs={run_id}&metric=m"),
    ))
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["series"],
        json!([])
    );
    let (status, _) = text(bob(
        reqwest::Method::GET,
        &format!("/ui/artifacts/raw?run={run_id}&path=x.txt"),
    ))
    .await;
    assert_eq!(status, 404);
    // Governance: bob sees no admin sections; the admin sees users, groups,
    // grants with revoke buttons, and the audit log filtered by time.
    let (_, html) = text(bob(reqwest::Method::GET, "/governance")).await;
    for admin_only in [
        "Audit log",
        "Create group",
        "Create user",
        "js-revoke-grant",
    ] {
        assert!(!html.contains(admin_only), "bob sees {admin_only}");
    }
    let admin_page = |path: String| {
        app.no_redirect
            .get(app.url(&path))
            .basic_auth(admin.0, Some(admin.1))
    };
    app.client
        .post(app.url("/api/v1/groups"))
        .basic_auth(admin.0, Some(admin.1))
        .json(&json!({"name": "reviewers"}))
        .send()
        .await
        .unwrap();
    app.client
        .put(app.url("/api/v1/groups/reviewers/members/bob"))
        .basic_auth(admin.0, Some(admin.1))
        .send()
        .await
        .unwrap();
    let (status, html) = text(admin_page("/governance".into())).await;
    assert_eq!(status, 200);
    contains_all(
        &html,
        &[
            "alice",
            "Chain intact",
            r#"data-group="reviewers""#,
            r#"data-username="bob""#,
            "js-revoke-grant",
        ],
    );
    let (_, future) = text(admin_page(
        "/governance?actor=alice&since=2999-01-01T00:00".into(),
    ))
    .await;
    assert!(
        !future.contains("experiments/create"),
        "entries from before `since` are listed"
    );
    let (_, past) = text(admin_page(
        "/governance?actor=alice&since=2000-01-01T00:00&until=2999-01-01".into(),
    ))
    .await;
    assert!(
        past.contains("experiments/create") && past.contains(r#"value="2000-01-01T00:00""#),
        "{past}"
    );
    // Without credentials, pages send the browser to sign in.
    let response = app
        .no_redirect
        .get(app.url(&format!("/experiments/{experiment}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/login?next="));
}

pub(super) async fn sessions_sign_in_out_and_need_csrf(app: TestApp) {
    // A wrong password: the form again, 401, the same words as for anyone.
    let refused = app
        .no_redirect
        .post(app.url("/login"))
        .form(&[
            ("username", "admin"),
            ("password", "wrong-password"),
            ("next", "/models"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("Unknown user or wrong password"));
    // Signing in sets an HttpOnly, SameSite session cookie and goes on.
    let signed_in = app
        .no_redirect
        .post(app.url("/login"))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("next", "//evil.example/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()[header::LOCATION], "/", "never off-site");
    let cookie = signed_in.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let secret = session.split_once('=').unwrap().1.to_string();
    let with_session = |method: reqwest::Method, path: &str| {
        app.no_redirect
            .request(method, app.url(path))
            .header(header::COOKIE, session.clone())
    };
    let home = with_session(reqwest::Method::GET, "/")
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    let csrf = sextant_governance::csrf_token(&secret);
    assert!(html.contains(&csrf), "the page carries its CSRF token");
    // The JSON APIs take the session, but changes need its CSRF token.
    let without = with_session(reqwest::Method::POST, "/api/2.0/mlflow/experiments/create")
        .json(&json!({"name": "no-csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 403);
    let with = with_session(reqwest::Method::POST, "/api/2.0/mlflow/experiments/create")
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "with-csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
    // Signing out needs the token too; afterwards the cookie is worthless.
    let forged = with_session(reqwest::Method::POST, "/logout")
        .form(&[("csrf_token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let out = with_session(reqwest::Method::POST, "/logout")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = with_session(reqwest::Method::GET, "/")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303, "the session ended");
    let reply = v1(&app, reqwest::Method::GET, "/me", None).await;
    assert_eq!(reply.status, 401);
}

async fn views_keep_long_states_under_short_links(app: TestApp) {
    let save = |target: Value| {
        let request = app
            .client
            .post(app.url("/ui/views"))
            .json(&json!({ "target": target }));
        async move {
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    // A comparison of a thousand runs with chart settings: about 40 KB.
    let runs: Vec<String> = (0..1000).map(|i| format!("{i:032x}")).collect();
    let target = format!(
        "/compare?runs={}&cm=loss,acc&csmooth=ema0.6&czoom=loss~3~90#params",
        runs.join(",")
    );
    let (status, saved) = save(json!(target)).await;
    assert_eq!(status, 200, "{saved}");
    let url = saved["url"].as_str().unwrap().to_string();
    assert!(url.len() < 20, "{url}");
    let (_, again) = save(json!(target)).await;
    assert_eq!(
        again["url"], saved["url"],
        "the same view gets the same link"
    );
    let opened = app.no_redirect.get(app.url(&url)).send().await.unwrap();
    assert_eq!(opened.status(), 303);
    assert_eq!(opened.headers()[header::LOCATION].to_str().unwrap(), target);
    // The link leads somewhere: the page and its chart data take a thousand
    // runs in their URLs (here none exist, so the page says so).
    let (status, html) = page(&app, target.split('#').next().unwrap()).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("1000 of the runs asked for"), "{html}");
    let series = app
        .client
        .get(app.url(&format!(
            "/ui/api/series?runs={}&metric=loss",
            runs.join(",")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(series.status(), 200);
    // Non-ASCII is kept (percent-encoded on the way out), not a failure.
    let (status, saved) = save(json!("/?filter=name%20=%20'é'&x=ü")).await;
    assert_eq!(status, 200, "{saved}");
    let opened = app
        .no_redirect
        .get(app.url(saved["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        opened.headers()[header::LOCATION].to_str().unwrap(),
        "/?filter=name%20=%20'%C3%A9'&x=%C3%BC"
    );
    // Links lead only within this server; bad bodies are 400s with JSON.
    for bad in [
        json!("https://evil.example/"),
        json!("//evil.example/"),
        json!("/\\evil.example"),
        json!("/a\nSet-Cookie: x=1"),
        json!("/".repeat(300_000)),
        json!(42),
    ] {
        let (status, body) = save(bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE", "{body}");
    }
    let response = app
        .client
        .post(app.url("/ui/views"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, html) = page(&app, "/v/000000000000").await;
    assert_eq!(status, 404);
    assert!(html.contains("This view does not exist"), "{html}");
}

async fn drift_reports_render_as_pages(app: TestApp) {
    let experiment = app.create_experiment("drift-tables").await;
    let run = app.create_run(&experiment, "tables").await;
    // A reference and a current table whose `x` moved far and `c` did not.
    let table = |shift: f64| {
        let mut text = String::from("x,c\n");
        for i in 0..400 {
            text.push_str(&format!(
                "{},{}\n",
                (i % 50) as f64 + shift,
                ["a", "b"][i % 2]
            ));
        }
        text
    };
    for (file, shift) in [("reference.csv", 0.0), ("current.csv", 500.0)] {
        let upload = app
            .client
            .put(app.url(&format!(
                "/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/{file}"
            )))
            .body(table(shift))
            .send()
            .await
            .unwrap();
        assert_eq!(upload.status(), 200);
    }
    // The run page offers its tables as references.
    let (_, html) = page(&app, &format!("/experiments/{experiment}/runs/{run}")).await;
    assert!(
        html.contains(&format!("/drift?ref.run={run}&amp;ref.path=reference.csv")),
        "{html}"
    );
    let query = format!("ref.run={run}&ref.path=reference.csv&cur.run={run}&cur.path=current.csv");
    let (status, html) = page(&app, &format!("/drift?{query}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("iframe class=\"report\""), "{html}");
    assert!(
        html.contains(&format!(r#"value="{run}""#)),
        "the form keeps the choice"
    );
    let report = app
        .client
        .get(app.url(&format!("/ui/drift/report?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    let policy = report.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("sandbox") && !policy.contains("script"),
        "{policy}"
    );
    let body = report.text().await.unwrap();
    assert!(
        body.contains("Data drift") && body.contains("current.csv"),
        "{body}"
    );
    // The same report as the API's.
    let api: Value = app
        .client
        .post(app.url("/api/v1/drift"))
        .json(&json!({"reference": {"run_id": run, "path": "reference.csv"}, "current": {"run_id": run, "path": "current.csv"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let drifted = api["dataset"]["drifted_columns"].as_u64().unwrap();
    assert_eq!(drifted, 1, "{api}");
    assert!(body.contains("1 of 2 columns drifted"), "{body}");
    // Mistakes read as a message inside the frame, with a 4xx.
    for (bad, words) in [
        (
            format!("ref.run={run}&ref.path=missing.csv&cur.run={run}&cur.path=current.csv"),
            "missing.csv",
        ),
        (
            format!("ref.deployment=nope&ref.start=yesterday&cur.run={run}&cur.path=current.csv"),
            "not a whole number",
        ),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/ui/drift/report?{bad}")))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!((400..500).contains(&status), "{bad}: {status} {text}");
        assert!(text.contains(words), "{bad}: {text}");
    }
}

/// Chart histories are kept in memory between requests: a point written
/// afterwards, even at an earlier step, shows at once.
async fn charts_see_every_write(app: TestApp) {
    let experiment = app.create_experiment("cached").await;
    let run = app.create_run(&experiment, "r").await;
    let log = |points: Vec<(i64, f64)>| {
        let metrics: Vec<Value> = points
            .into_iter()
            .map(|(step, value)| json!({"key": "loss", "value": value, "timestamp": 1_700_000_000_000_i64 + step, "step": step}))
            .collect();
        let app = &app;
        let run = run.clone();
        async move {
            app.post("runs/log-batch", json!({"run_id": run, "metrics": metrics}))
                .await
                .ok();
        }
    };
    let steps = || {
        let app = &app;
        let run = run.clone();
        async move {
            let (_, body) = page(
                app,
                &format!("/ui/api/series?runs={run}&metric=loss&px=4000"),
            )
            .await;
            let reply: Value = serde_json::from_str(&body).unwrap();
            reply["series"][0]["points"]
                .as_array()
                .map(|points| {
                    points
                        .iter()
                        .map(|p| p[0].as_f64().unwrap() as i64)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    assert!(steps().await.is_empty(), "no history yet");
    log((10..20).map(|s| (s, s as f64)).collect()).await;
    assert_eq!(steps().await, (10..20).collect::<Vec<_>>());
    assert_eq!(steps().await, (10..20).collect::<Vec<_>>(), "read again");
    // A later point, then a point before all the others.
    log(vec![(25, 1.0)]).await;
    assert_eq!(steps().await.last(), Some(&25));
    log(vec![(3, 1.0)]).await;
    assert_eq!(steps().await.first(), Some(&3));
    // The single-point endpoint writes too.
    app.post(
        "runs/log-metric",
        json!({"run_id": run, "key": "loss", "value": 2.0, "timestamp": 1, "step": 40}),
    )
    .await
    .ok();
    assert_eq!(steps().await.last(), Some(&40));
}
