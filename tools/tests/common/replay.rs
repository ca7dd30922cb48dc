//! A local HTTP server that replays recorded answers of AMD's KDS and Intel's PCS, with
//! the failures real services show: 404, 429 with Retry-After, answers too slow, and
//! answers cut short. Hand-written (no HTTP library) so that it can misbehave on purpose.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How an answer is sent.
#[derive(Clone, Debug)]
pub enum Send {
    /// Whole and at once.
    Whole,
    /// After waiting this long.
    After(Duration),
    /// With a Content-Length of the whole body but only half of it, then the connection
    /// is closed.
    CutShort,
}

/// One answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub send: Send,
}

impl Reply {
    /// 200 with a recorded answer from `vectors/recorded/NAME` and `NAME.headers`.
    pub fn recorded(name: &str) -> Self {
        let dir = super::vectors().join("recorded");
        let body = std::fs::read(dir.join(name)).expect("recorded body");
        let headers = std::fs::read_to_string(dir.join(format!("{name}.headers")))
            .expect("recorded headers")
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Self {
            status: 200,
            headers,
            body,
            send: Send::Whole,
        }
    }

    /// 200 with `body`.
    pub fn ok(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body,
            send: Send::Whole,
        }
    }

    /// `status` with no body, and these headers.
    pub fn status(status: u16, headers: &[(&str, &str)]) -> Self {
        Self {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
            send: Send::Whole,
        }
    }

    /// The same answer, sent another way.
    pub fn sent(mut self, send: Send) -> Self {
        self.send = send;
        self
    }
}

/// The server. Each path (with its query) has a list of answers; each request takes the
/// next, and the last is repeated. Unknown paths get 404.
pub struct Replay {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Vec<Reply>>>>,
    hits: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Replay {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let routes: Arc<Mutex<HashMap<String, Vec<Reply>>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, h) = (routes.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (r, h) = (r.clone(), h.clone());
                tokio::spawn(async move {
                    let Some(path) = read_request(&mut conn).await else {
                        return;
                    };
                    h.lock().unwrap().push(path.clone());
                    let reply = {
                        let mut routes = r.lock().unwrap();
                        match routes.get_mut(&path) {
                            Some(list) if list.len() > 1 => list.remove(0),
                            Some(list) => list[0].clone(),
                            None => Reply::status(404, &[]),
                        }
                    };
                    write_reply(&mut conn, &reply).await;
                });
            }
        });
        Self {
            addr,
            routes,
            hits,
            _task: task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `path` (with its query) with `replies`, in turn.
    pub fn route(&self, path: &str, replies: Vec<Reply>) {
        self.routes.lock().unwrap().insert(path.to_owned(), replies);
    }

    /// The paths asked for, in order.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    /// Serves the recorded PCS answers for the TDX quote vector.
    pub fn serve_pcs(&self) {
        self.route(
            "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
            vec![Reply::recorded("pcs/pckcrl.der")],
        );
        self.route(
            "/tdx/certification/v4/tcb?fmspc=B0C06F000000",
            vec![Reply::recorded("pcs/tcb.json")],
        );
        self.route(
            "/tdx/certification/v4/qe/identity",
            vec![Reply::recorded("pcs/qe_identity.json")],
        );
        self.route(
            "/sgx/certification/v4/rootcacrl",
            vec![Reply::recorded("pcs/rootcacrl.hex")],
        );
    }
}

async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 << 10 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    (parts.next()? == "GET").then_some(())?;
    parts.next().map(str::to_owned)
}

async fn write_reply(conn: &mut tokio::net::TcpStream, reply: &Reply) {
    if let Send::After(wait) = reply.send {
        tokio::time::sleep(wait).await;
    }
    let mut head = format!("HTTP/1.1 {} Recorded\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let body = match reply.send {
        Send::CutShort => &reply.body[..reply.body.len() / 2],
        _ => &reply.body[..],
    };
    let _ = conn.write_all(head.as_bytes()).await;
    let _ = conn.write_all(body).await;
    let _ = conn.shutdown().await;
}
