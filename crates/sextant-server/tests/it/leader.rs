//! One leader for the background work of the servers sharing a database:
//! a PostgreSQL advisory lock, taken over when the leader's session ends.

use std::time::{Duration, Instant};

use sextant_store::{Leadership, Store, StoreConfig};

use crate::helpers::{fresh_postgres_database, spawn_app, Backend};

async fn open(url: &str) -> Store {
    Store::open(&StoreConfig {
        database_url: url.into(),
        default_artifact_root: "mlflow-artifacts:/".into(),
        max_connections: 4,
    })
    .await
    .expect("open store")
}

fn leaders(leaderships: &[Leadership]) -> Vec<usize> {
    (0..leaderships.len())
        .filter(|&i| leaderships[i].is_leader())
        .collect()
}

/// Waits until exactly one of `leaderships` leads, and returns it.
async fn sole_leader(leaderships: &[Leadership], within: Duration) -> usize {
    let started = Instant::now();
    loop {
        if let [leader] = leaders(leaderships)[..] {
            return leader;
        }
        assert!(
            started.elapsed() < within,
            "no single leader within {within:?}: {:?}",
            leaders(leaderships)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_server_on_sqlite_leads_and_says_so() {
    let app = spawn_app(Backend::Sqlite).await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(text.contains("\nsextant_leader 1\n"), "{text}");
}

#[tokio::test]
async fn one_of_three_servers_on_postgres_leads_and_another_takes_over() {
    let Some(url) = fresh_postgres_database().await else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set SEXTANT_TEST_POSTGRES_URL"
        );
        return;
    };
    let period = Duration::from_millis(100);
    let stores = [open(&url).await, open(&url).await, open(&url).await];
    let mut leaderships: Vec<Leadership> = stores
        .iter()
        .map(|store| store.leadership("background", period))
        .collect();
    let first = sole_leader(&leaderships, Duration::from_secs(5)).await;
    // It stays the only one.
    for _ in 0..10 {
        tokio::time::sleep(period).await;
        assert_eq!(leaders(&leaderships), vec![first]);
    }
    // Other work has a leader of its own.
    let other = stores[0].leadership("other work", period);
    let started = Instant::now();
    while !other.is_leader() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "other work has no leader"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The leader's session ends (its process died): another takes over
    // within a period or two.
    let ended = Instant::now();
    leaderships.remove(first).release();
    let second = sole_leader(&leaderships, Duration::from_secs(5)).await;
    let failover = ended.elapsed();
    assert!(
        failover < Duration::from_secs(2),
        "failover took {failover:?}"
    );
    eprintln!("failover in {failover:?}; leader {second} of the two left");
    for store in &stores {
        store.close().await;
    }
}

/// Waits until `GET /v2/models/shared-api` on `app` answers `status` with
/// `version` first; returns how long it took.
async fn wait_for(app: &crate::helpers::TestApp, status: u16, version: Option<&str>) -> Duration {
    let started = Instant::now();
    loop {
        let reply = app
            .client
            .get(app.url("/v2/models/shared-api"))
            .send()
            .await
            .unwrap();
        let got_status = reply.status().as_u16();
        let body: serde_json::Value = reply.json().await.unwrap_or_default();
        let got_version = body["versions"][0].as_str();
        if got_status == status && got_version == version {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waiting for {status} {version:?}, got {got_status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two servers on one PostgreSQL database and artifact store: a deployment
/// created, changed and deleted through one is served, changed and removed
/// on the other, and at most one of them leads.
#[tokio::test]
async fn servers_on_one_database_follow_each_others_deployments() {
    use crate::serving::{create_deployment, register, v1};
    use reqwest::Method;

    let Some(first) = crate::helpers::spawn_postgres_app().await else {
        return;
    };
    let second = crate::helpers::spawn_beside(&first).await;
    let mut leading = 0;
    for app in [&first, &second] {
        let text = app.client.get(app.url("/metrics")).send().await.unwrap();
        leading += usize::from(text.text().await.unwrap().contains("\nsextant_leader 1\n"));
    }
    assert!(leading <= 1, "{leading} leaders");

    register(&first, "shared", 1, None).await;
    register(&first, "shared", 2, None).await;
    create_deployment(&first, "shared-api", "shared/1").await;
    let took = wait_for(&second, 200, Some("1")).await;
    eprintln!("the other server served the new deployment after {took:?}");
    v1(
        &first,
        Method::PATCH,
        "/deployments/shared-api",
        Some(serde_json::json!({"model": "shared/2"})),
    )
    .await
    .ok();
    wait_for(&second, 200, Some("2")).await;
    v1(&second, Method::DELETE, "/deployments/shared-api", None)
        .await
        .ok();
    wait_for(&first, 404, None).await;
}

/// Servers started at once on a new database: the migrations run once
/// (an advisory lock serialises them) and every server opens.
#[tokio::test]
async fn servers_starting_together_on_a_new_database_all_open() {
    let Some(url) = fresh_postgres_database().await else {
        return;
    };
    let (a, b, c) = tokio::join!(open(&url), open(&url), open(&url));
    for store in [&a, &b, &c] {
        store.ping().await.expect("open and answering");
        let default = store.get_experiment_by_name("Default").await.unwrap();
        assert_eq!(default.experiment_id, "0");
        store.close().await;
    }
}

/// Each process's counters of a deployment revision, stored so that the
/// leader judges canaries on every server's traffic: one row per reporter,
/// replaced as it reports, read back by freshness, pruned when stale.
async fn arm_reports_replace_and_expire(store: &Store) {
    let arms = |requests: u64| {
        format!(
            r#"{{"canary":{{"requests":{requests},"errors":0,"rejected":0,"latency_buckets":[]}}}}"#
        )
    };
    store
        .put_arm_report("api", "server-a", 3, &arms(5))
        .await
        .unwrap();
    store
        .put_arm_report("api", "server-b", 3, &arms(7))
        .await
        .unwrap();
    store
        .put_arm_report("api", "server-a", 4, &arms(9))
        .await
        .unwrap();
    store
        .put_arm_report("other", "server-a", 1, &arms(1))
        .await
        .unwrap();
    let reports = store.arm_reports("api", 0).await.unwrap();
    let seen: Vec<(&str, i64, &str)> = reports
        .iter()
        .map(|r| (r.reporter.as_str(), r.revision, r.arms.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("server-a", 4, arms(9).as_str()),
            ("server-b", 3, arms(7).as_str())
        ]
    );
    let future = sextant_governance::now_ms() + 60_000;
    assert!(store.arm_reports("api", future).await.unwrap().is_empty());
    assert_eq!(store.prune_arm_reports(future).await.unwrap(), 3);
    assert!(store.arm_reports("api", 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn arm_reports_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = open(&format!("sqlite://{}", dir.path().join("s.db").display())).await;
    arm_reports_replace_and_expire(&sqlite).await;
    if let Some(url) = fresh_postgres_database().await {
        arm_reports_replace_and_expire(&open(&url).await).await;
    }
}
