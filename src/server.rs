//! Starting and stopping a whole OnAir server.

use std::net::SocketAddr;
use std::sync::Arc;

use onair_media::Sfu;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::app::App;
use crate::config::Settings;

/// A running server.
pub struct Server {
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// The SFU (for tests and the CLI).
    pub sfu: Sfu,
    /// The platform's services.
    pub app: Arc<App>,
    settings: Settings,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Opens the database, starts the SFU workers, the platform and HTTP.
    pub async fn start(settings: Settings) -> Result<Server, String> {
        let pool = crate::db::open(&settings.data_dir).await?;
        let mut media = settings.media.clone();
        // The SFU keeps a departed publisher's viewers through the platform's
        // reconnect grace (the lifecycle ends the stream when it is over; the
        // extra seconds only make the SFU's own deadline a backstop).
        media.publisher_hold = settings.platform.reconnect_grace + std::time::Duration::from_secs(5);
        let sfu = Sfu::start(media).map_err(|e| format!("cannot bind media port {}: {e}", settings.media.media_port))?;
        let keys = crate::accounts::signing::load(&settings.data_dir, &pool, &settings.jwt, crate::clock::now_ms() / 1000).await?;
        let app = App::start(pool, sfu.clone(), settings.platform.clone(), keys, &settings.data_dir).await?;
        let listener = TcpListener::bind(settings.http_addr).await.map_err(|e| format!("cannot listen on {}: {e}", settings.http_addr))?;
        let http_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let router = crate::api::router(app.clone(), &settings.static_dir);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, service).with_graceful_shutdown(async { let _ = stopped.await; }).await;
        });
        Ok(Server { http_addr, sfu, app, settings, stop: Some(stop), task })
    }

    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// A stream key for the host `username` (made, without a password, if
    /// missing): what `onair stream-key create` does.
    pub async fn host_key(&self, username: &str) -> Result<String, String> {
        let host = self.app.accounts.ensure_host(username).await.map_err(|e| e.to_string())?;
        self.app.keys.create(host.id, "default").await.map(|k| k.key).map_err(|e| e.to_string())
    }

    /// Reads the token signing keys again (after `onair jwt-key rotate`;
    /// the command line calls this on SIGHUP).
    pub async fn reload_keys(&self) -> Result<(), String> {
        let keys = crate::accounts::signing::load(&self.settings.data_dir, &self.app.pool, &self.settings.jwt, crate::clock::now_ms() / 1000).await?;
        self.app.accounts.set_keys(keys);
        Ok(())
    }

    /// Stops the server, draining it (within about 10 s in all): no new
    /// HTTP connections; requests under way finish; every WebSocket gets a
    /// polite close (1001); accepted chat messages and viewers' watch time
    /// are on disk; then the media engine and the database stop.
    pub async fn stop(mut self) {
        use std::time::Duration;
        use tokio::time::timeout;
        let started = std::time::Instant::now();
        // 1. Stop accepting; close the WebSockets (each flushes what it owes
        //    its client, then closes: 3 s at most).
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.app.shutdown.begin();
        let _ = timeout(Duration::from_secs(4), self.app.shutdown.idle()).await;
        let _ = timeout(Duration::from_secs(2), &mut self.task).await;
        // 2. What was accepted goes to disk: chat, then viewers' stays
        //    (those still watching end now, with their watch time).
        let _ = timeout(Duration::from_secs(1), self.app.chat.flush()).await;
        let _ = timeout(Duration::from_secs(1), self.app.analytics.shutdown()).await;
        // 3. The media engine: the one place it is stopped. Every peer is
        //    told (DTLS close), then the worker threads end.
        self.sfu.stop(Duration::from_secs(1)).await;
        let _ = timeout(Duration::from_secs(1), self.app.pool.close()).await;
        tracing::info!("stopped in {} ms", started.elapsed().as_millis());
    }

    /// Runs until the task ends (Ctrl-C handled by the caller).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}
