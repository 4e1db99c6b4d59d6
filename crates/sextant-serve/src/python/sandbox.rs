//! What a Python worker may reach and use.
//!
//! A Python model is code: whoever registered it chose what it runs when
//! the worker loads it. Workers therefore start inside a sandbox made of
//! util-linux's programs, each doing one thing and then running the next:
//! `unshare --net` (a network namespace of its own: no network at all),
//! `setpriv` (another, unprivileged user, with no way to gain privileges
//! back), `prlimit` (address space, open files, no core dumps). Which of
//! these the platform allows is probed once, by the server's start-up code,
//! with [`Sandbox::probe`]; the rest is reported, not silently skipped.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

/// How workers are confined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Give the worker a network namespace of its own.
    pub no_network: bool,
    /// Run the worker as this user (the server must run as root).
    pub user: Option<String>,
    /// Address-space limit, in bytes.
    pub memory_bytes: Option<u64>,
    /// Most open files.
    pub open_files: Option<u64>,
    /// The server is not root: the network namespace needs a user
    /// namespace around it. Set by [`Sandbox::probe`].
    pub rootless: bool,
}

/// What [`Sandbox::probe`] found the platform allows.
#[derive(Debug, Clone)]
pub struct Probed {
    pub sandbox: Sandbox,
    /// What was asked for and cannot be had here, in words for the log.
    pub missing: Vec<String>,
}

impl Sandbox {
    /// The command that runs `program args…` inside this sandbox.
    pub fn command(&self, program: &Path, args: &[OsString]) -> Command {
        let mut chain: Vec<OsString> = Vec::new();
        if self.no_network {
            chain.extend(["unshare".into(), "--net".into()]);
            if self.rootless {
                // Unprivileged: a user namespace makes the network one possible.
                chain.extend(["--user".into(), "--map-root-user".into()]);
            }
            chain.push("--".into());
        }
        if let Some(user) = &self.user {
            chain.extend([
                "setpriv".into(),
                format!("--reuid={user}").into(),
                format!("--regid={}", group_of(user)).into(),
                "--clear-groups".into(),
                "--no-new-privs".into(),
                "--inh-caps=-all".into(),
                "--bounding-set=-all".into(),
                "--".into(),
            ]);
        }
        let mut limits: Vec<OsString> = Vec::new();
        if let Some(bytes) = self.memory_bytes {
            limits.push(format!("--as={bytes}").into());
        }
        if let Some(files) = self.open_files {
            limits.push(format!("--nofile={files}").into());
        }
        if !limits.is_empty() {
            chain.push("prlimit".into());
            chain.extend(limits);
            chain.push("--core=0".into());
            chain.push("--".into());
        }
        let mut command = match chain.split_first() {
            None => Command::new(program),
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
        };
        command.args(args);
        command
    }

    /// Keeps what the platform allows of `wanted`: each part is tried once
    /// with `true` as the program.
    pub fn probe(wanted: Sandbox) -> Probed {
        let root = is_root();
        let mut sandbox = Sandbox {
            rootless: !root,
            ..Sandbox::default()
        };
        let mut missing = Vec::new();
        let works = |candidate: &Sandbox| {
            candidate
                .command(Path::new("true"), &[])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        };
        if wanted.no_network {
            let candidate = Sandbox {
                no_network: true,
                ..sandbox.clone()
            };
            if works(&candidate) {
                sandbox.no_network = true;
            } else {
                missing.push("no network namespace (`unshare --net` is refused here): Python workers can reach the network".into());
            }
        }
        if let Some(user) = &wanted.user {
            let candidate = Sandbox {
                user: Some(user.clone()),
                ..sandbox.clone()
            };
            if !root {
                missing.push(format!(
                    "workers cannot switch to user '{user}': the server does not run as root (workers run as the server's user)"
                ));
            } else if works(&candidate) {
                sandbox.user = Some(user.clone());
            } else {
                missing.push(format!(
                    "workers cannot switch to user '{user}' (`setpriv` failed): they run as root"
                ));
            }
        }
        if wanted.memory_bytes.is_some() || wanted.open_files.is_some() {
            let candidate = Sandbox {
                memory_bytes: wanted.memory_bytes,
                open_files: wanted.open_files,
                ..sandbox.clone()
            };
            if works(&candidate) {
                sandbox.memory_bytes = wanted.memory_bytes;
                sandbox.open_files = wanted.open_files;
            } else {
                missing.push("no resource limits (`prlimit` is missing or refused)".into());
            }
        }
        Probed { sandbox, missing }
    }
}

/// Whether this process runs as root (`id -u` says `0`).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// The group to run as with `user`: its primary group where `id` knows
/// the user, else `nogroup`.
fn group_of(user: &str) -> String {
    Command::new("id")
        .args(["-g", user])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_string())
        .filter(|group| !group.is_empty())
        .unwrap_or_else(|| "nogroup".to_string())
}
