//! The `agent_state` example as a child process: started with an environment,
//! its stdout lines read as they come, terminated or killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The example's binary, built once if missing.
pub fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(|p| p.parent()).unwrap().to_path_buf();
    let bin = debug.join("examples").join("agent_state");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "redsnap", "--example", "agent_state"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .status()
            .unwrap();
        assert!(status.success());
    }
    bin
}

pub struct Agent {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Agent {
    /// An agent on `url` (None: no `REDIS_URL`, the in-process default
    /// `redsnap:///./data`), namespace `ns`, in the working directory `cwd`.
    pub fn spawn(url: Option<&str>, ns: &str, cwd: Option<&Path>, env: &[(&str, &str)]) -> Agent {
        let mut cmd = Command::new(example_bin());
        match url {
            Some(u) => cmd.env("REDIS_URL", u),
            None => cmd.env_remove("REDIS_URL"),
        };
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .env("AGENT_NAMESPACE", ns)
            .env("SNAPSHOT_INTERVAL_MS", "200")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Agent { child, lines: rx }
    }

    pub fn start(url: &str, ns: &str) -> Agent {
        Self::spawn(Some(url), ns, None, &[])
    }

    pub fn start_with(url: &str, ns: &str, env: &[(&str, &str)]) -> Agent {
        Self::spawn(Some(url), ns, None, env)
    }

    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(15))
            .expect("agent printed nothing for 15 s")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        Command::new("kill").args([sig, &pid]).status().unwrap();
    }

    fn wait_exit(&mut self, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "agent did not exit on {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.wait_exit("SIGTERM")
    }

    pub fn kill_9(&mut self) -> std::process::ExitStatus {
        self.signal("-KILL");
        self.wait_exit("SIGKILL")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `prefix` in `line`.
pub fn number(line: &str, prefix: &str) -> u64 {
    line.strip_prefix(prefix)
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected {prefix:?}<n>, got {line:?}"))
}

/// Waits for a line starting with `prefix`; with `fallback`, only one that says the
/// save went to the local fallback, without it only one acknowledged by the store.
pub fn wait_for_save(agent: &Agent, prefix: &str, fallback: bool) -> u64 {
    loop {
        let line = agent.next_line();
        if line.starts_with(prefix) && line.ends_with("(local fallback)") == fallback {
            return number(&line, prefix);
        }
    }
}

pub fn wait_for(agent: &Agent, prefix: &str) -> u64 {
    wait_for_save(agent, prefix, false)
}

/// The `final <n>` line printed after SIGTERM.
pub fn final_line(agent: &Agent) -> u64 {
    let mut fin = None;
    while let Ok(line) = agent.lines.recv_timeout(Duration::from_secs(2)) {
        if line.starts_with("final ") {
            fin = Some(number(&line, "final "));
        }
    }
    fin.expect("final line")
}
