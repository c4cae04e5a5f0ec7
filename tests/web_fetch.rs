//! `fetch`, `Headers`, `Request`, `Response` (issue 11 item 5) through `cs-invoker-pool run` and
//! the production fetcher, against a loopback HTTP server started by each test.
//!
//! The fetcher refuses loopback addresses by policy; `run --allow-private-networks` lifts that
//! one rule (the manifest's `allowHosts` still applies), and one test checks that without it
//! the same fetch is denied. Expected values are what Node 20's `fetch` computes for the same
//! module against an equivalent server (kept in each test, with a comment saying so).

#[macro_use]
mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::cli::*;

/// What the test server saw of one request to `/slow`: when the client went away, if it did.
#[derive(Debug, Default)]
struct Seen {
    slow_disconnected_after: Vec<Duration>,
    requests: Vec<String>,
}

/// A small HTTP/1.1 server on 127.0.0.1 (one thread per connection, `Connection: close`):
/// `/echo` answers the request as JSON, `/json`, `/status/N`, `/headers` (two Set-Cookie, a
/// repeated header, a BOM body), `/bytes` (0..=255), `/slow` (answers after 3 s unless the
/// client leaves first, which it records).
struct Server {
    port: u16,
    seen: Arc<Mutex<Seen>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let s = s.clone();
                std::thread::spawn(move || serve(stream, s));
            }
        });
        Server { port, seen }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn serve(mut stream: TcpStream, seen: Arc<Mutex<Seen>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    seen.lock().unwrap().requests.push(path.clone());
    let reply = |stream: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]| {
        let mut out = format!("HTTP/1.1 {status} X\r\n");
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let _ = stream.write_all(out.as_bytes());
        let _ = stream.write_all(body);
    };
    if path.starts_with("/echo") {
        let v = json!({
            "method": method, "path": path, "x-test": header("x-test"),
            "content-type": header("content-type"), "body": String::from_utf8_lossy(&body),
        });
        reply(
            &mut stream,
            200,
            &[("content-type", "application/json")],
            v.to_string().as_bytes(),
        );
    } else if path == "/json" {
        reply(
            &mut stream,
            200,
            &[("content-type", "application/json; charset=utf-8")],
            r#"{"a":1,"b":[true,null],"s":"é✓"}"#.as_bytes(),
        );
    } else if let Some(code) = path.strip_prefix("/status/") {
        let code = code.parse().unwrap_or(500);
        reply(
            &mut stream,
            code,
            &[("content-type", "text/plain")],
            b"nope",
        );
    } else if path == "/headers" {
        reply(
            &mut stream,
            200,
            &[
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("x-multi", "one"),
                ("x-multi", "two"),
                ("X-Upper", "V"),
            ],
            b"\xEF\xBB\xBFbom",
        );
    } else if path == "/bytes" {
        let bytes: Vec<u8> = (0..=255).collect();
        reply(
            &mut stream,
            200,
            &[("content-type", "application/octet-stream")],
            &bytes,
        );
    } else if path == "/slow" {
        let t = Instant::now();
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
        while t.elapsed() < Duration::from_secs(3) {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    seen.lock()
                        .unwrap()
                        .slow_disconnected_after
                        .push(t.elapsed());
                    return;
                }
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    seen.lock()
                        .unwrap()
                        .slow_disconnected_after
                        .push(t.elapsed());
                    return;
                }
            }
        }
        reply(&mut stream, 200, &[], b"slow");
    } else {
        reply(&mut stream, 404, &[], b"");
    }
}

/// A function directory allowed to fetch from 127.0.0.1.
fn function(fx: &Fixture, name: &str, source: &str) -> std::path::PathBuf {
    fx.function(
        name,
        source,
        &manifest_with(
            10_000,
            64,
            json!({"http": {"allowHosts": ["127.0.0.1"], "timeoutMs": 5000}}),
        ),
    )
}

fn run_fetch(path: &std::path::Path, event: &Value) -> Run {
    run_event(path, event, &["--allow-private-networks"])
}

const RESPONSES: &str = r#"export default async (event) => {
  const base = event.base;
  const out = {};
  const r = await fetch(base + '/echo?q=1', { headers: { 'X-Test': ' padded ' } });
  out.get = [r.status, r.ok, r.statusText === '' || r.statusText === 'OK', r.headers.get('content-type'), r.bodyUsed, await r.json(), r.bodyUsed];
  try { await r.text(); } catch (e) { out.reread = [e.name, e.message]; }
  const p = await fetch(new Request(base + '/echo', { method: 'post', body: JSON.stringify({ n: 1 }), headers: [['content-type', 'application/json']] }));
  out.post = await p.json();
  const t = await fetch(base + '/echo', { method: 'PUT', body: 'plain ✓' });
  out.put = (await t.json())['content-type'];
  const u8 = await fetch(base + '/echo', { method: 'POST', body: new Uint8Array([104, 105]) });
  out.bytes_body = (await u8.json()).body;
  const j = await fetch(base + '/json');
  out.json = await j.json();
  const s = await fetch(base + '/status/404');
  out.status = [s.status, s.ok, await s.text()];
  const h = await fetch(base + '/headers');
  out.headers = [h.headers.get('x-multi'), h.headers.get('X-UPPER'), h.headers.getSetCookie(), [...h.headers.keys()].filter((k) => k.startsWith('x-') || k === 'set-cookie'), await h.text()];
  try { h.headers.set('x', 'y'); out.immutable = 'mutable'; } catch (e) { out.immutable = e.name; }
  const b = await fetch(base + '/bytes');
  const ab = await b.arrayBuffer();
  out.arrayBuffer = [ab instanceof ArrayBuffer, ab.byteLength, new Uint8Array(ab)[255]];
  const c = (await fetch(base + '/json')).clone();
  out.clone = (await c.text()).length;
  const all = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(base + '/echo?i=' + i).then((x) => x.json())));
  out.parallel = all.map((x) => x.path);
  return { body: JSON.stringify(out) };
};
"#;

#[test]
fn fetch_reads_responses_as_node_does() {
    let srv = Server::start();
    let fx = Fixture::new();
    let f = function(&fx, "responses", RESPONSES);
    let r = run_fetch(&f, &json!({"base": srv.base()}));
    // Node 20 (undici), same module, same routes.
    let node: Value = serde_json::from_str(
        r#"{"get":[200,true,true,"application/json",false,{"method":"GET","path":"/echo?q=1","x-test":"padded","content-type":null,"body":""},true],"reread":["TypeError","Body is unusable: Body has already been read"],"post":{"method":"POST","path":"/echo","x-test":null,"content-type":"application/json","body":"{\"n\":1}"},"put":"text/plain;charset=UTF-8","bytes_body":"hi","json":{"a":1,"b":[true,null],"s":"é✓"},"status":[404,false,"nope"],"headers":["one, two","V",["a=1","b=2"],["set-cookie","set-cookie","x-multi","x-upper"],"bom"],"immutable":"TypeError","arrayBuffer":[true,256,255],"clone":32,"parallel":["/echo?i=0","/echo?i=1","/echo?i=2","/echo?i=3","/echo?i=4","/echo?i=5","/echo?i=6","/echo?i=7"]}"#,
    )
    .unwrap();
    assert_eq!(r.body_json(), node, "{r:?}");
    // Every fetch was a host call: 9 one after the other, and 8 in parallel (more than the
    // child keeps open at once: it queues the rest).
    assert_eq!(r.summary_field("host_calls"), "17", "{r:?}");
}

const ABORTS_AND_CLASSES: &str = r#"export default async (event) => {
  const base = event.base, out = {};
  const c = new AbortController();
  const t0 = Date.now();
  const p = fetch(base + '/slow', { signal: c.signal });
  setTimeout(() => c.abort(), 50);
  try { await p; out.abort = 'resolved'; } catch (e) { out.abort = [e.name, e.message]; }
  try { await fetch(base + '/slow', { signal: AbortSignal.timeout(80) }); } catch (e) { out.timeout = [e.name, e.message]; }
  try { await fetch(base + '/echo', { signal: AbortSignal.abort(new Error('early')) }); } catch (e) { out.early = e.message; }
  const c2 = new AbortController(); c2.abort('str reason');
  try { await fetch(base + '/echo', { signal: c2.signal }); } catch (e) { out.early2 = e; }
  out.fast = Date.now() - t0 < 2000;
  try { await fetch(event.closed + '/x'); } catch (e) { out.refused = [e.name, e.message, e.cause instanceof Error]; }
  try { await fetch('not a url'); } catch (e) { out.bad_url = e.name; }
  try { await fetch(base + '/echo', { method: 'GET', body: 'x' }); } catch (e) { out.get_body = [e.name, e.message]; }
  try { new Request(base, { method: 'CONNECT' }); } catch (e) { out.connect = e.name; }
  const res = Response.json({ a: 1 }, { status: 201, headers: { 'x-a': 'b' } });
  out.response_json = [res.status, res.headers.get('content-type'), res.headers.get('x-a'), await res.text()];
  const r2 = new Response('hi', { status: 299, statusText: 'Fine' });
  out.response = [r2.status, r2.ok, r2.statusText, r2.headers.get('content-type'), await r2.text(), r2.type, r2.url, r2.redirected];
  try { new Response('x', { status: 600 }); } catch (e) { out.bad_status = e.name; }
  try { new Response('x', { status: 204 }); } catch (e) { out.null_body = e.name; }
  const er = Response.error(); out.error = [er.type, er.status, er.ok];
  const rd = Response.redirect('https://example.com/a', 301); out.redirect = [rd.status, rd.headers.get('location')];
  const hd = new Headers([['B', '2'], ['a', '1']]); hd.append('a', '3'); hd.set('C', ' 4 ');
  out.headers_obj = [[...hd], hd.get('A'), hd.has('c'), hd.get('missing')];
  hd.delete('b'); out.headers_deleted = [...hd.keys()];
  try { hd.append('bad name', 'x'); } catch (e) { out.bad_header = e.name; }
  const fe = []; hd.forEach((v, k) => fe.push(k + '=' + v)); out.forEach = fe;
  const rq = new Request(base + '/echo', { method: 'delete', headers: { 'x-a': '1' } });
  out.request = [rq.method, rq.url, rq.headers.get('x-a'), rq.redirect, rq.signal instanceof AbortSignal, rq.bodyUsed];
  const rb = new Request(base + '/echo', { method: 'POST', body: 'abc' });
  out.request_body = [await rb.clone().text(), await rb.arrayBuffer().then((b) => b.byteLength)];
  out.tags = [String(new Headers()), String(rq), String(r2)];
  return { body: JSON.stringify(out) };
};
"#;

#[test]
fn abort_errors_and_the_fetch_classes_behave_as_in_node() {
    let srv = Server::start();
    let fx = Fixture::new();
    let f = function(&fx, "aborts", ABORTS_AND_CLASSES);
    // A closed port for the connection-refused case.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = run_fetch(
        &f,
        &json!({"base": srv.base(), "closed": format!("http://127.0.0.1:{closed}")}),
    );
    // Node 20 (undici), same module, same routes (its server was on port 18933).
    let node: Value = serde_json::from_str(
        &r#"{"abort":["AbortError","This operation was aborted"],"timeout":["TimeoutError","The operation was aborted due to timeout"],"early":"early","early2":"str reason","fast":true,"refused":["TypeError","fetch failed",true],"bad_url":"TypeError","get_body":["TypeError","Request with GET/HEAD method cannot have body."],"connect":"TypeError","response_json":[201,"application/json","b","{\"a\":1}"],"response":[299,true,"Fine","text/plain;charset=UTF-8","hi","default","",false],"bad_status":"RangeError","null_body":"TypeError","error":["error",0,false],"redirect":[301,"https://example.com/a"],"headers_obj":[[["a","1, 3"],["b","2"],["c","4"]],"1, 3",true,null],"headers_deleted":["a","c"],"bad_header":"TypeError","forEach":["a=1, 3","c=4"],"request":["DELETE","http://127.0.0.1:18933/echo","1","follow",true,false],"request_body":["abc",3],"tags":["[object Headers]","[object Request]","[object Response]"]}"#
            .replace("http://127.0.0.1:18933", &srv.base()),
    )
    .unwrap();
    assert_eq!(r.body_json(), node, "{r:?}");
    // The aborts reached the supervisor: both /slow requests were dropped long before the
    // server would have answered (3 s).
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen.slow_disconnected_after.len(), 2, "{seen:?}");
    assert!(
        seen.slow_disconnected_after
            .iter()
            .all(|d| *d < Duration::from_millis(2500)),
        "{seen:?}"
    );
    // Already-aborted signals and refused requests (a GET with a body) send nothing.
    assert_eq!(seen.requests, ["/slow", "/slow"], "{seen:?}");
}

#[test]
fn a_denied_fetch_rejects_with_the_capability_error() {
    let srv = Server::start();
    let fx = Fixture::new();
    let src = r#"export default async (event) => {
  const out = {};
  for (const url of [event.base + '/echo', 'http://example.com/', 'ftp://127.0.0.1/x']) {
    try { const r = await fetch(url); out[url.slice(0, 8)] = 'fetched ' + r.status; }
    catch (e) { out[url.slice(0, 8)] = [e.name, e.message.startsWith('CS_RUNTIME_CAPABILITY_DENIED:'), e.message]; }
  }
  return { body: JSON.stringify(out) };
};"#;
    let f = function(&fx, "denied", src);
    let event = json!({"base": srv.base()});

    // With the private-network switch: the allowed host is fetched, the others are denied by
    // the manifest's allowHosts and the scheme rule, as cs.http.fetch is.
    let r = run_fetch(&f, &event);
    let v = r.body_json();
    assert_eq!(v["http://1"], "fetched 200", "{r:?}");
    assert_eq!(v["http://e"][0], "Error", "{r:?}");
    assert_eq!(v["http://e"][1], true, "{r:?}");
    assert!(
        v["http://e"][2]
            .as_str()
            .unwrap()
            .contains("\"example.com\" is not allowed"),
        "{r:?}"
    );
    assert_eq!(v["ftp://12"][1], true, "{r:?}");

    // Without it, loopback is refused by the address policy even though it is allowed by the
    // manifest, and the server never sees the request.
    let before = srv.seen.lock().unwrap().requests.len();
    let r = run_event(&f, &event, &[]);
    let v = r.body_json();
    assert_eq!(v["http://1"][0], "Error", "{r:?}");
    assert_eq!(v["http://1"][1], true, "{r:?}");
    assert_eq!(srv.seen.lock().unwrap().requests.len(), before);
}

#[test]
fn fetches_left_in_flight_when_the_handler_settles_are_cancelled() {
    let srv = Server::start();
    let fx = Fixture::new();
    let src = r#"export default async (event) => {
  fetch(event.base + '/slow').catch(() => {});
  fetch(event.base + '/slow').catch(() => {});
  setTimeout(() => {}, 10000);
  await new Promise((r) => setTimeout(r, 100));
  return { body: 'returned' };
};"#;
    let f = function(&fx, "inflight", src);
    let t = Instant::now();
    let r = run_fetch(&f, &json!({"base": srv.base()}));
    assert_eq!(r.body(), "returned", "{r:?}");
    assert!(t.elapsed() < Duration::from_millis(2500), "{r:?}");
    assert_eq!(
        r.logs(),
        vec!["[warn] 1 timer and 2 fetches still pending when the handler settled were cancelled (nothing outlives an activation)"],
        "{r:?}"
    );
    // The supervisor dropped both connections.
    let deadline = Instant::now() + Duration::from_secs(3);
    while srv.seen.lock().unwrap().slow_disconnected_after.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(srv.seen.lock().unwrap().slow_disconnected_after.len(), 2);
}

#[test]
fn the_synchronous_cs_http_fetch_still_works() {
    let srv = Server::start();
    let fx = Fixture::new();
    let src = r#"export default (event) => {
  const r = cs.http.fetch(event.base + '/headers');
  return { body: JSON.stringify([r.status, r.headers['set-cookie'], r.headers['x-multi'], r.isBase64Encoded]) };
};"#;
    let f = function(&fx, "sync", src);
    let r = run_fetch(&f, &json!({"base": srv.base()}));
    assert_eq!(r.body(), r#"[200,"a=1, b=2","one, two",true]"#, "{r:?}");
}

// --- the supervisor's bound on one child's host calls -----------------------------------------

mod bound {
    use super::*;
    use cs_invoker_pool::host::http::{HttpConfig, HttpFetcher};
    use cs_invoker_pool::host::local::LocalHost;
    use cs_invoker_pool::host::HostScope;
    use cs_invoker_pool::pool::{ErrorType, Job, KillReason, Pool, PoolConfig};
    use cs_invoker_pool::sandbox::Sandbox;
    use sandbox_proto::bundle;
    use sandbox_proto::protocol::{
        encode, FromChild, HostCall, HostOp, MAX_HOST_CALLS_IN_FLIGHT, PROTOCOL_VERSION,
    };
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    /// Reads one frame (the Init) from stdin: its big-endian length, then the body.
    const SKIP_FRAME: &str = "n=$(dd bs=1 count=4 2>/dev/null | od -An -tu1 | awk '{print $1*16777216+$2*65536+$3*256+$4}')\ndd bs=1 count=$n >/dev/null 2>&1\n";

    /// A fake child that answers the handshake, then — while its bundle "loads" — sends
    /// `frames` (raw bytes from a file) and waits.
    fn fake_child(dir: &std::path::Path, frames: &[u8]) -> std::path::PathBuf {
        let data = dir.join("frames.bin");
        std::fs::write(&data, frames).unwrap();
        let ready = encode(&FromChild::Ready(sandbox_proto::protocol::Ready {
            protocol_version: PROTOCOL_VERSION,
            pid: 5,
        }))
        .unwrap();
        let ready_file = dir.join("ready.bin");
        std::fs::write(&ready_file, ready).unwrap();
        let path = dir.join("fake-child");
        let script = format!(
            "#!/bin/sh\n{SKIP_FRAME}cat '{}'\nhead -c 4 >/dev/null\ncat '{}'\nexec sleep 30\n",
            ready_file.display(),
            data.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_child_with_too_many_calls_in_flight_is_killed_not_queued() {
        // A server that accepts and never answers: every fetch stays in flight.
        let hang = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/", hang.local_addr().unwrap().port());
        let mut frames = Vec::new();
        for id in 1..=(MAX_HOST_CALLS_IN_FLIGHT as u64 + 1) {
            let call = FromChild::HostCall(HostCall {
                id,
                op: HostOp::HttpFetch {
                    url: url.clone(),
                    method: "GET".into(),
                    headers: Vec::new(),
                    body: None,
                    timeout_ms: None,
                },
            });
            frames.extend(encode(&call).unwrap());
        }
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_child(dir.path(), &frames);

        let mut cfg = PoolConfig::new(bin, Arc::new(Sandbox::unconfined("fake child")));
        cfg.prewarm = 0;
        let pool = Pool::start(cfg).unwrap();
        let host = LocalHost::with_http(HttpFetcher::new(HttpConfig {
            allow_private_networks: true,
            ..HttpConfig::default()
        }));
        let manifest = manifest_with(
            20_000,
            64,
            json!({"http": {"allowHosts": ["127.0.0.1"], "timeoutMs": 20000}}),
        );
        let mut files = BTreeMap::new();
        files.insert(
            "function.js".to_string(),
            b"export default () => 1".to_vec(),
        );
        files.insert("manifest.json".to_string(), manifest.into_bytes());
        let b = Arc::new(bundle::parse_tar(&bundle::pack(&files).unwrap()).unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        let job = Job {
            bundle: b.clone(),
            scope: HostScope {
                tenant: "t".into(),
                namespace: "default".into(),
                function: "f".into(),
                version: 1,
                activation_id: "6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b".into(),
                capabilities: Arc::new(b.manifest.capabilities.clone()),
                deadline,
                trigger: "api".into(),
                heartbeat: None,
                policy: Default::default(),
                calls: Default::default(),
                context: Default::default(),
            },
            event_json: "{}".into(),
            ctx_json: "{}".into(),
            deadline,
            log_sink: None,
            env: Default::default(),
        };
        let t = Instant::now();
        let ex = pool.invoke(&job, &host).await;
        let err = ex.outcome.as_ref().unwrap_err();
        assert_eq!(err.kind, ErrorType::SandboxError, "{err:?}");
        assert!(
            err.message.contains(&format!(
                "more than {MAX_HOST_CALLS_IN_FLIGHT} host calls in flight"
            )),
            "{}",
            err.message
        );
        // Refused at once, not after the calls (or the deadline) ran out.
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(pool.stats().kills_for(KillReason::ProtocolBreach), 1);
        assert_eq!(ex.host_calls.count, MAX_HOST_CALLS_IN_FLIGHT as u32);
        pool.shutdown().await;
        drop(hang);
    }
}
