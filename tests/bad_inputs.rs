//! The bad-input catalogue: one or more cases per class of mistaken or hostile input a user
//! can hand promax (split files, profile tables, configs, run folders, LLM answers). Each
//! case runs the binary and asserts a clean failure (exit 1, no panic or abort) whose
//! message names the file, line or key at fault, and that nothing was overwritten.

mod common;

#[path = "bad_inputs/config.rs"]
mod config;
#[path = "bad_inputs/data.rs"]
mod data;
#[path = "bad_inputs/runs.rs"]
mod runs;
