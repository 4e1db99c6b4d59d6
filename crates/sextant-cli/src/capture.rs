//! What a training run depended on, read from the machine it runs on, for
//! `sextant exec`'s manifest: the code (git commit, branch, remote without
//! credentials, the uncommitted diff, untracked files), the Python
//! interpreter with every installed distribution and the ML frameworks among
//! them, the project's lockfiles, the system (OS, kernel, libc, CPU model and
//! flags, memory), GPUs (NVIDIA: model, UUID, driver, CUDA, cuDNN), the
//! container and Kubernetes identity, allow-listed environment variables,
//! host and user, and content hashes of the inputs.
//!
//! Every probe answers what it found or why it found nothing (`present:
//! false` with a reason): absence is recorded, never guessed. Probes that run
//! a program give it a few seconds at most.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The longest a probe's program may run.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frameworks whose versions the manifest names on their own (the full
/// package list has the rest).
const FRAMEWORKS: &[&str] = &[
    "torch",
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "catboost",
    "numpy",
    "pandas",
    "scipy",
    "polars",
    "pyarrow",
    "transformers",
    "onnx",
    "onnxruntime",
    "mlflow",
    "statsmodels",
    "pytorch-lightning",
    "lightning",
];

/// Variables recorded by default: names, or prefixes ending in `*`. They
/// steer numerics and determinism, or say which job this is.
const ENV_ALLOW: &[&str] = &[
    "CUDA_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG",
    "CUDNN_*",
    "NCCL_*",
    "OMP_NUM_THREADS",
    "MKL_*",
    "OPENBLAS_NUM_THREADS",
    "PYTHONHASHSEED",
    "TF_*",
    "TORCH_*",
    "XLA_*",
    "JAX_*",
    "TOKENIZERS_PARALLELISM",
    "HF_HUB_OFFLINE",
    "LANG",
    "LC_ALL",
    "TZ",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_NODELIST",
    "SLURM_NTASKS",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "PATH",
];

/// Parts of a name that mark a secret: never recorded, even when allowed.
const SECRET_MARKS: &[&str] = &["TOKEN", "SECRET", "PASSWORD", "KEY", "CREDENTIAL", "PASSWD"];

/// Lockfiles and dependency declarations, looked for in the working
/// directory and at the repository's root.
const LOCKFILES: &[&str] = &[
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "pdm.lock",
    "requirements.txt",
    "requirements-dev.txt",
    "requirements.lock",
    "environment.yml",
    "environment.yaml",
    "conda-lock.yml",
    "pyproject.toml",
];

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 and size of a file, read in 1 MiB blocks.
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Runs `program args` with a timeout; its standard output when it exits 0.
fn run(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let deadline = std::time::Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let text = reader.join().ok()?;
    status
        .success()
        .then(|| String::from_utf8_lossy(&text).trim_end().to_string())
}

fn absent(reason: impl Into<String>) -> Value {
    json!({"present": false, "reason": reason.into()})
}

/// Everything `exec` records that does not depend on the command's run.
pub fn environment(
    dir: &Path,
    program: &str,
    inputs: &[PathBuf],
    env_allow: &[String],
) -> Map<String, Value> {
    let mut manifest = Map::new();
    let git = git(dir);
    let root = git["root"].as_str().map(PathBuf::from);
    manifest.insert("git".into(), git);
    let python = python(program);
    manifest.insert("frameworks".into(), frameworks(&python));
    manifest.insert("python".into(), python);
    manifest.insert("lockfiles".into(), lockfiles(dir, root.as_deref()));
    manifest.insert("system".into(), system());
    manifest.insert("gpus".into(), gpus());
    manifest.insert("container".into(), container());
    manifest.insert("environment".into(), allowed_environment(env_allow));
    manifest.insert("host".into(), json!(hostname()));
    manifest.insert("user".into(), json!(user()));
    manifest.insert(
        "inputs".into(),
        Value::Array(inputs.iter().map(|path| input_hash(path)).collect()),
    );
    manifest
}

/// The code: commit, branch, remote (credentials removed), whether the
/// tree differs from the commit, the diff itself (`diff_bytes`, stored as
/// an artifact by `exec` and replaced by its hash here) and untracked files.
fn git(dir: &Path) -> Value {
    let Some(root) = run("git", &["rev-parse", "--show-toplevel"], dir) else {
        return absent(format!(
            "{} is not in a git repository (or git is not installed)",
            dir.display()
        ));
    };
    let commit = run("git", &["rev-parse", "HEAD"], dir);
    let branch = run("git", &["rev-parse", "--abbrev-ref", "HEAD"], dir);
    let remote = run("git", &["config", "--get", "remote.origin.url"], dir)
        .map(|url| without_credentials(&url));
    let diff = run("git", &["diff", "HEAD", "--binary"], dir).unwrap_or_default();
    let untracked: Vec<String> = run("git", &["ls-files", "--others", "--exclude-standard"], dir)
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let mut git = json!({
        "present": true,
        "root": root,
        "commit": commit,
        "branch": branch,
        "remote": remote,
        "dirty": !diff.is_empty() || !untracked.is_empty(),
        "diff_sha256": (!diff.is_empty()).then(|| sha256_hex(diff.as_bytes())),
        "diff_artifact": (!diff.is_empty()).then_some("sextant/git.diff"),
        "untracked": untracked,
    });
    if commit.is_none() {
        git["reason"] = json!("the repository has no commit yet");
    }
    if !diff.is_empty() {
        git["diff_bytes"] = json!(diff);
    }
    git
}

/// `https://user:token@host/x` → `https://host/x`.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host))
                if rest
                    .find('/')
                    .is_none_or(|slash| rest.find('@') < Some(slash)) =>
            {
                format!("{scheme}://{host}")
            }
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The interpreter the command runs (`python…` as the program, else the
/// active virtualenv's, else `python3` on the PATH), and every distribution
/// on its path (from the `.dist-info` directories, as `importlib.metadata`
/// reads them: no `pip` process).
fn python(program: &str) -> Value {
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let interpreter = if name.starts_with("python") {
        program.to_string()
    } else if let Ok(venv) = std::env::var("VIRTUAL_ENV") {
        format!("{venv}/bin/python")
    } else {
        "python3".to_string()
    };
    let script =
        "import json, sys, platform; print(json.dumps({'version': sys.version.split()[0], \
        'implementation': platform.python_implementation(), 'executable': sys.executable, \
        'prefix': sys.prefix, 'path': [p for p in sys.path if p]}))";
    let Some(text) = run(&interpreter, &["-c", script], Path::new(".")) else {
        return absent(format!("no Python interpreter answered as '{interpreter}'"));
    };
    let Ok(mut info) = serde_json::from_str::<Value>(&text) else {
        return absent(format!("'{interpreter}' did not describe itself"));
    };
    let mut packages: BTreeMap<String, String> = BTreeMap::new();
    for dir in info["path"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = file
                .strip_suffix(".dist-info")
                .or_else(|| file.strip_suffix(".egg-info"))
            else {
                continue;
            };
            if let Some((name, version)) = stem.split_once('-') {
                // The first distribution on the path wins, as imports do.
                packages
                    .entry(normalize(name))
                    .or_insert_with(|| version.to_string());
            }
        }
    }
    info["present"] = json!(true);
    info["packages"] = json!(packages
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect::<Vec<_>>());
    info
}

/// PEP 503 names: lowercase, runs of `-`, `_`, `.` as one `-`.
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn frameworks(python: &Value) -> Value {
    let mut found = Map::new();
    for package in python["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Some((name, version)) = package.split_once("==") {
            if FRAMEWORKS.contains(&name) {
                found.insert(name.to_string(), json!(version));
            }
        }
    }
    Value::Object(found)
}

fn lockfiles(dir: &Path, root: Option<&Path>) -> Value {
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for base in std::iter::once(dir).chain(root) {
        for name in LOCKFILES {
            let path = base.join(name);
            let Ok(canonical) = path.canonicalize() else {
                continue;
            };
            if !seen.insert(canonical.clone()) {
                continue;
            }
            if let Ok((sha256, bytes)) = hash_file(&canonical) {
                found.push(json!({
                    "path": canonical.display().to_string(),
                    "sha256": sha256,
                    "bytes": bytes,
                    "artifact": format!("sextant/lockfiles/{}{name}", if base == dir { "" } else { "root/" }),
                }));
            }
        }
    }
    Value::Array(found)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn system() -> Value {
    let os_release: BTreeMap<String, String> = read("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let cpu_field = |key: &str| {
        cpuinfo
            .lines()
            .find(|line| line.starts_with(key))
            .and_then(|line| line.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let memory_kib = read("/proc/meminfo").and_then(|text| {
        text.lines()
            .find(|line| line.starts_with("MemTotal:"))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
    });
    let libc = run("ldd", &["--version"], Path::new("/"))
        .and_then(|text| text.lines().next().map(str::to_string));
    json!({
        "os": os_release.get("PRETTY_NAME"),
        "os_id": os_release.get("ID"),
        "os_version": os_release.get("VERSION_ID"),
        "kernel": read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_string()),
        "arch": std::env::consts::ARCH,
        "libc": libc,
        "cpu_model": cpu_field("model name"),
        "cpu_flags": cpu_field("flags").map(|flags| flags.split_whitespace().map(str::to_string).collect::<Vec<_>>()),
        "logical_cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory_bytes": memory_kib.map(|kib| kib * 1024),
    })
}

/// NVIDIA GPUs through `nvidia-smi` (driver, CUDA version the driver
/// supports, each GPU's model, UUID, memory and compute capability) and the
/// cuDNN library the dynamic loader knows.
fn gpus() -> Value {
    let query = run(
        "nvidia-smi",
        &[
            "--query-gpu=index,name,uuid,driver_version,memory.total,compute_cap",
            "--format=csv,noheader",
        ],
        Path::new("/"),
    );
    let nvidia = match query {
        None => absent("nvidia-smi not found or it found no NVIDIA driver"),
        Some(text) => {
            let devices: Vec<Value> = text
                .lines()
                .map(|line| {
                    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
                    json!({
                        "index": fields.first(), "name": fields.get(1), "uuid": fields.get(2),
                        "driver": fields.get(3), "memory": fields.get(4), "compute_capability": fields.get(5),
                    })
                })
                .collect();
            let cuda = run("nvidia-smi", &[], Path::new("/")).and_then(|text| {
                let at = text.find("CUDA Version:")?;
                text[at + "CUDA Version:".len()..]
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
            });
            json!({"present": true, "count": devices.len(), "devices": devices, "cuda_driver_version": cuda})
        }
    };
    let cudnn = run("ldconfig", &["-p"], Path::new("/")).and_then(|text| {
        text.lines()
            .filter_map(|line| line.trim().split_whitespace().next())
            .find(|lib| lib.starts_with("libcudnn.so."))
            .map(|lib| lib.trim_start_matches("libcudnn.so.").to_string())
    });
    json!({
        "nvidia": nvidia,
        "cudnn": cudnn.map_or_else(|| absent("no libcudnn known to the dynamic loader"), |v| json!({"present": true, "version": v})),
        "cuda_visible_devices": std::env::var("CUDA_VISIBLE_DEVICES").ok(),
    })
}

/// Inside a container? Which runtime, and on Kubernetes which pod. The image
/// digest comes from `SEXTANT_IMAGE` / `SEXTANT_IMAGE_DIGEST` when the
/// deployment sets them (the downward API cannot give it).
fn container() -> Value {
    let cgroup = read("/proc/self/cgroup").unwrap_or_default();
    let runtime = if Path::new("/run/.containerenv").exists() {
        Some("podman")
    } else if Path::new("/.dockerenv").exists() || cgroup.contains("docker") {
        Some("docker")
    } else if cgroup.contains("kubepods") || cgroup.contains("containerd") {
        Some("containerd")
    } else {
        None
    };
    let kubernetes = std::env::var("KUBERNETES_SERVICE_HOST").is_ok().then(|| {
        json!({
            "pod": std::env::var("POD_NAME").ok().or_else(hostname),
            "namespace": std::env::var("POD_NAMESPACE").ok()
                .or_else(|| read("/var/run/secrets/kubernetes.io/serviceaccount/namespace")),
            "node": std::env::var("NODE_NAME").ok(),
            "pod_uid": std::env::var("POD_UID").ok(),
        })
    });
    json!({
        "present": runtime.is_some() || kubernetes.is_some(),
        "runtime": runtime,
        "image": std::env::var("SEXTANT_IMAGE").ok(),
        "image_digest": std::env::var("SEXTANT_IMAGE_DIGEST").ok(),
        "kubernetes": kubernetes,
    })
}

fn allowed(name: &str, extra: &[String]) -> bool {
    let upper = name.to_ascii_uppercase();
    if SECRET_MARKS.iter().any(|mark| upper.contains(mark)) {
        return false;
    }
    let matches = |pattern: &str| match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    };
    ENV_ALLOW.iter().copied().any(matches) || extra.iter().any(|p| matches(p))
}

fn allowed_environment(extra: &[String]) -> Value {
    let variables: BTreeMap<String, String> = std::env::vars()
        .filter(|(name, _)| allowed(name, extra))
        .collect();
    json!(variables)
}

fn hostname() -> Option<String> {
    read("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

pub fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// A file's hash, or a directory's: each file's, and the SHA-256 of the
/// sorted `path\tsha256\n` lines as the directory's digest.
pub fn input_hash(path: &Path) -> Value {
    if path.is_file() {
        return match hash_file(path) {
            Ok((sha256, bytes)) => {
                json!({"path": path.display().to_string(), "sha256": sha256, "bytes": bytes})
            }
            Err(err) => json!({"path": path.display().to_string(), "error": err.to_string()}),
        };
    }
    if !path.is_dir() {
        return json!({"path": path.display().to_string(), "error": "no such file or directory"});
    }
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let child = entry.path();
            if child.is_dir() {
                stack.push(child);
            } else if child.is_file() {
                files.push(child);
            }
        }
    }
    files.sort();
    let mut listing = String::new();
    let mut total = 0u64;
    let mut entries = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(path)
            .unwrap_or(file)
            .display()
            .to_string();
        if let Ok((sha256, bytes)) = hash_file(file) {
            listing.push_str(&format!("{relative}\t{sha256}\n"));
            total += bytes;
            entries.push(json!({"path": relative, "sha256": sha256, "bytes": bytes}));
        }
    }
    json!({
        "path": path.display().to_string(),
        "sha256": sha256_hex(listing.as_bytes()),
        "bytes": total,
        "files": entries,
    })
}

/// The datasets the run logged (`mlflow.log_input`), with the content hash
/// of those whose source is a local file or directory.
pub fn logged_datasets(inputs: &Value, cwd: &Path) -> Value {
    let datasets = inputs["dataset_inputs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Value::Array(
        datasets
            .iter()
            .map(|input| {
                let dataset = &input["dataset"];
                let source: Value = dataset["source"]
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null);
                let local = ["uri", "path", "url"]
                    .iter()
                    .find_map(|key| source[key].as_str())
                    .map(|uri| uri.strip_prefix("file://").unwrap_or(uri))
                    .filter(|uri| !uri.contains("://"))
                    .map(|uri| cwd.join(uri))
                    .filter(|path| path.exists());
                json!({
                    "name": dataset["name"],
                    "digest": dataset["digest"],
                    "source_type": dataset["source_type"],
                    "source": source,
                    "context": input["tags"].as_array().and_then(|tags| tags.iter()
                        .find(|t| t["key"] == "mlflow.data.context")).map(|t| t["value"].clone()),
                    "content": local.map(|path| input_hash(&path)),
                })
            })
            .collect(),
    )
}

/// Tags summarising a manifest on the run.
pub fn summary_tags(manifest: &Value) -> Vec<(String, String)> {
    let mut tags = Vec::new();
    let mut tag = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            tags.push((key.to_string(), value));
        }
    };
    let git = &manifest["git"];
    tag(
        "mlflow.source.git.commit",
        git["commit"].as_str().map(str::to_string),
    );
    tag(
        "mlflow.source.git.branch",
        git["branch"].as_str().map(str::to_string),
    );
    tag(
        "mlflow.source.git.repoURL",
        git["remote"].as_str().map(str::to_string),
    );
    tag(
        "sextant.git.dirty",
        git["dirty"].as_bool().map(|d| d.to_string()),
    );
    tag(
        "sextant.python",
        manifest["python"]["version"].as_str().map(str::to_string),
    );
    tag(
        "sextant.os",
        manifest["system"]["os"].as_str().map(str::to_string),
    );
    let gpus = &manifest["gpus"]["nvidia"];
    tag(
        "sextant.gpu",
        Some(match gpus["present"].as_bool() {
            Some(true) => format!(
                "{} × {} (driver {}, CUDA {})",
                gpus["count"],
                gpus["devices"][0]["name"].as_str().unwrap_or("?"),
                gpus["devices"][0]["driver"].as_str().unwrap_or("?"),
                gpus["cuda_driver_version"].as_str().unwrap_or("?"),
            ),
            _ => "none".to_string(),
        }),
    );
    tag(
        "sextant.container",
        manifest["container"]["image_digest"]
            .as_str()
            .or(manifest["container"]["runtime"].as_str())
            .map(str::to_string),
    );
    let frameworks = manifest["frameworks"].as_object().map(|found| {
        found
            .iter()
            .map(|(name, version)| format!("{name}=={}", version.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(" ")
    });
    tag("sextant.frameworks", frameworks);
    // Content digests of the data, for lineage's reverse queries
    // (`dataset:sha256:…`): the --input paths and logged local datasets.
    let mut digests: Vec<String> = manifest["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            manifest["logged_datasets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| &d["content"]),
        )
        .filter_map(|input| input["sha256"].as_str())
        .map(|hex| format!("sha256:{hex}"))
        .collect();
    digests.sort();
    digests.dedup();
    digests.truncate(50);
    tag("sextant.inputs", Some(digests.join(" ")));
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_recorded_and_patterns_match() {
        assert!(allowed("OMP_NUM_THREADS", &[]));
        assert!(allowed("TORCH_HOME", &[]));
        assert!(!allowed("TORCH_API_TOKEN", &[]));
        assert!(!allowed("AWS_SECRET_ACCESS_KEY", &["AWS_*".into()]));
        assert!(allowed("MY_FLAG", &["MY_*".into()]));
        assert!(!allowed("HOME", &[]));
    }

    #[test]
    fn remotes_lose_their_credentials() {
        assert_eq!(
            without_credentials("https://me:ghp_x@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            without_credentials("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
        assert_eq!(without_credentials("ssh://git@host/a@b"), "ssh://host/a@b");
    }

    #[test]
    fn distribution_names_are_normalised() {
        assert_eq!(normalize("scikit_learn"), "scikit-learn");
        assert_eq!(normalize("Foo.Bar__baz"), "foo-bar-baz");
    }
}
