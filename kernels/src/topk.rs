//! Full-ranking scoring with top-K selection: every query against every item, by inner
//! product, skipping each query's excluded (e.g. training) items.

use std::cell::RefCell;

use promax_plugin_api::{GemmSpec, TopkRequest};
use rayon::prelude::*;

use crate::csr::check_csr;
use crate::dense::gemm_seq;
use crate::{check_len, checked_mul, KernelError};

/// Target size of one tile's score block, so that it is still in cache when its rows are
/// selected from right after the product wrote it: 48 rows at 9,332 items. (Larger tiles
/// pack op(B) less often, but 256-row tiles measured ~25% slower at 11k × 9.3k × 32.)
const TILE_BYTES: usize = 2 << 20;
const TILE_ROW_MULTIPLE: usize = 16;
const MIN_TILE_ROWS: usize = 16;
const MAX_TILE_ROWS: usize = 256;

/// Candidates buffered beyond `k` before a partial selection cuts them back (at least `k`
/// more, so each cut is paid for by as many appends as it keeps). Small, because the
/// threshold only rises at a cut: a large buffer lets many hopeless scores in first.
const CAP_SLACK: usize = 32;

/// Scores per chunk of the threshold scan (one `u32` mask of pass/fail bits).
const LANES: usize = 32;

/// Per-thread buffers, kept across calls so that repeated evaluation does not page-fault a
/// fresh tile every time.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    candidates: Vec<u64>,
    exclude: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// For each query row `r` (`rows = queries.len() / dim`): scores every item by inner product,
/// skips the items listed in row `r` of `req.exclude`, and writes the `k` best to
/// `out_items[r·k..(r+1)·k]` / `out_scores[..]`, best first, ties broken by the lower item id.
/// Slots beyond the number of rankable items hold `u32::MAX` and `-inf`. NaN scores rank
/// below every number (and are reported as NaN).
///
/// `req.exclude` is `rows × n_items` (column ids are item ids, in any order within a row), or
/// has zero rows (e.g. `CsrMatrix::default().view()`) to exclude nothing.
///
/// Runs in parallel over tiles of query rows: one product per tile into thread-local scratch,
/// then a threshold scan plus partial selection per row, never a full sort. Tiles are fixed
/// by the shapes, so the result does not depend on the thread count.
pub fn score_topk(
    req: &TopkRequest<'_>,
    out_items: &mut [u32],
    out_scores: &mut [f32],
) -> Result<(), KernelError> {
    const K: &str = "score_topk";
    let (dim, k) = (req.dim, req.k);
    let (queries, items) = (req.queries.as_slice(), req.items.as_slice());
    if dim == 0 {
        return Err(KernelError::Shape(format!(
            "{K}: `req.dim` is 0, so the number of query rows is undefined"
        )));
    }
    for (arg, len) in [("req.queries", queries.len()), ("req.items", items.len())] {
        if len % dim != 0 {
            return Err(KernelError::Shape(format!(
                "{K}: `{arg}` has length {len}, not a multiple of dim = {dim}"
            )));
        }
    }
    let (rows, n_items) = (queries.len() / dim, items.len() / dim);
    // u32::MAX marks empty slots, so it cannot also be an item id.
    if n_items >= u32::MAX as usize {
        return Err(KernelError::Shape(format!(
            "{K}: {n_items} items do not fit u32 item ids"
        )));
    }
    let out_len = checked_mul(K, "rows × k", rows, k)?;
    check_len(
        K,
        "out_items",
        out_items.len(),
        out_len,
        format_args!("rows × k = {rows} × {k}"),
    )?;
    check_len(
        K,
        "out_scores",
        out_scores.len(),
        out_len,
        format_args!("rows × k = {rows} × {k}"),
    )?;
    let ex = &req.exclude;
    check_csr(K, "req.exclude", ex)?;
    let has_exclude = ex.n_rows != 0;
    if has_exclude && (ex.n_rows != rows || ex.n_cols != n_items) {
        return Err(KernelError::Shape(format!(
            "{K}: `req.exclude` is {} × {}, expected rows × n_items = {rows} × {n_items} \
             (or 0 rows for no exclusions)",
            ex.n_rows, ex.n_cols
        )));
    }
    if out_len == 0 {
        return Ok(());
    }
    if n_items == 0 {
        out_items.fill(u32::MAX);
        out_scores.fill(f32::NEG_INFINITY);
        return Ok(());
    }
    let exclusions = |r: usize| -> &[u32] {
        if has_exclude {
            &ex.indices.as_slice()[ex.indptr[r]..ex.indptr[r + 1]]
        } else {
            &[]
        }
    };

    // Each tile's product packs op(B) = itemsᵀ. Read directly from `items`, that packing is a
    // strided gather (one float per item row); one transposed copy per call makes it
    // contiguous (packing went from 8% to 5% of the time).
    let mut items_t = vec![0f32; items.len()];
    for (i, item) in items.chunks_exact(dim).enumerate() {
        for (d, &v) in item.iter().enumerate() {
            items_t[d * n_items + i] = v;
        }
    }
    let items_t = items_t.as_slice();
    let tile = tile_rows(rows, n_items);
    out_items
        .par_chunks_mut(tile * k)
        .zip(out_scores.par_chunks_mut(tile * k))
        .enumerate()
        .try_for_each(|(t, (ids, scores))| {
            let first = t * tile;
            let tile_rows = ids.len() / k;
            let mut run = |s: &mut Scratch| -> Result<(), KernelError> {
                let Scratch {
                    scores: block,
                    candidates,
                    exclude,
                } = s;
                let len = tile_rows * n_items;
                if block.len() < len {
                    block.resize(len, 0.0);
                }
                let block = &mut block[..len];
                let spec = GemmSpec {
                    m: tile_rows,
                    n: n_items,
                    k: dim,
                    trans_a: false,
                    trans_b: false,
                    alpha: 1.0,
                    beta: 0.0,
                };
                let q = &queries[first * dim..(first + tile_rows) * dim];
                gemm_seq(spec, q, items_t, block)?;
                for (i, row) in block.chunks_exact(n_items).enumerate() {
                    let skip = sorted(exclusions(first + i), exclude);
                    let slots = i * k..(i + 1) * k;
                    select_row(
                        row,
                        skip,
                        k,
                        candidates,
                        &mut ids[slots.clone()],
                        &mut scores[slots],
                    );
                }
                Ok(())
            };
            // A nested call on the same thread (not something we do, but cheap to survive)
            // would find the scratch borrowed: it gets its own.
            SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut s) => run(&mut s),
                Err(_) => run(&mut Scratch::default()),
            })
        })
}

/// Query rows per tile: the score block should fit in cache, there should be a few tiles per
/// thread so that work stealing can even out rows with long exclusion lists, and the count
/// should be a multiple of the product's register tile (16 rows for matrixmultiply's AVX-512
/// kernel, 8 for AVX2): 56-row tiles measured 15% slower than 48 or 64.
fn tile_rows(rows: usize, n_items: usize) -> usize {
    let by_cache = (TILE_BYTES / (n_items * 4) / TILE_ROW_MULTIPLE * TILE_ROW_MULTIPLE)
        .clamp(MIN_TILE_ROWS, MAX_TILE_ROWS);
    let by_balance = rows
        .div_ceil(4 * rayon::current_num_threads())
        .next_multiple_of(TILE_ROW_MULTIPLE);
    by_cache.min(by_balance)
}

/// `ids` itself when ascending (as rows of a [`crate::CsrMatrix`] are), else a sorted copy.
fn sorted<'a>(ids: &'a [u32], buf: &'a mut Vec<u32>) -> &'a [u32] {
    if ids.windows(2).all(|w| w[0] <= w[1]) {
        return ids;
    }
    buf.clear();
    buf.extend_from_slice(ids);
    buf.sort_unstable();
    buf
}

/// A candidate as one integer whose natural order is the ranking order: the score's
/// order-preserving bits above the complemented item id, so a larger value is a higher score
/// or, on equal scores, a lower id.
fn pack(score: f32, id: usize) -> u64 {
    (u64::from(score_key(score)) << 32) | u64::from(!(id as u32))
}

fn unpack_id(c: u64) -> u32 {
    !(c as u32)
}

/// Maps scores to `u32` so that integer order is score order with NaN lowest and the two
/// zeros equal. Branch-free: it runs on every score that passes the threshold filter.
fn score_key(s: f32) -> u32 {
    let bits = (s + 0.0).to_bits(); // + 0.0 turns -0.0 into +0.0
                                    // Negative: flip all bits (larger magnitude ranks lower); positive: set the sign bit.
    let key = bits ^ ((((bits as i32) >> 31) as u32) | 0x8000_0000);
    if s.is_nan() {
        0
    } else {
        key
    }
}

/// Inverse of [`score_key`] for thresholds: NaN comes back as -inf so that the filter lets
/// every number through.
fn key_score(key: u32) -> f32 {
    if key == 0 {
        f32::NEG_INFINITY
    } else if key & 0x8000_0000 != 0 {
        f32::from_bits(key & 0x7FFF_FFFF)
    } else {
        f32::from_bits(!key)
    }
}

/// Whether score `s` gets past threshold `t`: it is not below it. NaN passes on purpose (the
/// exact keys rank it last later), which makes this a single vector compare.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // the negation is the point: incomparable passes
fn passes(s: f32, t: f32) -> bool {
    !(s < t)
}

fn descending(a: &u64, b: &u64) -> std::cmp::Ordering {
    b.cmp(a)
}

/// Keeps the best `k` of a stream of scores visited in ascending item order.
///
/// Every score not below `threshold` (the k-th best kept so far, or -inf before there are k)
/// is appended; once `cap` are buffered, a partial selection cuts them back to `k` and raises
/// the threshold. The filter lets through ties and NaNs that may not make it (harmless: the
/// selection uses exact keys) but never drops one that would, so the buffer ends up holding
/// the true top `k`.
struct Selector<'a> {
    /// `cap + LANES` slots, so a whole chunk can be appended before checking for a cut.
    buf: &'a mut [u64],
    len: usize,
    k: usize,
    cap: usize,
    threshold: f32,
}

impl<'a> Selector<'a> {
    fn scan(&mut self, row: &[f32], lo: usize, hi: usize) {
        let seg = &row[lo..hi];
        let mut chunks = seg.chunks_exact(LANES);
        let mut base = lo;
        for chunk in &mut chunks {
            // A branch-free "any score here not below the threshold?" vectorises well; once
            // k good scores are in, most chunks fail it and cost a few instructions.
            let t = self.threshold;
            let mut hit = false;
            for &s in chunk {
                hit |= passes(s, t);
            }
            if hit {
                self.append(chunk, base);
            }
            base += LANES;
        }
        self.append(chunks.remainder(), base);
    }

    /// Appends the scores (at most `LANES`) not below the threshold: their pass/fail bits are
    /// gathered without branching, then only the set bits are visited, so the few hits in a
    /// chunk cost no mispredicted branches on the misses.
    fn append(&mut self, scores: &[f32], base: usize) {
        let t = self.threshold;
        let mut mask = 0u32;
        for (o, &s) in scores.iter().enumerate() {
            mask |= u32::from(passes(s, t)) << o;
        }
        if mask == 0 {
            return;
        }
        let mut len = self.len;
        while mask != 0 {
            let o = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            self.buf[len] = pack(scores[o], base + o);
            len += 1;
        }
        self.len = len;
        if len >= self.cap {
            self.cut();
        }
    }

    /// Keeps the best `k` and raises the threshold to the k-th best score.
    fn cut(&mut self) {
        let k = self.k;
        let kept = &mut self.buf[..self.len];
        kept.select_nth_unstable_by(k - 1, descending);
        self.len = k;
        self.threshold = key_score((kept[k - 1] >> 32) as u32);
    }

    /// The best `min(k, pushed)` candidates, best first.
    fn finish(self) -> &'a [u64] {
        let Selector { buf, len, k, .. } = self;
        let best = &mut buf[..len];
        if len > k {
            best.select_nth_unstable_by(k - 1, descending);
        }
        let best = &mut best[..len.min(k)];
        best.sort_unstable_by(descending);
        best
    }
}

/// Selects the top `k` of `row` minus the ascending ids in `skip`, into `ids` / `out`.
fn select_row(
    row: &[f32],
    skip: &[u32],
    k: usize,
    buf: &mut Vec<u64>,
    ids: &mut [u32],
    out: &mut [f32],
) {
    let cap = k + k.max(CAP_SLACK);
    if buf.len() < cap + LANES {
        buf.resize(cap + LANES, 0);
    }
    let mut sel = Selector {
        buf,
        len: 0,
        k,
        cap,
        threshold: f32::NEG_INFINITY,
    };
    // Scan the gaps between excluded ids, so the hot loop carries no exclusion test.
    let mut start = 0;
    for &x in skip {
        let x = x as usize;
        if x >= start {
            sel.scan(row, start, x);
            start = x + 1;
        }
    }
    sel.scan(row, start, row.len());
    let best = sel.finish();
    for (slot, (id, score)) in ids.iter_mut().zip(out.iter_mut()).enumerate() {
        match best.get(slot) {
            Some(&c) => {
                let item = unpack_id(c);
                *id = item;
                *score = row[item as usize];
            }
            None => {
                *id = u32::MAX;
                *score = f32::NEG_INFINITY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CsrMatrix;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::cmp::Ordering;

    fn request<'a>(
        q: &'a [f32],
        items: &'a [f32],
        dim: usize,
        ex: &'a CsrMatrix,
        k: usize,
    ) -> TopkRequest<'a> {
        TopkRequest {
            queries: q.into(),
            items: items.into(),
            dim,
            exclude: ex.view(),
            k,
        }
    }

    /// Higher score first, NaN last, then lower id: written independently of `score_key`.
    fn rank(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
        let by_score = match (a.0.is_nan(), b.0.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => b.0.partial_cmp(&a.0).unwrap_or(Ordering::Equal),
        };
        by_score.then(a.1.cmp(&b.1))
    }

    /// Full sort of every rankable item; exact when the inputs are small integers.
    fn naive(
        q: &[f32],
        items: &[f32],
        dim: usize,
        ex: &CsrMatrix,
        k: usize,
    ) -> (Vec<u32>, Vec<f32>) {
        let (rows, n) = (q.len() / dim, items.len() / dim);
        let (mut ids, mut scores) = (vec![u32::MAX; rows * k], vec![f32::NEG_INFINITY; rows * k]);
        for r in 0..rows {
            let skip = if ex.n_rows == 0 { &[][..] } else { ex.row(r).0 };
            let mut all: Vec<(f32, u32)> = (0..n as u32)
                .filter(|i| !skip.contains(i))
                .map(|i| {
                    let qi = &q[r * dim..(r + 1) * dim];
                    let it = &items[i as usize * dim..(i as usize + 1) * dim];
                    let dot: f64 = qi
                        .iter()
                        .zip(it)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    (dot as f32, i)
                })
                .collect();
            all.sort_by(rank);
            for (slot, &(s, i)) in all.iter().take(k).enumerate() {
                ids[r * k + slot] = i;
                scores[r * k + slot] = s;
            }
        }
        (ids, scores)
    }

    fn run(q: &[f32], items: &[f32], dim: usize, ex: &CsrMatrix, k: usize) -> (Vec<u32>, Vec<f32>) {
        let rows = q.len() / dim;
        let (mut ids, mut scores) = (vec![7u32; rows * k], vec![7f32; rows * k]);
        score_topk(&request(q, items, dim, ex, k), &mut ids, &mut scores).expect("shapes agree");
        (ids, scores)
    }

    fn ints(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-2i32..=2) as f32).collect()
    }

    /// Random exclusions, unsorted and with repeats, some rows empty, some excluding a lot.
    fn random_exclusions(rng: &mut ChaCha8Rng, rows: usize, n: usize) -> CsrMatrix {
        let mut t = Vec::new();
        for r in 0..rows {
            let count = match r % 4 {
                0 => 0,
                1 => rng.gen_range(0..=n),
                _ => rng.gen_range(0..4),
            };
            for _ in 0..count {
                t.push((r as u32, rng.gen_range(0..n as u32), 1.0));
            }
        }
        let mut m = CsrMatrix::from_triplets(rows, n, &t);
        // Unsort one row with several entries, and repeat an id, to exercise the copy path.
        if let Some(r) = (0..rows).find(|&r| m.row(r).0.len() >= 3) {
            let (s, e) = (m.indptr[r], m.indptr[r + 1]);
            m.indices[s..e].reverse();
            m.indices[s + 1] = m.indices[s];
        }
        m
    }

    #[test]
    fn matches_naive_with_ties_and_exclusions() {
        let mut rng = ChaCha8Rng::seed_from_u64(30);
        // Small integer entries make dot products exact and ties common.
        for &(rows, n, dim) in &[
            (1, 1, 1),
            (7, 5, 3),
            (61, 130, 4),
            (100, 1500, 5),
            (33, 700, 17),
        ] {
            let q = ints(&mut rng, rows * dim);
            let items = ints(&mut rng, n * dim);
            let ex = random_exclusions(&mut rng, rows, n);
            for &k in &[1, 3, 20, n + 5] {
                let got = run(&q, &items, dim, &ex, k);
                let want = naive(&q, &items, dim, &ex, k);
                assert_eq!(
                    got.0, want.0,
                    "ids: rows {rows}, items {n}, dim {dim}, k {k}"
                );
                assert_eq!(
                    got.1, want.1,
                    "scores: rows {rows}, items {n}, dim {dim}, k {k}"
                );
            }
        }
    }

    #[test]
    fn float_scores_are_inner_products_and_ranked() {
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        let (rows, n, dim, k) = (37, 900, 32, 10);
        let q: Vec<f32> = (0..rows * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let items: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let ex = random_exclusions(&mut rng, rows, n);
        let (ids, scores) = run(&q, &items, dim, &ex, k);
        let (want_ids, want_scores) = naive(&q, &items, dim, &ex, k);
        for r in 0..rows {
            for s in 0..k {
                let (i, w) = (r * k + s, r * k + s);
                if want_ids[w] == u32::MAX {
                    assert_eq!((ids[i], scores[i]), (u32::MAX, f32::NEG_INFINITY));
                    continue;
                }
                // Rounding may swap near-ties, but every slot's score must match the naive
                // ranking's score at that rank, and be the returned item's inner product.
                assert!(
                    (scores[i] - want_scores[w]).abs() < 1e-4,
                    "row {r} slot {s}"
                );
                let it = &items[ids[i] as usize * dim..(ids[i] as usize + 1) * dim];
                let dot: f32 = q[r * dim..(r + 1) * dim]
                    .iter()
                    .zip(it)
                    .map(|(a, b)| a * b)
                    .sum();
                assert!((scores[i] - dot).abs() < 1e-4, "row {r} slot {s}");
                assert!(
                    !ex.row(r).0.contains(&ids[i]),
                    "row {r} returned an excluded item"
                );
                if s > 0 {
                    assert!(scores[i - 1] >= scores[i], "row {r} not descending");
                }
            }
        }
    }

    #[test]
    fn k_beyond_rankable_items_pads_with_sentinels() {
        // 1 query, 4 items (scores 1, 2, 3, 4), items 1 and 3 excluded: two rankable.
        let q = [1.0];
        let items = [1.0, 2.0, 3.0, 4.0];
        let ex = CsrMatrix::from_triplets(1, 4, &[(0, 3, 1.0), (0, 1, 1.0)]);
        let (ids, scores) = run(&q, &items, 1, &ex, 4);
        assert_eq!(ids, vec![2, 0, u32::MAX, u32::MAX]);
        assert_eq!(scores, vec![3.0, 1.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        // No items at all.
        let (ids, scores) = run(&q, &[], 1, &CsrMatrix::default(), 2);
        assert_eq!(ids, vec![u32::MAX; 2]);
        assert_eq!(scores, vec![f32::NEG_INFINITY; 2]);
    }

    #[test]
    fn ties_go_to_the_lower_id_and_zeros_tie() {
        let q = [1.0];
        let items = [0.0, 5.0, -0.0, 5.0, 0.0, -1.0];
        let (ids, scores) = run(&q, &items, 1, &CsrMatrix::default(), 5);
        assert_eq!(ids, vec![1, 3, 0, 2, 4]);
        assert_eq!(&scores[..2], &[5.0, 5.0]);
    }

    #[test]
    fn nan_ranks_last_without_panicking() {
        let q = [1.0, 1.0, f32::NAN, 0.0];
        let items = [1.0, f32::NAN, 3.0, -f32::INFINITY, f32::NAN, 2.0];
        let ex = CsrMatrix::default();
        let (ids, scores) = run(&q, &items, 1, &ex, 6);
        // Row 0: 3, 2, 1, -inf, then the NaNs by id.
        assert_eq!(&ids[..6], &[2, 5, 0, 3, 1, 4]);
        assert_eq!(&scores[..4], &[3.0, 2.0, 1.0, f32::NEG_INFINITY]);
        assert!(scores[4].is_nan() && scores[5].is_nan());
        // Row 2 is a NaN query: every score is NaN, so ids come out in order.
        assert_eq!(&ids[12..18], &[0, 1, 2, 3, 4, 5]);
        // Many NaNs with a small k exercise the shrink path.
        let mut items = vec![f32::NAN; 1000];
        items[700] = -5.0;
        let (ids, _) = run(&[1.0], &items, 1, &ex, 2);
        assert_eq!(ids, vec![700, 0]);
    }

    #[test]
    fn same_result_for_any_thread_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(32);
        let (rows, n, dim, k) = (300, 500, 8, 7);
        let q: Vec<f32> = (0..rows * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let items: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let ex = random_exclusions(&mut rng, rows, n);
        let with = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            pool.install(|| run(&q, &items, dim, &ex, k))
        };
        assert_eq!(with(1), with(4));
    }

    #[test]
    fn shape_mismatches_are_errors() {
        let q = [0.0; 6];
        let items = [0.0; 8];
        let none = CsrMatrix::default();
        let (mut ids, mut sc) = (vec![0u32; 6], vec![0f32; 6]);
        let err = |req: TopkRequest<'_>, ids: &mut [u32], sc: &mut [f32]| {
            score_topk(&req, ids, sc).unwrap_err().to_string()
        };
        assert!(err(request(&q, &items, 0, &none, 2), &mut ids, &mut sc).contains("`req.dim` is 0"));
        assert_eq!(
            err(request(&q, &items, 4, &none, 2), &mut ids, &mut sc),
            "score_topk: `req.queries` has length 6, not a multiple of dim = 4"
        );
        assert_eq!(
            err(request(&q, &items, 2, &none, 2), &mut ids[..5], &mut sc),
            "score_topk: `out_items` has length 5, expected 6 (rows × k = 3 × 2)"
        );
        assert_eq!(
            err(request(&q, &items, 2, &none, 2), &mut ids, &mut sc[..4]),
            "score_topk: `out_scores` has length 4, expected 6 (rows × k = 3 × 2)"
        );
        let wrong_rows = CsrMatrix::from_triplets(2, 4, &[]);
        assert!(
            err(request(&q, &items, 2, &wrong_rows, 2), &mut ids, &mut sc)
                .contains("`req.exclude` is 2 × 4, expected rows × n_items = 3 × 4")
        );
        let mut bad_id = CsrMatrix::from_triplets(3, 4, &[(1, 2, 1.0)]);
        bad_id.indices[0] = 4;
        assert!(err(request(&q, &items, 2, &bad_id, 2), &mut ids, &mut sc)
            .contains("entry 0 has column 4, but n_cols = 4"));
    }
}
