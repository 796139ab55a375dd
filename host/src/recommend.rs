//! Top-K recommendations from a trained run folder: the final embeddings of its
//! checkpoint, every item scored by inner product (the training objective's score), the
//! user's TRAIN items excluded, best first.
//!
//! Users are scored in tiles of [`TILE_USERS`] through the same top-K kernel the evaluator
//! uses ([`crate::ranking`]), and `--all` streams each tile's lines to the output file
//! before the next tile is scored: memory is the embeddings plus one tile (`TILE_USERS × k`
//! results and the tile's exclusion rows), whatever the number of users. The file is
//! written under a temporary name and renamed when complete.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use promax_kernels::{CpuKernels, CsrMatrix};

use crate::config::{self, Config, DataConfig, ProfilesConfig};
use crate::data::{load_dataset, IdMaps};
use crate::model::Model;
use crate::ranking::top_unseen;
use crate::registry::Registry;
use crate::runfolder::{self, temp_path};
use crate::sampler::user_items;

/// The final embeddings of a run whose checkpoint holds only parameter tables: the model
/// is built through its plugins (with the dataset's profiles) and run forward.
fn rebuild_final_embeddings(cfg: &Config, run_dir: &Path) -> Result<(usize, Vec<f32>)> {
    let registry = Registry::discover(&cfg.plugin_dirs)?;
    let ds = load_dataset(&cfg.data)?;
    let mut model = Model::build(cfg, &registry, &ds, &crate::augment::cache::SourceViews)?;
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
    train: CsrMatrix,
    /// The dataset's own ids (RecBole tokens), which users are named and printed by.
    ids: Option<IdMaps>,
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
            train: user_items(ds.n_users, ds.n_items, &ds.train),
            ids: ds.ids,
        })
    }

    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// The final embeddings, users' rows then items' (`(n_users + n_items) × width`,
    /// row-major), with the width and the number of users: the whole buffer, not a copy.
    pub fn into_embeddings(self) -> (Vec<f32>, usize, usize) {
        (self.emb, self.width, self.n_users)
    }

    /// The dataset's own ids of its users and items, when it has string ids.
    pub fn id_maps(&self) -> Option<&IdMaps> {
        self.ids.as_ref()
    }

    /// Users as named on the command line: the dataset's tokens when it has string ids,
    /// else 0-based ids; an unknown one is an error naming it.
    pub fn user_ids(&self, names: &[String]) -> Result<Vec<u32>> {
        let index: Option<std::collections::HashMap<&str, u32>> = self.ids.as_ref().map(|m| {
            m.users
                .iter()
                .enumerate()
                .map(|(i, t)| (t.as_str(), i as u32))
                .collect()
        });
        names
            .iter()
            .map(|n| match &index {
                Some(index) => index.get(n.as_str()).copied().ok_or_else(|| {
                    anyhow!("user {n:?} is not in the run's dataset (its users are named by their original ids)")
                }),
                None => n
                    .parse::<u32>()
                    .map_err(|_| anyhow!("user {n:?} is not a 0-based user id")),
            })
            .collect()
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
        let (user_emb, item_emb) = self.emb.split_at(self.n_users * w);
        let own = |u: u32| self.train.row(u as usize).0;
        let ranked = top_unseen(user_emb, item_emb, w, users, &own, k).map_err(|e| anyhow!(e))?;
        Ok(ranked
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|(item, score)| Rec { item, score })
                    .collect()
            })
            .collect())
    }

    /// Writes `user<TAB>rank<TAB>item<TAB>score` lines (rank from 1; users and items by the
    /// dataset's own ids when it has string ids) for `users` to `out`,
    /// a tile at a time.
    pub fn write(&self, users: &[u32], k: usize, out: &mut impl Write) -> Result<()> {
        writeln!(out, "user\trank\titem\tscore")?;
        for tile in users.chunks(TILE_USERS) {
            for (&u, recs) in tile.iter().zip(self.top_k(tile, k)?) {
                for (rank, r) in recs.iter().enumerate() {
                    let rank = rank + 1;
                    match &self.ids {
                        Some(m) => {
                            let (user, item) = (&m.users[u as usize], &m.items[r.item as usize]);
                            writeln!(out, "{user}\t{rank}\t{item}\t{}", r.score)?
                        }
                        None => writeln!(out, "{u}\t{rank}\t{}\t{}", r.item, r.score)?,
                    }
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
