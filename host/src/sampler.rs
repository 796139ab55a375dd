//! Training epochs: every train interaction once, shuffled, each with one uniform negative.

use promax_kernels::CsrMatrix;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Users' train items as a CSR matrix (sorted rows), for membership tests and masking.
pub fn user_items(n_users: usize, n_items: usize, pairs: &[(u32, u32)]) -> CsrMatrix {
    let triplets: Vec<(u32, u32, f32)> = pairs.iter().map(|&(u, i)| (u, i, 1.0)).collect();
    CsrMatrix::from_triplets(n_users, n_items, &triplets)
}

/// One epoch of (user, positive, negative) triples.
#[derive(Clone, Debug, Default)]
pub struct Epoch {
    pub users: Vec<u32>,
    pub pos: Vec<u32>,
    pub neg: Vec<u32>,
}

/// Draws epochs from the train interactions.
pub struct Sampler<'a> {
    pairs: &'a [(u32, u32)],
    seen: &'a CsrMatrix,
}

impl<'a> Sampler<'a> {
    /// `seen` holds each user's train items. Fails if some user has seen every item (no
    /// negative exists for them).
    pub fn new(pairs: &'a [(u32, u32)], seen: &'a CsrMatrix) -> Result<Self, String> {
        if let Some(u) = (0..seen.n_rows).find(|&u| seen.row(u).0.len() >= seen.n_cols) {
            return Err(format!(
                "user {u} has a train interaction with every item: no negative item can be sampled"
            ));
        }
        Ok(Sampler { pairs, seen })
    }

    /// Shuffles the interactions and draws a negative for each: uniform over items, redrawn
    /// while the user has that item in train (as the reference code does).
    pub fn epoch(&self, rng: &mut ChaCha8Rng, out: &mut Epoch) {
        let mut order: Vec<u32> = (0..self.pairs.len() as u32).collect();
        order.shuffle(rng);
        out.users.clear();
        out.pos.clear();
        out.neg.clear();
        let n_items = self.seen.n_cols as u32;
        for &k in &order {
            let (u, i) = self.pairs[k as usize];
            let row = self.seen.row(u as usize).0;
            let neg = loop {
                let j = rng.gen_range(0..n_items);
                if row.binary_search(&j).is_err() {
                    break j;
                }
            };
            out.users.push(u);
            out.pos.push(i);
            out.neg.push(neg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn epoch_covers_every_pair_once_with_unseen_negatives() {
        let pairs = vec![(0, 0), (0, 1), (1, 2), (2, 0), (2, 3), (1, 1)];
        let seen = user_items(3, 5, &pairs);
        let s = Sampler::new(&pairs, &seen).unwrap();
        let mut e = Epoch::default();
        s.epoch(&mut ChaCha8Rng::seed_from_u64(9), &mut e);
        let mut got: Vec<(u32, u32)> = e.users.iter().copied().zip(e.pos.iter().copied()).collect();
        got.sort();
        let mut want = pairs.clone();
        want.sort();
        assert_eq!(got, want);
        for (u, n) in e.users.iter().zip(&e.neg) {
            assert!(!pairs.contains(&(*u, *n)), "negative {n} seen by user {u}");
            assert!(*n < 5);
        }
        let mut again = Epoch::default();
        s.epoch(&mut ChaCha8Rng::seed_from_u64(9), &mut again);
        assert_eq!(e.neg, again.neg);
    }

    #[test]
    fn user_with_every_item_is_an_error() {
        let pairs = vec![(0, 0), (0, 1), (1, 0)];
        let seen = user_items(2, 2, &pairs);
        let err = Sampler::new(&pairs, &seen).err().unwrap();
        assert!(err.contains("user 0"), "{err}");
    }
}
