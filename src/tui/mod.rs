//! Terminal dashboard (issue #5): not built yet.

use crate::cli::Args;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;

pub fn run(_args: &Args, _p: Pipeline) -> Result<i32> {
    Err(Error::new("--tui: the dashboard is not built yet"))
}
