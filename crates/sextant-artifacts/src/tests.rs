use super::*;

#[test]
fn paths_that_escape_the_root_are_rejected() {
    for bad in [
        "../etc/passwd",
        "a/../../b",
        "/abs",
        "a/./b",
        "%2e%2e/x",
        "a/%2E%2E/b",
        "a\\b",
        "C:/x",
        "a//b",
    ] {
        assert!(
            ArtifactPath::parse(bad).is_err(),
            "{bad} should be rejected"
        );
    }
    for good in [
        "",
        "model/MLmodel",
        "1/abc/artifacts/notes.txt",
        "dir/",
        "my file.txt",
        "a..b",
    ] {
        assert!(
            ArtifactPath::parse(good).is_ok(),
            "{good} should be accepted"
        );
    }
    assert_eq!(
        ArtifactPath::parse("dir/")
            .map(|p| p.as_str().to_string())
            .ok(),
        Some("dir".into())
    );
}

#[test]
fn proxied_uris_name_one_path_whatever_their_spelling() {
    let path = |uri: &str| proxied_path(uri).map(|r| r.map(|p| p.as_str().to_string()).ok());
    for (uri, expected) in [
        ("mlflow-artifacts:/1/abc", "1/abc"),
        ("mlflow-artifacts:///1/abc", "1/abc"),
        ("mlflow-artifacts://host:5000/1/abc/", "1/abc"),
        ("MLFLOW-ARTIFACTS:/1/abc", "1/abc"),
        // The host is never the path's first segment.
        ("mlflow-artifacts://1/2/abc", "2/abc"),
        ("mlflow-artifacts:", ""),
        ("mlflow-artifacts:/", ""),
    ] {
        assert_eq!(path(uri), Some(Some(expected.to_string())), "{uri}");
    }
    for bad in [
        "mlflow-artifacts:/1/../2/abc",
        "mlflow-artifacts://host//1/abc",
        "mlflow-artifacts:/1/abc?x=1",
        "mlflow-artifacts:/1/%2e%2e/2",
    ] {
        assert_eq!(path(bad), Some(None), "{bad} should be refused");
    }
    assert_eq!(path("s3://bucket/1/abc"), None);
    assert_eq!(path("runs:/abc/model"), None);
    assert_eq!(path("/local/path"), None);
}
