//! Acknowledged writes survive a graceful restart (the writer drains).

use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(acknowledged_writes_survive_restart);

async fn acknowledged_writes_survive_restart(app: TestApp) {
    let run_id = app.create_run("0", "durable").await;
    for step in 0..20 {
        app.post(
            "runs/log-metric",
            json!({"run_id": run_id, "key": "m", "value": step, "timestamp": 1, "step": step}),
        )
        .await
        .ok();
    }
    let app = app.restart().await;
    let history = app
        .get(
            "metrics/get-history",
            &[("run_id", &run_id), ("metric_key", "m")],
        )
        .await
        .ok();
    assert_eq!(history["metrics"].as_array().map(Vec::len), Some(20));
}
