//! Starting and stopping a whole OnAir server.

use std::net::SocketAddr;

use onair_media::Sfu;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::app::{router, AppState};
use crate::config::Settings;
use crate::keys::KeyStore;

/// A running server.
pub struct Server {
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// The SFU (for tests and the CLI).
    pub sfu: Sfu,
    /// Stream keys.
    pub keys: KeyStore,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Opens the database, starts the SFU workers and the HTTP server.
    pub async fn start(settings: Settings) -> Result<Server, String> {
        let pool = crate::db::open(&settings.data_dir).await?;
        let keys = KeyStore::new(pool);
        let sfu = Sfu::start(settings.media.clone()).map_err(|e| format!("cannot bind media port {}: {e}", settings.media.media_port))?;
        let listener = TcpListener::bind(settings.http_addr).await.map_err(|e| format!("cannot listen on {}: {e}", settings.http_addr))?;
        let http_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let app = router(AppState { sfu: sfu.clone(), keys: keys.clone() }, settings.static_dir.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async { let _ = stopped.await; }).await;
        });
        Ok(Server { http_addr, sfu, keys, stop: Some(stop), task })
    }

    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Stops HTTP and the media workers.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.sfu.shutdown();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await;
    }

    /// Runs until the task ends (Ctrl-C handled by the caller).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}
