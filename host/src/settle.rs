//! `silk-host settle`: the owner's side of payment. Adds the channels payers opened,
//! collects their promises (from files or over HTTP), keeps the highest per channel on
//! disk, and writes the close (or dispute) message for the owner's wallet to send.
//!
//! The logic is `silk_ledger::Payee`; this module is its command line and its endpoint.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use silk_ledger::request::{parse_ton, unix_now, Message, Request};
use silk_ledger::{ChannelParams, Kept, Payee, SettleError, SignedPromise, StoreError, TonAddress};
use silk_net::body::{declared_length, read_body, BodyError};
use silk_net::conn::Limits;
use tokio::sync::Semaphore;

/// `silk-host settle` subcommands.
#[derive(clap::Subcommand)]
pub enum SettleCmd {
    /// Add a channel a payer opened to this owner (the file `silk pay open --channel-out`
    /// wrote); refused unless it pays `--payout-address`.
    Add {
        /// The channel's parameters (JSON).
        channel: PathBuf,
        /// This owner's payout address (the workers' `--payout-address`).
        #[arg(long)]
        payout_address: String,
    },
    /// Keep a signed promise (a bag of cells from `silk pay promise`) if it is newer.
    Accept {
        /// The promise file.
        promise: PathBuf,
    },
    /// Collect promises over HTTP: `POST /v1/promises` with the bag of cells; answered
    /// 200 only once the promise is on disk.
    Serve {
        /// Where to listen.
        #[arg(long)]
        listen: SocketAddr,
        /// Most open connections.
        #[arg(long, default_value_t = 256)]
        max_connections: usize,
    },
    /// Write the close message (the highest promise kept) for the owner's wallet.
    Close(OpArgs),
    /// Answer a payer's close with the highest promise kept (inside the dispute window).
    Dispute(OpArgs),
    /// Every channel and its highest promise, as JSON.
    Status,
}

/// Which channel a close or dispute is for, and where its request goes.
#[derive(clap::Args)]
pub struct OpArgs {
    /// The channel id (64 hex digits).
    #[arg(long)]
    channel: String,
    /// Toncoin attached for the contract's gas (what is left goes to the payer).
    #[arg(long, default_value = "0.02")]
    attach: String,
    /// Where to write the request (TON Connect JSON).
    #[arg(long, short)]
    out: PathBuf,
}

/// Why `silk-host settle` failed.
#[derive(Debug, thiserror::Error)]
pub enum SettleCliError {
    /// The ledger refused.
    #[error(transparent)]
    Settle(#[from] SettleError),
    /// An input could not be used.
    #[error("{0}")]
    Input(String),
}

fn input(e: impl std::fmt::Display) -> SettleCliError {
    SettleCliError::Input(e.to_string())
}

/// Writes the request for `Payee::close_message` or `Payee::dispute_message`.
fn write_op(
    payee: &Payee,
    a: OpArgs,
    op: &str,
    message: fn(&Payee, &[u8; 32], u128) -> Result<Message, SettleError>,
) -> Result<serde_json::Value, SettleCliError> {
    let id = ChannelParams::parse_id(&a.channel)
        .ok_or_else(|| input("--channel must be 64 hex digits"))?;
    let attach = parse_ton(&a.attach).map_err(input)?;
    Request::one(message(payee, &id, attach)?, unix_now())
        .write(&a.out)
        .map_err(|e| input(format!("{}: {e}", a.out.display())))?;
    Ok(serde_json::json!({ "channel": a.channel, "op": op, "request": a.out }))
}

fn kept_json(k: Kept, p: &SignedPromise) -> serde_json::Value {
    match k {
        Kept::Stored => serde_json::json!({
            "kept": "stored", "seqno": p.promise.seqno, "amount": p.promise.amount.to_string(),
        }),
        Kept::Older { kept_seqno } => serde_json::json!({
            "kept": "older", "seqno": p.promise.seqno, "kept_seqno": kept_seqno,
        }),
    }
}

/// Runs a `silk-host settle` subcommand on the settlement directory `dir`.
pub fn run(dir: &Path, cmd: SettleCmd, out: &mut dyn Write) -> Result<(), SettleCliError> {
    let mut payee = Payee::open(dir)?;
    let v = match cmd {
        SettleCmd::Add {
            channel,
            payout_address,
        } => {
            let text = std::fs::read(&channel)
                .map_err(|e| input(format!("{}: {e}", channel.display())))?;
            let params: ChannelParams = serde_json::from_slice(&text)
                .map_err(|e| input(format!("{}: {e}", channel.display())))?;
            let payout = TonAddress::from_str(&payout_address)
                .map_err(|e| input(format!("--payout-address {payout_address:?}: {e}")))?;
            let address = payee.add_channel(&params, Some(&payout))?;
            serde_json::json!({
                "channel": hex::encode(params.channel_id),
                "address": address.to_base64_url(),
                "address_raw": address.to_hex(),
                "expiry": params.expiry,
                "dispute_window": params.dispute_window,
            })
        }
        SettleCmd::Accept { promise } => {
            let bytes = std::fs::read(&promise)
                .map_err(|e| input(format!("{}: {e}", promise.display())))?;
            let p = SignedPromise::from_boc(&bytes)
                .map_err(|e| SettleError::from(StoreError::from(e)))?;
            let k = payee.accept(&p)?;
            kept_json(k, &p)
        }
        SettleCmd::Close(a) => write_op(&payee, a, "payee close", Payee::close_message)?,
        SettleCmd::Dispute(a) => write_op(&payee, a, "dispute", Payee::dispute_message)?,
        SettleCmd::Status => serde_json::to_value(payee.status()?).map_err(input)?,
        SettleCmd::Serve {
            listen,
            max_connections,
        } => {
            let rt = tokio::runtime::Runtime::new().map_err(input)?;
            return rt.block_on(serve(payee, listen, max_connections));
        }
    };
    let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).map_err(input)?);
    Ok(())
}

/// A promise's bag of cells is ~150 bytes; nothing larger is read.
const MAX_PROMISE: usize = 4096;

struct Endpoint {
    payee: Mutex<Payee>,
    budget: Semaphore,
    limits: Limits,
}

/// Serves `POST /v1/promises` and `GET /healthz` until SIGINT or SIGTERM.
async fn serve(payee: Payee, listen: SocketAddr, cap: usize) -> Result<(), SettleCliError> {
    let limits = Limits {
        max_connections: Some(cap),
        body_budget: cap * MAX_PROMISE,
        ..Limits::default()
    };
    let state = Arc::new(Endpoint {
        payee: Mutex::new(payee),
        budget: Semaphore::new(limits.body_budget),
        limits: limits.clone(),
    });
    let app = axum::Router::new()
        .route("/v1/promises", post(promise))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| input(format!("--listen {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(input)?;
    tracing::info!(%addr, cap, "settlement endpoint serving POST /v1/promises");
    // The announced address, for whoever started us with port 0.
    println!("listening http://{addr}");
    let server = tokio::spawn(silk_net::conn::serve(
        listener,
        None,
        app,
        Arc::new(limits),
        cap,
        silk_net::metrics::ConnMetrics::default(),
    ));
    let why = silk_net::tasks::stop_signal().await;
    tracing::info!("{why}: stopping");
    server.abort();
    Ok(())
}

fn refusal(status: StatusCode, check: &str, detail: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": check, "detail": detail.to_string() });
    (status, axum::Json(body)).into_response()
}

async fn promise(State(s): State<Arc<Endpoint>>, headers: HeaderMap, body: Body) -> Response {
    let declared = declared_length(&headers);
    let bytes = match read_body(&s.budget, &s.limits, MAX_PROMISE, declared, body).await {
        Ok((b, _permit)) => b,
        Err(e @ BodyError::TooLarge { .. }) => {
            return refusal(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e)
        }
        Err(e @ BodyError::Budget { .. }) => {
            return refusal(StatusCode::SERVICE_UNAVAILABLE, "busy_bodies", e)
        }
        Err(e @ BodyError::Timeout(_)) => {
            return refusal(StatusCode::REQUEST_TIMEOUT, "body_timeout", e)
        }
        Err(e @ BodyError::Read(_)) => return refusal(StatusCode::BAD_REQUEST, "body_read", e),
    };
    let p = match SignedPromise::from_boc(&bytes) {
        Ok(p) => p,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, "promise.format", e),
    };
    let s2 = s.clone();
    // The durable write syncs the disk: off the async workers. One keep at a time (the
    // store's check-then-write must not interleave).
    let kept = tokio::task::spawn_blocking(move || match s2.payee.lock() {
        Ok(mut payee) => payee.accept(&p).map(|k| (k, p)),
        Err(_) => Err(SettleError::Store(StoreError::Io {
            path: PathBuf::from("(store)"),
            source: std::io::Error::other("a previous write panicked"),
        })),
    });
    match tokio::time::timeout(Duration::from_secs(30), kept).await {
        Ok(Ok(Ok((k, p)))) => {
            tracing::info!(
                channel = %hex::encode(p.promise.channel_id),
                seqno = p.promise.seqno,
                "promise {}",
                if k == Kept::Stored { "kept" } else { "older than the kept one" }
            );
            (StatusCode::OK, axum::Json(kept_json(k, &p))).into_response()
        }
        Ok(Ok(Err(e))) => match e {
            SettleError::UnknownChannel(_) => refusal(StatusCode::NOT_FOUND, "settle.channel", e),
            SettleError::Store(StoreError::Promise(_)) => {
                refusal(StatusCode::FORBIDDEN, "promise.signature", e)
            }
            e => {
                tracing::error!("keeping a promise failed: {e}");
                refusal(StatusCode::INTERNAL_SERVER_ERROR, "store", e)
            }
        },
        Ok(Err(e)) => refusal(StatusCode::INTERNAL_SERVER_ERROR, "store", e),
        Err(_) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_timeout",
            "the disk did not take the promise within 30 s: not acknowledged",
        ),
    }
}
