//! # onair: the server
//!
//! Wires the SFU ([`onair_media`]), WHIP/WHEP signaling
//! ([`onair_signaling`]), the embedded database and the web pages into one
//! process. `main.rs` is the command line; [`server`] starts everything and is
//! what the integration tests start too.

pub mod app;
pub mod config;
pub mod db;
pub mod keys;
pub mod server;
