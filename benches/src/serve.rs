//! `onair-bench serve`: the OnAir server the harness measures, in a process
//! of its own so its CPU time and memory are its alone. It is the same
//! server library the `onair` binary runs, on the same two-thread runtime.
//!
//! It starts, creates a stream key for the host [`STREAM`] (its channel), prints one JSON line
//! (`{"http": "127.0.0.1:port", "key": "sk_..."}`) and serves until its
//! standard input closes (the harness exiting) or it is killed.

use onair::config::{Settings, SettingsArgs};

/// The stream the harness publishes.
pub const STREAM: &str = "bench";

pub fn run(args: SettingsArgs) -> Result<(), String> {
    let settings = Settings::resolve(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let server = onair::server::Server::start(settings).await?;
        let key = server.host_key(STREAM).await?;
        println!("{}", serde_json::json!({ "http": server.http_addr.to_string(), "key": key }));
        // Serve until the harness goes away.
        let mut stdin = tokio::io::stdin();
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut sink).await;
        server.stop().await;
        Ok(())
    })
}
