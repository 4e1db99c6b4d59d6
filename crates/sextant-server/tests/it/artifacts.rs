use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(artifact_proxy_round_trip, artifact_paths_cannot_escape);

const PROXY: &str = "/api/2.0/mlflow-artifacts/artifacts";

async fn artifact_proxy_round_trip(app: TestApp) {
    let run_id = app.create_run("0", "files").await;
    let root = format!("0/{run_id}/artifacts");
    let big: Vec<u8> = (0..3_000_000_u32).map(|i| (i % 251) as u8).collect();
    app.raw(
        Method::PUT,
        &format!("{PROXY}/{root}/notes.txt"),
        b"hello".to_vec(),
    )
    .await
    .ok();
    app.raw(
        Method::PUT,
        &format!("{PROXY}/{root}/dir/sub/big.bin"),
        big.clone(),
    )
    .await
    .ok();

    let listing = app
        .client
        .get(app.url(PROXY))
        .query(&[("path", root.as_str())])
        .send()
        .await
        .unwrap();
    let listing: serde_json::Value = listing.json().await.unwrap();
    assert_eq!(
        listing["files"],
        json!([{"path": "dir", "is_dir": true}, {"path": "notes.txt", "is_dir": false, "file_size": 5}])
    );
    // Listing a file, or nothing, is empty rather than an error.
    let file_listing: serde_json::Value = app
        .client
        .get(app.url(PROXY))
        .query(&[("path", format!("{root}/notes.txt"))])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(file_listing, json!({}));

    let download = app
        .client
        .get(app.url(&format!("{PROXY}/{root}/dir/sub/big.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("big.bin"));
    assert_eq!(download.bytes().await.unwrap().as_ref(), big.as_slice());

    // The run-scoped listing answers with paths relative to the run root.
    let run_listing = app
        .get("artifacts/list", &[("run_id", &run_id), ("path", "dir")])
        .await
        .ok();
    assert_eq!(
        run_listing["files"],
        json!([{"path": "dir/sub", "is_dir": true}])
    );

    app.raw(Method::DELETE, &format!("{PROXY}/{root}/dir"), Vec::new())
        .await
        .ok();
    let missing = app
        .client
        .get(app.url(&format!("{PROXY}/{root}/dir/sub/big.bin")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

async fn artifact_paths_cannot_escape(app: TestApp) {
    for path in [
        "../outside.txt",
        "a/../../outside.txt",
        "%2e%2e/outside.txt",
        "a/%252e%252e/x",
        "..%2foutside.txt",
    ] {
        let url = format!("{}{PROXY}/{path}", app.base);
        let response = app.client.put(&url).body("x").send().await.unwrap();
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{path}: status {status}");
    }
    assert!(!app.dir.path().join("outside.txt").exists());
    assert!(!app
        .dir
        .path()
        .parent()
        .unwrap()
        .join("outside.txt")
        .exists());
    let listing = app
        .client
        .get(app.url(PROXY))
        .query(&[("path", "../")])
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 400);
}
