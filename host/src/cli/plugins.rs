//! `promax plugins` and `promax plugins show NAME`.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use promax::config;
use promax::registry::Registry;

#[derive(Subcommand)]
pub enum PluginsAction {
    /// Hyperparameters of one plugin, with defaults and docs.
    Show { name: String },
}

pub fn cmd_plugins(action: Option<PluginsAction>, config: Option<&Path>) -> Result<()> {
    let dirs = match config {
        Some(c) => config::load(c, &[])?.plugin_dirs,
        None => Vec::new(),
    };
    let registry = Registry::discover(&dirs)?;
    match action {
        None => {
            println!(
                "{:<16} {:<10} {:<9} {:<10} hyperparameters (defaults; `plugins show NAME` documents them)",
                "name", "kind", "version", "origin"
            );
            for e in registry.entries() {
                let hparams: Vec<String> = e
                    .info
                    .hparams
                    .iter()
                    .map(|h| format!("{}={}", h.name, h.default))
                    .collect();
                println!(
                    "{:<16} {:<10} {:<9} {:<10} {}",
                    e.info.name,
                    e.info.kind.as_str(),
                    e.info.version,
                    e.origin.to_string(),
                    hparams.join(" ")
                );
            }
        }
        Some(PluginsAction::Show { name }) => {
            let e = registry.find(&name)?;
            println!(
                "{} ({}, v{}, {})",
                e.info.name,
                e.info.kind.as_str(),
                e.info.version,
                e.origin
            );
            println!("{}\n", e.info.description);
            println!("hyperparameters ([plugins.{}] in a config):", e.info.name);
            for h in e.info.hparams.iter() {
                println!(
                    "  {:<16} {:<8} default {:<8} {}",
                    h.name, h.ty, h.default, h.doc
                );
            }
        }
    }
    Ok(())
}
