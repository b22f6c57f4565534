//! `cargo xtask sdk-conformance`: the official Python SDK (two versions) against the mock
//! binary. Creates a venv per version under `target/sdk-conformance/`, pip-installs the SDK,
//! starts `claude-tower-mock` on a free loopback port, runs `xtask/sdk/conformance.py`, and
//! stops the mock by its PID.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::step;

/// The SDK versions checked: the current one and the last 0.x.
pub(crate) const SDK_VERSIONS: &[&str] = &["2.16.0", "0.125.0"];

const KEY: &str = "sk-ant-conformance-test-key";

/// Kills the mock when dropped, whatever happens in between.
struct Mock(Child);

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a Python 3 with `venv` is here (else the check is skipped, and says so).
pub(crate) fn python_available() -> bool {
    Command::new("python3")
        .args(["-c", "import venv"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn run(root: &Path) -> Result<(), String> {
    if !python_available() {
        return Err("python3 (with venv) is missing; install it with: apt-get install -y python3 python3-venv".to_owned());
    }
    step(
        "build the mock",
        "cargo",
        &[
            "build",
            "--locked",
            "-q",
            "-p",
            "claude-tower-mock",
            "--bin",
            "claude-tower-mock",
        ],
        &[],
    )?;
    // Where cargo put it: `CARGO_TARGET_DIR` when set (relative to the root), else `target/`.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    let binary = target.join("debug/claude-tower-mock");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free loopback port: {e}"))?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mock = Mock(
        Command::new(&binary)
            .args(["--addr", &addr, "--api-key", KEY])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?,
    );
    let mut up = false;
    for _ in 0..100 {
        if TcpStream::connect(&addr).is_ok() {
            up = true;
            break;
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "a command-line tool without an async runtime"
        )]
        std::thread::sleep(Duration::from_millis(50));
    }
    if !up {
        return Err(format!("the mock did not listen on {addr} within 5 s"));
    }
    println!("mock binary pid {} on {addr}", mock.0.id());
    let script = root.join("xtask/sdk/conformance.py");
    let mut failures = Vec::new();
    for version in SDK_VERSIONS {
        let venv = root.join(format!("target/sdk-conformance/venv-{version}"));
        let python = venv.join("bin/python");
        if !python.is_file() {
            step(
                &format!("venv for anthropic {version}"),
                "python3",
                &["-m", "venv", &venv.to_string_lossy()],
                &[],
            )?;
        }
        step(
            &format!("pip install anthropic=={version}"),
            &python.to_string_lossy(),
            &[
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                &format!("anthropic=={version}"),
            ],
            &[],
        )?;
        let status = Command::new(&python)
            .arg(&script)
            .env("ANTHROPIC_BASE_URL", format!("http://{addr}"))
            .env("ANTHROPIC_API_KEY", KEY)
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .current_dir(root)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !status.success() {
            failures.push(*version);
        }
    }
    drop(mock);
    if failures.is_empty() {
        println!(
            "sdk-conformance: every check passed with anthropic {}",
            SDK_VERSIONS.join(" and ")
        );
        Ok(())
    } else {
        Err(format!(
            "sdk-conformance failed with anthropic {}",
            failures.join(", ")
        ))
    }
}
