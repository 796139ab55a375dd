//! Top-K recommendations from a trained run folder: the final embeddings of its
//! checkpoint, every item scored by inner product (the training objective's score), the
//! user's TRAIN items excluded, best first.
//!
//! Users are scored in tiles of [`TILE_USERS`] through the same top-K kernel the evaluator
//! uses, and `--all` streams each tile's lines to the output file before the next tile is
//! scored: memory is the embeddings plus one tile (`TILE_USERS × k` results and the tile's
//! exclusion rows), whatever the number of users. The file is written under a temporary
//! name and renamed when complete.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use promax_kernels::{CpuKernels, CsrMatrix};
use promax_plugin_api::sdk::Compute;
use promax_plugin_api::TopkRequest;

use crate::config::{self, Config, DataConfig, ProfilesConfig};
use crate::data::load_dataset;
use crate::model::Model;
use crate::registry::Registry;
use crate::runfolder::{self, temp_path};
use crate::sampler::user_items;

/// The final embeddings of a run whose checkpoint holds only parameter tables: the model
/// is built through its plugins (with the dataset's profiles) and run forward.
fn rebuild_final_embeddings(cfg: &Config, run_dir: &Path) -> Result<(usize, Vec<f32>)> {
    let registry = Registry::discover(&cfg.plugin_dirs)?;
    let ds = load_dataset(&cfg.data)?;
    let mut model = Model::build(cfg, &registry, &ds)?;
    runfolder::load_checkpoint(run_dir, &mut model)?;
    let mut emb = Vec::new();
    model.embed(&CpuKernels, &mut emb)?;
    Ok((model.width, emb))
}

/// Users per scoring tile.
pub const TILE_USERS: usize = 1024;

/// A trained model ready to recommend.
pub struct Recommender {
    emb: Vec<f32>,
    width: usize,
    n_users: usize,
    n_items: usize,
    train: CsrMatrix,
    kernels: CpuKernels,
}

/// One recommended item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rec {
    pub item: u32,
    pub score: f32,
}

impl Recommender {
    /// Loads `run_dir`: its `config.toml`, the dataset's train split and the final
    /// embeddings stored in `model.safetensors`. No plugin is built and no profile is read,
    /// so memory is the embeddings and the train split whatever the model; a checkpoint
    /// written without final embeddings is rebuilt through its plugins instead.
    pub fn from_run(run_dir: &Path) -> Result<Recommender> {
        let context = || format!("run folder {}", run_dir.display());
        runfolder::require_finished(run_dir)?;
        let cfg = config::load_run(&run_dir.join("config.toml")).with_context(context)?;
        // Scores need the train split only: the profiles stay on disk.
        let data = DataConfig {
            profiles: ProfilesConfig::default(),
            ..cfg.data.clone()
        };
        let ds = load_dataset(&data)?;
        let stored = runfolder::read_final_embeddings(run_dir, ds.n_users, ds.n_items)
            .with_context(context)?;
        let (width, emb) = match stored {
            Some(found) => found,
            None => rebuild_final_embeddings(&cfg, run_dir).with_context(context)?,
        };
        Ok(Recommender {
            emb,
            width,
            n_users: ds.n_users,
            n_items: ds.n_items,
            train: user_items(ds.n_users, ds.n_items, &ds.train),
            kernels: CpuKernels,
        })
    }

    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// The top `k` items of each of `users` (train items excluded), best first; a user
    /// with fewer than `k` rankable items gets fewer. Errors name an unknown user id.
    pub fn top_k(&self, users: &[u32], k: usize) -> Result<Vec<Vec<Rec>>> {
        if let Some(&u) = users.iter().find(|&&u| u as usize >= self.n_users) {
            bail!(
                "user {u} is out of range: the run's dataset has users 0..{}",
                self.n_users
            );
        }
        if k == 0 {
            bail!("k must be at least 1");
        }
        let w = self.width;
        let queries: Vec<f32> = users
            .iter()
            .flat_map(|&u| {
                self.emb[u as usize * w..(u as usize + 1) * w]
                    .iter()
                    .copied()
            })
            .collect();
        let triplets: Vec<(u32, u32, f32)> = users
            .iter()
            .enumerate()
            .flat_map(|(r, &u)| {
                let own = self.train.row(u as usize).0;
                own.iter().map(move |&i| (r as u32, i, 1.0))
            })
            .collect();
        let exclude = CsrMatrix::from_triplets(users.len(), self.n_items, &triplets);
        let (mut items, mut scores) = (vec![0u32; users.len() * k], vec![0f32; users.len() * k]);
        Compute::new(self.kernels.as_ref())
            .score_topk(
                TopkRequest {
                    queries: queries.as_slice().into(),
                    items: self.emb[self.n_users * w..].into(),
                    dim: w,
                    exclude: exclude.view(),
                    k,
                },
                &mut items,
                &mut scores,
            )
            .map_err(|e| anyhow!(e))?;
        Ok(items
            .chunks_exact(k)
            .zip(scores.chunks_exact(k))
            .map(|(is, ss)| {
                is.iter()
                    .zip(ss)
                    .filter(|(&i, _)| i != u32::MAX)
                    .map(|(&item, &score)| Rec { item, score })
                    .collect()
            })
            .collect())
    }

    /// Writes `user<TAB>rank<TAB>item<TAB>score` lines (rank from 1) for `users` to `out`,
    /// a tile at a time.
    pub fn write(&self, users: &[u32], k: usize, out: &mut impl Write) -> Result<()> {
        writeln!(out, "user\trank\titem\tscore")?;
        for tile in users.chunks(TILE_USERS) {
            for (&u, recs) in tile.iter().zip(self.top_k(tile, k)?) {
                for (rank, r) in recs.iter().enumerate() {
                    writeln!(out, "{u}\t{}\t{}\t{}", rank + 1, r.item, r.score)?;
                }
            }
        }
        Ok(())
    }

    /// [`Recommender::write`] for every user into `path`, under a temporary name renamed
    /// when complete (an interrupted run leaves no file that looks finished).
    pub fn write_all(&self, k: usize, path: &Path) -> Result<()> {
        let users: Vec<u32> = (0..self.n_users as u32).collect();
        let tmp = temp_path(path)?;
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = BufWriter::new(file);
        let written = self
            .write(&users, k, &mut w)
            .and_then(|()| w.flush().map_err(Into::into));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("writing {}", path.display())));
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    }
}
