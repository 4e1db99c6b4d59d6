//! `sextant deployments image`: an OCI image of a deployment, written
//! without a container engine.
//!
//! The archive is an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) with Docker's `manifest.json` beside it, so both
//! `docker load` and OCI tools (skopeo, containerd, podman) read it. The
//! single layer holds:
//! - `/usr/local/bin/sextant`: this very binary, plus the shared libraries
//!   it runs with (read from `/proc/self/maps`) at their own paths, so the
//!   image needs no base image;
//! - `/opt/sextant/bundle/deployment.json` and
//!   `/opt/sextant/bundle/models/<model>/<version>/…`: the deployment's
//!   current revision and every model version it serves;
//! - an empty, world-writable `/tmp` for the model cache and the
//!   prediction log.
//!
//! The entrypoint is `sextant serve --bundle /opt/sextant/bundle
//! --deployment NAME` on `0.0.0.0:8080`. Models only Python can run are
//! refused: the image carries no Python.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::json;
use sextant_server::serving::{bundle_model_dir, RemoteServer, Source, BUNDLE_SPEC};
use sha2::{Digest, Sha256};

/// Where the bundle lives inside the image.
pub const BUNDLE_DIR: &str = "opt/sextant/bundle";
pub const BINARY_PATH: &str = "usr/local/bin/sextant";

pub async fn write_image(
    server: &RemoteServer,
    name: &str,
    output: &Path,
    tag: Option<&str>,
) -> anyhow::Result<()> {
    let deployment = server
        .deployment(name)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let staging = tempfile::tempdir().context("while creating a staging directory")?;
    let bundle = staging.path().join("bundle");
    std::fs::create_dir_all(&bundle)?;
    std::fs::write(
        bundle.join(BUNDLE_SPEC),
        serde_json::to_vec_pretty(&deployment)?,
    )?;
    let spec =
        sextant_core::DeploymentSpec::try_from(&deployment.spec).map_err(|e| anyhow::anyhow!(e))?;
    let source = Source::Remote(server.clone());
    let mut seen = BTreeSet::new();
    for arm in &spec.arms {
        if !seen.insert((arm.model.name.clone(), arm.model.version)) {
            continue;
        }
        let dir = bundle_model_dir(&bundle, &arm.model);
        source
            .fetch_model(&arm.model, &dir)
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("while fetching {}", arm.model))?;
        check_native(&dir).with_context(|| format!("{} cannot run in an image", arm.model))?;
    }
    let tag = tag.map_or_else(
        || format!("sextant/{name}:r{}", deployment.revision),
        str::to_string,
    );
    let output = output.to_path_buf();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || build_archive(&bundle, &name, &tag, &output)).await??;
    Ok(())
}

/// Images carry no Python: the model must load in a native engine.
fn check_native(dir: &Path) -> anyhow::Result<()> {
    let options = sextant_serve::mlflow::LoadOptions {
        python: None,
        force_python: false,
        progress: None,
    };
    sextant_serve::mlflow::load_model_dir(dir, &options).map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}

/// The files of the root filesystem: (path in the image, source on disk).
fn root_files(bundle: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let binary = std::env::current_exe().context("cannot find this binary")?;
    // The kernel starts a dynamically linked binary through the loader named
    // in its ELF header (`/lib64/ld-linux-x86-64.so.2`), by that exact path:
    // the maps show the loader only under its resolved name.
    if let Some(interpreter) = elf_interpreter(&binary)? {
        let resolved = std::fs::canonicalize(&interpreter).with_context(|| {
            format!(
                "cannot resolve the dynamic loader {}",
                interpreter.display()
            )
        })?;
        let inside = interpreter
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        files.push((inside, resolved));
    }
    files.push((BINARY_PATH.to_string(), binary));
    for library in loaded_libraries()? {
        let inside = library
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        if !files.iter().any(|(existing, _)| *existing == inside) {
            files.push((inside, library));
        }
    }
    let mut pending = vec![bundle.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else {
                let relative = path
                    .strip_prefix(bundle)?
                    .to_string_lossy()
                    .replace('\\', "/");
                files.push((format!("{BUNDLE_DIR}/{relative}"), path));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The shared objects this process has mapped (the dynamic loader, libc,
/// libm, libgcc_s, …): exactly what the binary needs to start, whatever
/// distribution built it. A statically linked binary maps none.
fn loaded_libraries() -> anyhow::Result<BTreeSet<PathBuf>> {
    let maps = std::fs::read_to_string("/proc/self/maps").context("cannot read /proc/self/maps")?;
    let mut libraries = BTreeSet::new();
    for line in maps.lines() {
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        if path.starts_with('/') && path.contains(".so") && Path::new(path).is_file() {
            libraries.insert(PathBuf::from(path));
        }
    }
    // Name resolution through /etc/hosts when the server is named: glibc
    // loads these on demand.
    for candidate in [
        "/lib/x86_64-linux-gnu/libnss_files.so.2",
        "/lib/x86_64-linux-gnu/libnss_dns.so.2",
    ] {
        if Path::new(candidate).is_file() {
            libraries.insert(PathBuf::from(candidate));
        }
    }
    Ok(libraries)
}

/// The program interpreter (`PT_INTERP`) of a 64-bit little-endian ELF
/// binary, or `None` for a static one. Layout from the ELF-64 object file
/// format: the program header table's offset at 0x20, entry size at 0x36,
/// count at 0x38; an entry's type at 0 (3 is `PT_INTERP`), file offset at 8
/// and size at 32.
fn elf_interpreter(binary: &Path) -> anyhow::Result<Option<PathBuf>> {
    let bytes =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    };
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        bail!(
            "{} is not a 64-bit little-endian ELF binary",
            binary.display()
        );
    }
    let (Some(table), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        bail!("{} has a truncated ELF header", binary.display());
    };
    for entry in (0..count).map(|i| table + i * size) {
        if u32_at(entry) == Some(3) {
            let (Some(offset), Some(length)) = (u64_at(entry + 8), u64_at(entry + 32)) else {
                bail!("{} has a truncated program header", binary.display());
            };
            let name = bytes.get(offset..offset + length).with_context(|| {
                format!("{} has a truncated interpreter name", binary.display())
            })?;
            let name = String::from_utf8_lossy(name)
                .trim_end_matches('\0')
                .to_string();
            return Ok(Some(PathBuf::from(name)));
        }
    }
    Ok(None)
}

/// Writes the layer, config, manifest and index into `output`.
fn build_archive(bundle: &Path, name: &str, tag: &str, output: &Path) -> anyhow::Result<()> {
    let files = root_files(bundle)?;
    // The layer: an uncompressed tar (its digest is the config's diff id)…
    let mut layer = tar::Builder::new(Vec::new());
    layer.mode(tar::HeaderMode::Deterministic);
    let mut dirs = BTreeSet::new();
    for (inside, _) in &files {
        let mut parent = Path::new(inside).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    dirs.insert(PathBuf::from("tmp"));
    for dir in &dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == Path::new("tmp") {
            0o1777
        } else {
            0o755
        });
        header.set_size(0);
        header.set_mtime(0);
        layer.append_data(&mut header, format!("{}/", dir.display()), std::io::empty())?;
    }
    for (inside, source) in &files {
        let data =
            std::fs::read(source).with_context(|| format!("while reading {}", source.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(if inside == BINARY_PATH || inside.contains(".so") {
            0o755
        } else {
            0o644
        });
        header.set_mtime(0);
        layer.append_data(&mut header, inside, data.as_slice())?;
    }
    let layer = layer.into_inner()?;
    let diff_id = sha256(&layer);
    // …stored gzip-compressed.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&layer)?;
    let layer_gz = encoder.finish()?;
    let layer_digest = sha256(&layer_gz);

    let config = serde_json::to_vec(&json!({
        "architecture": go_architecture(),
        "os": "linux",
        "config": {
            "Entrypoint": [format!("/{BINARY_PATH}"), "serve", "--bundle", format!("/{BUNDLE_DIR}"), "--deployment", name],
            "Env": [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "SEXTANT_HOST=0.0.0.0",
                "SEXTANT_PORT=8080",
                "SEXTANT_CACHE_DIR=/tmp/sextant",
                "SEXTANT_PREDICTION_LOG=/tmp/sextant/predictions",
            ],
            "ExposedPorts": {"8080/tcp": {}},
            "WorkingDir": "/",
            "Labels": {"org.opencontainers.image.title": name},
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created_by": "sextant deployments image"}],
    }))?;
    let config_digest = sha256(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_digest}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{layer_digest}"), "size": layer_gz.len()}],
    }))?;
    let manifest_digest = sha256(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": tag},
        }],
    }))?;
    let docker_manifest = serde_json::to_vec(&json!([{
        "Config": format!("blobs/sha256/{config_digest}"),
        "RepoTags": [tag],
        "Layers": [format!("blobs/sha256/{layer_digest}")],
    }]))?;

    let file = std::fs::File::create(output)
        .with_context(|| format!("while creating {}", output.display()))?;
    let mut archive = tar::Builder::new(std::io::BufWriter::new(file));
    let mut add = |path: &str, data: &[u8]| -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        archive.append_data(&mut header, path, data)?;
        Ok(())
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    add("manifest.json", &docker_manifest)?;
    add(&format!("blobs/sha256/{config_digest}"), &config)?;
    add(&format!("blobs/sha256/{manifest_digest}"), &manifest)?;
    add(&format!("blobs/sha256/{layer_digest}"), &layer_gz)?;
    archive.into_inner()?.flush()?;
    eprintln!(
        "sextant: wrote {} ({tag}, {} files, layer {:.1} MiB); load it with `docker load -i {}`",
        output.display(),
        files.len(),
        layer_gz.len() as f64 / (1024.0 * 1024.0),
        output.display()
    );
    if files.len() < 2 {
        bail!("the image is empty");
    }
    Ok(())
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The architecture as OCI (Go's GOARCH) names it.
fn go_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
