//! # onair: the server
//!
//! Wires the SFU ([`onair_media`]), WHIP/WHEP signaling
//! ([`onair_signaling`]), the embedded database and the platform around them
//! into one process. `main.rs` is the command line; [`server`] starts
//! everything and is what the integration tests start too.
//!
//! The platform, module by module:
//! - [`accounts`]: users, roles, login sessions and tokens; [`keys`]: stream keys;
//! - [`streams`]: streams, their schedule and state machine, who may watch;
//! - [`channels`]: a host's profile and the defaults an unprepared publish
//!   goes live with; [`images`]: uploaded thumbnails and avatars;
//! - [`chat`]: live chat, its rules and moderation; [`membership`]:
//!   followers, subscribers, tickets, moderators;
//! - [`polls`] and [`questions`]: polls and Q&A during a stream;
//! - [`analytics`]: viewer figures from real connections; [`geo`]: where
//!   viewers watch from; [`best_times`]: when a host's audience is largest;
//! - [`money`]: the coin wallet, its ledger, payments, tips, gifts, tickets,
//!   subscriptions and creator earnings;
//! - [`shop`]: live shopping: catalogue, shelves, flash sales, orders,
//!   vouchers, interactions and their figures;
//! - [`battles`]: PK battles: two live hosts linked, gifts scoring, a
//!   winner, rewards and leaderboards;
//! - [`filters`]: the stream-filter catalogue, premium unlocks and assets;
//! - [`admin`]: the admin console's audit log, reports, host approval and
//!   the server's health over the last day;
//! - [`realtime`]: the event hub behind every client's WebSocket;
//! - [`webhooks`]: signed outbound events; [`ratelimit`]: token buckets;
//! - [`logs`]: log output (text or JSON, no colours off a terminal);
//!   [`client_addr`]: the client's address behind trusted proxies;
//! - [`api`]: the HTTP API and pages; [`gate`]: the platform's answers to
//!   WHIP/WHEP; [`app`]: every service in one place.

pub mod accounts;
pub mod admin;
pub mod analytics;
pub mod api;
pub mod app;
pub mod battles;
pub mod best_times;
pub mod channels;
pub mod chat;
pub mod client_addr;
pub mod clock;
pub mod config;
pub mod db;
pub mod filters;
pub mod gate;
pub mod geo;
pub mod images;
pub mod keys;
pub mod logs;
pub mod membership;
pub mod money;
pub mod polls;
pub mod questions;
pub mod ratelimit;
pub mod realtime;
pub mod recording;
pub mod rooms;
pub mod server;
pub mod shop;
pub mod streams;
pub mod webhooks;

/// Raises this process's open-file limit to its hard limit: a server holds a
/// socket per WebSocket client and the usual soft limit (1024) is far too low.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
