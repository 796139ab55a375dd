//! The sources of added items, all under one budget rule: every source gets the same
//! per-user budgets ([`super::budgets`] on the TRAIN counts), never adds an item the user
//! has in train, never adds an item twice, and writes the same augmented set and report.
//! A source only orders each user's unseen items; [`build`] takes the first `budget`.
//!
//! - `random`: uniform over the user's unseen items, from a per-user SplitMix stream of
//!   `(seed, user)`, so the set depends on the seed alone, not on the thread count;
//! - `popular`: the unseen items by train degree, ties to the lower id;
//! - `cf`: the unseen items by the inner product of a trained run's final embeddings
//!   ([`CfRun`]), ranked as `promax recommend` ranks ([`crate::ranking`]), train items
//!   masked;
//! - `profiles`: ProMax's profile-guided retrieval, then the dense order or an LLM.
//!
//! `random`, `popular` and `cf` read no profile and talk to no LLM.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use promax_plugin_api::sdk::rng::{derive_seed, SplitMix};
use rayon::prelude::*;
use serde::Serialize;

use super::{
    augment, budgets, counts, quartiles, retrieval_profiles, retrieve, AugmentConfig, AugmentError,
    AugmentReport, Candidate, Choice, Request, Rerank,
};
use crate::config::{self, AugmentSource, DataConfig, ProfilesConfig};
use crate::data::{load_dataset, Pairs, Profiles};
use crate::ranking::top_unseen;
use crate::runfolder;

/// The stream id of the `random` source in [`derive_seed`] (other users of a run's seed
/// draw other streams).
const RANDOM_STREAM: u64 = 0xA06_5EED;

/// A source of added items, with what it reads.
pub enum Source<'a> {
    /// Uniform over the unseen items, seeded.
    Random { seed: u64 },
    /// Most popular unseen items.
    Popular,
    /// Top unseen items by a trained run's scores.
    Cf(&'a CfRun),
    /// Profile-guided retrieval, ordered by `rerank` (the dense order or an LLM).
    Profiles {
        profiles: &'a Profiles,
        rerank: &'a dyn Rerank,
    },
}

impl Source<'_> {
    pub fn kind(&self) -> AugmentSource {
        match self {
            Source::Random { .. } => AugmentSource::Random,
            Source::Popular => AugmentSource::Popular,
            Source::Cf(_) => AugmentSource::Cf,
            Source::Profiles { .. } => AugmentSource::Profiles,
        }
    }

    fn describe(&self) -> SourceReport {
        let mut r = SourceReport {
            name: self.kind().as_str().into(),
            ..SourceReport::default()
        };
        match self {
            Source::Random { seed } => r.seed = Some(*seed),
            Source::Cf(run) => {
                r.from_run = Some(run.dir.display().to_string());
                r.run_id = run.run_id.clone();
                r.checkpoint_sha256 = Some(run.checkpoint_sha256.clone());
            }
            Source::Popular | Source::Profiles { .. } => {}
        }
        r
    }
}

/// Which source built a set, with its settings (in the report).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SourceReport {
    /// `random`, `popular`, `cf` or `profiles`.
    pub name: String,
    /// The `random` source's seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The `cf` source's run folder, its identity and its checkpoint's SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_sha256: Option<String>,
}

/// A source that has already ordered every user's candidates: the first `budget` stand.
struct InOrder(String);

impl Rerank for InOrder {
    fn describe(&self) -> String {
        self.0.clone()
    }

    fn choose_all(&self, requests: &[Request<'_>]) -> Result<Vec<Choice>, AugmentError> {
        Ok(requests
            .iter()
            .map(|r| Choice {
                items: r.candidates.iter().take(r.budget).map(|c| c.item).collect(),
                ..Choice::default()
            })
            .collect())
    }
}

/// The augmented set (train ∪ added, sorted) of `source` over `n_users` × `n_items`, and
/// its report. Every user below Q3 of the train counts is lifted by its budget; a user
/// whose source has fewer unseen candidates gets what there is (`short_users`,
/// `short_pairs` in the report).
pub fn build(
    train: &Pairs,
    n_users: usize,
    n_items: usize,
    cfg: &AugmentConfig,
    source: Source<'_>,
) -> Result<(Pairs, AugmentReport), AugmentError> {
    let own = own_items(train, n_users, n_items)?;
    let counts = counts(train, n_users);
    let q = quartiles(&counts);
    let budget = budgets(&counts, &q, cfg.target_offset)?;
    let (candidates, order) = match &source {
        Source::Random { seed } => (
            random_candidates(&own, n_items, &budget, *seed),
            InOrder(format!(
                "none: the random source (uniform over unseen items, seed {seed})"
            )),
        ),
        Source::Popular => (
            popular_candidates(&own, n_items, &budget),
            InOrder("none: the popular source (train degree, ties to the lower id)".into()),
        ),
        Source::Cf(run) => (
            run.candidates(&own, &budget)?,
            InOrder(format!(
                "none: the cf source (final embeddings of {})",
                run.dir.display()
            )),
        ),
        Source::Profiles { profiles, .. } => {
            let (pu, pi, dim) = retrieval_profiles(profiles, cfg)?;
            if pu.len() / dim != n_users || pi.len() / dim != n_items {
                return Err(AugmentError::Input(format!(
                    "the profile tables have {} users and {} items, the dataset {n_users} and \
                     {n_items}",
                    pu.len() / dim,
                    pi.len() / dim
                )));
            }
            let c = retrieve(train, &pu, &pi, dim, cfg, &budget)?;
            (c, InOrder(String::new()))
        }
    };
    let rerank: &dyn Rerank = match &source {
        Source::Profiles { rerank, .. } => *rerank,
        _ => &order,
    };
    let (pairs, mut report) = augment(train, &counts, cfg, &candidates, rerank)?;
    report.source = source.describe();
    Ok((pairs, report))
}

/// Each user's train items, sorted; an id outside `n_users` × `n_items` is an error.
fn own_items(train: &Pairs, n_users: usize, n_items: usize) -> Result<Vec<Vec<u32>>, AugmentError> {
    let mut own = vec![Vec::new(); n_users];
    for &(u, i) in train {
        if u as usize >= n_users || i as usize >= n_items {
            return Err(AugmentError::Input(format!(
                "train pair ({u}, {i}) is outside the dataset ({n_users} users, {n_items} items)"
            )));
        }
        own[u as usize].push(i);
    }
    own.iter_mut().for_each(|v| {
        v.sort_unstable();
        v.dedup();
    });
    Ok(own)
}

fn as_candidates(items: impl IntoIterator<Item = u32>) -> Vec<Candidate> {
    items
        .into_iter()
        .map(|item| Candidate {
            item,
            score: 0.0,
            count: 0,
        })
        .collect()
}

/// A uniform integer in `0..n` from 64 random bits (multiply-shift; the bias is below
/// `n / 2^64`).
fn below(bits: u64, n: usize) -> usize {
    ((u128::from(bits) * n as u128) >> 64) as usize
}

/// Per user, `budget` distinct unseen items uniformly at random (all of them when there
/// are fewer), in draw order. User `u` draws from `SplitMix(derive_seed(seed, u, ·))`.
pub fn random_candidates(
    own: &[Vec<u32>],
    n_items: usize,
    budget: &[u32],
    seed: u64,
) -> Vec<Vec<Candidate>> {
    (0..own.len())
        .into_par_iter()
        .map(|u| {
            let (mine, b) = (&own[u], budget[u] as usize);
            let unseen = n_items - mine.len();
            let mut rng = SplitMix(derive_seed(seed, u as u64, RANDOM_STREAM));
            if b == 0 {
                return Vec::new();
            }
            if unseen >= 2 * b {
                // Rejection: at most half the draws are wasted on average.
                let mut chosen = Vec::with_capacity(b);
                let mut seen = HashSet::with_capacity(b);
                while chosen.len() < b {
                    let i = below(rng.next_u64(), n_items) as u32;
                    if mine.binary_search(&i).is_err() && seen.insert(i) {
                        chosen.push(i);
                    }
                }
                return as_candidates(chosen);
            }
            // Few unseen items: a partial Fisher–Yates shuffle of all of them.
            let mut pool: Vec<u32> = (0..n_items as u32)
                .filter(|i| mine.binary_search(i).is_err())
                .collect();
            let take = b.min(pool.len());
            for k in 0..take {
                let j = k + below(rng.next_u64(), pool.len() - k);
                pool.swap(k, j);
            }
            pool.truncate(take);
            as_candidates(pool)
        })
        .collect()
}

/// Per user, the first `budget` unseen items by train degree (most first, ties to the
/// lower id).
pub fn popular_candidates(own: &[Vec<u32>], n_items: usize, budget: &[u32]) -> Vec<Vec<Candidate>> {
    let mut degree = vec![0u32; n_items];
    own.iter().flatten().for_each(|&i| degree[i as usize] += 1);
    let mut order: Vec<u32> = (0..n_items as u32).collect();
    order.sort_by(|&a, &b| degree[b as usize].cmp(&degree[a as usize]).then(a.cmp(&b)));
    own.iter()
        .zip(budget)
        .map(|(mine, &b)| {
            order
                .iter()
                .filter(|i| mine.binary_search(i).is_err())
                .take(b as usize)
                .map(|&item| Candidate {
                    item,
                    score: degree[item as usize] as f32,
                    count: degree[item as usize],
                })
                .collect()
        })
        .collect()
}

/// Users scored per tile by the `cf` source (bounds the exclusion rows and results held).
const CF_TILE_USERS: usize = 1024;

/// The `cf` source's run: a finished run folder trained on the very train split being
/// augmented, whose final embeddings (stored in its `model.safetensors`) score every item.
pub struct CfRun {
    pub dir: PathBuf,
    /// The run's identity (`None` for a folder written before runs had one).
    pub run_id: Option<String>,
    /// SHA-256 of its `model.safetensors` (the checkpoint the scores come from).
    pub checkpoint_sha256: String,
    n_users: usize,
    n_items: usize,
    width: usize,
    /// Final embeddings, users then items.
    emb: Vec<f32>,
}

impl CfRun {
    /// Opens `dir` (`augment.from_run`) for augmenting `train`: the folder must hold a
    /// finished run with final embeddings, whose dataset's train split is exactly `train`.
    /// Errors name the path.
    pub fn open(dir: &Path, train: &Pairs) -> anyhow::Result<CfRun> {
        if dir.as_os_str().is_empty() {
            bail!("the cf source needs a run folder: set augment.from_run (or --from-run RUN_DIR)");
        }
        if !dir.is_dir() {
            bail!("augment.from_run = {}: no such run folder", dir.display());
        }
        let context = || format!("augment.from_run = {}", dir.display());
        let run_id = runfolder::require_finished(dir).with_context(context)?;
        let checkpoint = dir.join("model.safetensors");
        let bytes = std::fs::read(&checkpoint)
            .with_context(|| format!("reading {}", checkpoint.display()))
            .with_context(context)?;
        let checkpoint_sha256 = super::cache::sha256_hex(&bytes);
        drop(bytes);
        let cfg = config::load_run(&dir.join("config.toml")).with_context(context)?;
        // The run's train split, to check it is the one being augmented: no profile read.
        let data = DataConfig {
            profiles: ProfilesConfig::default(),
            ..cfg.data
        };
        let ds = load_dataset(&data)
            .with_context(|| "loading the run's dataset")
            .with_context(context)?;
        let (n_users, n_items) = (ds.n_users, ds.n_items);
        let mine = own_items(train, n_users, n_items)
            .map_err(|e| anyhow::anyhow!("{e}: not the run's dataset"))
            .with_context(context)?;
        let theirs = own_items(&ds.train, n_users, n_items)?;
        if let Some(u) = (0..n_users).find(|&u| mine[u] != theirs[u]) {
            bail!(
                "augment.from_run = {}: the run was trained on another train split ({} pairs; \
                 the split being augmented has {}, and user {u}'s items differ): its scores \
                 would be of another dataset",
                dir.display(),
                ds.train.len(),
                train.len()
            );
        }
        let Some((width, emb)) =
            runfolder::read_final_embeddings(dir, n_users, n_items).with_context(context)?
        else {
            bail!(
                "augment.from_run = {}: model.safetensors holds no final embeddings (written by \
                 an older promax): retrain the run",
                dir.display()
            );
        };
        Ok(CfRun {
            dir: dir.to_path_buf(),
            run_id,
            checkpoint_sha256,
            n_users,
            n_items,
            width,
            emb,
        })
    }

    /// Users and items of the run's dataset.
    pub fn sizes(&self) -> (usize, usize) {
        (self.n_users, self.n_items)
    }

    /// Per user, the top `budget` unseen items by inner product (the user's train items
    /// masked by the scoring kernel), best first, ties to the lower id.
    fn candidates(
        &self,
        own: &[Vec<u32>],
        budget: &[u32],
    ) -> Result<Vec<Vec<Candidate>>, AugmentError> {
        let mut out = vec![Vec::new(); budget.len()];
        let lifted: Vec<u32> = (0..budget.len() as u32)
            .filter(|&u| budget[u as usize] > 0)
            .collect();
        let k = (budget.iter().copied().max().unwrap_or(0) as usize).min(self.n_items);
        if k == 0 {
            return Ok(out);
        }
        let (users, items) = self.emb.split_at(self.n_users * self.width);
        let mine = |u: u32| own[u as usize].as_slice();
        for tile in lifted.chunks(CF_TILE_USERS) {
            let ranked = top_unseen(users, items, self.width, tile, &mine, k)
                .map_err(|e| AugmentError::Input(format!("cf scores: {e}")))?;
            for (&u, r) in tile.iter().zip(ranked) {
                let b = budget[u as usize] as usize;
                out[u as usize] = r
                    .into_iter()
                    .take(b)
                    .map(|(item, score)| Candidate {
                        item,
                        score,
                        count: 0,
                    })
                    .collect();
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts 1, 2, 3, 8 over 12 items: quartiles 1.75, 2.5, 4.25, so with offset 1 users
    /// 0, 1, 2 are lifted to 3, 4, 6 (budgets 2, 2, 3) and user 3 gets nothing.
    pub(crate) fn hand_train() -> Pairs {
        let mut t = vec![(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)];
        t.extend((0..8).map(|i| (3, i)));
        t
    }

    fn added(train: &Pairs, out: &Pairs) -> Vec<Vec<u32>> {
        let mut per = vec![Vec::new(); 4];
        let t: HashSet<_> = train.iter().collect();
        for p in out.iter().filter(|p| !t.contains(p)) {
            per[p.0 as usize].push(p.1);
        }
        per
    }

    /// The hand train split's rule held by `out`; its added items per user.
    fn check_rule(train: &Pairs, out: &Pairs) -> Vec<Vec<u32>> {
        assert!(out.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert!(train.iter().all(|p| out.binary_search(p).is_ok()));
        let per = added(train, out);
        assert_eq!(per.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 3, 0]);
        per
    }

    #[test]
    fn random_respects_budgets_and_depends_on_the_seed_only() {
        let train = hand_train();
        let cfg = AugmentConfig::default();
        let run = |seed, threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| build(&train, 4, 12, &cfg, Source::Random { seed }).unwrap())
        };
        let (a, report) = run(7, 1);
        check_rule(&train, &a);
        assert_eq!(report.source.name, "random");
        assert_eq!(report.source.seed, Some(7));
        assert_eq!(report.short_users, 0);
        assert_eq!(run(7, 3).0, a, "independent of the thread count");
        let others: HashSet<Pairs> = (8..13).map(|s| run(s, 2).0).collect();
        assert!(others.len() > 1 && !others.contains(&a), "the seed matters");
    }

    #[test]
    fn random_takes_every_unseen_item_when_there_are_few() {
        // 4 items: user 0 (1 item) may get 2, all of user 1's 2 unseen; with offset 3 the
        // budgets exceed what is unseen and the report counts the shortfall.
        let train = hand_train();
        let cfg = AugmentConfig {
            target_offset: 3,
            ..AugmentConfig::default()
        };
        let small: Pairs = train.iter().copied().filter(|p| p.1 < 4).collect();
        let (out, report) = build(&small, 4, 4, &cfg, Source::Random { seed: 1 }).unwrap();
        let per = added(&small, &out);
        // Counts 1, 2, 3, 4: quartiles 1.75, 2.5, 3.25; targets 5, 6, 7 over 4 items.
        assert_eq!(per[0].len(), 3);
        assert_eq!(per[1].len(), 2);
        assert_eq!(per[2].len(), 1);
        assert_eq!(report.short_users, 3);
        assert_eq!(report.short_pairs, (4 - 3) + (4 - 2) + (4 - 1));
    }

    #[test]
    fn popular_picks_the_most_popular_unseen_items() {
        // Degrees: item 0 has 4, 1 has 3, 2 has 2, 3..8 have 1, 8..12 none.
        let train = hand_train();
        let (out, report) =
            build(&train, 4, 12, &AugmentConfig::default(), Source::Popular).unwrap();
        let per = check_rule(&train, &out);
        assert_eq!(per[0], [1, 2]);
        assert_eq!(per[1], [2, 3]);
        assert_eq!(per[2], [3, 4, 5]);
        assert_eq!(report.source.name, "popular");
        assert!(report.rerank.contains("popular"), "{}", report.rerank);
    }

    /// A finished run folder over the dataset folder `data` (its `train` split, plus tiny
    /// valid/test files) whose final embeddings are `users` and `items` (width 2).
    pub(crate) fn hand_run(root: &Path, train: &Pairs, users: &[f32], items: &[f32]) -> PathBuf {
        use crate::runfolder::identity;
        use safetensors::tensor::{Dtype, TensorView};
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("train.tsv"), super::super::pairs_tsv(train)).unwrap();
        let n_items = items.len() / 2;
        std::fs::write(data.join("valid.tsv"), format!("0\t{}\n", n_items - 1)).unwrap();
        std::fs::write(data.join("test.tsv"), "1\t2\n").unwrap();
        let run = root.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let mut cfg = crate::config::Config::default();
        cfg.data.path = data;
        let text = crate::config::to_toml(&cfg);
        let id = identity::run_id(&text);
        std::fs::write(run.join("config.toml"), identity::config_file(&text)).unwrap();
        std::fs::write(
            run.join("metrics.json"),
            format!("{{\"run_id\": \"{id}\"}}"),
        )
        .unwrap();
        let bytes = |x: &[f32]| x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        let (ub, ib) = (bytes(users), bytes(items));
        let views = vec![
            (
                "final/users",
                TensorView::new(Dtype::F32, vec![users.len() / 2, 2], &ub).unwrap(),
            ),
            (
                "final/items",
                TensorView::new(Dtype::F32, vec![n_items, 2], &ib).unwrap(),
            ),
        ];
        let meta = Some(std::collections::HashMap::from([(
            "run_id".to_string(),
            id,
        )]));
        std::fs::write(
            run.join("model.safetensors"),
            safetensors::serialize(views, &meta).unwrap(),
        )
        .unwrap();
        run
    }

    #[test]
    fn cf_picks_the_top_scored_unseen_items() {
        let tmp = tempfile::tempdir().unwrap();
        let train = hand_train();
        // Item i is (i, 11 - i). User 0 = (1, 0) prefers high ids, user 1 = (0, 1) low
        // ones, user 2 = (1, 1) scores every item 11 (ties: lower ids first).
        let items: Vec<f32> = (0..12).flat_map(|i| [i as f32, 11.0 - i as f32]).collect();
        let users = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.5];
        let run = hand_run(tmp.path(), &train, &users, &items);
        let cf = CfRun::open(&run, &train).unwrap();
        assert_eq!(cf.sizes(), (4, 12));
        let (out, report) =
            build(&train, 4, 12, &AugmentConfig::default(), Source::Cf(&cf)).unwrap();
        let per = check_rule(&train, &out);
        assert_eq!(per[0], [10, 11]);
        assert_eq!(per[1], [2, 3]);
        assert_eq!(per[2], [3, 4, 5]);
        assert_eq!(report.source.name, "cf");
        assert!(report.source.run_id.is_some() && report.source.checkpoint_sha256.is_some());

        // Another train split (one pair fewer) is refused, naming the folder.
        let e = CfRun::open(&run, &train[1..].to_vec()).err().unwrap();
        let e = format!("{e:#}");
        assert!(
            e.contains("another train split") && e.contains("run"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            CfRun::open(&tmp.path().join("nope"), &train).err().unwrap()
        );
        assert!(e.contains("augment.from_run") && e.contains("nope"), "{e}");
        std::fs::remove_file(run.join("metrics.json")).unwrap();
        let e = format!("{:#}", CfRun::open(&run, &train).err().unwrap());
        assert!(e.contains("no finished run"), "{e}");
    }

    /// Hit shares of the added pairs in the held-out splits on the synthetic data: the
    /// profiles source beats random by far when the profiles carry the planted clusters,
    /// and not by a real margin when they are noise.
    #[test]
    fn planted_profiles_beat_random_on_held_out_hits_and_noise_does_not() {
        use crate::config::{DataConfig, DataKind};
        let share = |signal: f64| {
            let mut dc = DataConfig {
                kind: DataKind::Synthetic,
                ..DataConfig::default()
            };
            dc.synthetic.profile_signal = signal;
            dc.synthetic.mean_interactions = 8;
            dc.synthetic.n_clusters = 20;
            let ds = load_dataset(&dc).unwrap();
            let cfg = AugmentConfig::default();
            let hits = |source| {
                let (out, _) = build(&ds.train, ds.n_users, ds.n_items, &cfg, source).unwrap();
                super::super::evaluate(&ds.train, &out, &ds.valid, &ds.test).share_held_out
            };
            let p = ds.profiles.clone().unwrap();
            let profiles = Source::Profiles {
                profiles: &p,
                rerank: &super::super::DenseOrder,
            };
            (hits(profiles), hits(Source::Random { seed: 1 }))
        };
        let (planted, random) = share(0.7);
        assert!(
            planted > 5.0 * random,
            "planted {planted:.4} vs random {random:.4}"
        );
        let (noise, random) = share(0.0);
        assert!(
            noise < 1.5 * random,
            "noise {noise:.4} vs random {random:.4}"
        );
    }
}
