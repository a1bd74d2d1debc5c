//! The `onair` command: run the server; manage stream keys and users.

use clap::{Parser, Subcommand};
use onair::accounts::{signing, Accounts, Role, TokenLifetimes};
use onair::clock::now_ms;
use onair::config::{Settings, SettingsArgs};
use onair::keys::KeyStore;

#[derive(Parser)]
#[command(name = "onair", version, about = "OnAir: self-hosted live streaming (WebRTC SFU, WHIP/WHEP, live platform)")]
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
    /// Manage hosts' stream keys.
    StreamKey {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage the access-token signing keys (the `jwt-keys` file in the data directory).
    JwtKey {
        #[command(subcommand)]
        action: JwtKeyAction,
    },
}

#[derive(Subcommand)]
enum JwtKeyAction {
    /// List the keys' ids (the first signs); never the secrets.
    List,
    /// Make a new signing key; the old ones verify until their tokens expire.
    /// Then send the server SIGHUP (or restart it).
    Rotate,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Make a key for a host (the account is made if missing) and print it once.
    Create {
        /// Host username (also their channel: /watch/{username}).
        host: String,
        /// A name for the key.
        #[arg(long, default_value = "default")]
        label: String,
    },
    /// List a host's keys (prefixes only).
    List { host: String },
    /// Revoke a host's key (by id), or all of them.
    Revoke {
        host: String,
        /// Key id (from `list`); all keys if absent.
        #[arg(long)]
        id: Option<i64>,
    },
    /// Replace a key with a new one and print it.
    Rotate { host: String, id: i64 },
}

#[derive(Subcommand)]
enum UserAction {
    /// Set a user's role: viewer, host, moderator or admin.
    Role { username: String, role: String },
    /// Set a user's password (read from standard input).
    Password { username: String },
}

fn main() {
    onair::logs::init().unwrap_or_else(|e| fail(&e));
    let cli = Cli::parse();
    onair::raise_fd_limit();
    let settings = match Settings::resolve(&cli.settings) {
        Ok(s) => s,
        Err(e) => fail(&e),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    rt.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::StreamKey { action } => keys(&settings, action).await.unwrap_or_else(|e| fail(&e)),
            Command::User { action } => users(&settings, action).await.unwrap_or_else(|e| fail(&e)),
            Command::JwtKey { action } => jwt_keys(&settings, action).await.unwrap_or_else(|e| fail(&e)),
        }
    });
    // Tasks still running (timers, the SFU's event readers) are not waited for.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
}

async fn open(settings: &Settings) -> Result<(Accounts, KeyStore), String> {
    let pool = onair::db::open(&settings.data_dir).await?;
    let keys = signing::load(&settings.data_dir, &pool, &settings.jwt, now_ms() / 1000).await?;
    Ok((Accounts::open(pool.clone(), keys, TokenLifetimes::default()).await?, KeyStore::new(pool)))
}

async fn jwt_keys(settings: &Settings, action: JwtKeyAction) -> Result<(), String> {
    let pool = onair::db::open(&settings.data_dir).await?;
    let file = signing::key_file(&settings.data_dir);
    match action {
        JwtKeyAction::List => {
            // Loading moves an old database's key into the file first.
            signing::load(&settings.data_dir, &pool, &settings.jwt, now_ms() / 1000).await?;
            if settings.jwt.current.is_some() {
                println!("ONAIR_JWT_SECRET is set: it signs; the keys below only verify");
            }
            for (kid, retired) in signing::list(&settings.data_dir)? {
                match retired {
                    None => println!("{kid}\tsigns"),
                    Some(at) => println!("{kid}\tretired at {} (verifies until {})", onair::clock::rfc3339(at * 1000), onair::clock::rfc3339((at + signing::RETIRED_FOR.as_secs() as i64) * 1000)),
                }
            }
        }
        JwtKeyAction::Rotate => {
            let (new, kept) = signing::rotate(&settings.data_dir, &pool, now_ms() / 1000).await?;
            println!("{new}");
            eprintln!(
                "new signing key {new} written to {}; {} older key(s) verify until their tokens expire. Send the running server SIGHUP (or restart it) to use it.",
                file.display(),
                kept.len()
            );
            if settings.jwt.current.is_some() {
                eprintln!("note: ONAIR_JWT_SECRET is set, and it signs: rotate it there (move the old value to ONAIR_JWT_PREVIOUS_SECRETS)");
            }
        }
    }
    Ok(())
}

async fn keys(settings: &Settings, action: KeyAction) -> Result<(), String> {
    let (accounts, keys) = open(settings).await?;
    let e = |e: onair_signaling::ApiError| e.message;
    match action {
        KeyAction::Create { host, label } => {
            let user = accounts.ensure_host(&host).await.map_err(e)?;
            let key = keys.create(user.id, &label).await.map_err(e)?;
            println!("{}", key.key);
            eprintln!("stream key for '{}' made; publish with WHIP to http://{}/whip using it as the bearer token", user.username, settings.http_addr);
        }
        KeyAction::List { host } => {
            let user = accounts.by_username(&host).await.map_err(e)?.ok_or(format!("no user '{host}'"))?;
            for k in keys.list(user.id).await.map_err(e)? {
                let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{}\t{}\t{}…\t{}", k.id, k.label, k.prefix, state);
            }
        }
        KeyAction::Revoke { host, id } => {
            let user = accounts.by_username(&host).await.map_err(e)?.ok_or(format!("no user '{host}'"))?;
            let n = match id {
                Some(id) => keys.revoke(user.id, id).await.map_err(e)? as u64,
                None => keys.revoke_all(user.id).await.map_err(e)?,
            };
            println!("revoked {n} key(s) of '{}'", user.username);
        }
        KeyAction::Rotate { host, id } => {
            let user = accounts.by_username(&host).await.map_err(e)?.ok_or(format!("no user '{host}'"))?;
            let key = keys.rotate(user.id, id).await.map_err(e)?.ok_or(format!("no active key {id} of '{host}'"))?;
            println!("{}", key.key);
        }
    }
    Ok(())
}

async fn users(settings: &Settings, action: UserAction) -> Result<(), String> {
    let (accounts, _) = open(settings).await?;
    let e = |e: onair_signaling::ApiError| e.message;
    match action {
        UserAction::Role { username, role } => {
            let role = Role::parse(&role).ok_or(format!("'{role}' is not a role: viewer, host, moderator or admin"))?;
            let user = accounts.by_username(&username).await.map_err(e)?.ok_or(format!("no user '{username}'"))?;
            let user = accounts.set_role(user.id, role).await.map_err(e)?;
            println!("{} is now {}", user.username, user.role.as_str());
        }
        UserAction::Password { username } => {
            let user = accounts.by_username(&username).await.map_err(e)?.ok_or(format!("no user '{username}'"))?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
            accounts.set_password(user.id, line.trim_end_matches(['\r', '\n'])).await.map_err(e)?;
            println!("password of {} set", user.username);
        }
    }
    Ok(())
}

async fn serve(settings: Settings) {
    use tokio::signal::unix::{signal, SignalKind};
    let server = onair::server::Server::start(settings).await.unwrap_or_else(|e| fail(&e));
    tracing::info!("OnAir listening on {}  (live directory: {}/, publish: {}/publish)", server.url(), server.url(), server.url());
    for addr in server.sfu.media_addrs() {
        tracing::info!("media UDP on {addr}");
    }
    let handle = |kind: SignalKind, name: &str| signal(kind).unwrap_or_else(|e| fail(&format!("cannot handle {name}: {e}")));
    let (mut interrupt, mut terminate, mut hangup) = (handle(SignalKind::interrupt(), "SIGINT"), handle(SignalKind::terminate(), "SIGTERM"), handle(SignalKind::hangup(), "SIGHUP"));
    loop {
        // SIGTERM (systemd, Docker) and Ctrl-C stop the server the same way.
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = hangup.recv() => match server.reload_keys().await {
                Ok(()) => tracing::info!("SIGHUP: token signing keys reloaded: {}", server.app.accounts.key_ids().join(", ")),
                Err(e) => tracing::error!("SIGHUP: token signing keys not reloaded (the old ones stay): {e}"),
            },
        }
    }
    tracing::info!("shutting down");
    server.stop().await;
}

fn fail(msg: &str) -> ! {
    eprintln!("onair: {msg}");
    std::process::exit(2);
}
