//! `onair-bench`: load tests for WHIP/WHEP servers. See the crate docs in `lib.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use onair_bench::janus::{Janus, JanusOptions};
use onair_bench::netns::Netns;
use onair_bench::publisher::PublishMedia;
use onair_bench::report::{self, Ratios, RunReport};
use onair_bench::scenario::{self, RunOptions};
use onair_bench::target::Target;

#[derive(Parser)]
#[command(name = "onair-bench", version, about = "Load harness for WHIP/WHEP servers: one publisher replaying real media, hundreds of WebRTC viewers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant (`serve`'s settings) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// The standard scenario: one publisher, N viewers, figures over a measured window.
    Run {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, default_value_t = 100)]
        viewers: usize,
        #[command(flatten)]
        common: Common,
        /// Also run the same scenario against Janus and report the ratios.
        #[arg(long)]
        janus: bool,
    },
    /// The standard scenario at several viewer counts; writes a table and an SVG plot.
    Sweep {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_delimiter = ',', default_value = "10,50,100,200,400")]
        viewers: Vec<usize>,
        #[command(flatten)]
        common: Common,
        /// Also run every count against Janus.
        #[arg(long)]
        janus: bool,
        /// Where to write the plot.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// A co-host room: HOSTS hosts publish into one room and each watches the others
    /// (host WHEP); VIEWERS viewers watch with one slot per host.
    Room {
        #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u8).range(2..=9))]
        hosts: u8,
        #[arg(long, default_value_t = 200)]
        viewers: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Viewer churn: every second RATE viewers join and the RATE oldest leave.
    Churn {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, default_value_t = 20)]
        rate: usize,
        /// Seconds each viewer stays.
        #[arg(long, default_value_t = 5)]
        lifetime: u64,
        #[command(flatten)]
        common: Common,
    },
    /// One viewer behind a link that is constrained for a while: it must fall back to a lower layer and come back.
    Constrained {
        /// The root qdisc (`tc`) on the viewer's downlink while constrained.
        /// netem works where the kernel has it (`netem rate 300kbit delay 20ms`).
        #[arg(long, default_value = "tbf rate 300kbit burst 16kb latency 100ms")]
        shaping: String,
        /// Seconds after joining the constraint starts, and ends.
        #[arg(long, default_value_t = 10)]
        on: u64,
        #[arg(long, default_value_t = 40)]
        off: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Chat fan-out: CLIENTS sockets watch a stream; one message a second is sent to all of them.
    ChatFanout {
        #[arg(long, default_value_t = 5000)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        messages: usize,
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long)]
        quiet: bool,
    },
    /// Chat ingest: SENDERS logged-in users together send RATE messages a second.
    ChatIngest {
        #[arg(long, default_value_t = 2000)]
        senders: usize,
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long)]
        quiet: bool,
    },
    /// Gifts: SENDERS viewers send gifts to one creator's live stream, one request in flight each.
    Gifts {
        #[arg(long, default_value_t = 1000)]
        senders: usize,
        /// Seconds of warm-up before the measured window.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Seconds measured.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long)]
        quiet: bool,
    },
    /// Abuse: what legitimate viewers lose while one client floods the server (offers, keyframe requests, junk datagrams).
    Abuse {
        /// Which abuse; all three when absent.
        #[arg(long, value_enum)]
        kind: Option<onair_bench::abuse::Kind>,
        /// Attacks per second (default: 300 offers, 5,000 PLIs, 20,000 datagrams).
        #[arg(long)]
        rate: Option<u32>,
        #[arg(long, default_value_t = 20)]
        viewers: usize,
        /// Seconds of each window (calm, then under abuse).
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// A flash sale: BUYERS buyers order at the moment a sale of QUANTITY units (one per buyer) opens.
    FlashSale {
        #[arg(long, default_value_t = 1000)]
        buyers: usize,
        #[arg(long, default_value_t = 100)]
        quantity: i64,
        /// Sales run one after the other (each waits out its 10 s countdown).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long)]
        quiet: bool,
    },
    /// Runs OnAir for the harness (used by the other commands; prints its address and a stream key).
    #[command(hide = true)]
    Serve {
        #[command(flatten)]
        settings: onair::config::SettingsArgs,
        /// Also make a chat stream and this many logged-in viewers.
        #[arg(long)]
        chat_users: Option<usize>,
        /// Also start a live stream and make this many viewers with coins to gift.
        #[arg(long)]
        gift_senders: Option<usize>,
        /// Also start a live stream with a product and make this many buyers with coins.
        #[arg(long)]
        flash_buyers: Option<usize>,
        /// Also make a co-host room of this many hosts (the primary and its accepted co-hosts).
        #[arg(long)]
        room_hosts: Option<usize>,
    },
}

#[derive(Args)]
struct Common {
    /// Seconds measured (after every viewer is in and warm).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Media the publisher sends.
    #[arg(long, value_enum, default_value_t = PublishMedia::Vp8)]
    media: PublishMedia,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Media worker threads of the OnAir the harness starts.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// Which server: by default an OnAir the harness starts; or any WHIP/WHEP server.
#[derive(Args)]
struct ServerArgs {
    /// WHIP endpoint of a running server (with --whep and --key).
    #[arg(long, requires_all = ["whep", "key"])]
    whip: Option<String>,
    /// WHEP endpoint of the stream published with --key.
    #[arg(long)]
    whep: Option<String>,
    /// Bearer token for WHIP.
    #[arg(long)]
    key: Option<String>,
    /// The server's process id, to measure its CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn main() {
    let cli = Cli::parse();
    if let Command::Serve { settings, chat_users, gift_senders, flash_buyers, room_hosts } = cli.command {
        if let Err(e) = onair_bench::serve::run(settings, onair_bench::serve::Setup { chat_users, gift_senders, flash_buyers, room_hosts }) {
            eprintln!("onair-bench serve: {e}");
            std::process::exit(1);
        }
        return;
    }
    onair::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli.command)) {
        eprintln!("onair-bench: {e}");
        std::process::exit(1);
    }
}

async fn onair_or_external(server: &ServerArgs, workers: usize) -> Result<Target, String> {
    match (&server.whip, &server.whep, &server.key) {
        (Some(whip), Some(whep), Some(key)) => Target::external(whip, whep, key, server.server_pid),
        _ => Target::start_onair(workers, "127.0.0.1".parse().unwrap()).await,
    }
}

async fn start_janus() -> Result<Target, String> {
    let work_dir = std::env::temp_dir().join(format!("onair-bench-janus-{}", std::process::id()));
    let janus = Janus::start(JanusOptions {
        ns_name: "onair-bench-janus".into(),
        host_ip: "10.77.0.1".parse().unwrap(),
        ns_ip: "10.77.0.2".parse().unwrap(),
        room: 1234,
        work_dir,
    })
    .await?;
    Ok(Target::janus(janus))
}

/// One standard run on a fresh server.
async fn one_run(target: Target, opts: &RunOptions) -> Result<RunReport, String> {
    let target = Arc::new(target);
    let result = scenario::standard(target.clone(), opts).await;
    match Arc::try_unwrap(target) {
        Ok(t) => t.stop().await,
        Err(_) => eprintln!("onair-bench: the server is still in use; leaving it running"),
    }
    result
}

fn write_json(path: &Option<PathBuf>, value: &serde_json::Value) -> Result<(), String> {
    if let Some(p) = path {
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("results written to {}", p.display());
    }
    Ok(())
}

fn print_ratios(viewers: usize, r: &Ratios) {
    let f = |v: Option<f64>| v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into());
    println!(
        "Janus / OnAir at {viewers} viewers: CPU per forwarded packet {}, p99 added latency {}, p50 first frame {}, memory per viewer {}",
        f(r.cpu_per_forwarded_packet),
        f(r.p99_added_latency),
        f(r.p50_first_frame),
        f(r.memory_per_viewer)
    );
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Run { server, viewers, common, janus } => {
            let opts = RunOptions { viewers, duration: Duration::from_secs(common.duration), media: common.media, progress: !common.quiet };
            let onair = one_run(onair_or_external(&server, common.workers).await?, &opts).await?;
            let mut runs = vec![onair.clone()];
            let mut json = serde_json::to_value(&onair).map_err(|e| e.to_string())?;
            if janus {
                let j = one_run(start_janus().await?, &opts).await?;
                let ratios = Ratios::of(&onair, &j);
                json["janus"] = serde_json::to_value(&j).map_err(|e| e.to_string())?;
                json["janus_over_onair"] = serde_json::to_value(&ratios).map_err(|e| e.to_string())?;
                runs.push(j);
                print!("{}", report::table(&runs));
                print_ratios(viewers, &ratios);
            } else {
                print!("{}", report::table(&runs));
            }
            write_json(&common.json, &json)
        }
        Command::Sweep { server, viewers, common, janus, svg } => {
            let mut runs = Vec::new();
            let mut ratios = Vec::new();
            for &n in &viewers {
                let opts = RunOptions { viewers: n, duration: Duration::from_secs(common.duration), media: common.media, progress: !common.quiet };
                let o = one_run(onair_or_external(&server, common.workers).await?, &opts).await?;
                eprint!("{}", report::table(std::slice::from_ref(&o)));
                if janus {
                    let j = one_run(start_janus().await?, &opts).await?;
                    eprint!("{}", report::table(std::slice::from_ref(&j)));
                    ratios.push((n, Ratios::of(&o, &j)));
                    runs.push(j);
                }
                runs.push(o);
            }
            runs.sort_by(|a, b| (a.server.as_str(), a.viewers).cmp(&(b.server.as_str(), b.viewers)));
            print!("{}", report::table(&runs));
            for (n, r) in &ratios {
                print_ratios(*n, r);
            }
            if let Some(p) = &svg {
                std::fs::write(p, report::svg(&runs)).map_err(|e| format!("{}: {e}", p.display()))?;
                eprintln!("plot written to {}", p.display());
            }
            let ratios: Vec<_> = ratios.iter().map(|(n, r)| serde_json::json!({ "viewers": n, "janus_over_onair": r })).collect();
            write_json(&common.json, &serde_json::json!({ "runs": runs, "ratios": ratios }))
        }
        Command::Room { hosts, viewers, common } => {
            let hosts = hosts as usize;
            let target = Arc::new(Target::start_onair_with(common.workers, "127.0.0.1".parse().unwrap(), &["--room-hosts".into(), hosts.to_string()]).await?);
            let opts = onair_bench::room::RoomOptions { hosts, viewers, duration: Duration::from_secs(common.duration), media: common.media, progress: !common.quiet };
            let r = onair_bench::room::room(target.clone(), &opts).await;
            if let Ok(t) = Arc::try_unwrap(target) {
                t.stop().await;
            }
            let r = r?;
            println!("{}", onair_bench::room::line(&r));
            write_json(&common.json, &serde_json::to_value(&r).map_err(|e| e.to_string())?)
        }
        Command::Churn { server, rate, lifetime, common } => {
            let target = Arc::new(onair_or_external(&server, common.workers).await?);
            let r = scenario::churn(target.clone(), rate, Duration::from_secs(lifetime), Duration::from_secs(common.duration), !common.quiet).await;
            if let Ok(t) = Arc::try_unwrap(target) {
                t.stop().await;
            }
            let r = r?;
            let json = serde_json::to_value(&r).map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
            write_json(&common.json, &json)
        }
        Command::Constrained { shaping, on, off, common } => {
            let ns = Netns::create("onair-bench-link", scenario::CONSTRAINED_HOST_IP, scenario::CONSTRAINED_NS_IP, 24)?;
            let target = Arc::new(Target::start_onair(common.workers, scenario::CONSTRAINED_HOST_IP.into()).await?);
            let total = Duration::from_secs(off + common.duration.max(20));
            let r = scenario::constrained(target.clone(), &ns, &shaping, Duration::from_secs(on), Duration::from_secs(off), total, !common.quiet).await;
            if let Ok(t) = Arc::try_unwrap(target) {
                t.stop().await;
            }
            drop(ns);
            let r = r?;
            let json = serde_json::to_value(&r).map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
            write_json(&common.json, &json)
        }
        Command::ChatFanout { clients, messages, json, quiet } => {
            let r = onair_bench::chat::fanout(clients, messages, !quiet).await?;
            println!(
                "| chat fan-out | {} clients | {}/{} delivered | p50 {:.1} / p95 {:.1} / p99 {:.1} / max {:.1} ms | server CPU {:.2} us per delivery | {:.1} KB per client |",
                r.clients, r.deliveries, r.expected_deliveries, r.delivery_ms.p50, r.delivery_ms.p95, r.delivery_ms.p99, r.delivery_ms.max, r.server_cpu_us_per_delivery, r.server_rss_bytes_per_client / 1024.0
            );
            write_json(&json, &serde_json::to_value(&r).map_err(|e| e.to_string())?)
        }
        Command::ChatIngest { senders, rate, duration, json, quiet } => {
            let r = onair_bench::chat::ingest(senders, rate, Duration::from_secs(duration), !quiet).await?;
            println!(
                "| chat ingest | {} senders | offered {:.0}/s | accepted {:.0}/s ({}/{} acknowledged, {} stored) | ack p50 {:.1} / p99 {:.1} ms | refused {:?} | server CPU {:.1} s |",
                r.senders, r.offered_per_s, r.accepted_per_s, r.acknowledged, r.sent, r.stored, r.ack_ms.p50, r.ack_ms.p99, r.refused, r.server_cpu_s
            );
            write_json(&json, &serde_json::to_value(&r).map_err(|e| e.to_string())?)
        }
        Command::Gifts { senders, warmup, duration, json, quiet } => {
            let r = onair_bench::money::gifts(senders, Duration::from_secs(warmup), Duration::from_secs(duration), !quiet).await?;
            println!(
                "| gifts | {} senders | {:.0} gifts/s | p50 {:.1} / p95 {:.1} / p99 {:.1} / max {:.1} ms | {:.1} gifts per transaction | server CPU {:.0} us per gift | refused {:?} | earnings match {} | ledger ok {} |",
                r.senders, r.gifts_per_s, r.latency_ms.p50, r.latency_ms.p95, r.latency_ms.p99, r.latency_ms.max, r.jobs_per_transaction, r.server_cpu_us_per_gift, r.refused, r.earnings_match, r.ledger_ok
            );
            write_json(&json, &serde_json::to_value(&r).map_err(|e| e.to_string())?)
        }
        Command::FlashSale { buyers, quantity, rounds, json, quiet } => {
            let r = onair_bench::shop::flash_sale(buyers, quantity, rounds, !quiet).await?;
            println!(
                "| flash sale | {} buyers, {} units, {} rounds | orders p50 {:.1} / p99 {:.1} ms | all answers p50 {:.1} / p99 {:.1} / max {:.1} ms | {:.0} answers/s, {:.0} orders/s | server CPU {:.2} s | exact {} | ledger ok {} |",
                r.buyers, r.quantity, r.rounds.len(), r.order_latency_ms.p50, r.order_latency_ms.p99, r.latency_ms.p50, r.latency_ms.p99, r.latency_ms.max, r.answers_per_s, r.orders_per_s, r.server_cpu_s, r.exact, r.ledger_ok
            );
            write_json(&json, &serde_json::to_value(&r).map_err(|e| e.to_string())?)
        }
        Command::Abuse { kind, rate, viewers, duration, workers, json } => {
            use onair_bench::abuse::{self, Kind};
            let kinds = kind.map_or_else(|| vec![Kind::OfferFlood, Kind::PliFlood, Kind::Garbage], |k| vec![k]);
            let mut reports = Vec::new();
            for k in kinds {
                let r = abuse::run(k, rate.unwrap_or(k.default_rate()), viewers, Duration::from_secs(duration), workers).await?;
                print!("{}", abuse::table(&r));
                reports.push(r);
            }
            write_json(&json, &serde_json::to_value(&reports).map_err(|e| e.to_string())?)
        }
        Command::Serve { .. } => unreachable!("handled in main"),
    }
}
