//! Running external programs from tests: the client and framework scripts in
//! `tests/clients/` and `tests/frameworks/` (Python, Node, redis-cli), with a
//! time limit, their output captured in files (so a chatty program cannot fill a
//! pipe and stall), and failures that say what the program printed.

use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// True when `program --version` runs and exits 0.
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The Python modules of `modules` that `python3` cannot import.
pub fn missing_python_modules(modules: &[&str]) -> Vec<String> {
    modules
        .iter()
        .filter(|m| {
            !Command::new("python3")
                .args(["-c", &format!("import {m}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|m| m.to_string())
        .collect()
}

/// Runs `program args...` in `dir` for at most `timeout`; Ok(its stdout) when it
/// exits 0, else Err with its status and the last 40 lines of its stderr (and its
/// stdout, when it failed).
pub fn run(
    program: &str,
    args: &[String],
    dir: &Path,
    timeout: Duration,
) -> Result<String, String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let out_path = tmp.path().join("stdout");
    let err_path = tmp.path().join("stderr");
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).map_err(|e| e.to_string())?)
        .stderr(File::create(&err_path).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("spawning {program} {args:?}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} {args:?} did not finish within {timeout:?}; stderr:\n{}",
                    tail(&fs::read_to_string(&err_path).unwrap_or_default(), 40)
                ));
            }
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let out = fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        let err = fs::read_to_string(&err_path).unwrap_or_default();
        return Err(format!(
            "{program} {args:?} exited with {status}; stderr:\n{}\nstdout:\n{}",
            tail(&err, 40),
            tail(&out, 40)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_stdout_and_reports_failures() {
        let dir = std::env::temp_dir();
        let sh = |script: &str| vec!["-c".to_string(), script.to_string()];
        let t = Duration::from_secs(20);
        assert_eq!(
            run("sh", &sh("echo hello"), &dir, t).as_deref(),
            Ok("hello\n")
        );
        let err = run("sh", &sh("echo why >&2; exit 3"), &dir, t).unwrap_err();
        assert!(err.contains("why") && err.contains('3'), "{err}");
        let err = run("sh", &sh("sleep 5"), &dir, Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        assert!(!have("no-such-program-redsnap"));
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
