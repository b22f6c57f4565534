//! `cargo xtask bench`: runs the criterion benches and prints a markdown table (benchmark,
//! median, ratio to the bare service of its group), also written to `target/bench-report.md`.

use std::path::{Path, PathBuf};

pub(crate) fn run(root: &Path, extra: &[String]) -> Result<(), String> {
    let mut args = vec![
        "bench",
        "--locked",
        "-p",
        "claude-tower-benches",
        "--benches",
        "--",
    ];
    let extra: Vec<&str> = extra
        .iter()
        .map(String::as_str)
        .skip_while(|a| *a == "--")
        .collect();
    args.extend(extra.iter().copied());
    crate::step("bench", "cargo", &args, &[])?;
    let criterion = root.join("target/criterion");
    let mut rows = Vec::new();
    collect(&criterion, &criterion, &mut rows);
    if rows.is_empty() {
        return Err(format!(
            "no criterion results under {}",
            criterion.display()
        ));
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut table =
        String::from("| group | benchmark | median | ratio to bare |\n|---|---|---|---|\n");
    for (group, id, median) in &rows {
        let bare = rows
            .iter()
            .find(|(g, i, _)| g == group && i.starts_with("bare"))
            .map(|(_, _, m)| *m);
        let ratio = bare.map_or_else(|| "-".to_owned(), |b| format!("{:.2}×", median / b));
        table.push_str(&format!(
            "| {group} | {id} | {} | {ratio} |\n",
            human(*median)
        ));
    }
    println!("\n{table}");
    let report = root.join("target/bench-report.md");
    std::fs::write(&report, &table).map_err(|e| format!("{}: {e}", report.display()))?;
    println!("written to {}", report.display());
    Ok(())
}

fn human(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

/// Finds `<group>/<function>/<parameter>/new/estimates.json` files and reads their median.
fn collect(dir: &Path, base: &Path, rows: &mut Vec<(String, String, f64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "report" || n == "base" || n == "change")
            {
                continue;
            }
            collect(&path, base, rows);
        } else if path.file_name().is_some_and(|n| n == "estimates.json")
            && path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "new")
        {
            let Some(median) = std::fs::read_to_string(&path)
                .ok()
                .as_deref()
                .and_then(median_ns)
            else {
                continue;
            };
            let relative = path
                .parent()
                .and_then(Path::parent)
                .and_then(|p| p.strip_prefix(base).ok());
            let Some(relative) = relative else { continue };
            let mut parts = relative.iter().map(|p| p.to_string_lossy().into_owned());
            let group = parts.next().unwrap_or_default();
            let id = parts.collect::<Vec<_>>().join("/");
            rows.push((group, id, median));
        }
    }
}

/// The `median.point_estimate` of a criterion `estimates.json`, without a JSON dependency.
fn median_ns(json: &str) -> Option<f64> {
    let after = &json[json.find("\"median\"")?..];
    let value = &after[after.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_median() {
        let json = r#"{"mean":{"confidence_interval":{"lower_bound":1.0},"point_estimate":9.0},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.5,"upper_bound":2.5},"point_estimate":2.25,"standard_error":0.1}}"#;
        assert_eq!(super::median_ns(json), Some(2.25));
    }
}
