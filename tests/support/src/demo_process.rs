//! Run the built `kestrel-demo` binary as a child process: its content root
//! in a temp dir (so the repository's appsettings.json is not read), logs on
//! stdout collected line by line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running demo process.
pub struct Demo {
    /// The child.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout/stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// The `kestrel-demo` executable that cargo built for the running test
/// binary. Cargo builds a package's binaries before its integration tests,
/// into the directory above the tests' `deps/` (`target/debug/`), so the
/// demo sits beside the running test's parent directory. (`env!` of
/// `CARGO_BIN_EXE_kestrel-demo` is only set when compiling the tests
/// themselves, not this crate.)
pub fn demo_exe() -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary in target/<profile>/deps/");
    let exe = profile_dir.join(format!("kestrel-demo{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.is_file(),
        "{} is missing: run the tests with cargo test (it builds the demo first)",
        exe.display()
    );
    exe
}

/// The `Command` for the demo: content root `root`, logs at info, no
/// inherited `ASPNETCORE_*` or `LISTEN_*` variables.
pub fn command(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(demo_exe());
    cmd.arg("--contentRoot").arg(root).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("ASPNETCORE_") || k.starts_with("LISTEN_") || k == "NOTIFY_SOCKET" {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

/// Spawn `cmd` and start collecting its output.
pub fn spawn(mut cmd: Command) -> Demo {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kestrel-demo");
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
    }
    Demo {
        child,
        lines: rx,
        log,
    }
}

impl Demo {
    /// Wait (≤ 20 s) for a line containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!(
            "no line with {needle:?}; output so far:\n{}",
            self.log.lock().unwrap().join("\n")
        )
    }

    /// The address after "Now listening on: " (waits for it).
    pub fn listening_on(&self) -> String {
        let line = self.wait_for("Now listening on: ");
        let rest = line.split("Now listening on: ").nth(1).unwrap();
        rest.split_whitespace().next().unwrap().to_string()
    }

    /// Send SIGTERM.
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Wait for the exit (≤ `limit`), killing the process after that.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// All output so far.
    pub fn output(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
