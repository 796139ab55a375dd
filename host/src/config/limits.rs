//! The upper bounds [`super::Config::validate`] enforces. Each is far above what a real run
//! uses and far below what would exhaust memory or overflow the arithmetic sized by it.

/// `train.max_epochs`, `eval.every`, `eval.patience`.
pub const MAX_EPOCHS: usize = 1_000_000;
/// `train.batch_size`: 16 Mi interactions.
pub const MAX_BATCH: usize = 1 << 24;
/// `train.threads` (0 = all cores): more threads than this only adds overhead on any
/// machine promax runs on.
pub const MAX_THREADS: usize = 1024;
/// Every K of `eval.ks` (a top-K list per user is kept for the largest).
pub const MAX_K: usize = 10_000;
/// `eval.user_tile`: a tile holds user_tile × n_items scores.
pub const MAX_USER_TILE: usize = 65_536;
/// `data.n_users`, `data.n_items`: ids are u32.
pub const MAX_IDS: usize = u32::MAX as usize;
/// `data.synthetic.n_users`, `data.synthetic.n_items`.
pub const MAX_SYNTHETIC: usize = 10_000_000;
/// `data.synthetic.mean_interactions`.
pub const MAX_MEAN_INTERACTIONS: usize = 10_000;
/// `n_users × mean_interactions` of the synthetic dataset: 2 GiB of (u32, u32) pairs.
pub const MAX_SYNTHETIC_PAIRS: usize = 1 << 28;
/// `(n_users + n_items) × profile_dim` of the synthetic profiles: 1 GiB of f32.
pub const MAX_SYNTHETIC_PROFILE_VALUES: usize = 1 << 28;
/// Profile dimensions: `data.synthetic.profile_dim`, `data.profiles.random_dim`,
/// `augment.reduce_dim` (the largest embedding models give 4096).
pub const MAX_PROFILE_DIM: usize = 65_536;
/// `augment.knn`.
pub const MAX_KNN: usize = 10_000;
/// `augment.max_candidates` (each is shown to an LLM).
pub const MAX_CANDIDATES: usize = 10_000;
/// `augment.target_offset`: items added per user beyond the next quartile.
pub const MAX_TARGET_OFFSET: u32 = 100_000;
/// `profile.max_user_items`.
pub const MAX_USER_ITEMS: usize = 10_000;
/// Seeds: the largest TOML integer, so that `to_toml` can write every valid config.
pub const MAX_SEED: u64 = i64::MAX as u64;
