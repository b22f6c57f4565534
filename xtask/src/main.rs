//! `cargo xtask`: the project's automation (matklad's cargo-xtask convention).
//!
//! ```text
//! cargo xtask ci      # everything CI checks: fmt, clippy -D warnings, tests, doc tests, docs, each feature alone, cargo deny, publish dry run, tidy, every example
//! cargo xtask bench   # criterion benches → markdown table (also target/bench-report.md)
//! cargo xtask tidy    # repository rules (READMEs, CHANGELOGs, lints, `//!` headers)
//! cargo xtask fuzz [--secs N] [--seed S]   # the stable-Rust mutation fuzzer (fuzz/README.md)
//! cargo xtask sdk-conformance  # the official Python SDK against the mock binary
//! ```
//!
//! Dependency-free on purpose: it builds in seconds.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod readme;
mod sdk;
mod tidy;

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("ci") => ci(),
        Some("tidy") => tidy::run(&root()),
        Some("readme") => readme::check_first_program(&root()),
        Some("bench") => bench::run(&root(), &std::env::args().skip(2).collect::<Vec<_>>()),
        Some("fuzz") => fuzz(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("sdk-conformance") => sdk::run(&root()),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\ntasks:\n  ci     fmt, clippy, tests, doc tests, docs, benches compile, each feature alone, cargo deny, publish dry run, tidy, the README's first program, every example (what CI runs)\n  bench  criterion benches; prints a markdown table, writes target/bench-report.md\n  tidy   repository rules\n  readme build the README's first program in a crate that depends only on claude-tower\n  fuzz   the mutation fuzzer: cargo xtask fuzz [--secs N] [--seed S] (default 60 s)\n  sdk-conformance  the official Python SDK (2.16.0, 0.125.0) against the mock binary"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

pub(crate) fn step(
    name: &str,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(), String> {
    println!("\n==> {name}: {program} {}", args.join(" "));
    let mut command = Command::new(program);
    // No incremental caches: a check run gains nothing from them, and on a long-lived machine
    // they grow to most of the target dir (13 of 20 GB here, enough to fill the disk).
    command
        .args(args)
        .current_dir(root())
        .env("CARGO_INCREMENTAL", "0");
    for (key, value) in env {
        command.env(key, value);
    }
    let status = command
        .status()
        .map_err(|e| format!("{name}: cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

fn has(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Tests that need Redis start their own `redis-server`; make sure one is installed when the
/// workspace depends on the `redis` crate.
fn ensure_redis() -> Result<(), String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap_or_default();
    if !lock.contains("name = \"redis\"\n") || has("redis-server", &["--version"]) {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if is_root && has("apt-get", &["--version"]) {
        step("install redis", "apt-get", &["update"], &[])?;
        step(
            "install redis",
            "apt-get",
            &["install", "-y", "redis-server"],
            &[],
        )?;
        return Ok(());
    }
    Err("redis-server is missing; install it with: apt-get install -y redis-server".to_owned())
}

/// Installs `cargo-<name>` from crates.io when `cargo <name>` is missing.
fn ensure_cargo_tool(name: &str) -> Result<(), String> {
    if has("cargo", &[name, "--version"]) {
        return Ok(());
    }
    let package = format!("cargo-{name}");
    step(
        &format!("install {package}"),
        "cargo",
        &["install", &package, "--locked"],
        &[],
    )
}

/// Each crate with each of its features alone and without dev-dependencies (STYLE §7.10
/// step 5): catches code that compiles only with the workspace's unified features. Installs
/// `cargo-hack` from crates.io when it is missing. Warnings fail the step (the other steps
/// build with all features, so only this one sees a feature-gated import go unused).
fn feature_combinations() -> Result<(), String> {
    ensure_cargo_tool("hack")?;
    let args = [
        "hack",
        "check",
        "--each-feature",
        "--no-dev-deps",
        "--workspace",
    ];
    println!("\n==> features: cargo {}", args.join(" "));
    let output = Command::new("cargo")
        .args(args)
        .current_dir(root())
        .env("CARGO_INCREMENTAL", "0")
        .output()
        .map_err(|e| format!("features: cannot run cargo hack: {e}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    // Without dev-dependencies, the `[profile.dev.package.proptest]` override names no package.
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.starts_with("warning:") && !line.contains("profile package spec"))
        .collect();
    for line in log.lines().filter(|line| line.starts_with("info: running")) {
        println!("{line}");
    }
    if !output.status.success() {
        eprintln!("{log}");
        return Err(format!("features failed ({})", output.status));
    }
    if !warnings.is_empty() {
        eprintln!("{log}");
        return Err(format!(
            "features: {} warning lines (a feature alone leaves something unused?)",
            warnings.len()
        ));
    }
    Ok(())
}

/// `cargo deny` on licences, bans and sources (deny.toml; STYLE §7.10 step 7), offline:
/// advisories need the RustSec database from GitHub. Installs `cargo-deny` from crates.io when
/// it is missing.
fn dependency_policy() -> Result<(), String> {
    ensure_cargo_tool("deny")?;
    // `--offline` needs every crate of every target platform in the local cache; a build
    // fetches only this platform's, so fetch the rest first (a no-op when the cache is warm).
    step("fetch", "cargo", &["fetch", "--locked"], &[])?;
    step(
        "dependencies",
        "cargo",
        &[
            "deny",
            "--offline",
            "--locked",
            "check",
            "--hide-inclusion-graph",
            "licenses",
            "bans",
            "sources",
        ],
        &[],
    )
}

/// The stable-Rust mutation fuzzer (`fuzz/`), release build; `--secs` defaults to 60.
fn fuzz(args: &[String]) -> Result<(), String> {
    let mut forwarded: Vec<&str> = vec![
        "run",
        "--release",
        "--locked",
        "-q",
        "-p",
        "claude-tower-fuzz",
        "--",
    ];
    if !args.iter().any(|a| a == "--secs") {
        forwarded.extend(["--secs", "60"]);
    }
    forwarded.extend(args.iter().map(String::as_str));
    step("fuzz", "cargo", &forwarded, &[])
}

/// Removes what an earlier publish dry run left of this workspace's own crates: the unpacked
/// packages under `<target>/package`, and their sources and tarballs in cargo's caches of
/// the local temporary registries (directories starting with `-`, never crates.io's). The
/// version does not change between runs, so cargo would otherwise verify against stale
/// sources (or artifacts) of the same version.
fn clear_stale_packages() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), |dir| root().join(dir));
    let _ = std::fs::remove_dir_all(target.join("package"));
    // Registry crates are assumed immutable, so cargo would also reuse what it compiled of
    // them: remove this workspace's compiled crates (they rebuild in a minute).
    let ours = |name: &str| name.starts_with("claude-tower") || name.contains("claude_tower");
    for dir in [".fingerprint", "deps", "build"] {
        let Ok(entries) = std::fs::read_dir(target.join("debug").join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            if ours(&entry.file_name().to_string_lossy()) {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let Some(cargo_home) = cargo_home else {
        return;
    };
    for kind in ["src", "cache"] {
        let Ok(registries) = std::fs::read_dir(cargo_home.join("registry").join(kind)) else {
            continue;
        };
        for registry in registries.flatten() {
            if !registry.file_name().to_string_lossy().starts_with('-') {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(registry.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("claude-tower")
                {
                    let path = entry.path();
                    let _ = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                }
            }
        }
    }
}

/// How long `cargo xtask ci` fuzzes (the hardening issue allows at most 2 minutes).
const CI_FUZZ_SECS: &str = "60";

fn ci() -> Result<(), String> {
    ensure_redis()?;
    step("fmt", "cargo", &["fmt", "--all", "--check"], &[])?;
    step(
        "clippy",
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    // Tests that read the shared fixtures (beside the repository, never in a crate) skip with
    // a note when they are absent; where they exist, absence is an error.
    let fixtures = root().join("../shared/data/anthropic-fixtures");
    let require: &[(&str, &str)] = if fixtures.is_dir() {
        &[("CLAUDE_TOWER_REQUIRE_FIXTURES", "1")]
    } else {
        println!(
            "\n==> note: {} is absent: the fixture tests skip",
            fixtures.display()
        );
        &[]
    };
    if has("cargo", &["nextest", "--version"]) {
        step(
            "tests",
            "cargo",
            &[
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--locked",
                "--no-fail-fast",
            ],
            require,
        )?;
    } else {
        step(
            "tests",
            "cargo",
            &[
                "test",
                "--workspace",
                "--all-features",
                "--locked",
                "--lib",
                "--bins",
                "--tests",
            ],
            require,
        )?;
    }
    step(
        "doc tests",
        "cargo",
        &["test", "--doc", "--workspace", "--all-features", "--locked"],
        &[],
    )?;
    step(
        "docs",
        "cargo",
        &[
            "doc",
            "--workspace",
            "--all-features",
            "--no-deps",
            "--locked",
        ],
        &[(
            "RUSTDOCFLAGS",
            "-D warnings -D rustdoc::broken_intra_doc_links",
        )],
    )?;
    // Benches are only compiled in CI (timing runs locally with `cargo xtask bench`).
    step(
        "benches compile",
        "cargo",
        &["check", "--workspace", "--benches", "--locked"],
        &[],
    )?;
    fuzz(&["--secs".to_owned(), CI_FUZZ_SECS.to_owned()])?;
    if sdk::python_available() {
        println!("\n==> sdk-conformance");
        sdk::run(&root())?;
    } else {
        println!(
            "\n==> sdk-conformance: SKIPPED (no python3 with venv; apt-get install -y python3 python3-venv)"
        );
    }
    feature_combinations()?;
    dependency_policy()?;
    // Every publishable crate packages and builds from its tarball alone (LICENSE files
    // included, no path-only dependency, nothing read from outside the crate).
    clear_stale_packages();
    step(
        "package",
        "cargo",
        &[
            "publish",
            "--workspace",
            "--dry-run",
            "--locked",
            "--allow-dirty",
        ],
        &[],
    )?;
    println!("\n==> tidy");
    tidy::run(&root())?;
    readme::check_first_program(&root())?;
    // Every example, as a newcomer runs it (mock backend, no key); the README's first command
    // (quickstart) first.
    let mut examples: Vec<String> = std::fs::read_dir(root().join("examples/examples"))
        .map_err(|e| format!("examples/examples: {e}"))?
        .flatten()
        .filter_map(|e| {
            e.path()
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_owned)
        })
        .filter(|name| name != "quickstart")
        .collect();
    examples.sort();
    examples.insert(0, "quickstart".to_owned());
    for example in examples {
        println!("\n==> example: cargo run -p claude-tower-examples --example {example}");
        let status = Command::new("cargo")
            .env("CARGO_INCREMENTAL", "0")
            .args([
                "run",
                "--locked",
                "-q",
                "-p",
                "claude-tower-examples",
                "--example",
                &example,
            ])
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_AUTH_TOKEN")
            .env_remove("ANTHROPIC_BASE_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .current_dir(root())
            .status()
            .map_err(|e| format!("example {example}: {e}"))?;
        if !status.success() {
            return Err(format!("example {example} failed ({status})"));
        }
    }
    println!("\nxtask ci: all checks passed");
    Ok(())
}
