//! The command-line harness (`cli_*`, `web_*` and the other runtime tests): they drive the real `cs-invoker-pool` and `sandbox-child`
//! binaries the way a user does, and check every output against the contract (contract §3, §6).
//!
//! Each test writes its fixtures into its own [`Fixture`] (a temporary directory), so tests are
//! independent and run in parallel.

pub use super::{child_bin, invoker_bin, now_ms};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A run that takes longer than this is a hang: the test fails instead of blocking the suite.
pub const RUN_WALL_LIMIT: Duration = Duration::from_secs(90);

pub const MAX_RESULT_BYTES: usize = 256 * 1024;
pub const MAX_ERROR_BYTES: usize = 64 * 1024;
pub const MAX_STACK_BYTES: usize = 8 * 1024;
pub const MAX_LOG_BYTES: usize = 1024 * 1024;
pub const DENIED: &str = "CS_RUNTIME_CAPABILITY_DENIED:";

/// The manifest of contract §5 with the given limits and capabilities.
pub fn manifest_with(timeout_ms: u64, memory_mb: u64, capabilities: Value) -> String {
    json!({
        "schema": "cs.function.script.v1",
        "runtime": "cs-js",
        "entry": "function.js",
        "handler": "default",
        "limits": {"timeoutMs": timeout_ms, "memoryMb": memory_mb, "maxConcurrency": 1},
        "capabilities": capabilities,
    })
    .to_string()
}

/// A plain manifest: 3000 ms, 64 MiB, no capabilities.
pub fn manifest() -> String {
    manifest_with(3000, 64, json!({}))
}

/// A temporary directory holding one test's functions and bundles.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            dir: tempfile::Builder::new()
                .prefix("cs-cli-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `contents` at `rel`, creating parent directories.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&p, contents).expect("write fixture");
        p
    }

    /// A lone `.js` file `{name}.js` (default manifest).
    pub fn js(&self, name: &str, source: &str) -> PathBuf {
        self.write(&format!("{name}.js"), source)
    }

    /// A directory bundle `{name}/` holding `files` (paths relative to the bundle root).
    pub fn dir_bundle(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        for (rel, contents) in files {
            self.write(&format!("{name}/{rel}"), contents);
        }
        self.path(name)
    }

    /// A directory bundle with `function.js` = `source` and `manifest.json` = `manifest`.
    pub fn function(&self, name: &str, source: &str, manifest: &str) -> PathBuf {
        self.dir_bundle(
            name,
            &[("function.js", source), ("manifest.json", manifest)],
        )
    }

    /// A tar bundle `{name}.tar` built with the `tar` crate (GNU headers, mode 0644).
    pub fn tar_bundle(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let mut b = tar::Builder::new(Vec::new());
        for (rel, contents) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(contents.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, rel, contents.as_bytes())
                .expect("append to tar");
        }
        let bytes = b.into_inner().expect("finish tar");
        self.write(&format!("{name}.tar"), bytes)
    }
}

/// The outcome of one process run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// What was run, for failure messages.
    pub what: String,
}

/// Runs `bin args...` to completion (failing the test after [`RUN_WALL_LIMIT`]).
pub fn exec(bin: &Path, args: &[&str]) -> Run {
    let what = format!("{} {}", bin.display(), args.join(" "));
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .env_remove("CS_SANDBOX_CHILD_BIN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // Drain both pipes on threads: a function may log more than a pipe buffer holds.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > RUN_WALL_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {RUN_WALL_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = started.elapsed();
    let stdout = String::from_utf8(t_out.join().unwrap()).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        wall,
        what,
    }
}

/// `cs-invoker-pool run PATH extra...`.
pub fn run(path: &Path, extra: &[&str]) -> Run {
    let p = path.to_str().expect("UTF-8 path").to_string();
    let mut args = vec!["run", p.as_str()];
    args.extend_from_slice(extra);
    exec(&invoker_bin(), &args)
}

/// `cs-invoker-pool run PATH --event EVENT extra...`.
pub fn run_event(path: &Path, event: &Value, extra: &[&str]) -> Run {
    let e = event.to_string();
    let mut args = vec!["--event", e.as_str()];
    args.extend_from_slice(extra);
    run(path, &args)
}

/// Writes `source` as a lone `.js` file and runs it with `extra` arguments.
pub fn run_js(source: &str, extra: &[&str]) -> Run {
    let fx = Fixture::new();
    let p = fx.js("fn", source);
    run(&p, extra)
}

impl Run {
    fn context(&self) -> String {
        format!(
            "{}\n--- exit code {}\n--- stdout:\n{}\n--- stderr (first 4000 bytes):\n{}",
            self.what,
            self.code,
            self.stdout,
            self.stderr.chars().take(4000).collect::<String>()
        )
    }

    /// Fails the test with the run's output.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.context())
    }

    pub fn check(&self, cond: bool, msg: &str) {
        if !cond {
            self.fail(msg)
        }
    }

    /// The single InvocationResult line on stdout, parsed and checked against contract §3 and
    /// against the exit code (0 iff success, else 1).
    pub fn result(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        self.check(
            lines.len() == 1 && self.stdout.ends_with('\n'),
            "stdout must be exactly one newline-terminated line",
        );
        let v: Value = serde_json::from_str(lines[0])
            .unwrap_or_else(|e| self.fail(&format!("stdout is not JSON: {e}")));
        self.check_result_shape(&v);
        let status = v["status"].as_str().unwrap();
        let want_code = if status == "success" { 0 } else { 1 };
        self.check(
            self.code == want_code,
            &format!("status {status} must exit {want_code}"),
        );
        v
    }

    fn check_result_shape(&self, v: &Value) {
        let obj = v
            .as_object()
            .unwrap_or_else(|| self.fail("result is not an object"));
        for k in obj.keys() {
            self.check(
                [
                    "activation_id",
                    "request_id",
                    "status",
                    "duration_ms",
                    "result",
                    "error",
                ]
                .contains(&k.as_str()),
                &format!("unexpected field {k} in InvocationResult"),
            );
        }
        let aid = v["activation_id"].as_str().unwrap_or("");
        self.check(is_uuid(aid), "activation_id must be a uuid");
        let rid = v["request_id"].as_str().unwrap_or("");
        self.check(
            (8..=64).contains(&rid.len()),
            "request_id must be a string of 8..64 characters",
        );
        self.check(v["duration_ms"].is_u64(), "duration_ms must be an int ≥ 0");
        let status = v["status"].as_str().unwrap_or("");
        match status {
            "success" => {
                self.check(v.get("error").is_none(), "success carries no error");
                let r = &v["result"];
                let sc = r["statusCode"].as_u64().unwrap_or(0);
                self.check((100..=599).contains(&sc), "statusCode must be 100..599");
                self.check(
                    r["headers"]
                        .as_object()
                        .is_some_and(|h| h.values().all(Value::is_string)),
                    "headers must be a string map",
                );
                self.check(r["body"].is_string(), "body must be a string");
                self.check(
                    r["isBase64Encoded"].is_boolean(),
                    "isBase64Encoded must be a bool",
                );
                self.check(
                    r.as_object().unwrap().len() == 4,
                    "result has exactly statusCode, headers, body, isBase64Encoded",
                );
            }
            "error" | "timeout" => {
                self.check(v.get("result").is_none(), "a failure carries no result");
                let e = &v["error"];
                let t = e["type"].as_str().unwrap_or("");
                self.check(
                    (1..=128).contains(&t.len()),
                    "error.type must be 1..128 chars",
                );
                let m = e["message"]
                    .as_str()
                    .unwrap_or_else(|| self.fail("error.message must be a string"));
                self.check(m.len() <= MAX_ERROR_BYTES, "error.message must be ≤ 64 KiB");
                if let Some(s) = e.get("stack") {
                    let s = s
                        .as_str()
                        .unwrap_or_else(|| self.fail("error.stack must be a string"));
                    self.check(s.len() <= MAX_STACK_BYTES, "error.stack must be ≤ 8 KiB");
                }
                self.check(
                    (status == "timeout") == (t == "Timeout"),
                    "status timeout goes with error.type Timeout and only with it",
                );
            }
            other => self.fail(&format!("unknown status {other:?}")),
        }
    }

    pub fn status(&self) -> String {
        self.result()["status"].as_str().unwrap().to_string()
    }

    /// Asserts success and returns the `result` object.
    pub fn success(&self) -> Value {
        let v = self.result();
        self.check(v["status"] == "success", "expected status success");
        v["result"].clone()
    }

    /// Asserts success and returns the body.
    pub fn body(&self) -> String {
        self.success()["body"].as_str().unwrap().to_string()
    }

    /// Asserts success and parses the body as JSON.
    pub fn body_json(&self) -> Value {
        let b = self.body();
        serde_json::from_str(&b)
            .unwrap_or_else(|e| self.fail(&format!("body is not JSON ({e}): {b}")))
    }

    /// Asserts the given status (`error` or `timeout`) and error type; returns the error object.
    pub fn failure(&self, status: &str, kind: &str) -> Value {
        let v = self.result();
        self.check(
            v["status"] == status && v["error"]["type"] == kind,
            &format!("expected status {status} with error type {kind}"),
        );
        v["error"].clone()
    }

    /// Asserts status error with this type and returns error.message.
    pub fn error(&self, kind: &str) -> String {
        self.failure("error", kind)["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The summary line `cs-invoker-pool: activation ...` on stderr (asserted to be the last
    /// line and to agree with the result line).
    pub fn summary(&self) -> String {
        let last = self.stderr.lines().last().unwrap_or("");
        self.check(
            last.starts_with("cs-invoker-pool: activation "),
            "the last stderr line must be the `cs-invoker-pool: activation ` summary",
        );
        let aid = self.result()["activation_id"].as_str().unwrap().to_string();
        self.check(
            last.contains(&aid),
            "the summary names the activation id of the result line",
        );
        let status = self.status();
        self.check(
            self.summary_field_in(last, "status").as_deref() == Some(status.as_str()),
            "the summary's status= agrees with the result line",
        );
        last.to_string()
    }

    fn summary_field_in(&self, line: &str, key: &str) -> Option<String> {
        let pat = format!("{key}=");
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(pat.as_str()).map(str::to_string))
    }

    /// `key=value` from the summary line.
    pub fn summary_field(&self, key: &str) -> String {
        let s = self.summary();
        self.summary_field_in(&s, key)
            .unwrap_or_else(|| self.fail(&format!("the summary line has no {key}=")))
    }

    pub fn result_truncated(&self) -> bool {
        self.flag("result_truncated")
    }

    pub fn logs_truncated(&self) -> bool {
        self.flag("logs_truncated")
    }

    fn flag(&self, key: &str) -> bool {
        match self.summary_field(key).as_str() {
            "true" => true,
            "false" => false,
            other => self.fail(&format!("{key}= must be true or false, got {other}")),
        }
    }

    /// The function's log lines on stderr (`[info] `, `[warn] `, `[error] `).
    pub fn logs(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| {
                l.starts_with("[info] ") || l.starts_with("[warn] ") || l.starts_with("[error] ")
            })
            .collect()
    }

    /// Every JSON line on stderr that is a `RuntimePublish` envelope.
    pub fn published(&self) -> Vec<Value> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "RuntimePublish")
            .collect()
    }

    /// Asserts a usage error: exit 2, no result line, a message on stderr.
    pub fn usage_error(&self) {
        self.check(self.code == 2, "a usage error exits 2");
        self.check(
            self.stdout.trim().is_empty(),
            "a usage error prints no result line",
        );
        self.check(
            !self.stderr.trim().is_empty(),
            "a usage error says what is wrong on stderr",
        );
    }
}

pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}
