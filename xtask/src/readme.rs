//! The README's first program, built the way a newcomer builds it: in a fresh crate that
//! depends only on `claude-tower` (by path here, with the README's features) and tokio.

use std::path::Path;
use std::process::Command;

/// Extracts the `toml` and `rust` blocks under "## A first program" and `cargo check`s them
/// as their own crate (offline, reusing the workspace's lockfile and target directory).
pub(crate) fn check_first_program(root: &Path) -> Result<(), String> {
    let readme =
        std::fs::read_to_string(root.join("README.md")).map_err(|e| format!("README.md: {e}"))?;
    let section = readme
        .split("## A first program")
        .nth(1)
        .ok_or("README.md has no \"## A first program\" section")?;
    let block = |fence: &str| -> Result<String, String> {
        let start = section
            .find(fence)
            .ok_or_else(|| format!("no {fence} block in the first-program section"))?;
        let body = &section[start..];
        let body = &body[body.find('\n').unwrap_or(0) + 1..];
        let end = body.find("```").ok_or("an unclosed code block")?;
        Ok(body[..end].to_owned())
    };
    let dependencies = block("```toml")?;
    let program = block("```rust")?;
    let facade = root.join("crates/claude-tower");
    let mut manifest = String::from(
        "[package]\nname = \"readme-first-program\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[workspace]\n\n",
    );
    for line in dependencies.lines() {
        if line.starts_with("claude-tower ") {
            if !line.contains("version = \"0.1\"") {
                return Err(format!("unexpected claude-tower line in README: {line}"));
            }
            manifest.push_str(&line.replace(
                "version = \"0.1\"",
                &format!("path = {:?}", facade.display().to_string()),
            ));
        } else {
            manifest.push_str(line);
        }
        manifest.push('\n');
    }
    let dir = root.join("target/readme-first-program");
    std::fs::create_dir_all(dir.join("src")).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("src/main.rs"), program).map_err(|e| e.to_string())?;
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).map_err(|e| e.to_string())?;
    println!(
        "\n==> readme: the first program in a crate that depends only on claude-tower ({})",
        dir.display()
    );
    let status = Command::new("cargo")
        .args(["check", "--offline", "-q"])
        .env("CARGO_TARGET_DIR", root.join("target"))
        .env("CARGO_INCREMENTAL", "0")
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "readme: the first program does not build ({status})"
        ))
    }
}
