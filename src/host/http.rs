//! `cs.http.fetch` (contract §6): an HTTP/1.1 client that cannot be turned against the platform.
//!
//! For every hop (the first request and each redirect) the fetcher
//! 1. parses the URL (WHATWG rules, `url` crate): `http`/`https` only, no credentials;
//! 2. checks the host against the manifest's `allowHosts` (exact, case-insensitive; entries and
//!    URL hosts are compared in canonical form, so `0x7f.1` in the list matches a URL written
//!    `0x7f.1`), *before* any DNS lookup;
//! 3. turns the host into addresses: IP literals (including the numeric forms libc accepts,
//!    [`addr::parse_ipv4_numeric`]) directly, names through the [`Resolve`]r; and vets **every**
//!    address with the [`addr`] policy, refusing the hop if any one is denied;
//! 4. connects a `TcpStream` to a vetted address itself (no client library ever resolves the name
//!    again, so DNS rebinding between check and connect is impossible), wraps it in TLS for
//!    `https` (rustls, Mozilla roots, SNI = the host name) and speaks HTTP/1.1 with hyper;
//! 5. follows 301/302/303/307/308 itself, at most `max_redirects` times, each target going through
//!    1–4 again.
//!
//! The whole fetch, redirects included, runs under one timeout: the smallest of the manifest's
//! `http.timeoutMs` (else [`HttpConfig::default_timeout`]), the call's `timeoutMs` and the time
//! left to the activation's deadline. The response body is capped at
//! [`HttpConfig::max_response_bytes`].
//!
//! Denials (host not allowed, address not public, bad scheme, credentials) are [`HostError`]s
//! starting with `CS_RUNTIME_CAPABILITY_DENIED:`; network failures and timeouts are plain
//! [`HostError`]s starting with `cs.http.fetch:`.
//!
//! Private networks: [`HttpConfig::allow_private_networks`] lets every host reach private ranges
//! (tests, on-premise); [`HttpConfig::private_network_hosts`] does so only for the listed host
//! names, judged per hop, so a redirect from such a host to another private address is still
//! denied. Both are off by default and logged with a warning when set. Non-unicast addresses
//! (`0.0.0.0/8`, multicast, `240.0.0.0/4`, `::`) are refused in every mode.

pub mod addr;
mod client;

use super::HostScope;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use sandbox_proto::manifest::HttpCapability;
use sandbox_proto::protocol::{HostError, HostOp, HostValue};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use url::{Position, Url};

/// Configuration of the fetcher (the `http` section of the invoker's configuration).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Lets every host reach private ranges (loopback, RFC 1918, link-local, …). Off by default;
    /// for tests and on-premise installations. Logged with a warning when on.
    pub allow_private_networks: bool,
    /// Host names (as in `allowHosts`) whose addresses may be private even with
    /// `allow_private_networks` off: an on-premise service reachable by name. Judged per hop: a
    /// redirect from such a host to another private host is denied. Empty by default; logged.
    pub private_network_hosts: Vec<String>,
    /// Largest response body handed to the guest; a larger one fails the fetch.
    pub max_response_bytes: usize,
    /// Redirects followed before the fetch fails.
    pub max_redirects: u32,
    /// The timeout when the manifest sets no `http.timeoutMs`.
    pub default_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allow_private_networks: false,
            private_network_hosts: Vec::new(),
            max_response_bytes: 4 * 1024 * 1024,
            max_redirects: 5,
            default_timeout: Duration::from_secs(10),
        }
    }
}

/// The future of [`Resolve::resolve`].
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into addresses. Injectable so tests can count lookups and answer with
/// addresses of their choice; production uses [`SystemResolver`].
pub trait Resolve: Send + Sync + 'static {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a>;
}

/// The system resolver, through `tokio::net::lookup_host` (`getaddrinfo` on a blocking thread).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0u16)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A host in canonical form: an address, or a lower-case ASCII (punycode) domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostId {
    Ip(IpAddr),
    Domain(String),
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostId::Ip(ip) => write!(f, "{ip}"),
            HostId::Domain(d) => f.write_str(d),
        }
    }
}

impl HostId {
    fn from_url_host(host: url::Host<&str>) -> HostId {
        match host {
            // The WHATWG parser already turns numeric forms into addresses; parsing again as
            // inet_aton would is defence in depth: a numeric name is never handed to DNS.
            url::Host::Domain(d) => match addr::parse_ipv4_numeric(d) {
                Some(v4) => HostId::Ip(IpAddr::V4(v4)),
                None => HostId::Domain(d.to_ascii_lowercase()),
            },
            url::Host::Ipv4(a) => HostId::Ip(IpAddr::V4(a)),
            url::Host::Ipv6(a) => HostId::Ip(IpAddr::V6(a)),
        }
    }

    /// An `allowHosts` (or `private_network_hosts`) entry in canonical form; `None` when it is
    /// not a valid host.
    fn from_entry(entry: &str) -> Option<HostId> {
        let e = entry.trim();
        let e = e
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(e);
        if let Ok(v6) = e.parse::<Ipv6Addr>() {
            return Some(HostId::Ip(IpAddr::V6(v6)));
        }
        if let Some(v4) = addr::parse_ipv4_numeric(e) {
            return Some(HostId::Ip(IpAddr::V4(v4)));
        }
        url::Host::parse(e).ok().map(|h| match h {
            url::Host::Domain(d) => HostId::from_url_host(url::Host::Domain(d.as_str())),
            url::Host::Ipv4(a) => HostId::Ip(IpAddr::V4(a)),
            url::Host::Ipv6(a) => HostId::Ip(IpAddr::V6(a)),
        })
    }
}

/// Performs `cs.http.fetch` calls. Cheap to share (`Arc`); holds no connections between calls.
pub struct HttpFetcher {
    config: HttpConfig,
    private_hosts: Vec<HostId>,
    resolver: Arc<dyn Resolve>,
    tls: TlsConnector,
    own: OwnAddresses,
}

/// The addresses bound on this host's interfaces, refreshed every few seconds. A function may
/// not reach the host it runs on by any of them (its eth0 address may well be "public", and
/// behind it listen the invoker's own endpoints, the node's agents, ...), unless private
/// networks are allowed.
struct OwnAddresses {
    cached: std::sync::Mutex<(Vec<IpAddr>, Option<std::time::Instant>)>,
}

impl OwnAddresses {
    const REFRESH: Duration = Duration::from_secs(5);

    fn new() -> Self {
        OwnAddresses {
            cached: std::sync::Mutex::new((Vec::new(), None)),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let mut c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if c.1.is_none_or(|at| at.elapsed() >= Self::REFRESH) {
            match nix::ifaddrs::getifaddrs() {
                Ok(ifs) => {
                    c.0 = ifs
                        .filter_map(|i| i.address)
                        .filter_map(|a| {
                            a.as_sockaddr_in()
                                .map(|v4| IpAddr::V4(v4.ip()))
                                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                        })
                        .collect();
                    c.1 = Some(std::time::Instant::now());
                }
                Err(e) => {
                    // Keep the last list; an empty one only weakens this extra check, the
                    // range policy still applies.
                    tracing::warn!(error = %e, "cannot list this host's addresses (getifaddrs)");
                }
            }
        }
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        c.0.contains(&canonical)
    }
}

impl fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFetcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// rustls with the `ring` provider and the Mozilla root store (`webpki-roots`).
pub fn default_tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    tls_config_with_roots(roots)
}

/// rustls with the `ring` provider trusting `roots` (tests, or an on-premise private CA), for
/// [`HttpFetcher::with_tls_config`].
pub fn tls_config_with_roots(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

impl HttpFetcher {
    /// A fetcher using the system resolver and the Mozilla roots. Warns when private networks
    /// are allowed.
    pub fn new(config: HttpConfig) -> Self {
        if config.allow_private_networks {
            tracing::warn!(
                "cs.http.fetch may reach private networks (allow_private_networks is on): \
                 loopback, RFC 1918, link-local and cloud metadata addresses are reachable"
            );
        }
        if !config.private_network_hosts.is_empty() {
            tracing::warn!(
                hosts = ?config.private_network_hosts,
                "cs.http.fetch may reach private addresses of these hosts"
            );
        }
        let private_hosts = config
            .private_network_hosts
            .iter()
            .filter_map(|h| HostId::from_entry(h))
            .collect();
        HttpFetcher {
            config,
            private_hosts,
            resolver: Arc::new(SystemResolver),
            tls: TlsConnector::from(default_tls_config()),
            own: OwnAddresses::new(),
        }
    }

    /// Replaces the resolver (tests: count lookups, answer with chosen addresses).
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Replaces the TLS client configuration (tests: trust a local certificate).
    pub fn with_tls_config(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = TlsConnector::from(tls);
        self
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// `fetch` for a [`HostOp::HttpFetch`] call, with the capability from `scope`.
    pub async fn fetch_op(&self, scope: &HostScope, op: HostOp) -> Result<HostValue, HostError> {
        let HostOp::HttpFetch {
            url,
            method,
            mut headers,
            body,
            timeout_ms,
        } = op
        else {
            return Err(failed(format!("not an http.fetch call ({})", op.name())));
        };
        // W3C Trace Context: the request is a child of the activation's `cs.invoke` span.
        // Ours replaces any the function set, so the lineage cannot be forged.
        if let Some(trace) = &scope.context.trace {
            headers.retain(|(k, _)| {
                !k.eq_ignore_ascii_case("traceparent") && !k.eq_ignore_ascii_case("tracestate")
            });
            headers.push(("traceparent".into(), trace.traceparent()));
            if !trace.state.is_empty() {
                headers.push(("tracestate".into(), trace.state.clone()));
            }
        }
        let Some(caps) = scope.capabilities.http.as_ref() else {
            return Err(denied(
                "cs.http.fetch is not allowed; the manifest has no capabilities.http".into(),
            ));
        };
        self.fetch(
            scope,
            caps,
            &url,
            &method,
            &headers,
            body.as_deref(),
            timeout_ms,
        )
        .await
    }

    /// Performs one `cs.http.fetch(url, {method, headers, body, timeoutMs})`, following redirects.
    /// Checks the allowlist itself too (every hop), so it is safe to call without the capability
    /// check in front.
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch(
        &self,
        scope: &HostScope,
        caps: &HttpCapability,
        url: &str,
        method: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        timeout_ms: Option<u64>,
    ) -> Result<HostValue, HostError> {
        let limit = self.effective_timeout(scope, caps, timeout_ms);
        let timed_out = || failed(format!("timed out after {} ms", limit.as_millis()));
        let started = Instant::now();
        let result = if limit.is_zero() {
            Err(timed_out())
        } else {
            match tokio::time::timeout(limit, self.run(caps, url, method, headers, body)).await {
                Ok(r) => r,
                Err(_) => Err(timed_out()),
            }
        };
        tracing::debug!(
            tenant = %scope.tenant,
            activation_id = %scope.activation_id,
            url = %truncate(url, 200),
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome = match &result {
                Ok(HostValue::Http { status, .. }) => status.to_string(),
                Ok(_) => "ok".to_string(),
                Err(e) => e.message.clone(),
            },
            "cs.http.fetch"
        );
        result
    }

    /// min(manifest `http.timeoutMs` or the default, call `timeoutMs`, time left to deadline).
    fn effective_timeout(
        &self,
        scope: &HostScope,
        caps: &HttpCapability,
        call_ms: Option<u64>,
    ) -> Duration {
        let mut t = caps
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.config.default_timeout);
        if let Some(ms) = call_ms {
            t = t.min(Duration::from_millis(ms));
        }
        t.min(scope.deadline.saturating_duration_since(Instant::now()))
    }

    async fn run(
        &self,
        caps: &HttpCapability,
        url_text: &str,
        method: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<HostValue, HostError> {
        let mut url = parse_url(url_text)?;
        let mut method = parse_method(method)?;
        let mut headers = request_headers(headers)?;
        let mut body = body.map(Bytes::copy_from_slice);
        let mut redirects = 0u32;
        // How the current hop's host is shown in messages, and the previous hop's.
        let mut shown = shown_host(&url, url_text);
        let mut from: Option<String> = None;
        loop {
            let label = match &from {
                None => format!("cs.http.fetch to host {shown}"),
                Some(prev) => format!("cs.http.fetch: redirect from {prev} to host {shown}"),
            };
            let host = allowed_host(caps, &url, &label)?;
            let port = url
                .port_or_known_default()
                .ok_or_else(|| failed("URL without a port".into()))?;
            let addrs = self.vet_addresses(&host, port, &label).await?;
            let (resp, _conn) = self
                .send(&url, &host, &addrs, &method, &headers, body.clone())
                .await?;
            let status = resp.status();
            let location = resp.headers().get(header::LOCATION).cloned();
            if let (true, Some(location)) = (is_redirect(status), location) {
                if redirects >= self.config.max_redirects {
                    return Err(failed(format!(
                        "more than {} redirects",
                        self.config.max_redirects
                    )));
                }
                redirects += 1;
                let location = location.to_str().ok();
                let next = location.and_then(|l| url.join(l).ok()).ok_or_else(|| {
                    failed(format!(
                        "redirect ({}) with an invalid Location {:?}",
                        status.as_u16(),
                        truncate(location.unwrap_or("(not text)"), 200)
                    ))
                })?;
                check_url(&next, Some(&shown))?;
                // Method and body as browsers and the Fetch standard do.
                let to_get = (status == StatusCode::SEE_OTHER && method != Method::HEAD)
                    || (matches!(status.as_u16(), 301 | 302) && method == Method::POST);
                if to_get {
                    method = Method::GET;
                    body = None;
                    headers.retain(|(n, _)| !BODY_HEADERS.contains(&n.as_str()));
                }
                // Credentials are not sent to another origin.
                if next.origin() != url.origin() {
                    headers.retain(|(n, _)| !CREDENTIAL_HEADERS.contains(&n.as_str()));
                }
                let next_shown = shown_host(&next, location.unwrap_or_default());
                from = Some(std::mem::replace(&mut shown, next_shown));
                url = next;
                continue;
            }
            let out_headers = client::headers(&resp);
            let body = client::read_body(resp, self.config.max_response_bytes)
                .await
                .map_err(|e| failed(e.to_string()))?;
            return Ok(HostValue::Http {
                status: status.as_u16(),
                headers: out_headers,
                body,
            });
        }
    }

    /// Every address the hop may connect to, after the address policy; the hop is denied if
    /// any address of the host is.
    async fn vet_addresses(
        &self,
        host: &HostId,
        port: u16,
        label: &str,
    ) -> Result<Vec<SocketAddr>, HostError> {
        let private_ok = self.config.allow_private_networks || self.private_hosts.contains(host);
        let ranges = if private_ok {
            addr::check_allowing_private
        } else {
            addr::check
        };
        let own = &self.own;
        // This host's own addresses first (loopback keeps its own, better name): whatever
        // range they are in, they lead back to the host the function runs on.
        let policy = |ip: IpAddr| {
            if !private_ok && !ip.to_canonical().is_loopback() && own.contains(ip) {
                return Err(addr::OWN_ADDRESS);
            }
            ranges(ip)
        };
        let refuse = |ip: IpAddr, d: addr::Denied, resolved: bool| {
            let why = if d.private {
                "private networks are not allowed"
            } else {
                "it is never allowed"
            };
            denied(if resolved {
                format!("{label} denied: it resolves to {ip}, which is {d}; {why}")
            } else {
                format!("{label} denied: address {ip} is {d}; {why}")
            })
        };
        let ips = match host {
            HostId::Ip(ip) => {
                policy(*ip).map_err(|d| refuse(*ip, d, false))?;
                vec![*ip]
            }
            HostId::Domain(name) => {
                let ips = self
                    .resolver
                    .resolve(name)
                    .await
                    .map_err(|e| failed(format!("cannot resolve host \"{name}\": {e}")))?;
                if ips.is_empty() {
                    return Err(failed(format!("host \"{name}\" has no addresses")));
                }
                // All of them, before connecting to any.
                for ip in &ips {
                    policy(*ip).map_err(|d| refuse(*ip, d, true))?;
                }
                let mut unique: Vec<IpAddr> = Vec::with_capacity(ips.len());
                for ip in ips {
                    if !unique.contains(&ip) {
                        unique.push(ip);
                    }
                }
                unique
            }
        };
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    /// Connects to the first vetted address that answers and performs one exchange.
    async fn send(
        &self,
        url: &Url,
        host: &HostId,
        addrs: &[SocketAddr],
        method: &Method,
        headers: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, client::ConnGuard), HostError> {
        let tcp = connect(addrs, host).await?;
        let req = build_request(url, method, headers, body)?;
        if url.scheme() == "https" {
            let name = match host {
                HostId::Domain(d) => ServerName::try_from(d.clone())
                    .map_err(|e| failed(format!("host \"{d}\" is not a valid TLS name: {e}")))?,
                HostId::Ip(ip) => ServerName::IpAddress((*ip).into()),
            };
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| failed(format!("TLS handshake with \"{host}\" failed: {e}")))?;
            client::exchange(tls, req)
                .await
                .map_err(|e| failed(e.to_string()))
        } else {
            client::exchange(tcp, req)
                .await
                .map_err(|e| failed(e.to_string()))
        }
    }
}

/// Headers the guest may not set: the fetcher owns framing, the connection and `Host`.
const DROPPED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// Dropped with the body when a redirect turns the request into a GET.
const BODY_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-language",
    "content-location",
];

/// Dropped when a redirect leaves the origin.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

/// The hop's host when it is in `allowHosts`, else the denial (no DNS has happened yet).
fn allowed_host(caps: &HttpCapability, url: &Url, label: &str) -> Result<HostId, HostError> {
    let host = url
        .host()
        .map(HostId::from_url_host)
        .ok_or_else(|| denied(format!("{label}: URL without a host")))?;
    if caps
        .allow_hosts
        .iter()
        .any(|e| HostId::from_entry(e).as_ref() == Some(&host))
    {
        return Ok(host);
    }
    let list = caps
        .allow_hosts
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Err(denied(format!(
        "{label} is not allowed; capabilities.http.allowHosts is [{list}]"
    )))
}

/// The first URL of a call, parsed by the one URL parser of the fetcher (WHATWG, the `url`
/// crate) and checked for scheme and credentials.
fn parse_url(url_text: &str) -> Result<Url, HostError> {
    let url = Url::parse(url_text).map_err(|e| {
        denied(format!(
            "cs.http.fetch: \"{}\" is not an absolute http(s) URL ({e})",
            truncate(url_text, 200)
        ))
    })?;
    check_url(&url, None)?;
    Ok(url)
}

/// The capability check of a `cs.http.fetch` call (made by the supervisor before the call is
/// served): the URL parsed exactly as [`HttpFetcher::fetch`] parses it, its host in
/// `allowHosts`. Redirect hops are checked again by the fetcher, as are the addresses.
pub fn check_capability(url_text: &str, caps: Option<&HttpCapability>) -> Result<(), HostError> {
    let url = parse_url(url_text)?;
    let empty = HttpCapability {
        allow_hosts: Vec::new(),
        timeout_ms: None,
    };
    let label = format!("cs.http.fetch to host {}", shown_host(&url, url_text));
    allowed_host(caps.unwrap_or(&empty), &url, &label).map(|_| ())
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Scheme and credentials of a (first or redirect) URL.
fn check_url(url: &Url, from: Option<&str>) -> Result<(), HostError> {
    let what = match from {
        None => "cs.http.fetch".to_string(),
        Some(prev) => format!("cs.http.fetch: redirect from {prev}"),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(denied(format!(
            "{what} to scheme \"{}\" is not allowed; only http and https",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(denied(format!(
            "{what}: credentials in the URL are not allowed"
        )));
    }
    if url.host().is_none() {
        return Err(denied(format!("{what}: URL without a host")));
    }
    Ok(())
}

fn parse_method(m: &str) -> Result<Method, HostError> {
    let m = m.trim();
    if m.is_empty() {
        return Ok(Method::GET);
    }
    let upper = m.to_ascii_uppercase();
    let m = match upper.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" => upper.as_str(),
        _ => m,
    };
    if matches!(upper.as_str(), "CONNECT" | "TRACE" | "TRACK") {
        return Err(failed(format!("method {upper} is not supported")));
    }
    let method = Method::from_bytes(m.as_bytes())
        .map_err(|_| failed(format!("invalid method {:?}", truncate(m, 40))))?;
    Ok(method)
}

fn request_headers(
    headers: &[(String, String)],
) -> Result<Vec<(HeaderName, HeaderValue)>, HostError> {
    let mut out = Vec::with_capacity(headers.len());
    for (n, v) in headers {
        let name = HeaderName::from_bytes(n.trim().as_bytes())
            .map_err(|_| failed(format!("invalid header name {:?}", truncate(n, 80))))?;
        if DROPPED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_str(v.trim())
            .map_err(|_| failed(format!("invalid value for header \"{name}\"")))?;
        out.push((name, value));
    }
    Ok(out)
}

fn build_request(
    url: &Url,
    method: &Method,
    headers: &[(HeaderName, HeaderValue)],
    body: Option<Bytes>,
) -> Result<Request<Full<Bytes>>, HostError> {
    let target = &url[Position::BeforePath..Position::AfterQuery];
    let host = url.host_str().unwrap_or_default();
    let host_header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let mut b = Request::builder()
        .method(method.clone())
        .uri(target)
        .header(header::HOST, host_header);
    for (n, v) in headers {
        b = b.header(n, v);
    }
    if !headers.iter().any(|(n, _)| n == header::USER_AGENT) {
        b = b.header(header::USER_AGENT, "cs-invoker-pool");
    }
    b.body(Full::new(body.unwrap_or_default()))
        .map_err(|e| failed(format!("invalid request: {e}")))
}

async fn connect(addrs: &[SocketAddr], host: &HostId) -> Result<TcpStream, HostError> {
    let mut last = None;
    for a in addrs {
        // A `SocketAddr` is connected as is: no name resolution here.
        match TcpStream::connect(*a).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some((*a, e)),
        }
    }
    Err(match last {
        Some((a, e)) => failed(format!("cannot connect to \"{host}\" ({a}): {e}")),
        None => failed(format!("no address to connect to for \"{host}\"")),
    })
}

/// The host as the URL or `Location` text wrote it (`0x7f.1`, `[::ffff:7f00:1]`), when it has an
/// authority; only for messages.
fn written_host(text: &str) -> Option<&str> {
    let t = text.trim();
    let rest = match t.find("://") {
        Some(i) if !t[..i].contains(['/', '?', '#']) => &t[i + 3..],
        _ => t.strip_prefix("//")?,
    };
    let authority = rest.split(['/', '?', '#', '\\']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let host = if hostport.starts_with('[') {
        hostport.split_inclusive(']').next()?
    } else {
        hostport.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// `"host"`, or `"written" (canonical)` when the text wrote the host differently.
fn shown_host(url: &Url, text: &str) -> String {
    let canonical = url.host_str().unwrap_or_default();
    match written_host(text) {
        Some(w) if !w.eq_ignore_ascii_case(canonical) => {
            format!("\"{}\" ({canonical})", truncate(w, 100))
        }
        _ => format!("\"{canonical}\""),
    }
}

fn denied(msg: String) -> HostError {
    HostError::denied(msg)
}

fn failed(msg: String) -> HostError {
    HostError::failed(format!("cs.http.fetch: {msg}"))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> HostId {
        HostId::Ip(s.parse().unwrap())
    }

    #[test]
    fn allow_list_entries_are_canonicalised() {
        assert_eq!(
            HostId::from_entry("API.Example.com"),
            Some(HostId::Domain("api.example.com".into()))
        );
        assert_eq!(HostId::from_entry("0x7f.1"), Some(ip("127.0.0.1")));
        assert_eq!(HostId::from_entry("2130706433"), Some(ip("127.0.0.1")));
        assert_eq!(HostId::from_entry("[::1]"), Some(ip("::1")));
        assert_eq!(
            HostId::from_entry("::ffff:127.0.0.1"),
            Some(ip("::ffff:7f00:1"))
        );
        assert_eq!(HostId::from_entry("bad host"), None);
        assert_eq!(HostId::from_entry(""), None);
    }

    #[test]
    fn url_hosts_are_canonicalised_like_entries() {
        for (u, want) in [
            ("http://0x7f.1/", ip("127.0.0.1")),
            ("http://2130706433/", ip("127.0.0.1")),
            ("http://0x7f000001/", ip("127.0.0.1")),
            ("http://0177.0.0.1/", ip("127.0.0.1")),
            ("http://127.1/", ip("127.0.0.1")),
            ("http://[::ffff:127.0.0.1]/", ip("::ffff:127.0.0.1")),
            (
                "https://API.example.COM:8443/x",
                HostId::Domain("api.example.com".into()),
            ),
        ] {
            let url = Url::parse(u).unwrap();
            assert_eq!(HostId::from_url_host(url.host().unwrap()), want, "{u}");
        }
    }

    #[test]
    fn urls_need_http_and_no_credentials() {
        let deny = |u: &str| {
            let m = check_url(&Url::parse(u).unwrap(), None)
                .unwrap_err()
                .message;
            assert!(m.starts_with("CS_RUNTIME_CAPABILITY_DENIED: "), "{m}");
            m
        };
        assert!(deny("file:///etc/passwd").contains("scheme \"file\""));
        assert!(deny("ftp://example.com/").contains("scheme"));
        assert!(deny("http://user:pw@example.com/").contains("credentials"));
        assert!(deny("http://user@example.com/").contains("credentials"));
        assert!(check_url(&Url::parse("https://example.com/").unwrap(), None).is_ok());
    }

    #[test]
    fn methods_and_headers() {
        assert_eq!(parse_method("").unwrap(), Method::GET);
        assert_eq!(parse_method("post").unwrap(), Method::POST);
        assert_eq!(parse_method("PROPFIND").unwrap().as_str(), "PROPFIND");
        assert!(parse_method("CONNECT").is_err());
        assert!(parse_method("trace").is_err());
        assert!(parse_method("GE T").is_err());
        let h = request_headers(&[
            ("X-A".into(), "1".into()),
            ("Host".into(), "evil".into()),
            ("Transfer-Encoding".into(), "chunked".into()),
        ])
        .unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0.as_str(), "x-a");
        assert!(request_headers(&[("x".into(), "a\r\nb: c".into())]).is_err());
        assert!(request_headers(&[("a b".into(), "c".into())]).is_err());
    }

    #[test]
    fn messages_show_the_host_as_written() {
        let shown = |u: &str| shown_host(&Url::parse(u).unwrap(), u);
        assert_eq!(shown("http://0x7f.1:8080/x"), "\"0x7f.1\" (127.0.0.1)");
        assert_eq!(shown("http://2130706433/"), "\"2130706433\" (127.0.0.1)");
        assert_eq!(
            shown("http://[::ffff:127.0.0.1]/"),
            "\"[::ffff:127.0.0.1]\" ([::ffff:7f00:1])"
        );
        assert_eq!(shown("https://API.example.com/"), "\"api.example.com\"");
        assert_eq!(shown("http://u@10.0.0.1:1/"), "\"10.0.0.1\"");
        assert_eq!(written_host("//evil.test/x"), Some("evil.test"));
        assert_eq!(written_host("/relative?x=http://a/"), None);
        assert_eq!(written_host("http:///x"), None);
    }

    #[test]
    fn request_target_and_host_header() {
        let url = Url::parse("http://Example.com:8080/a/b?c=d#frag").unwrap();
        let req = build_request(&url, &Method::GET, &[], None).unwrap();
        assert_eq!(req.uri().to_string(), "/a/b?c=d");
        assert_eq!(req.headers()[header::HOST], "example.com:8080");
        let url = Url::parse("https://[::1]/").unwrap();
        let req = build_request(&url, &Method::GET, &[], None).unwrap();
        assert_eq!(req.headers()[header::HOST], "[::1]");
    }
}
