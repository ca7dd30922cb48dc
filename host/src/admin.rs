//! The host's own admin endpoint: `/healthz` and `/metrics`, on a separate address from
//! the relay so that it can stay private to the operator.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The admin routes.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
}

async fn healthz(State(m): State<Arc<Metrics>>) -> (StatusCode, String) {
    let up = m.vm_up.get() == 1;
    let ready = m.guest_ready.get() == 1;
    match (up, ready) {
        (true, true) => (StatusCode::OK, "ok: VM up, guest ready\n".into()),
        (true, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: VM up, guest not ready yet\n".into(),
        ),
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "down: VM not running\n".into(),
        ),
    }
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> impl axum::response::IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}

/// Serves the admin routes on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn healthz_follows_the_vm_and_metrics_render() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Arc::new(Metrics::default());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, m.clone(), rx));

        let r = get(addr, "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("down: VM not running"));
        m.vm_up.set(1);
        assert!(get(addr, "/healthz").await.contains("guest not ready yet"));
        m.guest_ready.set(1);
        let r = get(addr, "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");

        m.vm_restarts.inc_by(4);
        let r = get(addr, "/metrics").await;
        assert!(
            r.contains("application/openmetrics-text; version=1.0.0"),
            "{r}"
        );
        assert!(r.contains("silk_host_vm_restarts_total 4"), "{r}");

        tx.send(true).unwrap();
        task.await.unwrap().unwrap();
    }
}
