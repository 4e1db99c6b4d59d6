//! Bounded fuzzing of the readers that open untrusted model files: the
//! pickle reader (behind scikit-learn models) and the ONNX reader. Random
//! bytes, and mutations of real files (the library-made fixtures when
//! `SEXTANT_SERVE_FIXTURES` is set, small hand-made ones always), must give
//! an `Ok` or an error, never a panic or a hang.

use std::path::Path;

use proptest::prelude::*;

/// Real files to mutate: every `.pkl`/`.pickle`/`.onnx` fixture, plus two
/// files made here so the test bites without fixtures.
fn seeds(extensions: &[&str]) -> Vec<Vec<u8>> {
    let mut found = vec![
        // protocol 2: {'a': [1, 2.5, 'x']}
        b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03es.".to_vec(),
        // protocol 4: a global and a reduce, the shape every sklearn pickle has
        b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x05range\x94\x93\x94K\x03\x85\x94R\x94.".to_vec(),
    ];
    if let Some(root) = std::env::var_os("SEXTANT_SERVE_FIXTURES") {
        collect(Path::new(&root), extensions, &mut found);
    }
    found
}

fn collect(dir: &Path, extensions: &[&str], found: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, extensions, found);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e))
            && found.len() < 64
        {
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.len() <= 4 << 20 {
                    found.push(bytes);
                }
            }
        }
    }
}

/// A seed with a few bytes changed, cut or repeated.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    (
        0..count,
        proptest::collection::vec((any::<u32>(), any::<u8>(), 0u8..4), 1..8),
    )
        .prop_map(move |(pick, edits)| {
            let mut bytes = seeds[pick].clone();
            for (at, byte, kind) in edits {
                if bytes.is_empty() {
                    break;
                }
                let at = at as usize % bytes.len();
                match kind {
                    0 => bytes[at] = byte,
                    1 => bytes.truncate(at),
                    2 => bytes.insert(at, byte),
                    _ => {
                        let end = (at + 16).min(bytes.len());
                        let chunk = bytes[at..end].to_vec();
                        bytes.splice(at..at, chunk);
                    }
                }
            }
            bytes
        })
}

fn inputs(extensions: &[&str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        mutated(seeds(extensions)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_pickle_reader_never_panics(bytes in inputs(&["pkl", "pickle", "joblib"])) {
        let _ = sextant_serve::pickle::parse(&bytes);
        let _ = sextant_serve::sklearn::from_pickle(&bytes);
    }

    #[test]
    fn the_onnx_reader_never_panics(bytes in inputs(&["onnx"])) {
        let _ = sextant_serve::onnx::load(&bytes);
    }
}
