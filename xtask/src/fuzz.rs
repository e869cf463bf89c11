//! `cargo xtask fuzz-all --seconds N [--only a,b]`: run every cargo-fuzz
//! target under `fuzz/` in turn on its corpus (`fuzz/corpus/<target>`) and
//! print, per target, the executions, the coverage (libFuzzer's `cov` and
//! features `ft`), the corpus size and the crashes. Fails if any target
//! crashed (or did not build).
//!
//! Runs on the nightly toolchain when rustup has one, otherwise on the
//! current toolchain with `RUSTC_BOOTSTRAP=1` (cargo-fuzz needs `-Z` flags).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// What one run of one target gave.
#[derive(Debug, Default)]
struct Report {
    target: String,
    execs: u64,
    cov: u64,
    features: u64,
    corpus_files: usize,
    crashes: usize,
    ok: bool,
}

/// The targets: the `[[bin]]` names in `fuzz/Cargo.toml`.
fn targets(fuzz_dir: &Path) -> Vec<String> {
    let Ok(manifest) = std::fs::read_to_string(fuzz_dir.join("Cargo.toml")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin {
            if let Some(name) = line
                .strip_prefix("name")
                .and_then(|r| r.trim_start().strip_prefix('='))
            {
                out.push(name.trim().trim_matches('"').to_string());
            }
        }
    }
    out
}

/// `cargo fuzz …` on nightly if rustup has it, else with RUSTC_BOOTSTRAP=1.
fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = if nightly {
        let mut c = Command::new("rustup");
        c.args(["run", "nightly", "cargo", "fuzz"]);
        c
    } else {
        let mut c = Command::new(env!("CARGO"));
        c.arg("fuzz").env("RUSTC_BOOTSTRAP", "1");
        c
    };
    cmd.current_dir(fuzz_dir);
    cmd
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .count()
    })
}

/// The last `cov:`/`ft:` figures and the executions libFuzzer printed.
fn parse_stats(log: &str, report: &mut Report) {
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            match pair[0] {
                "cov:" => report.cov = pair[1].parse().unwrap_or(report.cov),
                "ft:" => report.features = pair[1].parse().unwrap_or(report.features),
                _ => {}
            }
        }
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            report.execs = n.trim().parse().unwrap_or(0);
        }
    }
}

fn run_one(fuzz_dir: &Path, target: &str, seconds: u64) -> Report {
    let corpus = fuzz_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    let _ = std::fs::create_dir_all(&corpus);
    let crashes_before = count_files(&artifacts);
    let mut cmd = cargo_fuzz(fuzz_dir);
    cmd.args(["run", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(["-timeout=60", "-print_final_stats=1"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    eprintln!("xtask: running {cmd:?}");
    let mut report = Report {
        target: target.to_string(),
        ..Report::default()
    };
    match cmd.output() {
        Ok(out) => {
            let log = String::from_utf8_lossy(&out.stderr);
            parse_stats(&log, &mut report);
            report.ok = out.status.success();
            if !report.ok {
                // The tail of libFuzzer's log says what went wrong.
                let lines: Vec<&str> = log.lines().collect();
                for line in &lines[lines.len().saturating_sub(60)..] {
                    eprintln!("  | {line}");
                }
            }
        }
        Err(e) => eprintln!("xtask: could not run cargo fuzz: {e}"),
    }
    report.corpus_files = count_files(&corpus);
    report.crashes = count_files(&artifacts).saturating_sub(crashes_before);
    report
}

/// `fuzz-all --seconds N [--only a,b]`.
pub fn fuzz_all(root: &Path, args: &[String]) -> ExitCode {
    let mut seconds = 20u64;
    let mut only: Option<Vec<String>> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => match it.next().and_then(|s| s.parse().ok()) {
                Some(s) => seconds = s,
                None => return usage(),
            },
            "--only" => match it.next() {
                Some(list) => only = Some(list.split(',').map(str::to_string).collect()),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let fuzz_dir: PathBuf = root.join("fuzz");
    let mut all = targets(&fuzz_dir);
    if let Some(only) = &only {
        all.retain(|t| only.contains(t));
    }
    if all.is_empty() {
        eprintln!("xtask: no fuzz targets found in {}", fuzz_dir.display());
        return ExitCode::FAILURE;
    }
    let reports: Vec<Report> = all.iter().map(|t| run_one(&fuzz_dir, t, seconds)).collect();
    println!(
        "\n{:<20} {:>12} {:>8} {:>10} {:>8} {:>8}  result",
        "target", "execs", "cov", "features", "corpus", "crashes"
    );
    for r in &reports {
        println!(
            "{:<20} {:>12} {:>8} {:>10} {:>8} {:>8}  {}",
            r.target,
            r.execs,
            r.cov,
            r.features,
            r.corpus_files,
            r.crashes,
            if r.ok { "ok" } else { "FAILED" }
        );
    }
    if reports.iter().all(|r| r.ok && r.crashes == 0) {
        ExitCode::SUCCESS
    } else {
        eprintln!("xtask: a fuzz target failed: see fuzz/artifacts/<target>/ and docs/fuzzing.md");
        ExitCode::FAILURE
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: cargo xtask fuzz-all [--seconds N] [--only target,target]");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_stats() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #4096\tpulse  cov: 120 ft: 340 corp: 20/1Kb lim: 43 exec/s: 2048 rss: 31Mb\n\
                   #8000\tDONE   cov: 125 ft: 351 corp: 22/1Kb lim: 43 exec/s: 4000 rss: 31Mb\n\
                   stat::number_of_executed_units: 8000\n";
        let mut r = Report::default();
        parse_stats(log, &mut r);
        assert_eq!((r.execs, r.cov, r.features), (8000, 125, 351));
    }

    #[test]
    fn finds_every_target_of_the_fuzz_manifest() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let t = targets(&root);
        for name in [
            "request_head",
            "chunked",
            "h2_frame_check",
            "h1_connection",
            "h1_framing_diff",
        ] {
            assert!(t.iter().any(|x| x == name), "{name} in {t:?}");
        }
    }
}
