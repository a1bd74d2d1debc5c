//! Settings: flags over `ONAIR_*` environment variables over an optional TOML
//! file over defaults that work on a fresh machine.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use onair_media::{IceServer, MediaConfig, TurnAuth};

use crate::accounts::signing::EnvSecrets;
use crate::client_addr::TrustedProxies;
use serde::Deserialize;

/// Settings as flags (each also read from its `ONAIR_*` variable).
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// TOML config file (keys as below, in snake_case).
    #[arg(long, env = "ONAIR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "ONAIR_HTTP_ADDR", global = true)]
    pub http_addr: Option<SocketAddr>,
    /// First UDP media port; worker i uses port + i [default: 8189].
    #[arg(long, env = "ONAIR_MEDIA_PORT", global = true)]
    pub media_port: Option<u16>,
    /// Address the media sockets bind to [default: 0.0.0.0].
    #[arg(long, env = "ONAIR_MEDIA_BIND", global = true)]
    pub media_bind: Option<IpAddr>,
    /// Public IP(s) to announce in ICE candidates (1:1 NAT), comma separated.
    #[arg(long, env = "ONAIR_PUBLIC_IP", value_delimiter = ',', global = true)]
    pub public_ip: Option<Vec<IpAddr>>,
    /// Data directory (database) [default: ./data].
    #[arg(long, env = "ONAIR_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Media worker threads; 0 = one per core [default: 0].
    #[arg(long, env = "ONAIR_WORKERS", global = true)]
    pub workers: Option<usize>,
    /// STUN/TURN URLs handed to clients, comma separated.
    #[arg(long, env = "ONAIR_ICE_SERVERS", value_delimiter = ',', global = true)]
    pub ice_servers: Option<Vec<String>>,
    /// Directory of the web pages [default: ./static].
    #[arg(long, env = "ONAIR_STATIC_DIR", global = true)]
    pub static_dir: Option<PathBuf>,
    /// Seconds a stream whose publisher left waits for it [default: 15].
    #[arg(long, env = "ONAIR_RECONNECT_GRACE", global = true)]
    pub reconnect_grace: Option<u64>,
    /// Seconds a stream started by API waits for media before failing [default: 600].
    #[arg(long, env = "ONAIR_MEDIA_WAIT", global = true)]
    pub media_wait: Option<u64>,
    /// Whether people may sign up as hosts themselves [default: true].
    #[arg(long, env = "ONAIR_HOST_SIGNUP", global = true)]
    pub host_signup: Option<bool>,
    /// Auth requests (login, register, refresh) per minute per IP [default: 30].
    #[arg(long, env = "ONAIR_AUTH_RATE", global = true)]
    pub auth_rate: Option<u32>,
    /// API writes per second per IP and per user [default: 20].
    #[arg(long, env = "ONAIR_WRITE_RATE", global = true)]
    pub write_rate: Option<u32>,
    /// WHIP/WHEP offers (new media sessions) per second per IP [default: 10].
    #[arg(long, env = "ONAIR_MEDIA_RATE", global = true)]
    pub media_rate: Option<u32>,
    /// Creators' share of the coins spent on them, in percent [default: 70].
    #[arg(long, env = "ONAIR_CREATOR_SHARE", global = true)]
    pub creator_share: Option<u32>,
    /// Currency of coin prices (ISO code) [default: usd].
    #[arg(long, env = "ONAIR_CURRENCY", global = true)]
    pub currency: Option<String>,
    /// Coins a monthly subscription costs [default: 500].
    #[arg(long, env = "ONAIR_SUBSCRIPTION_PRICE", global = true)]
    pub subscription_price: Option<i64>,
    /// Stripe secret key: payments go through Stripe (else the development provider).
    #[arg(long, env = "ONAIR_STRIPE_SECRET_KEY", hide_env_values = true, global = true)]
    pub stripe_secret_key: Option<String>,
    /// Payment webhook signing secret(s), comma separated (several while rolling one)
    /// [default: generated into the data directory].
    #[arg(long, env = "ONAIR_PAYMENT_WEBHOOK_SECRET", value_delimiter = ',', hide_env_values = true, global = true)]
    pub payment_webhook_secret: Option<Vec<String>>,
    /// Media sessions the server holds at most [default: 10000].
    #[arg(long, env = "ONAIR_MAX_SESSIONS", global = true)]
    pub max_sessions: Option<usize>,
    /// Media sessions one worker holds at most; 0 = derived from the total [default: 0].
    #[arg(long, env = "ONAIR_MAX_SESSIONS_PER_WORKER", global = true)]
    pub max_sessions_per_worker: Option<usize>,
    /// Media sessions one client network (IPv4 address, IPv6 /64) holds at most [default: 200].
    #[arg(long, env = "ONAIR_MAX_SESSIONS_PER_NETWORK", global = true)]
    pub max_sessions_per_network: Option<usize>,
    /// Secret shared with the TURN server (coturn `static-auth-secret`): TURN
    /// servers in --ice-servers then get short-lived credentials.
    #[arg(long, env = "ONAIR_TURN_SECRET", global = true, hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Seconds short-lived TURN credentials stay valid [default: 3600].
    #[arg(long, env = "ONAIR_TURN_TTL", global = true)]
    pub turn_ttl: Option<u64>,
    /// Reverse proxies (CIDR ranges, comma separated) whose X-Forwarded-For
    /// names the client [default: none: the header is ignored].
    #[arg(long, env = "ONAIR_TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Option<Vec<String>>,
    /// Open WebSockets (/api/ws) per client address (IPv6: per /64) [default: 100].
    #[arg(long, env = "ONAIR_WS_PER_IP", global = true)]
    pub ws_per_ip: Option<u32>,
    /// Open WebSockets per logged-in user [default: 20].
    #[arg(long, env = "ONAIR_WS_PER_USER", global = true)]
    pub ws_per_user: Option<u32>,
    /// Messages per second per WebSocket (bursts of six times that) [default: 10].
    #[arg(long, env = "ONAIR_WS_RATE", global = true)]
    pub ws_rate: Option<u32>,
    /// Viewers of one stream counted per client address (IPv6: per /64); 0 = no cap [default: 10].
    #[arg(long, env = "ONAIR_VIEWERS_PER_IP", global = true)]
    pub viewers_per_ip: Option<u32>,
    /// New hosts need an admin's approval before they may stream [default: false].
    #[arg(long, env = "ONAIR_HOST_APPROVAL", global = true, num_args = 0..=1, default_missing_value = "true")]
    pub host_approval: Option<bool>,
    /// IP-to-location database (MaxMind GeoLite2 or DB-IP Lite `.mmdb`):
    /// viewer sessions record country and region.
    #[arg(long, env = "ONAIR_GEOIP_DB", global = true)]
    pub geoip_db: Option<PathBuf>,
    /// Time zone of leaderboard periods (days, weeks from Monday, months), an IANA name [default: UTC].
    #[arg(long, env = "ONAIR_LEADERBOARD_TIMEZONE", global = true)]
    pub leaderboard_timezone: Option<String>,
    /// Promotional coins a PK battle's winner gets from the platform; 0 = none [default: 100].
    #[arg(long, env = "ONAIR_BATTLE_REWARD_COINS", global = true)]
    pub battle_reward_coins: Option<i64>,
    /// The badge a PK battle's winner gets [default: "PK winner"].
    #[arg(long, env = "ONAIR_BATTLE_REWARD_BADGE", global = true)]
    pub battle_reward_badge: Option<String>,
}

/// The config file's shape; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    http_addr: Option<SocketAddr>,
    media_port: Option<u16>,
    media_bind: Option<IpAddr>,
    public_ip: Option<Vec<IpAddr>>,
    data_dir: Option<PathBuf>,
    workers: Option<usize>,
    ice_servers: Option<Vec<IceServer>>,
    static_dir: Option<PathBuf>,
    reconnect_grace: Option<u64>,
    media_wait: Option<u64>,
    host_signup: Option<bool>,
    auth_rate: Option<u32>,
    write_rate: Option<u32>,
    media_rate: Option<u32>,
    creator_share: Option<u32>,
    currency: Option<String>,
    subscription_price: Option<i64>,
    stripe_secret_key: Option<String>,
    payment_webhook_secret: Option<Vec<String>>,
    max_sessions: Option<usize>,
    max_sessions_per_worker: Option<usize>,
    max_sessions_per_network: Option<usize>,
    turn_secret: Option<String>,
    turn_ttl: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    ws_per_ip: Option<u32>,
    ws_per_user: Option<u32>,
    ws_rate: Option<u32>,
    viewers_per_ip: Option<u32>,
    host_approval: Option<bool>,
    geoip_db: Option<PathBuf>,
    leaderboard_timezone: Option<String>,
    battle_reward_coins: Option<i64>,
    battle_reward_badge: Option<String>,
}

/// Settings of PK battles.
#[derive(Debug, Clone)]
pub struct BattleSettings {
    /// Where leaderboard days, weeks and months begin.
    pub timezone: jiff::tz::TimeZone,
    /// Promotional coins to a battle's winner (0: none).
    pub reward_coins: i64,
    /// The winner's badge.
    pub reward_badge: String,
}

impl Default for BattleSettings {
    fn default() -> Self {
        BattleSettings { timezone: jiff::tz::TimeZone::UTC, reward_coins: 100, reward_badge: "PK winner".into() }
    }
}

/// Settings of the platform around the SFU.
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// How long a stream whose publisher left waits for it.
    pub reconnect_grace: Duration,
    /// How long a stream started by API waits for media.
    pub media_wait: Duration,
    /// Whether people may sign up as hosts.
    pub host_signup: bool,
    /// Auth requests per minute per IP (burst: the same number).
    pub auth_per_minute: u32,
    /// API writes per second per IP and per user (burst: five seconds' worth).
    pub writes_per_second: u32,
    /// WHIP/WHEP offers per second per IP (burst: ten seconds' worth).
    pub media_offers_per_second: u32,
    /// Money.
    pub money: MoneySettings,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Open WebSockets per client network.
    pub ws_per_network: u32,
    /// Open WebSockets per user.
    pub ws_per_user: u32,
    /// Messages per second per WebSocket (burst: six seconds' worth).
    pub ws_messages_per_second: u32,
    /// Viewers of a stream counted per client network (0: no cap).
    pub viewers_per_network: u32,
    /// New hosts need an admin's approval before they may stream.
    pub host_approval: bool,
    /// The IP-to-location database, if any.
    pub geoip_db: Option<PathBuf>,
    /// PK battles.
    pub battles: BattleSettings,
    /// The clock of time-dependent logic (money, battles); tests drive their own.
    pub clock: crate::clock::Clock,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        PlatformSettings {
            reconnect_grace: Duration::from_secs(15),
            media_wait: Duration::from_secs(600),
            host_signup: true,
            auth_per_minute: 30,
            writes_per_second: 20,
            media_offers_per_second: 10,
            trusted_proxies: TrustedProxies::default(),
            ws_per_network: 100,
            ws_per_user: 20,
            ws_messages_per_second: 10,
            viewers_per_network: 10,
            money: MoneySettings::default(),
            host_approval: false,
            geoip_db: None,
            battles: BattleSettings::default(),
            clock: crate::clock::Clock::system(),
        }
    }
}

/// Settings of the money side.
#[derive(Clone)]
pub struct MoneySettings {
    /// Creators' share of coins spent on them, percent (the platform keeps the rest).
    pub creator_share: u32,
    /// Lowercase ISO code of prices.
    pub currency: String,
    /// Coins a monthly subscription costs.
    pub subscription_price: i64,
    /// Stripe's secret key, if payments go through Stripe.
    pub stripe_secret_key: Option<String>,
    /// Webhook signing secrets; empty: one generated into the data directory.
    pub webhook_secrets: Vec<String>,
    /// Where a generated secret is kept.
    pub data_dir: PathBuf,
}

impl Default for MoneySettings {
    fn default() -> Self {
        MoneySettings { creator_share: 70, currency: "usd".into(), subscription_price: 500, stripe_secret_key: None, webhook_secrets: Vec::new(), data_dir: PathBuf::from("./data") }
    }
}

impl std::fmt::Debug for MoneySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs.
        f.debug_struct("MoneySettings")
            .field("creator_share", &self.creator_share)
            .field("currency", &self.currency)
            .field("subscription_price", &self.subscription_price)
            .field("stripe", &self.stripe_secret_key.is_some())
            .field("webhook_secrets", &self.webhook_secrets.len())
            .finish()
    }
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Web pages.
    pub static_dir: PathBuf,
    /// Media engine settings.
    pub media: MediaConfig,
    /// Platform settings.
    pub platform: PlatformSettings,
    /// Token signing secrets from the environment (`ONAIR_JWT_SECRET`).
    pub jwt: EnvSecrets,
}

impl Settings {
    /// Resolves flags/env over the file over defaults.
    pub fn resolve(args: &SettingsArgs) -> Result<Settings, String> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
                toml::from_str::<FileSettings>(&text).map_err(|e| format!("config {}: {e}", path.display()))?
            }
            None => FileSettings::default(),
        };
        let battles = battle_settings(args, &file)?;
        let defaults = MediaConfig::default();
        let pd = PlatformSettings::default();
        let secs = |flag: Option<u64>, file: Option<u64>, default: Duration| flag.or(file).map(Duration::from_secs).unwrap_or(default);
        let ice_servers = match (&args.ice_servers, file.ice_servers) {
            (Some(urls), _) => urls.iter().filter(|u| !u.is_empty()).map(|u| IceServer { urls: vec![u.clone()], ..Default::default() }).collect(),
            (None, Some(list)) => list,
            (None, None) => Vec::new(),
        };
        let data_dir = args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from("./data"));
        let md = MoneySettings::default();
        let creator_share = args.creator_share.or(file.creator_share).unwrap_or(md.creator_share);
        if creator_share > 100 {
            return Err(format!("--creator-share is a percentage (0-100), not {creator_share}"));
        }
        let currency = args.currency.clone().or(file.currency).unwrap_or(md.currency).to_ascii_lowercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(format!("--currency is a three-letter ISO code such as usd, not '{currency}'"));
        }
        let subscription_price = args.subscription_price.or(file.subscription_price).unwrap_or(md.subscription_price);
        if !(1..=1_000_000).contains(&subscription_price) {
            return Err("--subscription-price is 1-1,000,000 coins".into());
        }
        let money = MoneySettings {
            creator_share,
            currency,
            subscription_price,
            stripe_secret_key: args.stripe_secret_key.clone().or(file.stripe_secret_key).filter(|k| !k.is_empty()),
            webhook_secrets: args.payment_webhook_secret.clone().or(file.payment_webhook_secret).unwrap_or_default().into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
            data_dir: data_dir.clone(),
        };
        Ok(Settings {
            http_addr: args.http_addr.or(file.http_addr).unwrap_or_else(|| "127.0.0.1:8080".parse().expect("default addr")),
            data_dir,
            static_dir: args.static_dir.clone().or(file.static_dir).unwrap_or_else(default_static_dir),
            media: MediaConfig {
                bind_ip: args.media_bind.or(file.media_bind).unwrap_or(defaults.bind_ip),
                media_port: args.media_port.or(file.media_port).unwrap_or(defaults.media_port),
                announce_ips: args.public_ip.clone().or(file.public_ip).unwrap_or_default(),
                workers: args.workers.or(file.workers).unwrap_or(defaults.workers),
                ice_servers,
                worker_queue: defaults.worker_queue,
                // Set from the reconnect grace by `Server::start`.
                publisher_hold: defaults.publisher_hold,
                max_sessions: args.max_sessions.or(file.max_sessions).unwrap_or(defaults.max_sessions).max(1),
                max_sessions_per_worker: args.max_sessions_per_worker.or(file.max_sessions_per_worker).unwrap_or(defaults.max_sessions_per_worker),
                max_sessions_per_network: args.max_sessions_per_network.or(file.max_sessions_per_network).unwrap_or(defaults.max_sessions_per_network).max(1),
                connect_timeout: defaults.connect_timeout,
                turn: args.turn_secret.clone().or(file.turn_secret).filter(|s| !s.is_empty()).map(|secret| TurnAuth {
                    secret,
                    ttl: Duration::from_secs(args.turn_ttl.or(file.turn_ttl).unwrap_or(3600).max(60)),
                }),
            },
            platform: PlatformSettings {
                reconnect_grace: secs(args.reconnect_grace, file.reconnect_grace, pd.reconnect_grace),
                media_wait: secs(args.media_wait, file.media_wait, pd.media_wait),
                host_signup: args.host_signup.or(file.host_signup).unwrap_or(pd.host_signup),
                auth_per_minute: args.auth_rate.or(file.auth_rate).unwrap_or(pd.auth_per_minute).max(1),
                writes_per_second: args.write_rate.or(file.write_rate).unwrap_or(pd.writes_per_second).max(1),
                media_offers_per_second: args.media_rate.or(file.media_rate).unwrap_or(pd.media_offers_per_second).max(1),
                money,
                trusted_proxies: TrustedProxies::parse(&args.trusted_proxies.clone().or(file.trusted_proxies).unwrap_or_default()).map_err(|e| format!("trusted proxies: {e}"))?,
                ws_per_network: args.ws_per_ip.or(file.ws_per_ip).unwrap_or(pd.ws_per_network).max(1),
                ws_per_user: args.ws_per_user.or(file.ws_per_user).unwrap_or(pd.ws_per_user).max(1),
                ws_messages_per_second: args.ws_rate.or(file.ws_rate).unwrap_or(pd.ws_messages_per_second).max(1),
                viewers_per_network: args.viewers_per_ip.or(file.viewers_per_ip).unwrap_or(pd.viewers_per_network),
                host_approval: args.host_approval.or(file.host_approval).unwrap_or(pd.host_approval),
                geoip_db: args.geoip_db.clone().or(file.geoip_db),
                battles,
                clock: crate::clock::Clock::system(),
            },
            jwt: EnvSecrets::from_env()?,
        })
    }
}

fn battle_settings(args: &SettingsArgs, file: &FileSettings) -> Result<BattleSettings, String> {
    let d = BattleSettings::default();
    let timezone = match args.leaderboard_timezone.clone().or(file.leaderboard_timezone.clone()) {
        Some(name) => jiff::tz::TimeZone::get(name.trim()).map_err(|e| format!("--leaderboard-timezone '{name}' is not a time zone (an IANA name such as Europe/Lisbon): {e}"))?,
        None => d.timezone,
    };
    let reward_coins = args.battle_reward_coins.or(file.battle_reward_coins).unwrap_or(d.reward_coins);
    if !(0..=1_000_000).contains(&reward_coins) {
        return Err("--battle-reward-coins is 0-1,000,000".into());
    }
    let reward_badge = args.battle_reward_badge.clone().or(file.battle_reward_badge.clone()).map(|b| b.trim().chars().take(40).collect()).unwrap_or(d.reward_badge);
    Ok(BattleSettings { timezone, reward_coins, reward_badge })
}

/// `./static` when run from the repository, else the copy next to the sources.
fn default_static_dir() -> PathBuf {
    let local = PathBuf::from("static");
    if local.is_dir() {
        local
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = std::env::temp_dir().join(format!("onair-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("onair.toml");
        std::fs::write(&path, "media_port = 9000\nworkers = 3\n[[ice_servers]]\nurls = [\"stun:stun.example.org:3478\"]\n").unwrap();
        let args = SettingsArgs { config: Some(path.clone()), workers: Some(1), ..Default::default() };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.media.media_port, 9000, "from the file");
        assert_eq!(s.media.workers, 1, "flag beats file");
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:8080", "default");
        assert_eq!(s.media.ice_servers[0].urls[0], "stun:stun.example.org:3478");
        std::fs::write(&path, "bogus_key = 1\n").unwrap();
        let err = Settings::resolve(&args).unwrap_err();
        assert!(err.contains("bogus_key"), "{err}");
    }
}
