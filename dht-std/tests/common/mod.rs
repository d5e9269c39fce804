//! Running the `dht` binary in tests: bounded waits, children killed on drop, loopback only.

#![allow(dead_code)]

use core::net::SocketAddr;
use core::time::Duration;
use std::io::{BufRead as _, BufReader, Read as _};

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Instant;

use serde_json::Value;

pub const DHT: &str = env!("CARGO_BIN_EXE_dht");

/// A finished run of the binary.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The first line of stdout, parsed as JSON.
    pub fn json(&self) -> Value {
        let line = self.stdout.lines().next().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    }
}

/// A child process killed on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(DHT);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    c
}

/// Runs `dht args` to completion, killing it after `limit`.
pub fn run_with(args: &[&str], limit: Duration, stdin: Option<&[u8]>) -> Output {
    let mut c = command(args);
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = Guard(c.spawn().expect("spawn dht"));
    if let Some(input) = stdin {
        use std::io::Write as _;
        let mut pipe = child.0.stdin.take().unwrap();
        pipe.write_all(input).unwrap();
    }
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_exit(&mut child.0, limit, &format!("dht {args:?}"));
    Output {
        code: status.code(),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Waits for `child` to exit; fails the test (`what` is still running) after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "{what} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn run(args: &[&str]) -> Output {
    run_with(args, Duration::from_secs(30), None)
}

/// A `dht node` serving on loopback.
pub struct NodeProcess {
    pub _child: Guard,
    pub addr: SocketAddr,
    pub id: String,
    pub _stdout: BufReader<ChildStdout>,
}

/// Starts `dht node --json` with `extra` arguments and reads its address from the first line.
pub fn start_node(extra: &[&str]) -> NodeProcess {
    let mut args = vec![
        "node",
        "--json",
        "--bind",
        "127.0.0.1:0",
        "--duration",
        "60",
    ];
    args.extend_from_slice(extra);
    let mut child = Guard(command(&args).stderr(Stdio::null()).spawn().unwrap());
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["type"], "node", "{v}");
    let addr = v["listening"][0].as_str().unwrap().parse().unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    NodeProcess {
        _child: child,
        addr,
        id,
        _stdout: stdout,
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dht-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub const IH: &str = "5ac55cf9e2ab8d2d5fd0ab2ae6b4e0a5d7ac1a29";

/// A file of `tests/data`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
