//! The same conformance checks on the local disk and on a real
//! S3-compatible server (`SEXTANT_TEST_S3_ENDPOINT`, e.g. moto; under CI it
//! must be set).

use bytes::Bytes;
use futures::{stream, TryStreamExt};
use sextant_artifacts::{ArtifactError, ArtifactPath, ArtifactStore};

const LIMIT: u64 = 64 * 1024 * 1024;

fn path(text: &str) -> ArtifactPath {
    ArtifactPath::parse(text).expect("valid test path")
}

async fn read_all(store: &ArtifactStore, at: &str) -> Vec<u8> {
    let download = store.get(&path(at)).await.expect("get");
    let chunks: Vec<Bytes> = download.body.try_collect().await.expect("body");
    chunks.concat()
}

fn body(data: Vec<u8>, chunk: usize) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks)
}

async fn conformance(store: ArtifactStore) {
    let small = b"hello world".to_vec();
    // Larger than the single-request limit, so it goes through multipart.
    let large: Vec<u8> = (0..9 * 1024 * 1024 + 17_u32)
        .map(|i| (i % 253) as u8)
        .collect();
    assert_eq!(
        store
            .put(&path("run/a.txt"), body(small.clone(), 4))
            .await
            .expect("put small"),
        small.len() as u64
    );
    store
        .put(&path("run/sub/large.bin"), body(large.clone(), 64 * 1024))
        .await
        .expect("put large");
    assert_eq!(read_all(&store, "run/a.txt").await, small);
    assert_eq!(read_all(&store, "run/sub/large.bin").await, large);
    // Whole reads: up to the limit, refused past it, absent as absent.
    assert_eq!(
        store
            .get_bytes(&path("run/sub/large.bin"), large.len() as u64)
            .await
            .expect("get_bytes at the limit"),
        large
    );
    assert!(matches!(
        store
            .get_bytes(&path("run/sub/large.bin"), large.len() as u64 - 1)
            .await,
        Err(ArtifactError::TooLarge { limit }) if limit == large.len() as u64 - 1
    ));
    assert!(matches!(
        store.get_bytes(&path("run/none.bin"), LIMIT).await,
        Err(ArtifactError::NotFound(_))
    ));

    let listing = store.list(&path("run")).await.expect("list");
    let names: Vec<(String, bool)> = listing.iter().map(|f| (f.path.clone(), f.is_dir)).collect();
    assert_eq!(
        names,
        vec![("sub".to_string(), true), ("a.txt".to_string(), false)]
    );
    assert_eq!(listing[1].file_size, Some(small.len() as u64));
    assert!(store
        .list(&path("run/a.txt"))
        .await
        .expect("list file")
        .is_empty());
    assert!(store
        .list(&path("nothing/here"))
        .await
        .expect("list missing")
        .is_empty());

    // Overwrite replaces.
    store
        .put(&path("run/a.txt"), body(b"v2".to_vec(), 1))
        .await
        .expect("overwrite");
    assert_eq!(read_all(&store, "run/a.txt").await, b"v2");

    // A failed upload leaves nothing behind.
    let broken = stream::iter(vec![
        Ok(Bytes::from_static(b"part")),
        Err(std::io::Error::other("client went away")),
    ]);
    let err = store
        .put(&path("run/broken.bin"), broken)
        .await
        .expect_err("broken upload");
    assert!(matches!(err, ArtifactError::Body(_)), "{err}");
    assert!(matches!(
        store.get(&path("run/broken.bin")).await,
        Err(ArtifactError::NotFound(_))
    ));

    store.delete(&path("run/sub")).await.expect("delete dir");
    assert!(matches!(
        store.get(&path("run/sub/large.bin")).await,
        Err(ArtifactError::NotFound(_))
    ));
    store.delete(&path("run/a.txt")).await.expect("delete file");
    assert!(matches!(
        store.delete(&path("run/a.txt")).await,
        Err(ArtifactError::NotFound(_))
    ));
}

#[tokio::test]
async fn local_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ArtifactStore::open(&dir.path().display().to_string(), &[], LIMIT).expect("open");
    conformance(store).await;
}

#[tokio::test]
async fn upload_limit_is_enforced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ArtifactStore::open(&dir.path().display().to_string(), &[], 1000).expect("open");
    let err = store
        .put(&path("big.bin"), body(vec![0; 5000], 100))
        .await
        .expect_err("over limit");
    assert!(matches!(err, ArtifactError::TooLarge { limit: 1000 }));
    assert!(matches!(
        store.get(&path("big.bin")).await,
        Err(ArtifactError::NotFound(_))
    ));
}

#[tokio::test]
async fn s3_compatible_server() {
    let Ok(endpoint) = std::env::var("SEXTANT_TEST_S3_ENDPOINT") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set SEXTANT_TEST_S3_ENDPOINT"
        );
        eprintln!("SEXTANT_TEST_S3_ENDPOINT is not set: S3 variant not run");
        return;
    };
    let bucket = std::env::var("SEXTANT_TEST_S3_BUCKET").unwrap_or_else(|_| "sextant-test".into());
    let options = vec![
        ("aws_endpoint".to_string(), endpoint),
        ("aws_allow_http".to_string(), "true".to_string()),
        ("aws_access_key_id".to_string(), "testing".to_string()),
        ("aws_secret_access_key".to_string(), "testing".to_string()),
        ("aws_region".to_string(), "us-east-1".to_string()),
    ];
    let prefix = format!("s3://{bucket}/it-{}", uuid::Uuid::new_v4().simple());
    let store = ArtifactStore::open(&prefix, &options, LIMIT).expect("open s3");
    conformance(store).await;
}

/// A symbolic link planted inside a local root leads nowhere: reads,
/// listings, uploads and deletes through it act as if it were absent, and
/// the files it points at are neither read, changed nor removed.
#[tokio::test]
async fn links_inside_a_local_root_are_not_followed_out_of_it() {
    let root = tempfile::tempdir().expect("temp dir");
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join("secret.txt"), b"secret").unwrap();
    let store =
        ArtifactStore::open(&root.path().display().to_string(), &[], 1 << 20).expect("opens");
    let path = |p: &str| ArtifactPath::parse(p).unwrap();
    store
        .put(
            &path("1/run/ok.txt"),
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"ok"))]),
        )
        .await
        .unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("1/run/escape")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        root.path().join("1/run/secret.txt"),
    )
    .unwrap();
    for link in ["1/run/escape/secret.txt", "1/run/secret.txt"] {
        assert!(
            matches!(
                store.get(&path(link)).await,
                Err(ArtifactError::NotFound(_))
            ),
            "{link}"
        );
    }
    assert!(store.list(&path("1/run/escape")).await.unwrap().is_empty());
    let names: Vec<String> = store
        .list(&path("1/run"))
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(names, vec!["ok.txt".to_string()]);
    let upload = store
        .put(
            &path("1/run/escape/planted.txt"),
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x"))]),
        )
        .await;
    assert!(upload.is_err());
    assert!(!outside.path().join("planted.txt").exists());
    let _ = store.delete(&path("1/run/escape")).await;
    let _ = store.delete(&path("1")).await;
    assert_eq!(
        std::fs::read(outside.path().join("secret.txt")).unwrap(),
        b"secret"
    );
}

mod fuzz {
    //! Bounded fuzzing of the path parsers every artifact request goes
    //! through: no input panics, and no accepted path can leave the root.

    use proptest::prelude::*;
    use sextant_artifacts::{proxied_path, ArtifactPath};

    fn path_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just("/".to_string()),
            Just("%2e".to_string()),
            Just("%2F".to_string()),
            Just("%".to_string()),
            Just("\\".to_string()),
            Just("mlflow-artifacts:".to_string()),
            Just("//".to_string()),
            Just("host:5000".to_string()),
            Just("C:".to_string()),
            "[a-z0-9]{1,6}",
            any::<char>().prop_map(String::from),
        ];
        prop_oneof![
            proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat()),
            any::<String>(),
        ]
    }

    fn stays_inside(path: &ArtifactPath) -> bool {
        let text = path.as_str();
        !text.starts_with('/')
            && !text.contains('\\')
            && !text
                .split('/')
                .any(|segment| segment == ".." || segment == ".")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn artifact_paths_never_panic_nor_escape(text in path_text()) {
            if let Ok(path) = ArtifactPath::parse(&text) {
                prop_assert!(stays_inside(&path), "{text:?} parsed as {:?}", path.as_str());
            }
            if let Some(Ok(path)) = proxied_path(&text) {
                prop_assert!(stays_inside(&path), "{text:?} proxied to {:?}", path.as_str());
            }
        }
    }
}
