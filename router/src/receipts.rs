//! The receipt log: one JSON line per verified clear receipt, appended and flushed line by
//! line by a task of its own, so that a slow disk never holds up an answer's stream.

use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Lines queued for the writer; beyond it lines are dropped and counted.
pub const QUEUE: usize = 4096;

/// Opens `path` for appending (creating it) and starts the writer. Returns the sender
/// the relays use and the writer's task.
pub async fn start(path: &Path) -> std::io::Result<(mpsc::Sender<String>, JoinHandle<()>)> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
    let shown = path.display().to_string();
    let task = tokio::spawn(async move {
        let mut failing = false;
        while let Some(mut line) = rx.recv().await {
            line.push('\n');
            let written = async {
                file.write_all(line.as_bytes()).await?;
                file.flush().await
            }
            .await;
            // Log the first failure of a run of them, not every line.
            match written {
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("receipt log {shown}: {e}");
                }
                Ok(()) => failing = false,
                Err(_) => {}
            }
        }
    });
    Ok((tx, task))
}
