//! One module per view; each renders a `&App` into an area.

pub mod findings;
pub mod help;
pub mod latency;
pub mod overview;
pub mod sessions;
