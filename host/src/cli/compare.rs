//! `promax compare`.

use anyhow::{Context, Result};

pub fn cmd_compare(args: promax::compare::CompareArgs) -> Result<()> {
    let exe = std::env::current_exe().context("finding the promax executable")?;
    promax::compare::compare(&args, &exe)
}
