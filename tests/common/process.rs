//! The `onair` binary as a process of its own, on a data directory: for
//! tests that kill it (SIGKILL) or stop it (SIGTERM) and start it again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `onair` server.
pub struct Process {
    pub child: Child,
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// Everything it logged so far.
    pub log: Arc<Mutex<String>>,
}

/// `onair` with a fresh environment for these settings.
fn command(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_onair"));
    c.arg("--data-dir").arg(data_dir);
    c.env("ONAIR_LOG", "info").env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("ONAIR_") && k != "ONAIR_LOG" {
            c.env_remove(k);
        }
    }
    c.kill_on_drop(true);
    c
}

/// Removes ANSI colour codes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Process {
    /// Starts `onair serve` on loopback with free ports (plus `extra`
    /// arguments and environment) and waits until it listens.
    pub async fn start(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Process {
        let mut c = command(data_dir);
        c.args(["--http-addr", "127.0.0.1:0", "--media-port", "0", "--media-bind", "127.0.0.1", "--workers", "1"]);
        c.arg("--static-dir").arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static"));
        c.args(extra).arg("serve");
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start onair");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
        let addr_tx = Arc::new(Mutex::new(Some(addr_tx)));
        // Keep reading both pipes for as long as it runs (a full pipe would
        // stall it); the address is in the log line that says it listens.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = BufReader::new(child.stderr.take().unwrap());
        fn read<R: tokio::io::AsyncBufRead + Unpin + Send + 'static>(r: R, log: Arc<Mutex<String>>, addr_tx: Arc<Mutex<Option<tokio::sync::oneshot::Sender<SocketAddr>>>>) {
            tokio::spawn(async move {
                let mut lines = r.lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = plain(&line);
                    let addr = line.split("listening on http://").nth(1).and_then(|rest| rest.split_whitespace().next()?.parse::<SocketAddr>().ok());
                    if let Some(addr) = addr {
                        if let Some(tx) = addr_tx.lock().unwrap().take() {
                            let _ = tx.send(addr);
                        }
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        read(stdout, log.clone(), addr_tx.clone());
        read(stderr, log.clone(), addr_tx);
        let addr = match tokio::time::timeout(Duration::from_secs(60), addr_rx).await {
            Ok(Ok(a)) => a,
            _ => panic!("onair did not start: {}", log.lock().unwrap()),
        };
        Process { child, addr, log }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    /// SIGKILL: the process dies where it stands.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// Sends a signal (SIGTERM, SIGINT).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill({sig})");
    }

    /// Waits up to `limit` for it to exit.
    pub async fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait()).await.ok().map(|r| r.unwrap())
    }

    /// What it logged.
    pub fn logged(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Runs an `onair` command (not the server) on a data directory; panics
/// unless it succeeds. Returns its standard output.
pub async fn cli(data_dir: &Path, args: &[&str]) -> String {
    let out = command(data_dir).args(args).output().await.expect("run onair");
    assert!(out.status.success(), "onair {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
