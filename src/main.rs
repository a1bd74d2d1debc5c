//! The `onair` command: run the server, manage stream keys.

use clap::{Parser, Subcommand};
use onair::config::{Settings, SettingsArgs};
use onair::keys::KeyStore;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "onair", version, about = "OnAir: self-hosted live streaming (WebRTC SFU, WHIP/WHEP)")]
struct Cli {
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage stream keys.
    StreamKey {
        #[command(subcommand)]
        action: KeyAction,
    },
}

#[derive(Subcommand)]
enum KeyAction {
    /// Create a key for a stream and print it (it is shown only once).
    Create { stream: String },
    /// List keys (prefixes only).
    List,
    /// Revoke every key of a stream.
    Revoke { stream: String },
}

fn main() {
    tracing_subscriber::fmt().with_env_filter(EnvFilter::try_from_env("ONAIR_LOG").unwrap_or_else(|_| EnvFilter::new("info"))).init();
    let cli = Cli::parse();
    let settings = match Settings::resolve(&cli.settings) {
        Ok(s) => s,
        Err(e) => fail(&e),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::StreamKey { action } => {
                let pool = onair::db::open(&settings.data_dir).await.unwrap_or_else(|e| fail(&e));
                let keys = KeyStore::new(pool);
                match action {
                    KeyAction::Create { stream } => {
                        let key = keys.create(&stream).await.unwrap_or_else(|e| fail(&e));
                        println!("{key}");
                        eprintln!("stream key for '{stream}' created; publish with WHIP to http://{}/whip using it as the bearer token", settings.http_addr);
                    }
                    KeyAction::List => {
                        for k in keys.list().await.unwrap_or_else(|e| fail(&e)) {
                            let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                            println!("{}\t{}…\t{}", k.stream, k.prefix, state);
                        }
                    }
                    KeyAction::Revoke { stream } => {
                        let n = keys.revoke(&stream).await.unwrap_or_else(|e| fail(&e));
                        println!("revoked {n} key(s) of '{stream}'");
                    }
                }
            }
        }
    });
}

async fn serve(settings: Settings) {
    let server = onair::server::Server::start(settings).await.unwrap_or_else(|e| fail(&e));
    tracing::info!("OnAir listening on {}  (publish: {}/publish)", server.url(), server.url());
    for addr in server.sfu.media_addrs() {
        tracing::info!("media UDP on {addr}");
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
        _ = std::future::pending::<()>() => {}
    }
    server.stop().await;
}

fn fail(msg: &str) -> ! {
    eprintln!("onair: {msg}");
    std::process::exit(2);
}
