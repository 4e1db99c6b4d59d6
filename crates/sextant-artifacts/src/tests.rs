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
