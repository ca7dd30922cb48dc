//! One bounded HTTP/1.1 exchange with an ordinary web server: the owner's settlement
//! endpoint (`silk pay promise --send`) or a TON HTTP API (`silk policy from-ton`).
//! Not for enclaves, whose connections are RA-TLS (`session`, `network`).
//!
//! Connecting has its own deadline, the whole exchange after it another, and at most
//! `max_answer` bytes of the answer are read. HTTPS verifies the server against the web
//! PKI roots.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;

/// Connecting (TCP).
pub(crate) const CONNECT: Duration = Duration::from_secs(10);
/// Everything after connecting: TLS, the request, the whole answer.
pub(crate) const EXCHANGE: Duration = Duration::from_secs(30);

/// Sends `method uri` with `body` (and its content type) and reads the answer. Errors say
/// which step failed, for the caller to prefix with what it was doing.
pub(crate) fn exchange(
    method: Method,
    uri: &Uri,
    body: Option<(&'static str, Bytes)>,
    max_answer: usize,
) -> Result<(StatusCode, Bytes), String> {
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("must be http:// or https://".into()),
    };
    let host = uri
        .host()
        .ok_or("no host")?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = match uri.port_u16() {
        Some(p) if host.contains(':') => format!("[{host}]:{p}"),
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority);
    let body = match body {
        Some((content_type, bytes)) => {
            req = req.header(hyper::header::CONTENT_TYPE, content_type);
            bytes
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let tcp = tokio::time::timeout(
            CONNECT,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("connect timed out after {CONNECT:?}"))?
        .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        let rest = async {
            if tls {
                let stream = tls_connect(&host, tcp).await?;
                send(TokioIo::new(stream), req, max_answer).await
            } else {
                send(TokioIo::new(tcp), req, max_answer).await
            }
        };
        tokio::time::timeout(EXCHANGE, rest)
            .await
            .map_err(|_| format!("no whole answer within {EXCHANGE:?}"))?
    })
}

async fn tls_connect(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

async fn send<T>(
    io: T,
    req: hyper::Request<Full<Bytes>>,
    max_answer: usize,
) -> Result<(StatusCode, Bytes), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), max_answer)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}
