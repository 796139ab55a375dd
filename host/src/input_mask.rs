//! Input masks: an augmenter's request to replace backbone input rows for one training
//! step (RLMRec-Gen's masked nodes). The host writes the augmenter's vector into those rows
//! of the backbone's parameters before the step's forward passes and, after the backward
//! passes, adds the rows' gradient into the vector's, clears theirs and puts the rows back,
//! so the L2 term and the optimiser see the real parameters (docs/architecture.md, "Input
//! masks").

use anyhow::{bail, Result};
use promax_plugin_api::TableSpec;

use crate::params::ParamStore;

/// Where a backbone keeps one input row per node: tables whose rows, in order, are the
/// users then the items.
#[derive(Clone, Debug)]
pub struct NodeInputs {
    /// Table indices in the backbone's store, in node order.
    tables: Vec<usize>,
    /// The first node of each table (`starts[j]` for `tables[j]`), then the node count.
    starts: Vec<usize>,
    /// Columns of every input row.
    pub cols: usize,
}

impl NodeInputs {
    /// Checks a backbone's declaration against its tables; `None` when it declares none.
    pub fn new(
        backbone: &str,
        specs: &[TableSpec],
        declared: &[u32],
        n_nodes: usize,
    ) -> Result<Option<NodeInputs>> {
        if declared.is_empty() {
            return Ok(None);
        }
        let mut tables = Vec::with_capacity(declared.len());
        let mut starts = vec![0];
        let mut cols = None;
        for &t in declared {
            let t = t as usize;
            let Some(spec) = specs.get(t) else {
                bail!(
                    "backbone `{backbone}` declares table {t} as node inputs, but it has {} tables",
                    specs.len()
                );
            };
            if tables.contains(&t) {
                bail!(
                    "backbone `{backbone}` declares table `{}` as node inputs twice",
                    spec.name
                );
            }
            if *cols.get_or_insert(spec.cols) != spec.cols {
                bail!(
                    "backbone `{backbone}`'s node-input tables differ in width (`{}` has {} \
                     columns, the first {})",
                    spec.name,
                    spec.cols,
                    cols.unwrap_or_default()
                );
            }
            tables.push(t);
            starts.push(starts[starts.len() - 1] + spec.rows);
        }
        let rows = starts[starts.len() - 1];
        if rows != n_nodes {
            bail!(
                "backbone `{backbone}`'s node-input tables hold {rows} rows, but the dataset \
                 has {n_nodes} users and items"
            );
        }
        Ok(Some(NodeInputs {
            tables,
            starts,
            cols: cols.unwrap_or_default(),
        }))
    }

    /// Nodes covered (users + items).
    pub fn n_nodes(&self) -> usize {
        self.starts[self.starts.len() - 1]
    }

    /// The offset of node `node`'s input row in the backbone store's flat buffer.
    fn offset(&self, store: &ParamStore, node: usize) -> usize {
        let j = self.starts.partition_point(|&s| s <= node) - 1;
        let l = store.layout[self.tables[j]];
        l.offset + (node - self.starts[j]) * l.cols
    }
}

/// One augmenter's rows for a step, checked: the augmenter's index among the model's, its
/// vector's offset in that augmenter's store, and the nodes.
#[derive(Clone, Debug)]
pub struct StepMask {
    pub augmenter: usize,
    pub vector: usize,
    pub nodes: Vec<u32>,
}

/// A replaced row: where it lives in the backbone store, which augmenter's vector took
/// it, and the original values (in `Applied::saved`).
struct Replaced {
    offset: usize,
    augmenter: usize,
    vector: usize,
}

/// The rows replaced for one step, to be undone by [`Applied::finish`].
pub struct Applied {
    rows: Vec<Replaced>,
    saved: Vec<f32>,
    cols: usize,
}

/// Writes every mask's vector into its nodes' input rows of `backbone` (a node two
/// augmenters mask takes the later one's vector, and its gradient goes there).
pub fn apply(
    inputs: &NodeInputs,
    backbone: &mut ParamStore,
    masks: &[StepMask],
    augmenters: &[ParamStore],
) -> Applied {
    let cols = inputs.cols;
    let mut applied = Applied {
        rows: Vec::new(),
        saved: Vec::new(),
        cols,
    };
    let mut slot: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for m in masks {
        let vector = &augmenters[m.augmenter].data[m.vector..m.vector + cols];
        for &node in &m.nodes {
            let offset = inputs.offset(backbone, node as usize);
            match slot.get(&node) {
                Some(&i) => {
                    applied.rows[i].augmenter = m.augmenter;
                    applied.rows[i].vector = m.vector;
                }
                None => {
                    slot.insert(node, applied.rows.len());
                    applied.rows.push(Replaced {
                        offset,
                        augmenter: m.augmenter,
                        vector: m.vector,
                    });
                    applied
                        .saved
                        .extend_from_slice(&backbone.data[offset..offset + cols]);
                }
            }
            backbone.data[offset..offset + cols].copy_from_slice(vector);
        }
    }
    applied
}

impl Applied {
    /// Routes each replaced row's gradient into its vector's, clears the row's, and
    /// restores the row's values.
    pub fn finish(self, backbone: &mut ParamStore, augmenters: &mut [ParamStore]) {
        let cols = self.cols;
        for (r, saved) in self.rows.iter().zip(self.saved.chunks_exact(cols.max(1))) {
            let (o, v) = (r.offset, r.vector);
            let g = &mut augmenters[r.augmenter].grad[v..v + cols];
            for (acc, d) in g.iter_mut().zip(&mut backbone.grad[o..o + cols]) {
                *acc += *d;
                *d = 0.0;
            }
            backbone.data[o..o + cols].copy_from_slice(saved);
        }
    }
}

/// Checks one augmenter's request against the node count and its own tables; returns the
/// vector's offset in its store.
pub fn check_mask(
    augmenter: &str,
    store: &ParamStore,
    inputs: &NodeInputs,
    nodes: &[u32],
    table: usize,
) -> Result<usize> {
    let Some(spec) = store.specs.get(table) else {
        bail!(
            "augmenter `{augmenter}` input_mask names its table {table}, but it has {} tables",
            store.specs.len()
        );
    };
    if spec.rows != 1 || spec.cols != inputs.cols {
        bail!(
            "augmenter `{augmenter}` input_mask: its table `{}` is {} × {}, but the backbone's \
             input rows are 1 × {} (set the augmenter's input width to {})",
            spec.name,
            spec.rows,
            spec.cols,
            inputs.cols,
            inputs.cols
        );
    }
    let n = inputs.n_nodes();
    let mut seen = vec![false; n];
    for &node in nodes {
        let Some(s) = seen.get_mut(node as usize) else {
            bail!("augmenter `{augmenter}` input_mask: node {node} is out of range (the dataset has {n} users and items)");
        };
        if std::mem::replace(s, true) {
            bail!("augmenter `{augmenter}` input_mask: node {node} is listed twice");
        }
    }
    Ok(store.layout[table].offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::sdk::table;
    use promax_plugin_api::Init;
    use rand::SeedableRng;

    fn store(owner: &str, specs: Vec<TableSpec>) -> ParamStore {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        ParamStore::new(owner, specs, &mut rng).unwrap()
    }

    fn backbone() -> (ParamStore, NodeInputs) {
        let specs = vec![
            table("user_emb", 2, 3, Init::XavierUniform),
            table("w", 3, 3, Init::XavierUniform),
            table("item_emb", 3, 3, Init::XavierUniform),
        ];
        let inputs = NodeInputs::new("b", &specs, &[0, 2], 5).unwrap().unwrap();
        (store("b", specs), inputs)
    }

    #[test]
    fn node_rows_are_found_across_the_declared_tables() {
        let (s, inputs) = backbone();
        // users 0, 1 in table 0 (offset 0); items 0..3 in table 2, after `w`'s 9 values.
        let offsets: Vec<usize> = (0..5).map(|n| inputs.offset(&s, n)).collect();
        assert_eq!(offsets, [0, 3, 15, 18, 21]);
    }

    #[test]
    fn bad_declarations_are_refused_naming_the_backbone() {
        let specs = vec![table("u", 2, 3, Init::Zeros), table("i", 3, 4, Init::Zeros)];
        let err = |d: &[u32], n| NodeInputs::new("bb", &specs, d, n).unwrap_err().to_string();
        assert!(err(&[0, 1], 5).contains("differ in width"));
        assert!(err(&[0, 7], 5).contains("table 7"));
        assert!(err(&[0, 0], 4).contains("twice"));
        assert!(err(&[0], 5).contains("hold 2 rows"));
        assert!(err(&[0], 5).contains("`bb`"));
        assert!(NodeInputs::new("bb", &specs, &[], 5).unwrap().is_none());
    }

    #[test]
    fn masks_are_checked_against_nodes_and_the_vector_table() {
        let (_, inputs) = backbone();
        let aug = store(
            "a",
            vec![
                table("mlp", 4, 4, Init::Zeros),
                table("mask", 1, 3, Init::Zeros),
            ],
        );
        assert_eq!(check_mask("a", &aug, &inputs, &[0, 4], 1).unwrap(), 16);
        let err = |nodes: &[u32], t| {
            check_mask("a", &aug, &inputs, nodes, t)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[5], 1).contains("node 5 is out of range"));
        assert!(err(&[1, 1], 1).contains("listed twice"));
        assert!(err(&[0], 0).contains("is 4 × 4"));
        assert!(err(&[0], 2).contains("has 2 tables"));
    }

    #[test]
    fn apply_then_finish_routes_gradients_and_restores_rows() {
        let (mut b, inputs) = backbone();
        let before = b.data.clone();
        let mut augs = vec![
            store("a", vec![table("mask", 1, 3, Init::XavierUniform)]),
            store("c", vec![table("mask", 1, 3, Init::XavierUniform)]),
        ];
        let masks = [
            StepMask {
                augmenter: 0,
                vector: 0,
                nodes: vec![1, 3],
            },
            StepMask {
                augmenter: 1,
                vector: 0,
                nodes: vec![3],
            },
        ];
        let applied = apply(&inputs, &mut b, &masks, &augs);
        assert_eq!(&b.data[3..6], &augs[0].data[..]);
        assert_eq!(
            &b.data[18..21],
            &augs[1].data[..],
            "the later augmenter wins"
        );
        assert_eq!(&b.data[..3], &before[..3]);
        b.grad
            .iter_mut()
            .enumerate()
            .for_each(|(i, g)| *g = i as f32);
        applied.finish(&mut b, &mut augs);
        assert_eq!(b.data, before);
        assert_eq!(augs[0].grad, [3.0, 4.0, 5.0]);
        assert_eq!(augs[1].grad, [18.0, 19.0, 20.0]);
        assert_eq!(&b.grad[3..6], &[0.0; 3]);
        assert_eq!(&b.grad[18..21], &[0.0; 3]);
        assert_eq!(b.grad[6], 6.0, "rows nobody masked keep their gradient");
    }
}
