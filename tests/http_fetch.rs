//! `cs.http.fetch` through the real fetcher against a local HTTP server on 127.0.0.1.
//!
//! Only loopback is ever connected to: every non-loopback address in these tests (10.0.0.1,
//! 169.254.169.254, 93.184.216.34, …) is refused by the address policy before any connection,
//! which is what the tests check. Names are answered by a counting [`MockResolver`] (or the
//! system resolver for `localhost`).
//!
//! Redirect tests with the private-networks switch off use
//! `HttpConfig::private_network_hosts = ["public.test"]`: the name `public.test` (resolved by the
//! mock to 127.0.0.1, the test server) stands for a public host, and that exemption is per host
//! name, so every later hop is judged by the full policy.

use cs_invoker_pool::host::http::{
    tls_config_with_roots, HttpConfig, HttpFetcher, Resolve, ResolveFuture,
};
use cs_invoker_pool::host::HostScope;
use sandbox_proto::manifest::{Capabilities, HttpCapability};
use sandbox_proto::protocol::{HostError, HostOp, HostValue};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A self-signed certificate for `public.test` and 127.0.0.1 (P-256, valid until 2126), made
/// with `openssl req -x509 -newkey ec … -addext "subjectAltName=DNS:public.test,IP:127.0.0.1"
/// -addext "basicConstraints=critical,CA:FALSE"`.
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBtjCCAVugAwIBAgIUVKtjdGOyDRANRnm1V4FMdgHBXKowCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLcHVibGljLnRlc3QwIBcNMjYxMTIyMDgyOTQyWhgPMjEyNjEw
MjkwODI5NDJaMBYxFDASBgNVBAMMC3B1YmxpYy50ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEu6T+992sHwgPzDirODzwOtcOR/vjVreDv0FRnIdmpelxMZ1K
I7Xtnbokbmx9oPZOzfiOTRMVLZ+YhQac61rtvaOBhDCBgTAdBgNVHQ4EFgQUxixE
3cgqNDsMWQDxQvO4AjSAbBowHwYDVR0jBBgwFoAUxixE3cgqNDsMWQDxQvO4AjSA
bBowHAYDVR0RBBUwE4ILcHVibGljLnRlc3SHBH8AAAEwDAYDVR0TAQH/BAIwADAT
BgNVHSUEDDAKBggrBgEFBQcDATAKBggqhkjOPQQDAgNJADBGAiEAttm6a1Cn5yPX
chcjv4uCKhRxlvu4sNFIAMepNdAbFw8CIQD1+JmpIrJCDNTHlfZgmausAtExR+3c
s+Pn+FQ1UVb3zw==
-----END CERTIFICATE-----
";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYROSzP9YsmuKxHs6
GkubDJOhX3MGnysGejLpQdd6ul+hRANCAAS7pP733awfCA/MOKs4PPA61w5H++NW
t4O/QVGch2al6XExnUojte2duiRubH2g9k7N+I5NExUtn5iFBpzrWu29
-----END PRIVATE KEY-----
";

fn test_acceptor() -> TlsAcceptor {
    let cert = CertificateDer::from_pem_slice(TEST_CERT.as_bytes()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(TEST_KEY.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(cfg))
}

fn trusting_test_cert() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(TEST_CERT.as_bytes()).unwrap())
        .unwrap();
    tls_config_with_roots(roots)
}

// ---------------------------------------------------------------------------------------------
// The test server.

#[derive(Debug, Clone)]
struct Hit {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Server {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start() -> Server {
        Server::start_with(None).await
    }

    /// With `tls`, the server speaks HTTPS with the test certificate.
    async fn start_with(tls: Option<TlsAcceptor>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let h = h.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls_stream) => serve(tls_stream, h).await,
                            Err(_) => Ok(()),
                        },
                        None => serve(stream, h).await,
                    };
                });
            }
        });
        Server { port, hits, task }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn serve<S>(mut s: S, hits: Arc<Mutex<Vec<Hit>>>) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] == 0x16 {
            // A TLS ClientHello on the plain-HTTP server.
            s.write_all(&response("400 Bad Request", &[], b"")).await?;
            return s.shutdown().await;
        }
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        // Not HTTP (e.g. a TLS ClientHello).
        return s.write_all(&response("400 Bad Request", &[], b"")).await;
    };
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    hits.lock().unwrap().push(Hit {
        method: method.clone(),
        target: target.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });

    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let out = match path {
        "/ok" => response(
            "200 OK",
            &[
                ("X-Multi", "a".into()),
                ("X-Multi", "b".into()),
                ("X-Case", "Value".into()),
            ],
            b"hello",
        ),
        "/echo" => {
            let mut text = format!("{method} {target}\n");
            for (n, v) in &headers {
                text.push_str(&format!("{n}: {v}\n"));
            }
            text.push('\n');
            let mut b = text.into_bytes();
            b.extend_from_slice(&body);
            response("200 OK", &[], &b)
        }
        // /redirect?code=302&to=<raw location>
        "/redirect" => {
            let code = query
                .strip_prefix("code=")
                .and_then(|q| q.split('&').next())
                .unwrap_or("302");
            let to = query.split_once("to=").map(|(_, t)| t).unwrap_or("/ok");
            response(&format!("{code} Redirect"), &[("Location", to.into())], b"")
        }
        "/loop" => response("302 Found", &[("Location", "/loop".into())], b""),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            response("200 OK", &[], b"late")
        }
        "/missing" => response("404 Not Found", &[], b"nope"),
        // /bytes?n=<len>&mode=cl|chunked
        "/bytes" => {
            let n: usize = query
                .strip_prefix("n=")
                .and_then(|q| q.split('&').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if query.ends_with("mode=chunked") {
                let mut out =
                    b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                        .to_vec();
                s.write_all(&out).await?;
                let mut left = n;
                while left > 0 {
                    let c = left.min(1000);
                    out = format!("{c:x}\r\n").into_bytes();
                    out.extend(std::iter::repeat_n(b'x', c));
                    out.extend_from_slice(b"\r\n");
                    if s.write_all(&out).await.is_err() {
                        return Ok(());
                    }
                    left -= c;
                }
                b"0\r\n\r\n".to_vec()
            } else {
                response("200 OK", &[], &vec![b'x'; n])
            }
        }
        _ => response("404 Not Found", &[], b""),
    };
    s.write_all(&out).await?;
    s.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Answers names from a table and records every lookup.
#[derive(Default)]
struct MockResolver {
    table: HashMap<String, Vec<IpAddr>>,
    calls: Mutex<Vec<String>>,
}

impl MockResolver {
    fn with(entries: &[(&str, &[&str])]) -> Arc<MockResolver> {
        Arc::new(MockResolver {
            table: entries
                .iter()
                .map(|(n, ips)| {
                    (
                        n.to_string(),
                        ips.iter().map(|i| i.parse().unwrap()).collect(),
                    )
                })
                .collect(),
            calls: Mutex::new(Vec::new()),
        })
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Resolve for MockResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        self.calls.lock().unwrap().push(host.to_string());
        let answer = self.table.get(host).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("mock: no such host {host}"),
            )
        });
        Box::pin(async move { answer })
    }
}

fn scope_with(deadline_in: Duration) -> HostScope {
    HostScope {
        tenant: "t1".into(),
        namespace: "ns".into(),
        function: "fn".into(),
        version: 1,
        activation_id: "act-1".into(),
        capabilities: Arc::new(Capabilities::default()),
        deadline: Instant::now() + deadline_in,
        trigger: "api".into(),
        heartbeat: None,
        policy: Default::default(),
        calls: Default::default(),
        context: Default::default(),
    }
}

fn scope() -> HostScope {
    scope_with(Duration::from_secs(30))
}

fn caps(hosts: &[&str]) -> HttpCapability {
    HttpCapability {
        allow_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        timeout_ms: None,
    }
}

fn private_on() -> HttpConfig {
    HttpConfig {
        allow_private_networks: true,
        ..HttpConfig::default()
    }
}

/// Switch off; only the name `public.test` may be private (see the module docs).
fn public_test_config() -> HttpConfig {
    HttpConfig {
        private_network_hosts: vec!["public.test".into()],
        ..HttpConfig::default()
    }
}

/// status, headers, body
type Fetched = Result<(u16, Vec<(String, String)>, Vec<u8>), HostError>;

async fn get(f: &HttpFetcher, caps: &HttpCapability, url: &str) -> Fetched {
    request(f, caps, url, "GET", &[], None).await
}

async fn request(
    f: &HttpFetcher,
    caps: &HttpCapability,
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Fetched {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    match f
        .fetch(&scope(), caps, url, method, &headers, body, None)
        .await?
    {
        HostValue::Http {
            status,
            headers,
            body,
        } => Ok((status, headers, body)),
        other => panic!("unexpected {other:?}"),
    }
}

#[track_caller]
fn assert_denied(r: Fetched, needle: &str) {
    match r {
        Ok((status, _, _)) => {
            panic!("expected a denial containing {needle:?}, got status {status}")
        }
        Err(e) => {
            assert!(
                e.message.starts_with("CS_RUNTIME_CAPABILITY_DENIED: "),
                "{}",
                e.message
            );
            assert!(
                e.message.contains(needle),
                "{:?} does not contain {needle:?}",
                e.message
            );
        }
    }
}

#[track_caller]
fn assert_failed(r: Fetched, needle: &str) {
    match r {
        Ok((status, _, _)) => panic!("expected an error containing {needle:?}, got {status}"),
        Err(e) => {
            assert!(e.message.starts_with("cs.http.fetch: "), "{}", e.message);
            assert!(
                e.message.contains(needle),
                "{:?} does not contain {needle:?}",
                e.message
            );
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn allowed_host_works_with_private_networks_on() {
    let srv = Server::start().await;
    let resolver = MockResolver::with(&[]);
    let f = HttpFetcher::new(private_on()).with_resolver(resolver.clone());
    let c = caps(&["127.0.0.1"]);

    let (status, headers, body) = get(&f, &c, &srv.url("127.0.0.1", "/ok")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(text(&body), "hello");
    let h: HashMap<_, _> = headers.into_iter().collect();
    assert_eq!(h["x-multi"], "a, b", "repeated headers joined");
    assert_eq!(h["x-case"], "Value", "names lower-cased, values kept");
    assert_eq!(h["content-length"], "5");

    // Method, headers and body reach the server; Host is the URL's; framing is the fetcher's.
    let (status, _, body) = request(
        &f,
        &c,
        &srv.url("127.0.0.1", "/echo?x=1#frag"),
        "post",
        &[
            ("X-Token", "abc"),
            ("Host", "evil.example"),
            ("Transfer-Encoding", "chunked"),
        ],
        Some(b"payload"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let echo = text(&body);
    assert!(echo.starts_with("POST /echo?x=1\n"), "{echo}");
    assert!(echo.contains("x-token: abc\n"), "{echo}");
    assert!(
        echo.contains(&format!("host: 127.0.0.1:{}\n", srv.port)),
        "{echo}"
    );
    assert!(echo.contains("content-length: 7\n"), "{echo}");
    assert!(
        !echo.contains("evil.example") && !echo.contains("chunked"),
        "{echo}"
    );
    assert!(echo.ends_with("\n\npayload"), "{echo}");
    let hit = srv.hits().pop().unwrap();
    assert_eq!(
        (hit.method.as_str(), hit.target.as_str()),
        ("POST", "/echo?x=1")
    );
    assert_eq!(hit.body, b"payload");
    assert!(hit
        .headers
        .contains(&("user-agent".to_string(), "cs-invoker-pool".to_string())));

    // A non-2xx status is a response, not an error.
    let (status, _, body) = get(&f, &c, &srv.url("127.0.0.1", "/missing"))
        .await
        .unwrap();
    assert_eq!((status, text(&body).as_str()), (404, "nope"));
    assert!(
        resolver.calls().is_empty(),
        "an IP literal is never resolved"
    );
}

#[tokio::test]
async fn localhost_resolves_through_the_system_resolver_and_is_vetted() {
    let srv = Server::start().await;
    let c = caps(&["LOCALHOST"]);
    let on = HttpFetcher::new(private_on());
    let (status, _, body) = get(&on, &c, &srv.url("localhost", "/ok")).await.unwrap();
    assert_eq!((status, text(&body).as_str()), (200, "hello"));

    let off = HttpFetcher::new(HttpConfig::default());
    assert_denied(
        get(&off, &c, &srv.url("localhost", "/ok")).await,
        "\"localhost\" denied: it resolves to",
    );
    assert_eq!(srv.hits().len(), 1, "the denied fetch never connected");
}

#[tokio::test]
async fn private_and_numeric_literals_are_denied_without_dns_with_the_switch_off() {
    let srv = Server::start().await;
    let resolver = MockResolver::with(&[]);
    let f = HttpFetcher::new(HttpConfig::default()).with_resolver(resolver.clone());
    // (host in the URL, allowHosts entry, address named in the denial)
    let cases = [
        ("127.0.0.1", "127.0.0.1", "127.0.0.1 is loopback"),
        ("10.0.0.1", "10.0.0.1", "10.0.0.1 is private (10.0.0.0/8)"),
        (
            "169.254.169.254",
            "169.254.169.254",
            "169.254.169.254 is link-local",
        ),
        ("100.64.0.1", "100.64.0.1", "100.64.0.0/10"),
        ("172.16.5.4", "172.16.5.4", "172.16.0.0/12"),
        ("192.168.1.1", "192.168.1.1", "192.168.0.0/16"),
        ("[::1]", "::1", "::1 is loopback"),
        ("[::1]", "[::1]", "::1 is loopback"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "IPv4-mapped"),
        (
            "[::ffff:a9fe:a9fe]",
            "::ffff:169.254.169.254",
            "IPv4-mapped",
        ),
        ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1", "NAT64"),
        ("[fd00::1]", "fd00::1", "fc00::/7"),
        ("[fe80::1]", "fe80::1", "fe80::/10"),
        ("2130706433", "2130706433", "127.0.0.1 is loopback"),
        ("0x7f.1", "0x7f.1", "127.0.0.1 is loopback"),
        ("0x7f000001", "0x7f000001", "127.0.0.1 is loopback"),
        ("0177.0.0.1", "0177.0.0.1", "127.0.0.1 is loopback"),
        ("127.1", "127.1", "127.0.0.1 is loopback"),
        ("2852039166", "2852039166", "169.254.169.254"),
        ("0.0.0.0", "0.0.0.0", "never allowed"),
        ("[::]", "::", "never allowed"),
        ("224.0.0.1", "224.0.0.1", "multicast"),
        ("255.255.255.255", "255.255.255.255", "240.0.0.0/4"),
    ];
    for (host, entry, needle) in cases {
        let r = get(&f, &caps(&[entry]), &srv.url(host, "/ok")).await;
        assert_denied(r, needle);
    }
    assert!(resolver.calls().is_empty(), "{:?}", resolver.calls());
    assert!(srv.hits().is_empty(), "nothing was connected to");

    // Non-unicast stays denied with private networks allowed.
    let on = HttpFetcher::new(private_on()).with_resolver(resolver.clone());
    for (host, entry) in [("0.0.0.0", "0.0.0.0"), ("[::]", "::"), ("0", "0")] {
        assert_denied(
            get(&on, &caps(&[entry]), &srv.url(host, "/ok")).await,
            "never allowed",
        );
    }
    assert!(srv.hits().is_empty());
}

#[tokio::test]
async fn a_host_not_in_the_list_is_denied_before_any_dns_lookup() {
    let resolver = MockResolver::with(&[("evil.test", &["93.184.216.34"])]);
    let f = HttpFetcher::new(private_on()).with_resolver(resolver.clone());
    let c = caps(&["api.example.com"]);
    for url in [
        "http://evil.test/",
        "https://api.example.com.evil.test/",
        "http://example.com/",
        "http://127.0.0.1/",
        "http://2130706433/",
    ] {
        assert_denied(
            get(&f, &c, url).await,
            "is not allowed; capabilities.http.allowHosts is [\"api.example.com\"]",
        );
    }
    // Bad schemes and credentials are denials too.
    assert_denied(get(&f, &c, "file:///etc/passwd").await, "scheme \"file\"");
    assert_denied(
        get(&f, &c, "ftp://api.example.com/").await,
        "scheme \"ftp\"",
    );
    assert_denied(
        get(&f, &c, "https://user:pw@api.example.com/").await,
        "credentials",
    );
    assert_denied(
        get(&f, &c, "not a url").await,
        "not an absolute http(s) URL",
    );
    // No capability at all.
    let op = HostOp::HttpFetch {
        url: "https://api.example.com/".into(),
        method: "GET".into(),
        headers: vec![],
        body: None,
        timeout_ms: None,
    };
    let e = f.fetch_op(&scope(), op).await.unwrap_err();
    assert!(
        e.message.starts_with("CS_RUNTIME_CAPABILITY_DENIED: ")
            && e.message.contains("no capabilities.http"),
        "{}",
        e.message
    );
    assert!(resolver.calls().is_empty(), "{:?}", resolver.calls());
}

#[tokio::test]
async fn dns_answers_with_any_private_address_are_denied() {
    let resolver = MockResolver::with(&[
        ("mixed.test", &["93.184.216.34", "10.0.0.1"]),
        (
            "mapped.test",
            &["2606:4700::1111", "::ffff:169.254.169.254"],
        ),
        ("metadata.test", &["169.254.169.254"]),
        ("empty.test", &[]),
    ]);
    let f = HttpFetcher::new(HttpConfig::default()).with_resolver(resolver.clone());
    let c = caps(&["mixed.test", "mapped.test", "metadata.test", "empty.test"]);
    // The public address comes first: were it connected to before vetting the rest, this would
    // not be a denial (and would leave the machine).
    assert_denied(
        get(&f, &c, "http://mixed.test/").await,
        "\"mixed.test\" denied: it resolves to 10.0.0.1, which is private (10.0.0.0/8); \
         private networks are not allowed",
    );
    assert_denied(
        get(&f, &c, "https://mapped.test/").await,
        "it resolves to ::ffff:169.254.169.254",
    );
    assert_denied(
        get(&f, &c, "http://Metadata.TEST/latest/meta-data/").await,
        "169.254.169.254",
    );
    assert_failed(get(&f, &c, "http://empty.test/").await, "no addresses");
    // Not in allowHosts: denied, and never looked up.
    assert_denied(get(&f, &c, "http://unknown.test/").await, "is not allowed");
    assert_eq!(
        resolver.calls(),
        ["mixed.test", "mapped.test", "metadata.test", "empty.test"]
    );
}

#[tokio::test]
async fn redirects_are_followed_and_every_hop_is_vetted_again() {
    let srv = Server::start().await;
    let resolver = MockResolver::with(&[
        ("public.test", &["127.0.0.1"]),
        ("other.test", &["127.0.0.1"]),
        ("not-allowed.test", &["127.0.0.1"]),
    ]);
    let f = HttpFetcher::new(public_test_config()).with_resolver(resolver.clone());
    let c = caps(&[
        "public.test",
        "other.test",
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
    ]);
    let p = srv.port;
    let start = |to: &str| srv.url("public.test", &format!("/redirect?code=302&to={to}"));

    // Relative and absolute redirects to the same host are followed.
    let (status, _, body) = get(&f, &c, &start("/ok")).await.unwrap();
    assert_eq!((status, text(&body).as_str()), (200, "hello"));
    let (status, _, _) = get(&f, &c, &start(&format!("http://PUBLIC.test:{p}/ok")))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(srv.hits().len(), 4);

    // To private addresses: denied (allowHosts has them, so the address policy is what denies).
    for (to, needle) in [
        (
            "http://10.0.0.1/secret".to_string(),
            "address 10.0.0.1 is private",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "169.254.169.254 is link-local",
        ),
        // The same test server, but by address: the exemption is for the name `public.test`.
        (format!("http://127.0.0.1:{p}/ok"), "127.0.0.1 is loopback"),
        (format!("http://0x7f.1:{p}/ok"), "127.0.0.1 is loopback"),
        // An allowed name that resolves to a private address.
        (
            format!("http://other.test:{p}/ok"),
            "it resolves to 127.0.0.1",
        ),
    ] {
        let before = srv.hits().len();
        let r = get(&f, &c, &start(&to)).await;
        assert_denied(
            r.clone(),
            "cs.http.fetch: redirect from \"public.test\" to host ",
        );
        assert_denied(r, needle);
        assert_eq!(
            srv.hits().len(),
            before + 1,
            "only the first hop reached the server"
        );
    }

    // To a host that is not in allowHosts: denied before resolving it.
    assert_denied(
        get(&f, &c, &start(&format!("http://not-allowed.test:{p}/ok"))).await,
        "redirect from \"public.test\" to host \"not-allowed.test\" is not allowed",
    );
    assert!(!resolver.calls().iter().any(|h| h == "not-allowed.test"));
    // To another scheme or with credentials: denied.
    assert_denied(
        get(&f, &c, &start("file:///etc/passwd")).await,
        "scheme \"file\"",
    );
    assert_denied(
        get(&f, &c, &start(&format!("http://u:p@public.test:{p}/ok"))).await,
        "credentials",
    );

    // Every status code that redirects.
    for code in [301, 302, 303, 307, 308] {
        let url = srv.url("public.test", &format!("/redirect?code={code}&to=/ok"));
        let (status, _, _) = get(&f, &c, &url).await.unwrap();
        assert_eq!(status, 200, "{code}");
    }
    // A 3xx without Location is the response.
    let (status, _, _) = get(&f, &c, &srv.url("public.test", "/redirect?code=300&to=/ok"))
        .await
        .unwrap();
    assert_eq!(status, 300);
}

#[tokio::test]
async fn redirect_limits_methods_and_credentials() {
    let srv = Server::start().await;
    let resolver = MockResolver::with(&[
        ("public.test", &["127.0.0.1"]),
        ("public2.test", &["127.0.0.1"]),
    ]);
    let f = HttpFetcher::new(HttpConfig {
        max_redirects: 2,
        private_network_hosts: vec!["public.test".into(), "public2.test".into()],
        ..HttpConfig::default()
    })
    .with_resolver(resolver);
    let c = caps(&["public.test", "public2.test"]);

    assert_failed(
        get(&f, &c, &srv.url("public.test", "/loop")).await,
        "more than 2 redirects",
    );
    let hits = srv.hits();
    assert_eq!(hits.len(), 3, "the first request and two redirects");
    assert!(hits
        .iter()
        .all(|h| h.method == "GET" && h.target == "/loop" && h.body.is_empty()));

    let (f, c) = (&f, &c);
    // 303 turns POST into GET without body; 307 keeps both.
    let post = |code: u16| {
        let url = srv.url("public.test", &format!("/redirect?code={code}&to=/echo"));
        async move {
            request(
                f,
                c,
                &url,
                "POST",
                &[("Content-Type", "text/plain")],
                Some(b"data"),
            )
            .await
            .unwrap()
        }
    };
    let echo = text(&post(303).await.2);
    assert!(
        echo.starts_with("GET /echo\n") && !echo.contains("content-type"),
        "{echo}"
    );
    assert!(echo.ends_with("\n\n"), "{echo}");
    let echo = text(&post(307).await.2);
    assert!(
        echo.starts_with("POST /echo\n") && echo.ends_with("\n\ndata"),
        "{echo}"
    );
    assert!(echo.contains("content-type: text/plain"), "{echo}");

    // Authorization survives a same-origin redirect, not a cross-origin one.
    let with_auth = |to: String| {
        let url = srv.url("public.test", &format!("/redirect?code=302&to={to}"));
        async move {
            let r = request(
                f,
                c,
                &url,
                "GET",
                &[("Authorization", "Bearer s3cret")],
                None,
            );
            text(&r.await.unwrap().2)
        }
    };
    let same = with_auth("/echo".into()).await;
    assert!(same.contains("authorization: Bearer s3cret"), "{same}");
    let cross = with_auth(srv.url("public2.test", "/echo")).await;
    assert!(cross.starts_with("GET /echo\n"), "{cross}");
    assert!(!cross.contains("s3cret"), "{cross}");
}

#[tokio::test]
async fn timeouts_are_the_smallest_of_manifest_call_and_deadline() {
    let srv = Server::start().await;
    let f = HttpFetcher::new(private_on());
    let url = srv.url("127.0.0.1", "/slow");
    let fetch = |scope: HostScope, manifest: Option<u64>, call: Option<u64>| {
        let f = &f;
        let url = url.clone();
        async move {
            let c = HttpCapability {
                allow_hosts: vec!["127.0.0.1".into()],
                timeout_ms: manifest,
            };
            let t = Instant::now();
            let r = f.fetch(&scope, &c, &url, "GET", &[], None, call).await;
            (r.unwrap_err().message, t.elapsed())
        }
    };

    let (m, took) = fetch(scope(), Some(200), None).await;
    assert_eq!(m, "cs.http.fetch: timed out after 200 ms");
    assert!(took < Duration::from_secs(2), "{took:?}");

    let (m, _) = fetch(scope(), Some(2000), Some(100)).await;
    assert_eq!(m, "cs.http.fetch: timed out after 100 ms");

    let (m, took) = fetch(scope_with(Duration::from_millis(250)), None, Some(5000)).await;
    assert!(m.starts_with("cs.http.fetch: timed out after "), "{m}");
    let ms: u64 = m
        .trim_start_matches("cs.http.fetch: timed out after ")
        .trim_end_matches(" ms")
        .parse()
        .unwrap();
    assert!((1..=250).contains(&ms), "{m}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // The config default applies when the manifest sets nothing.
    let short = HttpFetcher::new(HttpConfig {
        default_timeout: Duration::from_millis(150),
        ..private_on()
    });
    let c = caps(&["127.0.0.1"]);
    let e = short
        .fetch(&scope(), &c, &url, "GET", &[], None, None)
        .await
        .unwrap_err();
    assert_eq!(e.message, "cs.http.fetch: timed out after 150 ms");

    // The timeout spans the redirects.
    let redirect = srv.url("127.0.0.1", "/redirect?code=302&to=/slow");
    let e = f
        .fetch(&scope(), &c, &redirect, "GET", &[], None, Some(300))
        .await
        .unwrap_err();
    assert_eq!(e.message, "cs.http.fetch: timed out after 300 ms");

    // A deadline already passed: nothing is sent.
    let before = srv.hits().len();
    let past = HostScope {
        deadline: Instant::now() - Duration::from_millis(1),
        ..scope()
    };
    let (m, _) = fetch(past, None, None).await;
    assert_eq!(m, "cs.http.fetch: timed out after 0 ms");
    assert_eq!(srv.hits().len(), before);
}

#[tokio::test]
async fn the_response_body_is_capped() {
    let srv = Server::start().await;
    let f = HttpFetcher::new(HttpConfig {
        max_response_bytes: 4000,
        ..private_on()
    });
    let c = caps(&["127.0.0.1"]);
    for mode in ["cl", "chunked"] {
        let (status, _, body) = get(
            &f,
            &c,
            &srv.url("127.0.0.1", &format!("/bytes?n=4000&mode={mode}")),
        )
        .await
        .unwrap();
        assert_eq!((status, body.len()), (200, 4000), "{mode}");
        assert_failed(
            get(
                &f,
                &c,
                &srv.url("127.0.0.1", &format!("/bytes?n=4001&mode={mode}")),
            )
            .await,
            "response body is larger than the 4000 bytes allowed",
        );
        assert_failed(
            get(
                &f,
                &c,
                &srv.url("127.0.0.1", &format!("/bytes?n=5000000&mode={mode}")),
            )
            .await,
            "larger than the 4000 bytes",
        );
    }
}

#[tokio::test]
async fn https_verifies_the_certificate_for_the_host_name() {
    let srv = Server::start_with(Some(test_acceptor())).await;
    let resolver = MockResolver::with(&[
        ("public.test", &["127.0.0.1"]),
        ("other.test", &["127.0.0.1"]),
    ]);
    let f = HttpFetcher::new(HttpConfig {
        private_network_hosts: vec!["public.test".into(), "other.test".into()],
        ..HttpConfig::default()
    })
    .with_resolver(resolver.clone())
    .with_tls_config(trusting_test_cert());
    let c = caps(&["public.test", "other.test"]);
    let p = srv.port;

    let (status, _, body) = get(&f, &c, &format!("https://public.test:{p}/echo"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let echo = text(&body);
    assert!(echo.contains(&format!("host: public.test:{p}\n")), "{echo}");
    // A relative redirect stays on https.
    let (status, _, _) = get(&f, &c, &format!("https://public.test:{p}/redirect?to=/ok"))
        .await
        .unwrap();
    assert_eq!(status, 200);

    // The certificate is checked against the name asked for (SNI), not the address.
    assert_failed(
        get(&f, &c, &format!("https://other.test:{p}/ok")).await,
        "TLS handshake with \"other.test\" failed",
    );
    // The Mozilla roots do not know the test certificate.
    let default_roots = HttpFetcher::new(HttpConfig {
        private_network_hosts: vec!["public.test".into()],
        ..HttpConfig::default()
    })
    .with_resolver(resolver);
    assert_failed(
        get(&default_roots, &c, &format!("https://public.test:{p}/ok")).await,
        "TLS handshake with \"public.test\" failed",
    );
    assert_eq!(srv.hits().len(), 3);
}

#[tokio::test]
async fn tls_and_connection_failures_are_plain_errors() {
    let srv = Server::start().await;
    let f = HttpFetcher::new(private_on());
    let c = caps(&["127.0.0.1"]);
    let url = format!("https://127.0.0.1:{}/ok", srv.port);
    assert_failed(
        get(&f, &c, &url).await,
        "TLS handshake with \"127.0.0.1\" failed",
    );
    // Nothing listening: a plain error too.
    drop(srv);
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_failed(
        get(&f, &c, &format!("http://{addr}/ok")).await,
        "cannot connect to \"127.0.0.1\"",
    );
}

/// Issue 10 #4: every range the IANA special-purpose registries mark not globally reachable
/// is refused when a name resolves to it and on every redirect hop, not only as a literal.
#[tokio::test]
async fn special_purpose_ranges_are_denied_via_dns_and_on_redirect_hops() {
    let srv = Server::start().await;
    let resolver = MockResolver::with(&[
        ("public.test", &["127.0.0.1"]),
        ("doc.test", &["192.0.2.10"]),
        ("bench.test", &["198.18.3.4"]),
        ("net2.test", &["198.51.100.20"]),
        ("net3.test", &["203.0.113.30"]),
        ("ietf.test", &["192.0.0.170"]),
        ("doc6.test", &["2001:db8::10"]),
        ("discard6.test", &["100::1"]),
    ]);
    let f = HttpFetcher::new(public_test_config()).with_resolver(resolver.clone());
    let names = [
        ("doc.test", "192.0.2.0/24"),
        ("bench.test", "198.18.0.0/15"),
        ("net2.test", "198.51.100.0/24"),
        ("net3.test", "203.0.113.0/24"),
        ("ietf.test", "192.0.0.0/24"),
        ("doc6.test", "2001:db8::/32"),
        ("discard6.test", "100::/64"),
    ];
    let mut allowed: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    allowed.push("public.test");
    allowed.push("203.0.113.7");
    let c = caps(&allowed);
    for (name, range) in names {
        let r = get(&f, &c, &format!("http://{name}/")).await;
        assert_denied(r.clone(), "it resolves to");
        assert_denied(r, range);
    }
    // A redirect hop to such an address, by name or literal, is refused too.
    let p = srv.port;
    for (to, needle) in [
        (format!("http://doc.test:{p}/x"), "192.0.2.0/24"),
        ("http://203.0.113.7/x".to_string(), "203.0.113.0/24"),
    ] {
        let url = srv.url("public.test", &format!("/redirect?code=302&to={to}"));
        let before = srv.hits().len();
        let r = get(&f, &c, &url).await;
        assert_denied(r.clone(), "redirect from \"public.test\"");
        assert_denied(r, needle);
        assert_eq!(srv.hits().len(), before + 1, "only the first hop was sent");
    }
}
