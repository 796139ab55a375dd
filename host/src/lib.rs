//! The promax host: configuration, data, plugin registry, training and evaluation.
//! The `promax` binary (main.rs) is a thin command line over this library; the command
//! line itself ([`cli`]) lives here, so that the Python bindings ship the same one.

// The command line names this library by its crate name, as the binary did.
extern crate self as promax;

pub mod alloc;
pub mod augment;
pub mod bench;
pub mod cli;
pub mod compare;
pub mod config;
pub mod data;
pub mod eval;
#[cfg(test)]
mod import_graph;
pub mod input_mask;
pub mod llm;
pub mod losses;
pub mod metrics;
pub mod model;
pub mod params;
pub mod plugin;
pub mod profile;
pub mod ranking;
pub mod recommend;
pub mod registry;
pub mod run;
pub mod runfolder;
pub mod sampler;
pub mod trainer;
pub mod tune;
