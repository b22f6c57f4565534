//! `cargo xtask tidy`: repository rules that no compiler checks.

use std::path::Path;

/// Every crate under `crates/` has a README.md and a CHANGELOG.md, inherits the workspace
/// lints and package fields, and every Rust source file in the repository opens with `//!`.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    let crates = std::fs::read_dir(root.join("crates")).map_err(|e| format!("crates/: {e}"))?;
    for entry in crates.flatten() {
        let dir = entry.path();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        for file in ["README.md", "CHANGELOG.md", "Cargo.toml"] {
            if !dir.join(file).is_file() {
                problems.push(format!("crates/{name}: missing {file}"));
            }
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        for needle in [
            "[lints]\nworkspace = true",
            "rust-version.workspace = true",
            "edition.workspace = true",
        ] {
            if !manifest.contains(needle) {
                problems.push(format!(
                    "crates/{name}/Cargo.toml: missing `{}`",
                    needle.replace('\n', " ")
                ));
            }
        }
    }
    for top in ["crates", "examples", "benches", "fuzz", "xtask"] {
        check_headers(&root.join(top), root, &mut problems);
    }
    if problems.is_empty() {
        println!("tidy: ok");
        Ok(())
    } else {
        Err(format!(
            "tidy found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

fn check_headers(dir: &Path, root: &Path, problems: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            check_headers(&path, root, problems);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if !text.trim_start().starts_with("//!") {
                let shown = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                problems.push(format!("{shown}: does not open with a `//!` doc comment"));
            }
        }
    }
}
