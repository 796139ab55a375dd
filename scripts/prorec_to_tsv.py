#!/usr/bin/env python3
"""Convert a ProRec / RLMRec dataset folder into the split files promax reads.

    python3 scripts/prorec_to_tsv.py SRC_DIR OUT_DIR

SRC_DIR holds the published pickles (scipy sparse matrices, users x items, every stored
nonzero one interaction): trn_mat.pkl, val_mat.pkl, tst_mat.pkl and, where published,
new_trn_rag_mat.pkl (ProMax's LLM-augmented training set). OUT_DIR receives train.tsv,
valid.tsv, test.tsv and augmented.tsv: `user<TAB>item`, 0-based row and column indices,
sorted by user, then item. Every input is read and checked before anything is written.
Needs numpy and scipy (scripts/requirements.txt); see docs/data.md.
"""

import argparse
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse

# (pickle in SRC_DIR, split file in OUT_DIR, required)
SPLITS = (
    ("trn_mat.pkl", "train.tsv", True),
    ("val_mat.pkl", "valid.tsv", True),
    ("tst_mat.pkl", "test.tsv", True),
    ("new_trn_rag_mat.pkl", "augmented.tsv", False),
)

# Unpickling can call any importable function, and these files come from the internet:
# only the classes a pickled numpy array or scipy sparse matrix is built from get through.
NUMPY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}
SPARSE_TYPES = (scipy.sparse.spmatrix, scipy.sparse.sparray)


class ConversionError(Exception):
    """An input that is not what the converter expects; the message names the file."""


class SparseOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        if module == "scipy.sparse" or module.startswith("scipy.sparse."):
            found = super().find_class(module, name)
            if isinstance(found, type) and issubclass(found, SPARSE_TYPES):
                return found
        raise pickle.UnpicklingError(f"refers to {module}.{name}, which no sparse matrix needs")


def load_matrix(path):
    """The users x items matrix pickled in `path`, as CSR with sorted, nonzero entries."""
    try:
        with open(path, "rb") as file, warnings.catch_warnings():
            # The published augmented sets name scipy's old `scipy.sparse.csr` module,
            # which still loads but warns; the warning says nothing about the data.
            warnings.simplefilter("ignore", DeprecationWarning)
            matrix = SparseOnlyUnpickler(file).load()
    except OSError as err:
        raise ConversionError(f"{path}: cannot read: {err.strerror}") from err
    except Exception as err:  # a damaged pickle can fail in many ways; all mean the same here
        raise ConversionError(f"{path}: not a pickled scipy sparse matrix: {err}") from err
    if not scipy.sparse.issparse(matrix) or matrix.ndim != 2:
        raise ConversionError(
            f"{path}: holds a {type(matrix).__name__}, not a users x items scipy sparse matrix"
        )
    matrix = scipy.sparse.csr_matrix(matrix)
    # A COO matrix may store one pair twice or store explicit zeros; neither is an interaction.
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def load_splits(src):
    """{split file name: matrix} for every pickle present, all checked to share one shape."""
    matrices = {}
    for pickle_name, split_name, required in SPLITS:
        path = src / pickle_name
        if not required and not path.exists():
            continue
        matrices[split_name] = load_matrix(path)
    shape = matrices["train.tsv"].shape
    for (pickle_name, split_name, _) in SPLITS[1:]:
        if split_name in matrices and matrices[split_name].shape != shape:
            other = matrices[split_name].shape
            raise ConversionError(
                f"{src / pickle_name}: shape {other[0]} x {other[1]} differs from "
                f"{src / SPLITS[0][0]}'s {shape[0]} x {shape[1]}"
            )
    return matrices


def write_pairs(matrix, path):
    """One `user<TAB>item` line per stored entry; CSR order is user, then item."""
    users = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    np.savetxt(path, np.column_stack((users, matrix.indices)), fmt="%d", delimiter="\t")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="folder with trn_mat.pkl, val_mat.pkl, tst_mat.pkl")
    parser.add_argument("out", type=Path, help="folder to write train.tsv, valid.tsv, test.tsv to")
    args = parser.parse_args(argv)
    try:
        matrices = load_splits(args.src)
        args.out.mkdir(parents=True, exist_ok=True)
        for split_name, matrix in matrices.items():
            write_pairs(matrix, args.out / split_name)
            users, items = matrix.shape
            print(f"{args.out / split_name}: {matrix.nnz} pairs ({users} users x {items} items)")
    except (ConversionError, OSError) as err:
        print(f"prorec_to_tsv: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
