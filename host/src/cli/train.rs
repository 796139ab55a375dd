//! `promax train` (fresh, `--resume`d or `--overwrite`n) and `promax eval`.

use std::path::Path;

use anyhow::{Context, Result};
use promax::augment;
use promax::config;
use promax::data::load_dataset;
use promax::model::Model;
use promax::registry::Registry;
use promax::runfolder;
use promax::trainer;

use super::init_threads;

pub fn cmd_train(
    config: Option<&Path>,
    sets: &[String],
    out: Option<&Path>,
    resume: Option<&Path>,
    overwrite: bool,
) -> Result<()> {
    if let Some(dir) = resume {
        let s = promax::run::resume(dir, None)?;
        print_summary(dir, &s);
        return Ok(());
    }
    let config = config.context("a config file is needed (or --resume RUN_DIR)")?;
    let opts = promax::run::TrainOptions {
        out,
        overwrite,
        on_epoch: None,
    };
    let (dir, s) = promax::run::train(config, sets, opts)?;
    print_summary(&dir, &s);
    Ok(())
}

fn print_summary(dir: &Path, s: &promax::runfolder::RunSummary) {
    println!(
        "{}: best epoch {} of {}, test recall@20 {:.4} ndcg@20 {:.4} ({:.3} s/epoch, {:.3} s/eval)",
        dir.display(),
        s.best_epoch,
        s.epochs_run,
        s.test.get("recall@20").copied().unwrap_or(f64::NAN),
        s.test.get("ndcg@20").copied().unwrap_or(f64::NAN),
        s.seconds_per_epoch,
        s.eval_seconds
    );
}

pub fn cmd_eval(run: &Path, add_groups: bool) -> Result<()> {
    runfolder::require_finished(run)?;
    let cfg = config::load_run(&run.join("config.toml"))?;
    init_threads(cfg.train.threads)?;
    let registry = Registry::discover(&cfg.plugin_dirs)?;
    let ds = load_dataset(&cfg.data)?;
    let model = Model::build(&cfg, &registry, &ds, &augment::cache::SourceViews)?;
    let (valid, test) = trainer::evaluate_run(&cfg, &ds, model, run)?;
    let groups =
        promax::eval::user_groups(&test, &augment::counts(&ds.train, ds.n_users), &cfg.eval.ks);
    if add_groups {
        // Evaluation is deterministic; the tolerance only absorbs summation-order noise.
        promax::runfolder::add_test_groups(run, &test.metrics, groups.clone(), 1e-6)?;
    }
    let out = serde_json::json!({
        "valid": valid.metrics,
        "test": test.metrics,
        "test_groups": groups,
        "valid_users": valid.users.len(),
        "test_users": test.users.len(),
        "valid_seconds": valid.seconds,
        "test_seconds": test.seconds,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
