//! The Python workers' sandbox, run for real: a program started in it has
//! no network, runs as the requested user and has the requested limits,
//! wherever the platform allows each (the probe says what it does not).

use std::ffi::OsString;
use std::path::Path;

use sextant_serve::python::Sandbox;

/// A probe program in the system's Python (readable by every user): its
/// user id, whether it reached a port listening in the server's network,
/// and its address-space limit.
const PROBE: &str = r#"
import os, resource, socket, sys
port = int(sys.argv[1])
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    reached = "reached"
except OSError:
    reached = "unreachable"
print(os.getuid(), reached, resource.getrlimit(resource.RLIMIT_AS)[0])
"#;

#[test]
fn workers_have_no_network_another_user_and_limits_where_the_platform_allows() {
    let python = Path::new("/usr/bin/python3");
    if !python.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI machines have Debian's python3"
        );
        eprintln!("skipping: no /usr/bin/python3");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let run = |sandbox: &Sandbox| {
        let output = sandbox
            .command(
                python,
                &[OsString::from("-c"), PROBE.into(), port.clone().into()],
            )
            .output()
            .expect("the sandboxed program starts");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    // Unconfined, the probe reaches the port: the test can tell.
    let open = run(&Sandbox::default());
    assert!(open.contains(" reached "), "{open}");

    let memory = 2048 * 1024 * 1024_u64;
    let probed = Sandbox::probe(Sandbox {
        no_network: true,
        user: Some("nobody".into()),
        memory_bytes: Some(memory),
        open_files: Some(256),
        ..Sandbox::default()
    });
    let confined = run(&probed.sandbox);
    let fields: Vec<&str> = confined.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{confined}");
    if probed.sandbox.no_network {
        assert_eq!(fields[1], "unreachable", "{confined}");
    } else {
        assert!(
            probed.missing.iter().any(|m| m.contains("network")),
            "{:?}",
            probed.missing
        );
    }
    if probed.sandbox.user.is_some() {
        assert_ne!(fields[0], "0", "switched away from root: {confined}");
    } else {
        assert!(
            probed.missing.iter().any(|m| m.contains("nobody")),
            "{:?}",
            probed.missing
        );
    }
    if probed.sandbox.memory_bytes.is_some() {
        assert_eq!(fields[2], memory.to_string(), "{confined}");
    }
}
