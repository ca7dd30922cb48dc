//! What a started server holds: its background tasks, stopped when it is dropped, and the
//! signals that ask a server binary to stop.

use tokio::task::JoinHandle;

/// Background tasks that are aborted when this is dropped (a server stops with its handle).
#[derive(Debug, Default)]
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    /// Adds a task.
    pub fn push(&mut self, task: JoinHandle<()>) {
        self.0.push(task);
    }

    /// Waits until every task has ended (servers end only on error or abort).
    pub async fn wait(mut self) {
        for t in std::mem::take(&mut self.0) {
            let _ = t.await;
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM), saying which.
pub async fn stop_signal() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term => "terminated",
    }
}
