//! Black-box test harness: runs the real `gnomon` binary as a child process and talks HTTP to
//! it. Nothing here links against the server's crates.
//!
//! * [`Server::start`] picks a free loopback port and a fresh temporary data directory, spawns
//!   `gnomon serve` with its stdout/stderr going to a log file inside that directory and waits
//!   (up to 30 s) for `GET /health` to answer 200; on failure it panics with the log.
//! * [`Server::kill`] (SIGKILL), [`Server::stop`] (SIGTERM, then wait) and [`Server::restart`]
//!   (same data directory, new port) drive crash and restart scenarios.
//! * [`Server::shared`] gives one server per test binary for tests that stay independent by
//!   using unique database names; it is killed (and its directory removed) at process exit.
//! * [`Server::start_with_plugins`] / [`Server::shared_with_plugins`] add `--plugin-dir`
//!   pointing at `plugins/` inside the server's temporary directory (kept across restarts);
//!   [`Server::write_plugin`] puts a plugin file there.
//!
//! Not every test binary uses every helper.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::{Body, Client};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

/// `--node-id` given to every server (unless a test passes its own).
pub const NODE_ID: &str = "test-node";

/// How long a server may take to answer `/health` after being spawned.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// 2023-11-14T22:13:20Z in seconds / nanoseconds: a fixed, realistic timestamp.
pub const S: i64 = 1_700_000_000;
pub const NS: i64 = S * 1_000_000_000;

// ------------------------------------------------------------------------------------------
// responses
// ------------------------------------------------------------------------------------------

/// A fully read HTTP response.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// `METHOD url`, for failure messages.
    pub request: String,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}):\n{}", self.describe()))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn describe(&self) -> String {
        let mut body = self.text();
        if body.len() > 3000 {
            let mut cut = 3000;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
            body.push_str("...<truncated>");
        }
        format!(
            "{} -> HTTP {}\nheaders: {:?}\nbody: {body}",
            self.request, self.status, self.headers
        )
    }

    /// Panics with the response unless the status is `status`.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status:\n{}",
            self.describe()
        );
        self
    }
}

// ------------------------------------------------------------------------------------------
// the server process
// ------------------------------------------------------------------------------------------

pub struct Server {
    child: Mutex<Option<Child>>,
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    /// The caller's extra arguments, re-used by `restart`.
    args: Vec<String>,
    client: Client,
    starts: u32,
}

impl Server {
    /// Starts `gnomon serve` with the harness defaults (loopback port, temp data dir, file
    /// object store, node id [`NODE_ID`], `--log-filter info`) plus `args`. A flag given in
    /// `args` replaces the harness default for that flag.
    pub fn start(args: &[&str]) -> Server {
        Self::start_in_temp_dir(args, false)
    }

    /// Like [`Server::start`] plus `--plugin-dir <temp dir>/plugins` (an empty directory).
    pub fn start_with_plugins(args: &[&str]) -> Server {
        Self::start_in_temp_dir(args, true)
    }

    fn start_in_temp_dir(args: &[&str], plugins: bool) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("gnomon-bb-")
            .tempdir()
            .expect("creating a temp dir");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("server.log");
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if plugins {
            let plugin_dir = dir.path().join("plugins");
            std::fs::create_dir_all(&plugin_dir).expect("creating the plugin dir");
            args.push("--plugin-dir".into());
            args.push(plugin_dir.display().to_string());
        }
        let mut server = Server {
            child: Mutex::new(None),
            data_dir,
            log_path,
            dir,
            port: 0,
            args,
            client: new_client(),
            starts: 0,
        };
        server.spawn_and_wait();
        server
    }

    /// `plugins/` inside the server's temporary directory (the `--plugin-dir` of servers
    /// started with [`Server::start_with_plugins`]).
    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Writes `code` to `name` (a relative path) under [`Server::plugin_dir`].
    pub fn write_plugin(&self, name: &str, code: &str) {
        let path = self.plugin_dir().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating the plugin's directory");
        }
        std::fs::write(&path, code).expect("writing the plugin file");
    }

    /// One server per `cell` (i.e. per test binary), started on first use with `args`. It is
    /// killed and its directory removed when the test process exits.
    pub fn shared(cell: &'static OnceLock<Server>, args: &[&str]) -> &'static Server {
        cell.get_or_init(|| {
            let server = Server::start(args);
            register_exit_cleanup(server.pid(), server.dir.path().to_path_buf());
            server
        })
    }

    /// [`Server::shared`] for a server started with [`Server::start_with_plugins`].
    pub fn shared_with_plugins(cell: &'static OnceLock<Server>, args: &[&str]) -> &'static Server {
        cell.get_or_init(|| {
            let server = Server::start_with_plugins(args);
            register_exit_cleanup(server.pid(), server.dir.path().to_path_buf());
            server
        })
    }

    fn spawn_and_wait(&mut self) {
        let mut last_failure = String::new();
        for _attempt in 0..5 {
            self.port = free_port();
            self.starts += 1;
            match self.spawn_once() {
                Ok(()) => return,
                Err(log) => {
                    // Another process may have taken the port between our probe and the
                    // server's bind: try again with a new one. Anything else is fatal.
                    let lower = log.to_lowercase();
                    if lower.contains("address already in use") || lower.contains("addrinuse") {
                        last_failure = log;
                        continue;
                    }
                    panic!("gnomon did not start (args {:?}); log:\n{log}", self.args);
                }
            }
        }
        panic!("gnomon could not bind a free port after 5 attempts; last log:\n{last_failure}");
    }

    /// Spawns once and waits for health. `Err(log)` when the process exited early.
    fn spawn_once(&mut self) -> Result<(), String> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("opening the server log");
        let argv = self.full_args();
        writeln!(
            log,
            "\n===== start #{}: gnomon {} =====",
            self.starts,
            argv.join(" ")
        )
        .unwrap();
        let log_start = std::fs::metadata(&self.log_path)
            .map(|m| m.len())
            .unwrap_or(0);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gnomon"));
        cmd.args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        // Flags can come from GNOMON_* variables: do not let the test environment leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GNOMON_") {
                cmd.env_remove(&key);
            }
        }
        let child = cmd.spawn().expect("spawning the gnomon binary");
        *self.child.lock().unwrap() = Some(child);
        self.client = new_client();

        let probe = Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                let log = self.log_since(log_start);
                *self.child.lock().unwrap() = None;
                return Err(format!(
                    "process exited with {status} before answering /health\n{log}"
                ));
            }
            if let Ok(resp) = probe.get(self.url("/health")).send() {
                if resp.status().as_u16() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "gnomon did not answer GET /health with 200 within {START_TIMEOUT:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn full_args(&self) -> Vec<String> {
        let given = |flag: &str| {
            self.args
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        };
        let mut argv = vec!["serve".to_string()];
        let defaults = [
            ("--http-bind", format!("127.0.0.1:{}", self.port)),
            ("--data-dir", self.data_dir.display().to_string()),
            ("--object-store", "file".to_string()),
            ("--node-id", NODE_ID.to_string()),
            ("--log-filter", "info".to_string()),
        ];
        for (flag, value) in defaults {
            if !given(flag) {
                argv.push(flag.to_string());
                argv.push(value);
            }
        }
        argv.extend(self.args.iter().cloned());
        argv
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .expect("server is not running")
            .id()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `<data-dir>/<node-id>/wal`: where the file object store keeps the WAL.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join(NODE_ID).join("wal")
    }

    pub fn log(&self) -> String {
        self.log_since(0)
    }

    fn log_since(&self, offset: u64) -> String {
        let mut text = Vec::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_end(&mut text);
        }
        let start = (offset as usize).min(text.len());
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// `Some(status)` once the process has exited.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        let mut guard = self.child.lock().unwrap();
        match guard.as_mut() {
            Some(child) => child.try_wait().expect("try_wait on the server"),
            None => panic!("server was not started or already reaped"),
        }
    }

    /// The process is running and answers `/health` with 200 `OK`.
    #[track_caller]
    pub fn assert_alive(&self) {
        if let Some(status) = self.try_wait() {
            panic!("the server process exited ({status}); log:\n{}", self.log());
        }
        let resp = self.get("/health");
        assert_eq!(
            resp.status,
            200,
            "health after bad input:\n{}",
            resp.describe()
        );
        assert_eq!(resp.text(), "OK");
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (up to 60 s) for the process to exit; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self
            .child
            .lock()
            .unwrap()
            .take()
            .expect("server is not running");
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gnomon did not exit within 60 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replaces the extra arguments used by the next [`Server::restart`].
    pub fn set_args(&mut self, args: &[&str]) {
        self.args = args.iter().map(|s| s.to_string()).collect();
    }

    /// Starts the server again on the same data directory (and the same arguments), on a new
    /// port. A still-running process is killed first.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait();
    }

    // --------------------------------------------------------------------------------------
    // HTTP helpers
    // --------------------------------------------------------------------------------------

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends a request; transport errors panic (with the server log).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = self.client.request(method.clone(), self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        self.finish(req, format!("{method} {path}"))
    }

    /// Sends a request whose body is streamed (chunked transfer encoding, no length).
    pub fn request_streamed(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Read + Send + 'static,
    ) -> Resp {
        let mut req = self.client.post(self.url(path)).body(Body::new(body));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.finish(req, format!("POST {path} (chunked)"))
    }

    fn finish(&self, req: reqwest::blocking::RequestBuilder, what: String) -> Resp {
        match req.send() {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let body = resp
                    .bytes()
                    .unwrap_or_else(|e| panic!("{what}: reading the body failed: {e}"))
                    .to_vec();
                Resp {
                    status,
                    headers,
                    body,
                    request: what,
                }
            }
            Err(e) => panic!(
                "{what}: request failed: {e:?}\nserver exited: {:?}\nserver log:\n{}",
                self.child.lock().unwrap().as_mut().map(|c| c.try_wait()),
                self.log()
            ),
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, &[], None)
    }

    pub fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.request(Method::POST, path, &[], Some(body.into()))
    }

    pub fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> Resp {
        self.request(Method::POST, path, headers, Some(body.into()))
    }

    /// `POST /api/v3/write_lp?db=<db>[&<query>]`; `query` is a raw query string such as
    /// `precision=ns&accept_partial=false` (may be empty).
    pub fn write_lp(&self, db: &str, body: impl Into<Vec<u8>>, query: &str) -> Resp {
        self.post(&v3_path(db, query), body)
    }

    /// Like [`Server::write_lp`] and asserts 204 with an empty body.
    #[track_caller]
    pub fn write_ok(&self, db: &str, body: impl Into<Vec<u8>>, query: &str) {
        let resp = self.write_lp(db, body, query);
        assert_eq!(resp.status, 204, "write failed:\n{}", resp.describe());
        assert!(
            resp.body.is_empty(),
            "204 with a body:\n{}",
            resp.describe()
        );
    }

    /// `POST /write?<query>` (v1).
    pub fn write_v1(&self, query: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.post(&format!("/write?{query}"), body)
    }

    /// `POST /api/v2/write?<query>`.
    pub fn write_v2(&self, query: &str, body: impl Into<Vec<u8>>) -> Resp {
        self.post(&format!("/api/v2/write?{query}"), body)
    }

    /// `GET /api/v3/query_sql?db=..&q=..&format=..`.
    pub fn query_sql(&self, db: &str, q: &str, format: &str) -> Resp {
        self.get(&format!(
            "/api/v3/query_sql?db={}&q={}&format={}",
            enc(db),
            enc(q),
            enc(format)
        ))
    }

    /// Runs SQL, asserts 200 and returns the JSON rows.
    #[track_caller]
    pub fn sql(&self, db: &str, q: &str) -> Vec<Value> {
        let resp = self.query_sql(db, q, "json");
        assert_eq!(resp.status, 200, "query failed:\n{}", resp.describe());
        match resp.json() {
            Value::Array(rows) => rows,
            other => panic!("query result is not a JSON array: {other}"),
        }
    }

    /// The plans `EXPLAIN q` shows (logical and physical), one per line.
    #[track_caller]
    pub fn sql_plan(&self, db: &str, q: &str) -> String {
        self.sql(db, &format!("EXPLAIN {q}"))
            .iter()
            .map(|r| r["plan"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `SELECT CAST(time AS BIGINT) ...` of a table, ordered.
    #[track_caller]
    pub fn times(&self, db: &str, table: &str) -> Vec<i64> {
        self.sql(
            db,
            &format!("SELECT CAST(time AS BIGINT) AS t FROM \"{table}\" ORDER BY t"),
        )
        .iter()
        .map(|r| r["t"].as_i64().unwrap_or_else(|| panic!("bad row {r}")))
        .collect()
    }

    /// Names of the user tables of `db` (sorted).
    #[track_caller]
    pub fn tables(&self, db: &str) -> Vec<String> {
        self.sql(
            db,
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = 'iox' ORDER BY table_name",
        )
        .iter()
        .map(|r| r["table_name"].as_str().unwrap().to_string())
        .collect()
    }

    /// Whether the server knows database `db` (a query on it does not answer 404).
    pub fn database_exists(&self, db: &str) -> bool {
        let resp = self.query_sql(db, "SELECT 1 AS one", "json");
        match resp.status {
            200 => true,
            404 => false,
            _ => panic!(
                "unexpected answer probing database {db}:\n{}",
                resp.describe()
            ),
        }
    }

    pub fn metrics(&self) -> String {
        let resp = self.get("/metrics");
        assert_eq!(resp.status, 200, "{}", resp.describe());
        resp.text()
    }

    /// Sends one request over a fresh TCP connection and reads the answer while the body is
    /// still being written (so an early answer, e.g. 413, is seen even if the server stops
    /// reading). `head` is the request line and headers without the final empty line.
    pub fn raw_request(&self, head: &str, body: Vec<u8>) -> RawResp {
        raw_request(self.port, head, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock() {
            if let Some(mut child) = guard.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn new_client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("building the HTTP client")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
    listener.local_addr().unwrap().port()
}

// ------------------------------------------------------------------------------------------
// exit cleanup for shared servers
// ------------------------------------------------------------------------------------------

static EXIT_CLEANUP: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());
static REGISTER_ATEXIT: Once = Once::new();

extern "C" fn cleanup_at_exit() {
    let list = match EXIT_CLEANUP.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for (pid, dir) in list {
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn register_exit_cleanup(pid: u32, dir: PathBuf) {
    EXIT_CLEANUP.lock().unwrap().push((pid, dir));
    REGISTER_ATEXIT.call_once(|| unsafe {
        libc::atexit(cleanup_at_exit);
    });
}

// ------------------------------------------------------------------------------------------
// raw HTTP (for requests the server may answer before reading the whole body)
// ------------------------------------------------------------------------------------------

pub struct RawResp {
    pub status: u16,
    /// Header lines, lower-cased names: `(name, value)`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn raw_request(port: u16, head: &str, body: Vec<u8>) -> RawResp {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let head = format!("{}\r\n\r\n", head.trim_end());
    // Write in a separate thread and ignore write errors: the server may answer and close
    // before it has read everything.
    let writer_thread = std::thread::spawn(move || {
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        for chunk in body.chunks(64 * 1024) {
            if writer.write_all(chunk).is_err() {
                return;
            }
        }
        let _ = writer.flush();
    });
    let mut reader = stream;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    // Read the head.
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        match reader.read(&mut tmp) {
            Ok(0) => panic!(
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) => panic!(
                "reading the response head failed: {e}; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    };
    let head_text = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut read_more = |rest: &mut Vec<u8>| -> bool {
        match reader.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                rest.extend_from_slice(&tmp[..n]);
                true
            }
        }
    };
    let body = if let Some(len) = get("content-length") {
        let len: usize = len.parse().unwrap();
        while rest.len() < len {
            if !read_more(&mut rest) {
                break;
            }
        }
        rest.truncate(len);
        rest
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = loop {
                if let Some(p) = find(&rest[pos..], b"\r\n") {
                    break pos + p;
                }
                if !read_more(&mut rest) {
                    panic!("truncated chunked response");
                }
            };
            let size_text = String::from_utf8_lossy(&rest[pos..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
            pos = line_end + 2;
            if size == 0 {
                break;
            }
            while rest.len() < pos + size + 2 {
                if !read_more(&mut rest) {
                    panic!("truncated chunked response");
                }
            }
            out.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
        out
    } else {
        while read_more(&mut rest) {}
        rest
    };
    drop(reader);
    let _ = writer_thread.join();
    RawResp {
        status,
        headers,
        body,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ------------------------------------------------------------------------------------------
// small utilities
// ------------------------------------------------------------------------------------------

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/api/v3/write_lp?db=<db>[&<query>]`
pub fn v3_path(db: &str, query: &str) -> String {
    if query.is_empty() {
        format!("/api/v3/write_lp?db={}", enc(db))
    } else {
        format!("/api/v3/write_lp?db={}&{query}", enc(db))
    }
}

/// A database/table name that is valid everywhere and unique within this test process run.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!("{prefix}_{:x}_{n}", nanos & 0xffff_ffff)
}

/// One gzip member holding `data`.
pub fn gzip(data: impl AsRef<[u8]>) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data.as_ref()).unwrap();
    enc.finish().unwrap()
}

/// Nanoseconds since the epoch, per the test's clock.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Calls `f` until it returns `Some`, or panics after `timeout` with `what`.
#[track_caller]
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The line errors (`data`) of a v3 partial-write answer, asserting the `error` text.
#[track_caller]
pub fn partial_write_errors(resp: &Resp) -> Vec<Value> {
    let body = resp.json();
    assert_eq!(
        body["error"],
        "partial write of line protocol occurred",
        "{}",
        resp.describe()
    );
    match &body["data"] {
        Value::Array(items) => items.clone(),
        other => panic!("`data` is not an array: {other}\n{}", resp.describe()),
    }
}

/// A line-error object serialized in the documented key order.
pub fn line_err(message: &str, line_number: usize, original_line: &str) -> String {
    format!(
        r#"{{"error_message":{},"line_number":{line_number},"original_line":{}}}"#,
        Value::from(message),
        Value::from(original_line)
    )
}

/// The exact v3 partial-write body for the given line errors.
pub fn partial_body(errors: &[String]) -> String {
    format!(
        r#"{{"error":"partial write of line protocol occurred","data":[{}]}}"#,
        errors.join(",")
    )
}

/// Asserts status and exact body text.
#[track_caller]
pub fn assert_body(resp: &Resp, status: u16, body: &str) {
    assert_eq!(resp.status, status, "{}", resp.describe());
    assert_eq!(resp.text(), body, "{}", resp.describe());
}

/// The API's time format for a whole second: `2023-11-14T22:13:20`.
pub fn chrono_like(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rem = seconds.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
