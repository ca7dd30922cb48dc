//! One bounded HTTP/1.1 exchange with an ordinary web service (AMD's KDS, Intel's PCS or a
//! cache of them, a TON HTTP API, a payee's settlement endpoint), for the programs that
//! must reach out rather than serve.
//!
//! Everything a peer controls is bounded: connecting has its own deadline, the whole
//! exchange after it another, the answer's headers and body a size limit, and an answer
//! cut short is told apart from a complete one. Each error names the bound that fired.
//! HTTPS verifies the server against the web PKI roots compiled in (a confidential VM has
//! no trustworthy system store); what is fetched this way is signed data checked against
//! pinned vendor roots anyway, so TLS here only keeps the request private on the path.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Uri};
use hyper_util::rt::TokioIo;

/// The bounds of one fetch.
#[derive(Clone, Copy, Debug)]
pub struct FetchLimits {
    /// Connecting (TCP).
    pub connect: Duration,
    /// Everything after connecting: TLS, the request and the whole answer.
    pub exchange: Duration,
    /// The most body bytes read.
    pub max_body: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            exchange: Duration::from_secs(30),
            max_body: 4 << 20,
        }
    }
}

/// A whole answer.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Fetched {
    /// The first header called `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a fetch failed; each names the step or the bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL is not an absolute http(s) URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    Url {
        /// What was given.
        url: String,
    },
    /// Connecting failed.
    #[error("connecting to {authority}: {source}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// Connecting took longer than [`FetchLimits::connect`].
    #[error("connecting to {authority} timed out after {after:?} (the connect limit)")]
    ConnectTimeout {
        /// `host:port`.
        authority: String,
        /// The limit.
        after: Duration,
    },
    /// The TLS handshake failed.
    #[error("TLS with {host}: {detail}")]
    Tls {
        /// The server name.
        host: String,
        /// rustls' message.
        detail: String,
    },
    /// The server broke the HTTP exchange (bad status line or headers, reset).
    #[error("HTTP exchange with {authority}: {detail}")]
    Http {
        /// `host:port`.
        authority: String,
        /// hyper's message.
        detail: String,
    },
    /// The whole answer did not arrive within [`FetchLimits::exchange`].
    #[error("no whole answer from {authority} within {after:?} (the exchange limit)")]
    Timeout {
        /// `host:port`.
        authority: String,
        /// The limit.
        after: Duration,
    },
    /// The body is larger than [`FetchLimits::max_body`].
    #[error("the answer from {authority} is larger than {limit} bytes (the size limit)")]
    TooLarge {
        /// `host:port`.
        authority: String,
        /// The limit.
        limit: usize,
    },
    /// The connection ended before the body did (fewer bytes than Content-Length, or a
    /// chunked body without its last chunk).
    #[error("the answer from {authority} was cut short: {detail}")]
    Truncated {
        /// `host:port`.
        authority: String,
        /// hyper's message.
        detail: String,
    },
}

/// GETs `url` within `limits`.
pub async fn get(url: &str, limits: &FetchLimits) -> Result<Fetched, FetchError> {
    request(Method::GET, url, None, limits).await
}

/// Sends `method url`, with `body` (its content type and bytes) when given, within
/// `limits`, and reads the whole answer.
pub async fn request(
    method: Method,
    url: &str,
    body: Option<(&str, Bytes)>,
    limits: &FetchLimits,
) -> Result<Fetched, FetchError> {
    let bad = || FetchError::Url {
        url: url.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| bad())?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad()),
    };
    let host = uri
        .host()
        .ok_or_else(bad)?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let host_header = match uri.port_u16() {
        Some(_) => authority.clone(),
        None => host.clone(),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host_header)
        .header(
            hyper::header::USER_AGENT,
            concat!("silk/", env!("CARGO_PKG_VERSION")),
        );
    let body = match body {
        Some((content_type, bytes)) => {
            req = req.header(hyper::header::CONTENT_TYPE, content_type);
            bytes
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(body)).map_err(|_| bad())?;
    let tcp = tokio::time::timeout(
        limits.connect,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| FetchError::ConnectTimeout {
        authority: authority.clone(),
        after: limits.connect,
    })?
    .map_err(|source| FetchError::Connect {
        authority: authority.clone(),
        source,
    })?;
    let exchange = async {
        if tls {
            let stream = tls_connect(&host, tcp).await?;
            send(TokioIo::new(stream), req, limits.max_body, &authority).await
        } else {
            send(TokioIo::new(tcp), req, limits.max_body, &authority).await
        }
    };
    tokio::time::timeout(limits.exchange, exchange)
        .await
        .map_err(|_| FetchError::Timeout {
            authority: authority.clone(),
            after: limits.exchange,
        })?
}

async fn tls_connect(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, FetchError> {
    let tls_err = |detail: String| FetchError::Tls {
        host: host.to_owned(),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_err(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| tls_err(e.to_string()))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| tls_err(e.to_string()))
}

async fn send<T>(
    io: T,
    req: hyper::Request<Full<Bytes>>,
    max_body: usize,
    authority: &str,
) -> Result<Fetched, FetchError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http_err = |e: hyper::Error| FetchError::Http {
        authority: authority.to_owned(),
        detail: e.to_string(),
    };
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        // hyper's own bound on the header block, so a peer cannot grow it without end.
        .max_buf_size(64 << 10)
        .handshake(io)
        .await
        .map_err(http_err)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(http_err)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = Limited::new(resp.into_body(), max_body)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                FetchError::TooLarge {
                    authority: authority.to_owned(),
                    limit: max_body,
                }
            } else if cut_short(e.as_ref()) {
                FetchError::Truncated {
                    authority: authority.to_owned(),
                    detail: e.to_string(),
                }
            } else {
                FetchError::Http {
                    authority: authority.to_owned(),
                    detail: format!("reading the body: {e}"),
                }
            }
        })?
        .to_bytes()
        .to_vec();
    Ok(Fetched {
        status,
        headers,
        body,
    })
}

/// Whether a body error means the connection ended before the body did: hyper reports a
/// body shorter than its Content-Length as an I/O error of kind `UnexpectedEof` under its
/// own, and a message cut before its end as "incomplete".
fn cut_short(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
            || err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
        {
            return true;
        }
        cur = err.source();
    }
    false
}
