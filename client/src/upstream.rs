//! Where `silk chat` and `silk proxy` send sealed requests: one enclave, or the network
//! through routers. Both end every answer with a verified receipt, which is acknowledged
//! with the client's key and kept for settlement.

use std::path::PathBuf;
use std::sync::Arc;

use hyper::StatusCode;
use silk_protocol::receipt::SigningKeyPair;

use crate::network::Network;
use crate::receipts::VerifiedReceipt;
use crate::session::{ClientError, SealedAnswer, Session};

/// Where sealed requests go.
pub enum Target {
    /// One verified enclave.
    Direct(Arc<Session>),
    /// Workers listed by routers, each verified by the client.
    Network(Box<Network>),
}

/// Acknowledges verified receipts and keeps them.
pub struct ReceiptBook {
    key: SigningKeyPair,
    file: PathBuf,
}

impl ReceiptBook {
    /// The client key from `dir` (made on first use) and the receipts file `file`.
    pub fn open(dir: &std::path::Path, file: PathBuf) -> Result<Self, ClientError> {
        Ok(Self {
            key: crate::receipts::client_key(dir)?,
            file,
        })
    }

    /// The client's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }
}

/// A target with its receipt book.
pub struct Upstream {
    /// Where requests go.
    pub target: Target,
    /// Where acknowledged receipts are kept (`None`: not kept).
    pub book: Option<ReceiptBook>,
}

impl Upstream {
    /// An upstream without a receipt book.
    pub fn new(target: Target) -> Self {
        Self { target, book: None }
    }

    /// One verified enclave, without a receipt book.
    pub fn direct(session: Session) -> Self {
        Self::new(Target::Direct(Arc::new(session)))
    }

    /// Seals and sends an OpenAI body.
    pub async fn send(&self, body: &[u8]) -> Result<SealedAnswer, ClientError> {
        match &self.target {
            Target::Direct(s) => s.send(body).await,
            Target::Network(n) => n.send(body).await,
        }
    }

    /// Acknowledges a verified receipt and appends it to the book. A failure to write is
    /// logged, never turned into a failed answer: the answer itself was genuine.
    pub fn acknowledge(&self, receipt: &VerifiedReceipt) {
        if let Some(book) = &self.book {
            if let Err(e) = crate::receipts::acknowledge(&book.file, &book.key, receipt) {
                tracing::warn!("receipt not kept: {e}");
            }
        }
    }

    /// The direct session, when there is one.
    pub fn session(&self) -> Option<&Session> {
        match &self.target {
            Target::Direct(s) => Some(s),
            Target::Network(_) => None,
        }
    }

    /// `/v1/models`: the enclave's own list, or the models the routers list verified
    /// workers for.
    pub async fn models(&self) -> Result<(StatusCode, Vec<u8>), ClientError> {
        match &self.target {
            Target::Direct(s) => s.get(silk_protocol::wire::PATH_MODELS).await,
            Target::Network(n) => {
                let mut names: Vec<String> = n
                    .candidates()
                    .await?
                    .iter()
                    .filter_map(|c| {
                        silk_protocol::receipt::Offer::decode(&c.offer.0.body.0)
                            .ok()
                            .map(|o| o.model)
                    })
                    .collect();
                names.sort();
                names.dedup();
                let data: Vec<_> = names
                    .iter()
                    .map(|m| serde_json::json!({"id": m, "object": "model", "created": 0, "owned_by": "silk"}))
                    .collect();
                let body = serde_json::json!({"object": "list", "data": data});
                Ok((StatusCode::OK, body.to_string().into_bytes()))
            }
        }
    }
}

/// Shared between the proxy's handlers.
pub type SharedUpstream = Arc<Upstream>;

/// Where `silk chat` and `silk proxy` send: one enclave (`--endpoint`) or the network
/// (`--router`, repeatable).
#[derive(clap::Args, Clone, Debug)]
pub struct TargetArgs {
    /// The enclave: https://HOST:PORT (RA-TLS) or http://HOST:PORT (behind a relay).
    #[arg(long, required_unless_present = "router", conflicts_with = "router")]
    pub endpoint: Option<String>,
    /// A router (http://HOST:PORT): list workers through it, verify each, send sealed
    /// requests through it. Repeat for several routers.
    #[arg(long, value_name = "URL")]
    pub router: Vec<String>,
    /// With --router: the model to ask workers for (default: any).
    #[arg(long, requires = "router")]
    pub model: Option<String>,
    /// With --router: refuse offers above this many nanotons per million prompt or
    /// completion tokens.
    #[arg(long, value_name = "NANOTON", requires = "router")]
    pub max_price: Option<u64>,
    /// With --router: seal each request so that any one of K verified workers can open it
    /// and the router picks one by load; the router cannot aim a chosen user at a chosen
    /// worker (1: seal to the one worker the client picks).
    #[arg(long, value_name = "K", default_value_t = 1, requires = "router",
          value_parser = clap::value_parser!(u8).range(1..=8))]
    pub spread: u8,
    /// Policy (TOML, see docs/policy.md).
    #[arg(long)]
    pub policy: PathBuf,
    /// NVIDIA RIMs for enclaves with GPUs (driver and VBIOS RIM files).
    #[arg(long, value_name = "DIR")]
    pub gpu_rims: Option<PathBuf>,
    /// Where acknowledged usage receipts are appended (default: receipts.jsonl in
    /// $XDG_CONFIG_HOME/silk, beside the client key).
    #[arg(long, value_name = "FILE")]
    pub receipts: Option<PathBuf>,
    /// Keep no receipts (they are still verified).
    #[arg(long, conflicts_with = "receipts")]
    pub no_receipts: bool,
}

impl TargetArgs {
    /// Verifies the enclave (or prepares the network client) and opens the receipt book.
    /// Returns the upstream and a name for it.
    pub async fn connect(
        &self,
        options: crate::session::Options,
    ) -> Result<(Upstream, String), ClientError> {
        let policy = crate::chat::load_policy(&self.policy)?;
        let (target, name) = match &self.endpoint {
            Some(endpoint) => {
                let session = Session::connect_with(endpoint, policy, options).await?;
                (Target::Direct(Arc::new(session)), endpoint.clone())
            }
            None => {
                let network = Network::new(
                    policy,
                    crate::network::NetworkOptions {
                        routers: self.router.clone(),
                        model: self.model.clone(),
                        max_price: self.max_price,
                        spread: usize::from(self.spread),
                        session: options,
                    },
                )?;
                (Target::Network(Box::new(network)), self.router.join(", "))
            }
        };
        let book = if self.no_receipts {
            None
        } else {
            let dir = crate::receipts::config_dir()?;
            let file = self
                .receipts
                .clone()
                .unwrap_or_else(|| dir.join("receipts.jsonl"));
            Some(ReceiptBook::open(&dir, file)?)
        };
        Ok((Upstream { target, book }, name))
    }
}
