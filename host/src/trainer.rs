//! The training loop: epochs of BPR batches, backbone aux losses, augmenter losses, L2,
//! Adam; validation every `eval.every` epochs with early stopping; test at the best
//! validation parameters.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use promax_kernels::{graph::EdgeDropout, CpuKernels};
use promax_plugin_api::sdk::Compute;
use promax_plugin_api::GraphSpec;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::data::{Dataset, IdMaps};
use crate::eval::{EvalResult, Evaluator};
use crate::input_mask::{apply, check_mask, Applied, StepMask};
use crate::losses::bpr;
use crate::model::{Model, ViewGraph};
use crate::params::{Adam, ParamStore};
use crate::plugin::{Batch, Dims, Graph, Terms};
use crate::runfolder::resume::{self, Progress, StoreState, TrainState, CHECKPOINT};
use crate::runfolder::{self, EpochRow, RunSummary};
use crate::sampler::{user_items, Epoch, Sampler};
use promax_plugin_api::sdk::rng::derive_seed;

/// Per-batch buffers, reused across steps.
struct Buffers {
    embs: Vec<Vec<f32>>,
    d_embs: Vec<Vec<f32>>,
    dropouts: Vec<EdgeDropout>,
}

/// Everything a run needs between epochs.
pub struct Trainer<'a> {
    cfg: &'a Config,
    pub model: Model,
    kernels: CpuKernels,
    adam: Adam,
    buffers: Buffers,
    step: u64,
}

impl<'a> Trainer<'a> {
    pub fn new(cfg: &'a Config, model: Model) -> Result<Trainer<'a>> {
        let stores: Vec<&_> = model.stores.iter().collect();
        let adam = Adam::new(cfg.train.lr as f32, &stores);
        let n = model.backbone.dims().n_values();
        let v = model.views.len();
        Ok(Trainer {
            cfg,
            adam,
            buffers: Buffers {
                embs: vec![vec![0.0; n]; v],
                d_embs: vec![vec![0.0; n]; v],
                dropouts: (0..v).map(|_| EdgeDropout::new()).collect(),
            },
            kernels: CpuKernels,
            model,
            step: 0,
        })
    }

    /// One optimisation step on a batch; returns the loss terms.
    pub fn step(&mut self, epoch: u64, users: &[u32], pos: &[u32], neg: &[u32]) -> Result<Terms> {
        self.step += 1;
        let terms = self.gradients(epoch, self.step, users, pos, neg)?;
        let mut stores: Vec<&mut _> = self.model.stores.iter_mut().collect();
        self.adam.step(&mut stores);
        check_finite(&terms, self.step, epoch)?;
        Ok(terms)
    }

    /// Every loss term of the batch as step `step` sees it (its seeds: masks, dropout),
    /// their gradients left in the stores; the parameters are as before.
    pub fn gradients(
        &mut self,
        epoch: u64,
        step: u64,
        users: &[u32],
        pos: &[u32],
        neg: &[u32],
    ) -> Result<Terms> {
        let seed = self.cfg.train.seed;
        let batch = Batch {
            users,
            pos,
            neg,
            epoch,
            step,
            seed: derive_seed(seed, step, 0),
        };
        let k = &self.kernels;
        let m = &mut self.model;
        let Buffers {
            embs,
            d_embs,
            dropouts,
        } = &mut self.buffers;
        // The flow of docs/architecture.md, "One training step".
        let masked = mask_inputs(m, batch)?;
        let graphs = draw_graphs(&m.views, dropouts, m.backbone.graph_spec(), seed, step);
        for (&graph, out) in graphs.iter().zip(embs.iter_mut()) {
            m.backbone.forward(k, &m.stores[0], graph, out)?;
        }
        zero_gradients(d_embs, &mut m.stores);
        let (store0, augmenter_stores) = m.stores.split_at_mut(1);
        let store0 = &mut store0[0];
        let mut terms = vec![bpr_term(m.backbone.dims(), batch, &embs[0], &mut d_embs[0])];
        terms.extend(
            m.backbone
                .aux_loss(k, store0, graphs[0], batch, &embs[0], &mut d_embs[0])?,
        );
        for (aug, store) in m.augmenters.iter_mut().zip(augmenter_stores.iter_mut()) {
            terms.extend(aug.loss(k, batch, embs, d_embs, store)?);
        }
        for (&graph, d) in graphs.iter().zip(d_embs.iter()) {
            m.backbone.backward(k, store0, graph, d)?;
        }
        if let Some(applied) = masked {
            applied.finish(store0, augmenter_stores);
        }
        terms.push(l2_term(&mut m.stores, self.cfg.train.reg_weight as f32));
        Ok(terms)
    }

    /// Evaluates the current parameters on one split.
    pub fn evaluate(&mut self, ev: &mut Evaluator, scratch: &mut Vec<f32>) -> Result<EvalResult> {
        let start = Instant::now();
        self.model.embed(&self.kernels, scratch)?;
        let dims = self.model.backbone.dims();
        ev.evaluate(&Compute::new(self.kernels.as_ref()), dims.emb(scratch))
            .map(|r| EvalResult {
                seconds: start.elapsed().as_secs_f64(),
                ..r
            })
            .map_err(|e| anyhow!(e))
    }

    fn snapshot(&self) -> Vec<Vec<f32>> {
        self.model.stores.iter().map(|s| s.data.clone()).collect()
    }

    fn restore(&mut self, snap: Vec<Vec<f32>>) {
        for (s, d) in self.model.stores.iter_mut().zip(snap) {
            s.data = d;
        }
    }
}

/// Asks every masking augmenter for this step's input rows and writes their vectors into
/// the backbone's parameters (undone by `Applied::finish` after the backward passes).
fn mask_inputs(m: &mut Model, batch: Batch<'_>) -> Result<Option<Applied>> {
    let Some(inputs) = &m.node_inputs else {
        return Ok(None);
    };
    if m.masking.is_empty() {
        return Ok(None);
    }
    let mut masks = Vec::with_capacity(m.masking.len());
    for &j in &m.masking {
        let (aug, store) = (&mut m.augmenters[j], &m.stores[1 + j]);
        let (nodes, table) = aug.input_mask(batch, store)?;
        let vector = check_mask(aug.name(), store, inputs, &nodes, table)?;
        masks.push(StepMask {
            augmenter: j,
            vector,
            nodes,
        });
    }
    let (store0, augmenter_stores) = m.stores.split_at_mut(1);
    Ok(Some(apply(
        inputs,
        &mut store0[0],
        &masks,
        augmenter_stores,
    )))
}

/// The graph of every view for one step: edge-dropped (seeded by step and view) when the
/// backbone trains with dropout, else the views as built.
fn draw_graphs<'g>(
    views: &'g [ViewGraph],
    dropouts: &'g mut [EdgeDropout],
    spec: GraphSpec,
    seed: u64,
    step: u64,
) -> Vec<Graph<'g>> {
    let drop = spec.uses_graph && spec.keep_rate < 1.0;
    views
        .iter()
        .zip(dropouts.iter_mut())
        .enumerate()
        .map(|(v, (g, d))| {
            let (adj, adj_t) = if drop {
                d.apply(
                    &g.adj,
                    spec.keep_rate,
                    derive_seed(seed, step, v as u64 + 1),
                )
            } else {
                (&g.adj, &g.adj)
            };
            Graph::training(adj, adj_t, v)
        })
        .collect()
}

/// BPR on view 0, by the host: its gradient goes into `d_emb`.
fn bpr_term(dims: Dims, batch: Batch<'_>, emb: &[f32], d_emb: &mut [f32]) -> (String, f64) {
    let value = bpr(
        dims.emb(emb),
        batch.users,
        batch.pos,
        batch.neg,
        &mut dims.emb_buf(d_emb),
    );
    ("bpr".to_owned(), value)
}

/// `reg · Σ‖W‖²` over every table of every store, its gradient added to theirs.
fn l2_term(stores: &mut [ParamStore], reg: f32) -> (String, f64) {
    let value: f64 = stores.iter_mut().map(|s| s.add_l2(reg)).sum();
    ("reg".to_owned(), value)
}

/// Clears the embedding gradients of every view and every store's parameter gradients:
/// every loss of a step accumulates into them.
fn zero_gradients(d_embs: &mut [Vec<f32>], stores: &mut [ParamStore]) {
    for d in d_embs.iter_mut() {
        d.iter_mut().for_each(|x| *x = 0.0);
    }
    for s in stores.iter_mut() {
        s.zero_grad();
    }
}

/// The first non-finite loss term, as an error naming the term, step and epoch.
fn check_finite(terms: &Terms, step: u64, epoch: u64) -> Result<()> {
    match terms.iter().find(|(_, value)| !value.is_finite()) {
        Some((name, value)) => {
            bail!("loss term `{name}` is {value} at step {step} (epoch {epoch})")
        }
        None => Ok(()),
    }
}

fn progress_bar(len: u64, epoch: usize) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "epoch {prefix:>4} [{bar:30}] {pos}/{len} batches {per_sec} loss {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_prefix(epoch.to_string());
    pb
}

/// Where a run writes, and whether it continues from a checkpoint.
pub struct RunTarget<'p> {
    /// The run folder (its config.toml already written).
    pub dir: &'p Path,
    /// The run's identity, carried by every file written.
    pub run_id: &'p str,
    /// Continue from `dir`'s checkpoint when there is one.
    pub resume: bool,
    /// Called after every epoch (its files written); an error stops the run there, as a
    /// kill would, resumable from its last checkpoint.
    pub on_epoch: Option<&'p EpochHook<'p>>,
}

/// What [`RunTarget::on_epoch`] is: a progress report (the Python bindings' callback, and
/// their check for Ctrl-C).
pub type EpochHook<'a> = dyn Fn(&EpochRow) -> Result<()> + Sync + 'a;

impl Trainer<'_> {
    /// The checkpoint of the current state (`best`: the best parameters so far).
    fn state(
        &self,
        progress: &Progress,
        sampler: &ChaCha8Rng,
        best: Option<&Vec<Vec<f32>>>,
    ) -> TrainState {
        let (adam_step, moments) = self.adam.state();
        let stores = self
            .model
            .stores
            .iter()
            .zip(moments)
            .enumerate()
            .map(|(k, (s, (m, v)))| StoreState {
                owner: s.owner.clone(),
                params: s.data.clone(),
                adam_m: m.clone(),
                adam_v: v.clone(),
                best: best.map(|b| b[k].clone()),
            })
            .collect();
        TrainState {
            progress: progress.clone(),
            step: self.step,
            adam_step,
            sampler_word_pos: sampler.get_word_pos(),
            stores,
        }
    }

    /// Puts a checkpoint's parameters, moments and step back; returns the best parameters.
    fn restore_state(&mut self, state: TrainState) -> Result<Option<Vec<Vec<f32>>>> {
        let stores = &mut self.model.stores;
        if state.stores.len() != stores.len() {
            bail!(
                "the checkpoint holds {} parameter stores, the model has {}",
                state.stores.len(),
                stores.len()
            );
        }
        let mut moments = Vec::with_capacity(stores.len());
        let mut best = Vec::with_capacity(stores.len());
        for (s, c) in stores.iter_mut().zip(state.stores) {
            let len = s.data.len();
            let best_len = c.best.as_ref().map_or(len, Vec::len);
            if c.owner != s.owner || c.params.len() != len || best_len != len {
                bail!(
                    "the checkpoint's `{}` tables ({} values, best {best_len}) do not fit the \
                     model's `{}` ({len})",
                    c.owner,
                    c.params.len(),
                    s.owner
                );
            }
            s.data = c.params;
            moments.push((c.adam_m, c.adam_v));
            best.push(c.best);
        }
        self.adam
            .restore(state.adam_step, moments)
            .map_err(|e| anyhow!("the checkpoint's optimiser state: {e}"))?;
        self.step = state.step;
        Ok(best.into_iter().collect())
    }
}

/// A checkpoint's loop state must fit the run's config: it is read from a file.
fn check_progress(p: &Progress, cfg: &Config) -> Result<()> {
    let max = cfg.train.max_epochs;
    if p.epoch > max || p.rows.len() != p.epoch || p.best_epoch > p.epoch {
        bail!(
            "the checkpoint is at epoch {} with {} epoch rows and best epoch {}, which does not \
             fit train.max_epochs = {max}: it was not written by this run",
            p.epoch,
            p.rows.len(),
            p.best_epoch
        );
    }
    if p.rows.iter().enumerate().any(|(i, r)| r.epoch != i + 1) {
        bail!(
            "the checkpoint's epoch rows are not epochs 1 to {}",
            p.epoch
        );
    }
    Ok(())
}

/// Whether epoch `epoch` ends with a checkpoint: `train.checkpoint_every` epochs, or (0)
/// at each evaluation.
fn checkpoint_due(cfg: &Config, epoch: usize, evaluated: bool) -> bool {
    match cfg.train.checkpoint_every {
        0 => evaluated,
        n => epoch.is_multiple_of(n),
    }
}

/// Trains the configured model on `ds` into `target.dir`: epochs, validation, early
/// stopping, checkpoints; then the test at the best validation parameters and the result
/// files (`model.safetensors`, then `metrics.json`, which marks the run finished).
pub fn train(cfg: &Config, ds: &Dataset, model: Model, target: &RunTarget) -> Result<RunSummary> {
    let (out, run_id) = (target.dir, target.run_id);
    let metric = cfg.eval.metric.clone();
    let mut valid_ev = Evaluator::new(ds.n_users, ds.n_items, &ds.train, &ds.valid, &cfg.eval.ks);
    let mut test_ev = Evaluator::new(ds.n_users, ds.n_items, &ds.train, &ds.test, &cfg.eval.ks);
    let mut t = Trainer::new(cfg, model)?;
    let seen = user_items(ds.n_users, ds.n_items, &ds.train);
    let sampler = Sampler::new(&ds.train, &seen).map_err(|e| anyhow!("{e}"))?;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.train.seed, 0, 0xE0));
    let mut p = Progress::default();
    let mut best_snap: Option<Vec<Vec<f32>>> = None;
    if let Some(ids) = &ds.ids {
        // The tokens behind the ids, beside the run, for anyone reading its embeddings.
        for (name, text) in IdMaps::FILES.iter().zip(ids.tsv()) {
            runfolder::write_atomic(&out.join(name), text.as_bytes())?;
        }
    }
    let resumed = if target.resume {
        resume::read_state(out, run_id)?
    } else {
        None
    };
    if let Some(state) = resumed {
        check_progress(&state.progress, cfg)
            .with_context(|| format!("resuming from {}", out.join(CHECKPOINT).display()))?;
        rng.set_word_pos(state.sampler_word_pos);
        p = state.progress.clone();
        best_snap = t
            .restore_state(state)
            .with_context(|| format!("resuming from {}", out.join(CHECKPOINT).display()))?;
        tracing::info!(
            "resuming {} after epoch {} (best {metric} {:.4} at epoch {})",
            out.display(),
            p.epoch,
            p.best.unwrap_or(f64::NAN),
            p.best_epoch
        );
    }
    let mut epoch_data = Epoch::default();
    let mut scratch = Vec::new();
    let bs = cfg.train.batch_size;
    let run_start = Instant::now();
    let total_before = p.total_secs;
    let first = p.epoch + 1;
    for epoch in first..=cfg.train.max_epochs {
        if p.done {
            break;
        }
        let start = Instant::now();
        sampler.epoch(&mut rng, &mut epoch_data);
        let n_batches = epoch_data.users.len().div_ceil(bs);
        let pb = progress_bar(n_batches as u64, epoch);
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        for b in 0..n_batches {
            let r = b * bs..((b + 1) * bs).min(epoch_data.users.len());
            let terms = t.step(
                epoch as u64,
                &epoch_data.users[r.clone()],
                &epoch_data.pos[r.clone()],
                &epoch_data.neg[r],
            )?;
            for (name, v) in terms {
                *sums.entry(name).or_default() += v;
            }
            pb.inc(1);
            pb.set_message(format!(
                "{:.4}",
                sums.values().sum::<f64>() / (b + 1) as f64
            ));
        }
        pb.finish_and_clear();
        let secs = start.elapsed().as_secs_f64();
        p.train_secs += secs;
        p.epoch = epoch;
        let losses: BTreeMap<String, f64> = sums
            .into_iter()
            .map(|(k, v)| (k, v / n_batches.max(1) as f64))
            .collect();
        let mut row = EpochRow {
            epoch,
            losses,
            valid: None,
            seconds: secs,
            eval_seconds: None,
        };
        let evaluated = epoch % cfg.eval.every == 0 || epoch == cfg.train.max_epochs;
        if evaluated {
            let res = t.evaluate(&mut valid_ev, &mut scratch)?;
            let e_secs = res.seconds;
            p.eval_secs += e_secs;
            p.n_evals += 1;
            let value = *res
                .metrics
                .get(&metric)
                .ok_or_else(|| anyhow!("unknown metric `{metric}`"))?;
            tracing::info!(
                "epoch {epoch}: loss {:.5}, valid {metric} {value:.4} ({secs:.2}s train, {e_secs:.2}s eval)",
                row.losses.values().sum::<f64>()
            );
            row.valid = Some(res.metrics);
            row.eval_seconds = Some(e_secs);
            if value > p.best.unwrap_or(f64::NEG_INFINITY) {
                p.best = Some(value);
                p.best_epoch = epoch;
                best_snap = Some(t.snapshot());
                p.bad_evals = 0;
            } else {
                p.bad_evals += 1;
            }
            if p.bad_evals >= cfg.eval.patience {
                p.stopped_early = true;
                p.done = true;
            }
        }
        p.rows.push(row);
        p.done |= epoch == cfg.train.max_epochs;
        if evaluated || p.done || checkpoint_due(cfg, epoch, evaluated) {
            p.total_secs = total_before + run_start.elapsed().as_secs_f64();
            runfolder::write_epochs(out, &p.rows, run_id)?;
        }
        if p.done || checkpoint_due(cfg, epoch, evaluated) {
            resume::write_state(out, run_id, &t.state(&p, &rng, best_snap.as_ref()))?;
        }
        if let (Some(hook), Some(row)) = (target.on_epoch, p.rows.last()) {
            hook(row).with_context(|| format!("stopped after epoch {epoch}"))?;
        }
    }
    runfolder::write_epochs(out, &p.rows, run_id)?;
    if let Some(snap) = best_snap {
        t.restore(snap);
    }
    let valid = t.evaluate(&mut valid_ev, &mut scratch)?;
    let test = t.evaluate(&mut test_ev, &mut scratch)?;
    tracing::info!(
        "best epoch {}: test recall@20 {:.4}, ndcg@20 {:.4}",
        p.best_epoch,
        test.metrics.get("recall@20").copied().unwrap_or(f64::NAN),
        test.metrics.get("ndcg@20").copied().unwrap_or(f64::NAN)
    );
    let summary = RunSummary {
        run_id: run_id.to_owned(),
        dataset: ds.name.clone(),
        backbone: t.model.backbone.name().to_owned(),
        augmenters: t
            .model
            .augmenters
            .iter()
            .map(|a| a.name().to_owned())
            .collect(),
        seed: cfg.train.seed,
        best_epoch: p.best_epoch,
        epochs_run: p.epoch,
        stopped_early: p.stopped_early,
        seconds_per_epoch: p.train_secs / p.epoch.max(1) as f64,
        eval_seconds: p.eval_secs / p.n_evals.max(1) as f64,
        total_seconds: total_before + run_start.elapsed().as_secs_f64(),
        threads: rayon::current_num_threads(),
        kernel_path: promax_kernels::simd::active().name().to_owned(),
        n_params: t.model.n_params(),
        test_groups: crate::eval::user_groups(
            &test,
            &crate::augment::counts(&ds.train, ds.n_users),
            &cfg.eval.ks,
        ),
        valid: valid.metrics,
        test: test.metrics,
    };
    runfolder::write_checkpoint(out, &t.model, &scratch, run_id)?;
    runfolder::write_metrics(out, &summary)?;
    resume::remove_state(out)?;
    Ok(summary)
}

/// The run folder for a config: `--out` if given, else `run.out_dir/run.name` (a single
/// folder name: it cannot escape `run.out_dir`), else a name from dataset, model and seed
/// (suffixed `-2`, `-3`, … if taken).
pub fn run_dir(cfg: &Config, ds: &Dataset, out: Option<&Path>) -> Result<PathBuf> {
    if let Some(o) = out {
        return Ok(o.to_owned());
    }
    let name = &cfg.run.name;
    if !name.is_empty() {
        let mut parts = Path::new(name).components();
        let single = matches!(
            (parts.next(), parts.next()),
            (Some(std::path::Component::Normal(_)), None)
        );
        if !single || name.contains(['/', '\\']) {
            bail!(
                "run.name = {name:?} must be one folder name inside run.out_dir ({}), without \
                 `/`, `..` or a root; use --out DIR for a folder elsewhere",
                cfg.run.out_dir.display()
            );
        }
        return Ok(cfg.run.out_dir.join(name));
    }
    let mut model = cfg.model.backbone.clone();
    for a in &cfg.model.augmenters {
        model.push('+');
        model.push_str(a);
    }
    let base = format!("{}-{}-s{}", ds.name, model, cfg.train.seed);
    let mut dir = cfg.run.out_dir.join(&base);
    let mut n = 2;
    while dir.exists() {
        dir = cfg.run.out_dir.join(format!("{base}-{n}"));
        n += 1;
    }
    Ok(dir)
}

/// Loads a finished run's parameters and evaluates them on valid and test.
pub fn evaluate_run(
    cfg: &Config,
    ds: &Dataset,
    mut model: Model,
    run: &Path,
) -> Result<(EvalResult, EvalResult)> {
    runfolder::load_checkpoint(run, &mut model)
        .with_context(|| format!("run folder {}", run.display()))?;
    let mut valid_ev = Evaluator::new(ds.n_users, ds.n_items, &ds.train, &ds.valid, &cfg.eval.ks);
    let mut test_ev = Evaluator::new(ds.n_users, ds.n_items, &ds.train, &ds.test, &cfg.eval.ks);
    let mut t = Trainer::new(cfg, model)?;
    let mut scratch = Vec::new();
    let v = t.evaluate(&mut valid_ev, &mut scratch)?;
    let te = t.evaluate(&mut test_ev, &mut scratch)?;
    Ok((v, te))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<EpochRow> {
        (1..=n)
            .map(|epoch| EpochRow {
                epoch,
                losses: BTreeMap::new(),
                valid: None,
                seconds: 0.0,
                eval_seconds: None,
            })
            .collect()
    }

    #[test]
    fn a_checkpoint_that_does_not_fit_the_config_is_refused() {
        let mut cfg = Config::default();
        cfg.train.max_epochs = 10;
        let ok = Progress {
            epoch: 4,
            best_epoch: 3,
            rows: rows(4),
            ..Progress::default()
        };
        assert!(check_progress(&ok, &cfg).is_ok());
        for bad in [
            Progress {
                epoch: usize::MAX,
                ..ok.clone()
            },
            Progress {
                epoch: 11,
                rows: rows(11),
                ..ok.clone()
            },
            Progress {
                rows: rows(3),
                ..ok.clone()
            },
            Progress {
                best_epoch: 5,
                ..ok.clone()
            },
        ] {
            let err = format!("{:#}", check_progress(&bad, &cfg).unwrap_err());
            assert!(err.contains("train.max_epochs = 10"), "{err}");
        }
        let mut shuffled = ok.clone();
        shuffled.rows.swap(0, 1);
        assert!(check_progress(&shuffled, &cfg).is_err());
    }
}

/// The host's side of input masks (RLMRec-Gen) against finite differences: the gradient
/// routed into the augmenter's mask vector, and the masked rows' own (L2 only).
#[cfg(test)]
mod input_mask_tests {
    use super::*;
    use crate::config;
    use crate::data::load_dataset;
    use crate::model::FilesOnly;
    use crate::registry::Registry;

    fn config_for(backbone: &str) -> Config {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let files = [
            root.join("base.toml"),
            root.join("datasets/synthetic.toml"),
            root.join(format!("models/{backbone}.toml")),
            root.join("models/rlmrec-gen.toml"),
        ];
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let sets: Vec<String> = [
            "data.synthetic.n_users=20",
            "data.synthetic.n_items=30",
            "data.synthetic.n_clusters=3",
            "data.synthetic.profile_dim=6",
            "plugins.rlmrec-gen.width=8",
            "plugins.rlmrec-gen.recon_weight=20.0",
            "plugins.rlmrec-gen.tau=1.0",
            "plugins.rlmrec-gen.mask_ratio=0.3",
            "train.reg_weight=0.01",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("plugins.{backbone}.dim=8")])
        .chain((backbone == "lightgcn").then(|| "plugins.lightgcn.keep_rate=1.0".to_owned()))
        .collect();
        // No process environment: other tests set PROMAX_ variables while this one runs.
        config::load_layers_with_env(&files, &sets, std::iter::empty()).unwrap()
    }

    fn total(t: &mut Trainer<'_>, batch: (&[u32], &[u32], &[u32])) -> f64 {
        let terms = t.gradients(1, 5, batch.0, batch.1, batch.2).unwrap();
        terms.iter().map(|(_, v)| v).sum()
    }

    #[test]
    fn mask_vector_and_masked_rows_match_finite_differences() {
        for backbone in ["mf", "lightgcn"] {
            let cfg = config_for(backbone);
            let ds = load_dataset(&cfg.data).unwrap();
            let model = Model::build(&cfg, &Registry::builtin(), &ds, &FilesOnly).unwrap();
            let mut t = Trainer::new(&cfg, model).unwrap();
            // A non-zero mask vector, so that the masked forward differs from a zero row.
            let mask = t.model.stores[1].layout[4];
            for (i, x) in t.model.stores[1].data[mask.offset..mask.offset + 8]
                .iter_mut()
                .enumerate()
            {
                *x = 0.3 * (i as f32 - 3.5) / 3.5;
            }
            let batch: (&[u32], &[u32], &[u32]) = (&[0, 3, 7, 12], &[1, 4, 9, 20], &[2, 5, 11, 29]);
            total(&mut t, batch);
            let nodes = t.model.augmenters[0]
                .input_mask(
                    Batch {
                        users: batch.0,
                        pos: batch.1,
                        neg: batch.2,
                        epoch: 1,
                        step: 5,
                        seed: derive_seed(cfg.train.seed, 5, 0),
                    },
                    &t.model.stores[1],
                )
                .unwrap()
                .0;
            assert_eq!(nodes.len(), 15, "⌊50 · 0.3⌋");
            let grads: Vec<Vec<f32>> = t.model.stores.iter().map(|s| s.grad.clone()).collect();
            // (store, flat index): the mask vector; a masked node's input row; an unmasked one.
            let user_rows = t.model.stores[0].layout[0];
            let row_of = |n: u32| {
                assert!((n as usize) < 20, "a user node");
                user_rows.offset + n as usize * 8
            };
            let masked_user = *nodes.iter().find(|&&n| n < 20).expect("a masked user");
            let free_user = (0..20u32).find(|n| !nodes.contains(n)).unwrap();
            let mut probes: Vec<(usize, usize)> = (0..8).map(|c| (1, mask.offset + c)).collect();
            probes.extend((0..3).map(|c| (0, row_of(masked_user) + c)));
            probes.extend((0..3).map(|c| (0, row_of(free_user) + c)));
            for (s, i) in probes {
                let h = 1e-3f32;
                let x = t.model.stores[s].data[i];
                t.model.stores[s].data[i] = x + h;
                let up = total(&mut t, batch);
                t.model.stores[s].data[i] = x - h;
                let down = total(&mut t, batch);
                t.model.stores[s].data[i] = x;
                let numeric = (up - down) / (2.0 * f64::from(h));
                let analytic = f64::from(grads[s][i]);
                assert!(
                    (numeric - analytic).abs() <= 2e-2 * numeric.abs().max(analytic.abs()) + 2e-3,
                    "{backbone}: store {s} index {i}: numeric {numeric} vs analytic {analytic}"
                );
            }
            // A masked row's gradient is its L2 term's alone.
            let r = row_of(masked_user);
            let w = t.model.stores[0].data[r];
            assert!((grads[0][r] - 2.0 * 0.01 * w).abs() < 1e-6, "{backbone}");
        }
    }

    #[test]
    fn a_backbone_without_node_inputs_is_refused_by_name() {
        let cfg = config_for("mf");
        let ds = load_dataset(&cfg.data).unwrap();
        let model = Model::build(&cfg, &Registry::builtin(), &ds, &FilesOnly).unwrap();
        let aug = model
            .augmenters
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>();
        assert_eq!(aug, ["rlmrec-gen"]);
        // No built-in backbone lacks node inputs; the refusal itself is unit-tested here.
        let err = crate::model::masking_augmenters(&model.augmenters, "plain", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("backbone `plain` declares no node-input tables"),
            "{err}"
        );
        assert!(err.contains("augmenter `rlmrec-gen`"), "{err}");
        assert_eq!(
            crate::model::masking_augmenters(&model.augmenters, "mf", true).unwrap(),
            [0]
        );
    }
}
