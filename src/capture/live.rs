//! Live capture (issue #4): not built yet.

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::sink::Sink;

pub fn list_interfaces() -> Result<i32> {
    Err(Error::new("-D: live capture is not built yet"))
}

pub fn run(_args: &Args, _iface: &str, _p: &mut Pipeline, _sink: &mut dyn Sink) -> Result<()> {
    Err(Error::new("-i: live capture is not built yet"))
}
