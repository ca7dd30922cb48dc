//! The `/verify` page's path to the enclave: the proxy carries the browser's evidence
//! request and its sealed request to the enclave, and their answers back, byte for byte.
//!
//! The proxy judges nothing here. The browser challenges the enclave with its own nonce
//! and verifies the evidence itself; it seals its request to the key in that evidence and
//! opens the answer with the key only it holds. So the relay's connection is transport
//! only: over `https://` its TLS checks the handshake signature against the certificate
//! the enclave presents but does not judge the certificate's evidence (the proxy's own
//! session does that, and the browser does it again from the bytes relayed). A relay that
//! altered anything would make the browser's checks fail; it cannot read anything sealed.
//!
//! Every wait and size is bounded, and an error names the bound that fired.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use silk_protocol::wire;
use tokio::net::TcpStream;

use crate::session::{describe_hyper, describe_io};

/// The largest evidence answer relayed (an attestation bundle with GPU evidence is tens
/// of kilobytes).
pub const MAX_EVIDENCE_BODY: usize = 4 << 20;

/// The relay's deadlines.
#[derive(Clone, Copy, Debug)]
pub struct RelayLimits {
    /// TCP connect.
    pub connect: Duration,
    /// From connected to a finished TLS handshake.
    pub tls_handshake: Duration,
    /// From sending the request to the answer's head (covers queue and prefill).
    pub first_byte: Duration,
    /// Longest wait between two chunks of an answer, and for a whole evidence body.
    pub idle: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        let o = crate::session::Options::default();
        Self {
            connect: o.connect_timeout,
            tls_handshake: o.tls_handshake_timeout,
            first_byte: o.first_byte_timeout,
            idle: o.idle_timeout,
        }
    }
}

/// Why the relay could not carry a request.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The endpoint cannot be relayed to.
    #[error("endpoint `{endpoint}`: {reason}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A deadline passed.
    #[error("relay bound `{which}` fired: no progress within {:.1} s", after.as_secs_f64())]
    Timeout {
        /// Which deadline (`connect`, `TLS handshake`, `first answer byte`, `idle`).
        which: &'static str,
        /// How long it was.
        after: Duration,
    },
    /// An answer was larger than the relay carries.
    #[error("relay bound `{which}` fired: the enclave's answer is over {limit} bytes")]
    TooLarge {
        /// Which bound.
        which: &'static str,
        /// The bound in bytes.
        limit: usize,
    },
    /// The network failed.
    #[error("relay transport: {0}")]
    Transport(String),
}

/// A transport to one enclave endpoint for the page's requests.
pub struct Relay {
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    limits: RelayLimits,
}

impl Relay {
    /// A relay to `endpoint` (`https://HOST:PORT` or `http://HOST:PORT`).
    pub fn new(endpoint: &str, limits: RelayLimits) -> Result<Self, RelayError> {
        let bad = |reason: String| RelayError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let uri: Uri = endpoint.parse().map_err(|e| bad(format!("{e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("must start with https:// or http://".into())),
        };
        let host = uri
            .host()
            .ok_or_else(|| bad("has no host".into()))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| bad(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(TransportOnly { provider }))
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            tls,
            limits,
        })
    }

    /// `GET /v1/attestation?nonce=HEX` on the enclave (without a nonce: its base
    /// evidence, whose claims sealed requests are bound to): its status, content type and
    /// body, unchanged. `nonce_hex` must be 1 to [`wire::MAX_NONCE`] bytes of hex.
    pub async fn attestation(
        &self,
        nonce_hex: Option<&str>,
    ) -> Result<(StatusCode, Option<hyper::header::HeaderValue>, Bytes), RelayError> {
        let path = match nonce_hex {
            Some(n) => format!("{}?nonce={n}", wire::PATH_ATTESTATION),
            None => wire::PATH_ATTESTATION.to_owned(),
        };
        let response = self.send(Request::get(path), Bytes::new()).await?;
        let status = response.status();
        let kind = response.headers().get(hyper::header::CONTENT_TYPE).cloned();
        let limited = http_body_util::Limited::new(response.into_body(), MAX_EVIDENCE_BODY);
        let after = self.limits.idle;
        let body = tokio::time::timeout(after, limited.collect())
            .await
            .map_err(|_| RelayError::Timeout {
                which: "evidence body",
                after,
            })?
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    RelayError::TooLarge {
                        which: "MAX_EVIDENCE_BODY",
                        limit: MAX_EVIDENCE_BODY,
                    }
                } else {
                    RelayError::Transport(format!("reading the evidence: {e}"))
                }
            })?;
        Ok((status, kind, body.to_bytes()))
    }

    /// `POST /v1/sealed` with `sealed` (at most [`wire::MAX_SEALED_BODY`] bytes, checked
    /// by the caller): the enclave's answer head, its body left to stream.
    pub async fn sealed(&self, sealed: Bytes) -> Result<Response<Incoming>, RelayError> {
        let req = Request::post(wire::PATH_SEALED)
            .header(hyper::header::CONTENT_TYPE, wire::SEALED_REQUEST_TYPE);
        self.send(req, sealed).await
    }

    /// The relay's deadlines.
    pub fn limits(&self) -> RelayLimits {
        self.limits
    }

    async fn send(
        &self,
        req: hyper::http::request::Builder,
        body: Bytes,
    ) -> Result<Response<Incoming>, RelayError> {
        let mut sender = self.open().await?;
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let req = req
            .header(hyper::header::HOST, authority)
            .body(Full::new(body))
            .map_err(|e| RelayError::Transport(e.to_string()))?;
        let after = self.limits.first_byte;
        tokio::time::timeout(after, sender.send_request(req))
            .await
            .map_err(|_| RelayError::Timeout {
                which: "first answer byte",
                after,
            })?
            .map_err(|e| RelayError::Transport(format!("HTTP request: {}", describe_hyper(&e))))
    }

    async fn open(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, RelayError> {
        let addr = format!("{}:{}", self.host, self.port);
        let after = self.limits.connect;
        let tcp = tokio::time::timeout(after, TcpStream::connect(&addr))
            .await
            .map_err(|_| RelayError::Timeout {
                which: "connect",
                after,
            })?
            .map_err(|e| {
                RelayError::Transport(format!("connect to {addr}: {}", describe_io(&e)))
            })?;
        let _ = tcp.set_nodelay(true);
        let Some(connector) = &self.tls else {
            return handshake(tcp).await;
        };
        let name = ServerName::try_from("silk-enclave")
            .map_err(|e| RelayError::Transport(e.to_string()))?;
        let after = self.limits.tls_handshake;
        let stream = tokio::time::timeout(after, connector.connect(name, tcp))
            .await
            .map_err(|_| RelayError::Timeout {
                which: "TLS handshake",
                after,
            })?
            .map_err(|e| RelayError::Transport(format!("TLS handshake: {}", describe_io(&e))))?;
        handshake(stream).await
    }
}

async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, RelayError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| RelayError::Transport(format!("HTTP handshake: {}", describe_hyper(&e))))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// TLS 1.3 to the certificate the enclave presents, without judging it: the relay is a
/// transport for bytes the browser verifies and seals itself (see the module's docs).
#[derive(Debug)]
struct TransportOnly {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for TransportOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "the relay speaks TLS 1.3 only".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
