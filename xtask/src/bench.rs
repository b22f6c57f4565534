//! `cargo xtask bench`: runs the criterion benches and prints a markdown table (benchmark,
//! median, ratio to the bare service of its group, throughput when the bench declares one),
//! also written to `<target>/bench-report.md` (`<target>` is `$CARGO_TARGET_DIR` or
//! `target`). `cargo xtask bench --report` prints the table of the last run without running.

use std::path::{Path, PathBuf};

pub(crate) fn run(root: &Path, extra: &[String]) -> Result<(), String> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let report_only = extra.iter().any(|a| a == "--report");
    let extra: Vec<String> = extra.iter().filter(|a| *a != "--report").cloned().collect();
    if !report_only {
        run_benches(&extra)?;
    }
    report(&target)
}

fn run_benches(extra: &[String]) -> Result<(), String> {
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
    crate::step("bench", "cargo", &args, &[])
}

fn report(target: &Path) -> Result<(), String> {
    let criterion = target.join("criterion");
    let mut rows = Vec::new();
    collect(&criterion, &criterion, &mut rows);
    if rows.is_empty() {
        return Err(format!(
            "no criterion results under {}",
            criterion.display()
        ));
    }
    rows.sort_by(|a, b| (&a.group, &a.id).cmp(&(&b.group, &b.id)));
    let mut table = String::from(
        "| group | benchmark | median | added to bare | ratio to bare | throughput |\n|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        // The baseline is the group's `bare/…` bench with the same parameter, else the first.
        let parameter = row.id.split_once('/').map_or("", |(_, p)| p);
        let bares = || {
            rows.iter()
                .filter(|r| r.group == row.group && r.id.starts_with("bare"))
        };
        let bare = bares()
            .find(|r| r.id.ends_with(&format!("/{parameter}")))
            .or_else(|| bares().next())
            .map(|r| r.median);
        let ratio = bare.map_or_else(|| "-".to_owned(), |b| format!("{:.2}×", row.median / b));
        let added = bare
            .filter(|_| !row.id.starts_with("bare"))
            .map_or_else(|| "-".to_owned(), |b| human(row.median - b));
        let throughput = match row.throughput {
            Some(Throughput::Bytes(n)) => {
                format!("{:.0} MB/s", n as f64 / row.median * 1_000.0)
            }
            Some(Throughput::Elements(n)) if n > 1 => {
                format!("{} per element", human(row.median / n as f64))
            }
            _ => "-".to_owned(),
        };
        table.push_str(&format!(
            "| {} | {} | {} | {added} | {ratio} | {throughput} |\n",
            row.group,
            row.id,
            human(row.median)
        ));
    }
    println!("\n{table}");
    let report = target.join("bench-report.md");
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
struct Row {
    group: String,
    id: String,
    median: f64,
    throughput: Option<Throughput>,
}

enum Throughput {
    Bytes(u64),
    Elements(u64),
}

fn collect(dir: &Path, base: &Path, rows: &mut Vec<Row>) {
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
            let throughput = path
                .parent()
                .map(|new| new.join("benchmark.json"))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .as_deref()
                .and_then(throughput);
            rows.push(Row {
                group,
                id,
                median,
                throughput,
            });
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

/// The `throughput` of a criterion `benchmark.json` (`{"Bytes":n}` or `{"Elements":n}`).
fn throughput(json: &str) -> Option<Throughput> {
    let after = &json[json.find("\"throughput\":{")? + "\"throughput\":{".len()..];
    let (kind, rest) = after.split_once(':')?;
    let end = rest.find('}')?;
    let n = rest[..end].trim().parse().ok()?;
    match kind.trim().trim_matches('"') {
        "Bytes" | "BytesDecimal" => Some(Throughput::Bytes(n)),
        "Elements" => Some(Throughput::Elements(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_median() {
        let json = r#"{"mean":{"confidence_interval":{"lower_bound":1.0},"point_estimate":9.0},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.5,"upper_bound":2.5},"point_estimate":2.25,"standard_error":0.1}}"#;
        assert_eq!(super::median_ns(json), Some(2.25));
    }

    #[test]
    fn reads_the_throughput() {
        let json = r#"{"group_id":"sse","throughput":{"Bytes":1043138},"full_id":"sse/decode"}"#;
        assert!(matches!(
            super::throughput(json),
            Some(super::Throughput::Bytes(1_043_138))
        ));
        let json = r#"{"throughput":{"Elements":200},"x":1}"#;
        assert!(matches!(
            super::throughput(json),
            Some(super::Throughput::Elements(200))
        ));
        assert!(super::throughput(r#"{"throughput":null}"#).is_none());
    }
}
