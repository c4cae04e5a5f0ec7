//! A real `redis-server` for tests, on a free port of 127.0.0.1, in a temporary directory, with
//! no persistence (`--save "" --appendonly no`). Part of `support`
//! (`support::redis_server`; the `server!()` macro starts one or skips).
//!
//! When `redis-server` is not on `PATH`, [`RedisServer::start`] returns `None` after printing why
//! (the test then skips), unless `CS_REQUIRE_REDIS=1`, in which case it panics: CI installs
//! `redis-server` and sets that variable so that nothing is skipped silently.
//!
//! The server is SIGKILLed and reaped when the guard drops.

use super::free_port;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) `redis-server` owned by the test.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

/// `CS_REQUIRE_REDIS=1`: a missing `redis-server` fails the test instead of skipping it.
pub fn redis_required() -> bool {
    std::env::var("CS_REQUIRE_REDIS").as_deref() == Ok("1")
}

/// `redis-server` on `PATH`.
pub fn find_redis_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("redis-server"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl RedisServer {
    /// A server without a password, or `None` (skip) when `redis-server` is missing.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// A server with `--requirepass password`.
    pub fn start_with_password(password: &str) -> Option<Self> {
        Self::start_with(Some(password.to_string()))
    }

    fn start_with(password: Option<String>) -> Option<Self> {
        let Some(binary) = find_redis_server() else {
            if redis_required() {
                panic!("CS_REQUIRE_REDIS=1 but redis-server is not on PATH");
            }
            eprintln!(
                "SKIP: redis-server is not on PATH (apt-get install -y redis-server); \
                 set CS_REQUIRE_REDIS=1 to make this a failure"
            );
            return None;
        };
        // The port is free when we look; another process may take it before redis binds it, so
        // try a few.
        let mut last_err = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                password: password.clone(),
                binary: binary.clone(),
                dir: tempfile::tempdir().expect("temp dir for redis-server"),
            };
            match server.launch() {
                Ok(()) => return Some(server),
                Err(e) => last_err = e,
            }
        }
        panic!("redis-server did not start: {last_err}");
    }

    /// Starts the process on `self.port` and waits until it answers PING.
    fn launch(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--daemonize")
            .arg("no")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if let Some(pw) = &self.password {
            cmd.arg("--requirepass").arg(pw);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.answers_ping() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                self.child = None;
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                return Err(format!("redis-server exited ({status}): {log}"));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err("redis-server did not answer PING within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// PING over a plain socket: `+PONG`, or `-NOAUTH` when a password is required (the server
    /// is up either way).
    fn answers_ping(&self) -> bool {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(n) if n > 0 => buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"),
            _ => false,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`, the form of `StoreConfig::addr`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A `redis://` URL for a raw client (with the password when there is one).
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// A raw synchronous connection, to check what the code under test wrote.
    pub fn raw(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_connection()
            .expect("raw connection to the test redis-server")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL and reap: the port refuses connections afterwards.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port (after [`RedisServer::stop`]); the data is gone.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart redis-server: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// SIGSTOP: the port still accepts connections (the kernel's backlog) but nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid().expect("redis-server is running") as libc::pid_t;
        // SAFETY: kill(2) on the pid of our own child, which we have not reaped.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server must be continued to die promptly on some kernels; SIGKILL works
            // on stopped processes, but be explicit.
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
        }
        self.stop();
    }
}
