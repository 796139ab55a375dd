//! Host-owned parameters: each plugin's tables in one flat buffer, their gradients, Xavier
//! initialisation, the L2 term and Adam.

use promax_plugin_api::sdk::{Grads, Params};
use promax_plugin_api::testing::layout_of;
use promax_plugin_api::{Init, TableLayout, TableSpec};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The tables of one plugin, flat, with their gradient buffer.
#[derive(Clone, Debug)]
pub struct ParamStore {
    pub owner: String,
    pub specs: Vec<TableSpec>,
    pub layout: Vec<TableLayout>,
    pub data: Vec<f32>,
    pub grad: Vec<f32>,
}

/// Most parameters (f32) one plugin's tables may hold together: 2^31 floats are 8 GiB,
/// and training keeps four such buffers (values, gradients, two Adam moments).
pub const MAX_PARAMS: usize = 1 << 31;

/// A plugin declared tables too large to allocate.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("plugin `{owner}` table `{table}` is {rows} × {cols}, more than {MAX_PARAMS} parameters (check the dimensions in [plugins.{owner}])")]
    TableTooLarge {
        owner: String,
        table: String,
        rows: usize,
        cols: usize,
    },
    #[error("plugin `{owner}`'s tables hold more than {MAX_PARAMS} parameters in all, the last counted being `{table}` (check the dimensions in [plugins.{owner}])")]
    TooManyParams { owner: String, table: String },
    #[error("plugin `{owner}`'s tables hold {params} parameters: training keeps {TRAINING_COPIES} copies of them (values, gradients, two Adam moments, the best epoch's values), {need_gib:.1} GiB, more than this machine's {have_gib:.1} GiB of memory (check the dimensions in [plugins.{owner}])")]
    TooLargeForMemory {
        owner: String,
        params: usize,
        need_gib: f64,
        have_gib: f64,
    },
}

/// Copies of every parameter that training keeps resident.
const TRAINING_COPIES: usize = 5;

/// The machine's memory in bytes (`MemTotal` of /proc/meminfo), where it can be read.
fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses tables whose training copies cannot fit in the machine's memory: allocating
/// them would end in an abort or the OOM killer, long after the config was read.
fn check_memory(owner: &str, params: usize) -> Result<(), ParamError> {
    let need = params as f64 * (TRAINING_COPIES * std::mem::size_of::<f32>()) as f64;
    match machine_memory() {
        Some(have) if need > have as f64 => Err(ParamError::TooLargeForMemory {
            owner: owner.to_owned(),
            params,
            need_gib: need / f64::from(1u32 << 30),
            have_gib: have as f64 / f64::from(1u32 << 30),
        }),
        _ => Ok(()),
    }
}

/// The total size of `specs`, checked before anything is allocated.
fn checked_len(owner: &str, specs: &[TableSpec]) -> Result<usize, ParamError> {
    let mut total = 0usize;
    for t in specs {
        let size = t
            .rows
            .checked_mul(t.cols)
            .filter(|&n| n <= MAX_PARAMS)
            .ok_or_else(|| ParamError::TableTooLarge {
                owner: owner.to_owned(),
                table: t.name.to_string(),
                rows: t.rows,
                cols: t.cols,
            })?;
        total = total
            .checked_add(size)
            .filter(|&n| n <= MAX_PARAMS)
            .ok_or_else(|| ParamError::TooManyParams {
                owner: owner.to_owned(),
                table: t.name.to_string(),
            })?;
    }
    Ok(total)
}

impl ParamStore {
    /// Allocates and initialises the tables a plugin declared; tables whose sizes overflow
    /// or exceed [`MAX_PARAMS`] are an error naming the plugin and table.
    pub fn new(
        owner: &str,
        specs: Vec<TableSpec>,
        rng: &mut ChaCha8Rng,
    ) -> Result<ParamStore, ParamError> {
        let len = checked_len(owner, &specs)?;
        check_memory(owner, len)?;
        let layout = layout_of(&specs);
        let mut data = vec![0f32; len];
        for (spec, l) in specs.iter().zip(&layout) {
            let t = &mut data[l.offset..l.offset + l.rows * l.cols];
            match spec.init {
                Init::Zeros => {}
                Init::XavierUniform => {
                    let a = (6.0 / (l.rows + l.cols) as f64).sqrt() as f32;
                    t.iter_mut().for_each(|x| *x = rng.gen_range(-a..a));
                }
            }
        }
        Ok(ParamStore {
            owner: owner.to_owned(),
            specs,
            layout,
            grad: vec![0f32; len],
            data,
        })
    }

    pub fn params(&self) -> Params<'_> {
        Params::new(&self.data, &self.layout)
    }

    /// The tables and their gradients at once, for calls that read one and accumulate
    /// into the other.
    pub fn params_and_grads(&mut self) -> (Params<'_>, Grads<'_>) {
        (
            Params::new(&self.data, &self.layout),
            Grads::new(&mut self.grad, &self.layout),
        )
    }

    pub fn zero_grad(&mut self) {
        self.grad.par_iter_mut().for_each(|g| *g = 0.0);
    }

    /// Adds `reg · Σ‖W‖²` over all tables to the gradient and returns its value.
    pub fn add_l2(&mut self, reg: f32) -> f64 {
        if reg == 0.0 {
            return 0.0;
        }
        let sq: f64 = self
            .data
            .par_chunks(1 << 14)
            .zip(self.grad.par_chunks_mut(1 << 14))
            .map(|(w, g)| {
                let mut s = 0f64;
                for (w, g) in w.iter().zip(g.iter_mut()) {
                    *g += 2.0 * reg * w;
                    s += f64::from(*w) * f64::from(*w);
                }
                s
            })
            // Summed in chunk order, so the value does not depend on the thread count.
            .collect::<Vec<f64>>()
            .iter()
            .sum();
        f64::from(reg) * sq
    }

    /// Named tables, for checkpoints: (`owner/table`, rows, cols, data).
    pub fn named_tables(&self) -> impl Iterator<Item = (String, usize, usize, &[f32])> {
        self.specs.iter().zip(&self.layout).map(|(s, l)| {
            (
                format!("{}/{}", self.owner, s.name),
                l.rows,
                l.cols,
                &self.data[l.offset..l.offset + l.rows * l.cols],
            )
        })
    }
}

/// Adam as in PyTorch (bias-corrected, eps added after the square root), dense: every entry
/// is updated every step, as PyTorch does for dense embedding tables.
#[derive(Clone, Debug)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    step: i32,
    moments: Vec<Moments>,
}

/// Adam's first and second moment of every parameter of one store.
pub type Moments = (Vec<f32>, Vec<f32>);

impl Adam {
    pub fn new(lr: f32, stores: &[&ParamStore]) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            moments: stores
                .iter()
                .map(|s| (vec![0f32; s.data.len()], vec![0f32; s.data.len()]))
                .collect(),
        }
    }

    /// Steps taken and the first and second moments of every store (for checkpoints).
    pub fn state(&self) -> (i32, &[Moments]) {
        (self.step, &self.moments)
    }

    /// Restores a checkpoint's step and moments; each moment must match its store's size.
    pub fn restore(&mut self, step: i32, moments: Vec<Moments>) -> Result<(), String> {
        if moments.len() != self.moments.len() {
            return Err(format!(
                "{} moment pairs for {} parameter stores",
                moments.len(),
                self.moments.len()
            ));
        }
        for (k, ((m, v), (m0, _))) in moments.iter().zip(&self.moments).enumerate() {
            if m.len() != m0.len() || v.len() != m0.len() {
                return Err(format!(
                    "store {k}: moments of {} and {} entries for {} parameters",
                    m.len(),
                    v.len(),
                    m0.len()
                ));
            }
        }
        self.step = step;
        self.moments = moments;
        Ok(())
    }

    /// One update of every store from its gradient (stores in the order given to `new`).
    pub fn step(&mut self, stores: &mut [&mut ParamStore]) {
        self.step += 1;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let c1 = 1.0 - b1.powi(self.step);
        let c2 = 1.0 - b2.powi(self.step);
        let step_size = self.lr / c1;
        let c2_sqrt = c2.sqrt();
        for (store, (m, v)) in stores.iter_mut().zip(self.moments.iter_mut()) {
            const CHUNK: usize = 1 << 14;
            store
                .data
                .par_chunks_mut(CHUNK)
                .zip(store.grad.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
                .for_each(|((w, g), (m, v))| {
                    for j in 0..w.len() {
                        let gj = g[j];
                        m[j] = b1 * m[j] + (1.0 - b1) * gj;
                        v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
                        w[j] -= step_size * m[j] / (v[j].sqrt() / c2_sqrt + eps);
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::sdk::table;
    use promax_plugin_api::testing::finite_difference_check;
    use rand::SeedableRng;

    fn store() -> ParamStore {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        ParamStore::new(
            "t",
            vec![
                table("a", 50, 8, Init::XavierUniform),
                table("b", 3, 4, Init::Zeros),
            ],
            &mut rng,
        )
        .unwrap()
    }

    #[test]
    fn oversized_tables_are_an_error_naming_plugin_and_table() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (rows, cols) in [(1_000, 10_000_000_000), (usize::MAX, 2), (1 << 16, 1 << 16)] {
            let e = ParamStore::new(
                "lightgcn",
                vec![table("user", rows, cols, Init::Zeros)],
                &mut rng,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("`lightgcn`") && e.contains("`user`"), "{e}");
        }
        let two = vec![
            table("a", 1 << 15, 1 << 15, Init::Zeros),
            table("b", 1 << 15, 1 << 15, Init::Zeros),
            table("c", 1, 1, Init::Zeros),
        ];
        let e = ParamStore::new("p", two, &mut rng).unwrap_err().to_string();
        assert!(e.contains("in all") && e.contains("`c`"), "{e}");
    }

    #[test]
    fn xavier_bounds_and_zeros() {
        let s = store();
        let a = (6.0f32 / 58.0).sqrt();
        let t = s.params().table(0);
        assert!(t.iter().all(|x| x.abs() <= a));
        // Uniform on (-a, a): the largest |x| over 400 draws is close to a.
        assert!(t.iter().fold(0f32, |m, x| m.max(x.abs())) > 0.9 * a);
        assert!(s.params().table(1).iter().all(|&x| x == 0.0));
    }

    #[test]
    fn l2_gradient_matches_finite_differences() {
        let mut s = store();
        let reg = 0.3;
        s.zero_grad();
        s.add_l2(reg);
        let grad = s.grad.clone();
        let idx: Vec<usize> = (0..s.data.len()).step_by(7).collect();
        let bad = finite_difference_check(&mut s.data, &grad, &idx, 1e-2, 1e-3, 1e-5, |w| {
            f64::from(reg) * w.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()
        });
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn adam_first_step_moves_by_lr_against_the_gradient_sign() {
        let mut s = store();
        let before = s.data.clone();
        s.grad
            .iter_mut()
            .enumerate()
            .for_each(|(i, g)| *g = if i % 2 == 0 { 0.5 } else { -2.0 });
        let mut adam = Adam::new(0.01, &[&s]);
        adam.step(&mut [&mut s]);
        // Bias-corrected first step: Δ = -lr · g / (|g| + eps') ≈ -lr · sign(g).
        for (i, (b, a)) in before.iter().zip(&s.data).enumerate() {
            let expected = if i % 2 == 0 { -0.01 } else { 0.01 };
            assert!(
                (a - b - expected).abs() < 1e-6,
                "entry {i}: {} vs {expected}",
                a - b
            );
        }
    }

    #[test]
    fn adam_matches_a_hand_computed_second_step() {
        let mut s = store();
        let w0 = s.data[5];
        let mut adam = Adam::new(0.1, &[&s]);
        s.grad.iter_mut().for_each(|g| *g = 0.0);
        s.grad[5] = 1.0;
        adam.step(&mut [&mut s]);
        s.grad[5] = 3.0;
        adam.step(&mut [&mut s]);
        let (m1, v1) = (0.1f64, 0.001f64);
        let (m2, v2) = (0.9 * m1 + 0.1 * 3.0, 0.999 * v1 + 0.001 * 9.0);
        let d1 = 0.1 * (m1 / 0.1) / ((v1 / 0.001).sqrt() + 1e-8);
        let d2 = 0.1 * (m2 / (1.0 - 0.81)) / ((v2 / (1.0 - 0.999f64.powi(2))).sqrt() + 1e-8);
        let expected = f64::from(w0) - d1 - d2;
        assert!((f64::from(s.data[5]) - expected).abs() < 1e-5);
    }
}
