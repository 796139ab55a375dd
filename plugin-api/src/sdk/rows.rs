//! Row operations on row-major `f32` tables, shared by every plugin and the host: batches
//! read a few rows of a large table ([`gather`]), send their gradients back into it
//! ([`scatter_add`]), run over their distinct ids ([`Distinct`]); node buffers stack the
//! user table over the item table ([`stack_nodes`], [`add_node_gradient`]).
//!
//! Every function keeps the order of its floating-point operations fixed (one row at a
//! time, in id order), so callers get the same bits as a hand-written loop.

use super::{Grads, Params, PluginResult};
use crate::abi::{Init, TableSpec};

/// Rows `ids` of the row-major `table` (`dim` columns), stacked in the order of `ids`.
pub fn gather(table: &[f32], dim: usize, ids: &[u32]) -> Vec<f32> {
    let row = |&i: &u32| &table[i as usize * dim..(i as usize + 1) * dim];
    ids.iter().flat_map(row).copied().collect()
}

/// `acc[ids[r]] += rows[r]` for every row r (`dim` columns); a repeated id accumulates.
pub fn scatter_add(acc: &mut [f32], dim: usize, ids: &[u32], rows: &[f32]) {
    for (&i, g) in ids.iter().zip(rows.chunks_exact(dim)) {
        let row = &mut acc[i as usize * dim..(i as usize + 1) * dim];
        row.iter_mut().zip(g).for_each(|(a, g)| *a += g);
    }
}

/// The distinct values of a list of ids, and where each entry of the list went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distinct {
    /// The distinct values, ascending.
    pub ids: Vec<u32>,
    /// For each entry of the input, the index of its value in `ids`.
    pub slots: Vec<u32>,
}

impl Distinct {
    /// The distinct values of `values` and each entry's slot.
    pub fn of(values: &[u32]) -> Self {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_unstable_by_key(|&s| values[s]);
        let mut ids: Vec<u32> = Vec::new();
        let mut slots = vec![0u32; values.len()];
        for s in order {
            if ids.last() != Some(&values[s]) {
                ids.push(values[s]);
            }
            slots[s] = (ids.len() - 1) as u32;
        }
        Distinct { ids, slots }
    }

    /// How often each distinct value occurs in the input (aligned with `ids`).
    pub fn counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.ids.len()];
        self.slots.iter().for_each(|&s| counts[s as usize] += 1);
        counts
    }
}

/// Scales every row of `x` (`dim` columns) to unit L2 norm; an all-zero row stays zero.
pub fn unit_rows(x: &mut [f32], dim: usize) {
    for row in x.chunks_exact_mut(dim) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            row.iter_mut().for_each(|v| *v /= n);
        }
    }
}

/// The two trainable tables of a node-embedding model: `user_emb` (table 0) and
/// `item_emb` (table 1), `dim` columns each, Xavier-initialised.
pub fn node_tables(n_users: usize, n_items: usize, dim: usize) -> Vec<TableSpec> {
    vec![
        super::table("user_emb", n_users, dim, Init::XavierUniform),
        super::table("item_emb", n_items, dim, Init::XavierUniform),
    ]
}

/// The node-input tables of [`node_tables`], for [`BackboneImpl::node_inputs`]: the user
/// table, then the item table.
///
/// [`BackboneImpl::node_inputs`]: crate::sdk::BackboneImpl::node_inputs
pub fn node_table_indices() -> Vec<usize> {
    vec![0, 1]
}

/// Writes tables 0 (users) and 1 (items) of `params` into the node buffer `out`
/// (`[users; items]`), which must hold exactly both.
pub fn stack_nodes(params: &Params<'_>, out: &mut [f32]) -> PluginResult<()> {
    let (u, i) = (params.table(0), params.table(1));
    if out.len() != u.len() + i.len() {
        return Err(format!(
            "the node buffer holds {} values, the user and item tables {} + {}",
            out.len(),
            u.len(),
            i.len()
        ));
    }
    let (ou, oi) = out.split_at_mut(u.len());
    ou.copy_from_slice(u);
    oi.copy_from_slice(i);
    Ok(())
}

/// Adds a node gradient `[d_users; d_items]` into the gradients of tables 0 (users) and 1
/// (items), which together must have exactly its size.
pub fn add_node_gradient(d_nodes: &[f32], grads: &mut Grads<'_>) -> PluginResult<()> {
    let nu = grads.table_mut(0).len();
    let ni = grads.table_mut(1).len();
    if d_nodes.len() != nu + ni {
        return Err(format!(
            "the node gradient holds {} values, the user and item tables {nu} + {ni}",
            d_nodes.len()
        ));
    }
    let (du, di) = d_nodes.split_at(nu);
    for (t, d) in [(0, du), (1, di)] {
        let acc = grads.table_mut(t).iter_mut().zip(d);
        acc.for_each(|(g, d)| *g += d);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::TableLayout;

    #[test]
    fn gather_and_scatter_add_follow_the_ids() {
        let table = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0];
        assert_eq!(
            gather(&table, 2, &[2, 0, 2]),
            [20.0, 21.0, 0.0, 1.0, 20.0, 21.0]
        );
        let mut acc = [0f32; 6];
        scatter_add(&mut acc, 2, &[2, 0, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(acc, [3.0, 4.0, 0.0, 0.0, 6.0, 8.0]);
    }

    #[test]
    fn distinct_ids_slots_and_counts() {
        let d = Distinct::of(&[5, 1, 5, 3, 1, 5]);
        assert_eq!(d.ids, [1, 3, 5]);
        assert_eq!(d.slots, [2, 0, 2, 1, 0, 2]);
        assert_eq!(d.counts(), [2, 1, 3]);
        assert_eq!(Distinct::of(&[]).ids, Vec::<u32>::new());
    }

    #[test]
    fn unit_rows_leaves_zero_rows_alone() {
        let mut x = [3.0, 4.0, 0.0, 0.0];
        unit_rows(&mut x, 2);
        assert_eq!(x, [0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn node_buffers_stack_users_over_items() {
        let layout = [
            TableLayout {
                offset: 0,
                rows: 1,
                cols: 2,
            },
            TableLayout {
                offset: 2,
                rows: 2,
                cols: 2,
            },
        ];
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [0f32; 6];
        stack_nodes(&Params::new(&data, &layout), &mut out).unwrap();
        assert_eq!(out, data);
        let e = stack_nodes(&Params::new(&data, &layout), &mut out[..4]).unwrap_err();
        assert!(e.contains("holds 4 values") && e.contains("2 + 4"), "{e}");

        let mut g = [1f32; 6];
        add_node_gradient(&data, &mut Grads::new(&mut g, &layout)).unwrap();
        assert_eq!(g, [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        let e = add_node_gradient(&data[..5], &mut Grads::new(&mut g, &layout)).unwrap_err();
        assert!(e.contains("holds 5 values"), "{e}");
    }
}
