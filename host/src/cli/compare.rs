//! `promax compare` and `promax tune`.

use anyhow::{Context, Result};

pub fn cmd_compare(args: promax::compare::CompareArgs) -> Result<()> {
    let exe = std::env::current_exe().context("finding the promax executable")?;
    promax::compare::compare(&args, &exe)
}

pub fn cmd_tune(args: promax::tune::TuneArgs) -> Result<()> {
    let exe = std::env::current_exe().context("finding the promax executable")?;
    promax::tune::tune(&args, &exe)
}
