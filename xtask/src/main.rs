//! Project chores, run as `cargo xtask <task>`:
//!
//! * `ci`: run `.ci/run` (what CI runs);
//! * `fuzz-build`: build every fuzz target under `fuzz/` (without running
//!   them), so CI catches fuzz targets that no longer compile;
//! * `bench [--duration S] [--reps N] [--idle-conns N] [--only case,…]`: the
//!   side-by-side benchmark against hyper (see `benches/README.md`);
//! * `callgrind [--case pipelined|h2c|h3] [--requests N] [--only …]`:
//!   instructions per request under callgrind (pipelined HTTP/1.1, h2c, or
//!   HTTP/3 beside the bare h3 server), beside hyper;
//! * `fuzz <target> [seconds]`: run one target with cargo-fuzz (needs
//!   `cargo install cargo-fuzz`; uses `RUSTC_BOOTSTRAP=1` on a stable toolchain);
//! * `fuzz-all [--seconds N] [--only a,b]`: run every fuzz target in turn on
//!   its corpus and print executions, coverage, corpus size and crashes per
//!   target (see `docs/fuzzing.md`).

mod bench;
mod callgrind;
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(cmd: &mut Command) -> ExitCode {
    eprintln!("xtask: running {cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("xtask: command failed with {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("xtask: could not run the command: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: cargo xtask <ci | bench [options] | callgrind [options] | fuzz-build | fuzz <target> [seconds] | fuzz-all [--seconds N] [--only a,b]>");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    match args.first().map(String::as_str) {
        Some("ci") => run(Command::new("bash").arg(root.join(".ci/run"))),
        Some("bench") => bench::bench(&root, &args[1..]),
        Some("callgrind") => callgrind::callgrind(&root, &args[1..]),
        Some("idle-client") => match (args.get(1), args.get(2).and_then(|n| n.parse().ok())) {
            (Some(addr), Some(n)) => bench::idle_client(addr, n),
            _ => usage(),
        },
        Some("fuzz-all") => fuzz::fuzz_all(&root, &args[1..]),
        Some("fuzz-build") => run(Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--bins", "--manifest-path"])
            .arg(root.join("fuzz/Cargo.toml"))
            .env("CARGO_TARGET_DIR", root.join("fuzz/target"))),
        Some("fuzz") => {
            let Some(target) = args.get(1) else {
                return usage();
            };
            let seconds = args.get(2).map(String::as_str).unwrap_or("60");
            run(Command::new(env!("CARGO"))
                .current_dir(root.join("fuzz"))
                .env("RUSTC_BOOTSTRAP", "1")
                .args([
                    "fuzz",
                    "run",
                    target,
                    "--",
                    &format!("-max_total_time={seconds}"),
                ]))
        }
        _ => usage(),
    }
}
