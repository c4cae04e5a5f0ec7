//! One HTTP/1.1 exchange over a stream the fetcher connected itself (hyper's low-level client
//! connection: no pool, no resolver, no redirects of its own).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

/// The task driving a connection, aborted when the exchange is dropped (end of the fetch,
/// redirect, timeout), so no connection outlives its fetch.
pub struct ConnGuard(JoinHandle<()>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What failed in one exchange; the `Display` is the text after `cs.http.fetch: ` that the
/// function sees.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("HTTP handshake failed: {0}")]
    Handshake(hyper::Error),
    #[error("request failed: {0}")]
    Request(hyper::Error),
    #[error("response body is larger than the {max} bytes allowed")]
    TooLarge { max: usize },
    #[error("reading the response body failed: {0}")]
    Read(hyper::Error),
}

/// Sends `req` over `io` and returns the response head with its still-unread body, and the guard
/// that keeps the connection alive while the body is read.
pub async fn exchange<S>(
    io: S,
    req: Request<Full<Bytes>>,
) -> Result<(Response<Incoming>, ConnGuard), ExchangeError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .handshake(TokioIo::new(io))
        .await
        .map_err(ExchangeError::Handshake)?;
    let guard = ConnGuard(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "cs.http.fetch connection ended with an error");
        }
    }));
    let resp = sender
        .send_request(req)
        .await
        .map_err(ExchangeError::Request)?;
    Ok((resp, guard))
}

/// The response headers as contract §6 gives them to the guest: names lower-cased (hyper already
/// does), in order of first appearance, repeated ones joined with `", "` — except Set-Cookie.
pub fn headers(resp: &Response<Incoming>) -> Vec<(String, String)> {
    let h = resp.headers();
    let text = |v: &hyper::header::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let mut out = Vec::with_capacity(h.keys_len());
    for name in h.keys() {
        let lower = name.as_str().to_ascii_lowercase();
        // Set-Cookie values cannot be joined (RFC 6265 §3: a cookie's Expires holds a comma);
        // each stays its own pair, so `fetch`'s `headers.getSetCookie()` sees them apart.
        if name == hyper::header::SET_COOKIE {
            out.extend(h.get_all(name).iter().map(|v| (lower.clone(), text(v))));
            continue;
        }
        let joined = h
            .get_all(name)
            .iter()
            .map(text)
            .collect::<Vec<_>>()
            .join(", ");
        out.push((lower, joined));
    }
    out
}

/// Reads the body, failing as soon as it would exceed `max` bytes (a `Content-Length` over the
/// cap fails before reading anything; otherwise at most one frame past the cap is ever held).
pub async fn read_body(resp: Response<Incoming>, max: usize) -> Result<Vec<u8>, ExchangeError> {
    let too_big = || ExchangeError::TooLarge { max };
    let declared = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let mut body = resp.into_body();
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ExchangeError::Read)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(too_big());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}
