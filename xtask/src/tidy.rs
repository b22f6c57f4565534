//! `cargo xtask tidy`: repository rules that no compiler checks.

use std::path::Path;

/// Every crate under `crates/` has a README.md, a CHANGELOG.md and both LICENSE files, inherits
/// the workspace lints and package fields; every Rust source file in the repository opens with
/// `//!`; published sources and READMEs never cite the private notes (`API-NOTES`, `STYLE.md`).
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
        for file in [
            "README.md",
            "CHANGELOG.md",
            "Cargo.toml",
            "LICENSE-MIT",
            "LICENSE-APACHE",
        ] {
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
    for file in ["LICENSE-MIT", "LICENSE-APACHE"] {
        if !root.join(file).is_file() {
            problems.push(format!("missing {file} at the root"));
        }
    }
    // Files a reader can hold in mind: no source file over MAX_SOURCE_LINES lines.
    for file in rust_files(&root.join("crates")) {
        if !file.components().any(|c| c.as_os_str() == "src") {
            continue;
        }
        let lines = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .count();
        if lines > MAX_SOURCE_LINES {
            let shown = file
                .strip_prefix(root)
                .unwrap_or(&file)
                .display()
                .to_string();
            problems.push(format!(
                "{shown}: {lines} lines (at most {MAX_SOURCE_LINES})"
            ));
        }
    }
    // No import circle between the modules of a crate.
    let crates = std::fs::read_dir(root.join("crates")).map_err(|e| format!("crates/: {e}"))?;
    for entry in crates.flatten() {
        if let Some(cycle) = module_cycle(&entry.path().join("src")) {
            let name = entry.file_name().to_string_lossy().into_owned();
            problems.push(format!(
                "crates/{name}: import circle between modules: {}",
                cycle.join(" → ")
            ));
        }
    }
    check_layer_skeleton(&root.join("crates"), &mut problems);
    // Published docs never point at files a user does not have.
    for top in ["crates", "README.md"] {
        check_private_references(&root.join(top), root, &mut problems);
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

/// Crates whose streams are not "when the response ends" wrappers: the core (the hook
/// itself, the wire contract), the transport (the SSE decoder), the mock (scripted streams)
/// retry (timeouts between events, mid-stream bookkeeping) and the facade (`TextStream`, the
/// caller's stream of text).
const STREAM_CRATES: [&str; 5] = [
    "claude-tower",
    "claude-tower-core",
    "claude-tower-transport",
    "claude-tower-mock",
    "claude-tower-retry",
];

/// One layer skeleton: every service (a `pub struct X<S…>` with an `inner: S` field) has the
/// tower accessors (`inner_service_accessors!`), and no layer outside [`STREAM_CRATES`] wraps
/// a stream of its own: a response's end is handled by the core `end::OnEnd` hook.
fn check_layer_skeleton(crates: &Path, problems: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(crates) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let files: Vec<(std::path::PathBuf, String)> = rust_files(&entry.path().join("src"))
            .into_iter()
            .map(|f| {
                let text = std::fs::read_to_string(&f).unwrap_or_default();
                (f, text)
            })
            .collect();
        let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
        for (file, text) in &files {
            let shown = format!(
                "crates/{name}/{}",
                file.strip_prefix(entry.path()).unwrap_or(file).display()
            );
            if !STREAM_CRATES.contains(&name.as_str())
                && text.lines().any(|l| {
                    let l = l.trim_start();
                    l.starts_with("impl") && l.contains(" Stream for ")
                })
            {
                problems.push(format!(
                    "{shown}: a stream wrapper of its own; use `claude_tower_core::end::OnEnd`"
                ));
            }
            let mut lines = text.lines().peekable();
            while let Some(line) = lines.next() {
                let Some(rest) = line.strip_prefix("pub struct ") else {
                    continue;
                };
                let Some((service, generics)) = rest.split_once("<S") else {
                    continue;
                };
                if !(generics.starts_with('>') || generics.starts_with(',')) {
                    continue;
                }
                let body: Vec<&str> = lines.clone().take_while(|l| !l.starts_with('}')).collect();
                if body.iter().any(|l| {
                    l.trim()
                        .trim_start_matches("pub(crate) ")
                        .trim_start_matches("pub(super) ")
                        == "inner: S,"
                }) && !all.contains(&format!("inner_service_accessors!({service}<"))
                {
                    problems.push(format!(
                        "{shown}: service `{service}` has no `inner_service_accessors!` (get_ref, get_mut, into_inner)"
                    ));
                }
            }
        }
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

/// Names of files a crate's user does not have, which docs must not cite.
const PRIVATE_REFERENCES: &[&str] = &["API-NOTES", "STYLE.md", "STYLE §"];

fn check_private_references(path: &Path, root: &Path, problems: &mut Vec<String>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            let child = entry.path();
            // Only what is published: sources and READMEs (tests and benches may cite notes).
            let name = child.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if child.is_dir() && matches!(name, "target" | "tests" | "benches") {
                continue;
            }
            check_private_references(&child, root, problems);
        }
        return;
    }
    let published = path.extension().is_some_and(|e| e == "rs")
        || path.file_name().is_some_and(|n| n == "README.md");
    if !published {
        return;
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let crate_readme = path.file_name().is_some_and(|n| n == "README.md")
        && path
            .parent()
            .and_then(Path::parent)
            .is_some_and(|p| p.ends_with("crates"));
    let shown = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    let (mut fence_open, mut in_code) = (false, false);
    for (number, line) in text.lines().enumerate() {
        let mut problem = |what: String| problems.push(format!("{shown}:{}: {what}", number + 1));
        // Code blocks of docs and READMEs: what a user copies uses the facade's paths.
        let doc = line.trim_start();
        let doc = doc
            .strip_prefix("//!")
            .or_else(|| doc.strip_prefix("///"))
            .unwrap_or(if path.extension().is_some_and(|e| e == "md") {
                doc
            } else {
                ""
            })
            .trim();
        if doc.starts_with("```") {
            fence_open = !fence_open;
            let language = doc.trim_start_matches('`');
            in_code = fence_open
                && (language.is_empty() || language.starts_with("rust") || language == "no_run");
        } else if in_code && doc.contains("claude_tower_") && !doc.contains("claude_tower_examples")
        {
            problem("a doc example uses a layer crate's path; write `claude_tower::…`".to_owned());
        }
        if crate_readme && line.contains("](../") {
            problem("a link outside the crate is dead on crates.io".to_owned());
        }
        if let Some(name) = PRIVATE_REFERENCES.iter().find(|n| line.contains(**n)) {
            problem(format!(
                "cites `{name}`, which users of the crate do not have"
            ));
        }
    }
}

/// A circle of `crate::…` references between the top-level modules of a crate's `src/`, if
/// any (comments are ignored; a module's submodules count as the module).
fn module_cycle(src: &Path) -> Option<Vec<String>> {
    use std::collections::{BTreeMap, BTreeSet};
    fn walk(dir: &Path, top: Option<&str>, deps: &mut BTreeMap<String, BTreeSet<String>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_owned();
            let module = top.map_or(stem.clone(), str::to_owned);
            if path.is_dir() {
                walk(&path, Some(&module), deps);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs")
                || matches!(module.as_str(), "lib" | "main")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let set = deps.entry(module.clone()).or_default();
            for line in text.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let name: String = line[at + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                        .collect();
                    if !name.is_empty() && name != module {
                        set.insert(name);
                    }
                }
            }
        }
    }
    fn visit(
        node: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in deps.get(node).into_iter().flatten() {
            if deps.contains_key(next)
                && let Some(cycle) = visit(next, deps, path, done)
            {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut deps = BTreeMap::new();
    walk(src, None, &mut deps);
    let mut done = BTreeSet::new();
    deps.keys()
        .find_map(|node| visit(node, &deps, &mut Vec::new(), &mut done))
}

/// The longest a source file under `crates/*/src` may be.
const MAX_SOURCE_LINES: usize = 600;

/// Every `.rs` file below `dir` (`target/` skipped).
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                out.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// The repository rules hold (the same check as `cargo xtask tidy`).
    #[test]
    fn the_repository_is_tidy() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root");
        if let Err(problems) = super::run(root) {
            panic!("{problems}");
        }
    }

    #[test]
    fn a_service_without_accessors_and_a_stream_wrapper_are_found() {
        let dir = std::env::temp_dir().join(format!("tidy-skeleton-{}", std::process::id()));
        let src = dir.join("claude-tower-example/src");
        std::fs::create_dir_all(&src).expect("temp dir");
        std::fs::write(
            src.join("lib.rs"),
            "pub struct Thing<S> {\n    inner: S,\n}\nstruct W;\nimpl Stream for W {}\n",
        )
        .expect("write");
        let mut problems = Vec::new();
        super::check_layer_skeleton(&dir, &mut problems);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("stream wrapper") || problems[1].contains("stream wrapper"));
        assert!(problems.iter().any(|p| p.contains("`Thing`")));
    }
}
