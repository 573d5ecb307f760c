//! wstap: a packet-level analyzer for WebSockets behind reverse proxies.
//!
//! The pipeline, one module per stage:
//! [`capture`] -> [`decode`] -> [`flow`] (reassembly) -> [`proto`] (HTTP,
//! WebSocket) -> [`event`] -> [`correlate`] (hop pairing, sessions) ->
//! [`detect`] -> [`record`] -> [`sink`].

pub mod app;
pub mod capture;
pub mod cli;
pub mod correlate;
pub mod decode;
pub mod detect;
pub mod error;
pub mod event;
pub mod flow;
pub mod pipeline;
pub mod proto;
pub mod record;
pub mod redact;
pub mod sink;
pub mod time;
pub mod tui;
