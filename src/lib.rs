//! wstap: a packet-level analyzer for WebSockets behind reverse proxies.
//!
//! The pipeline, one module per stage:
//! [`capture`] -> [`decode`] -> [`flow`] (reassembly) -> [`proto`] (HTTP,
//! WebSocket) -> [`event`] -> [`correlate`] (hop pairing, sessions) ->
//! [`facts`] -> [`detect`] -> [`record`] -> [`sink`]; [`analysis`] joins
//! correlation, detectors and the time order of records.

pub mod analysis;
pub mod app;
pub mod budget;
pub mod capture;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod cpus;
pub mod decode;
pub mod detect;
pub mod error;
pub mod escape;
pub mod event;
pub mod facts;
pub mod flow;
pub mod generate;
pub mod latency;
pub mod pipeline;
pub mod proto;
pub mod record;
pub mod redact;
pub mod runtime;
pub mod shard;
pub mod signal;
pub mod sink;
pub mod time;
pub mod tui;
