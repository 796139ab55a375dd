#!/usr/bin/env python3
"""Convert a ProRec / RLMRec dataset folder into the files promax reads.

    python3 scripts/prorec_to_tsv.py SRC_DIR OUT_DIR

SRC_DIR holds the published pickles (scipy sparse matrices, users x items, every stored
nonzero one interaction): trn_mat.pkl, val_mat.pkl, tst_mat.pkl and, where published,
new_trn_rag_mat.pkl (ProMax's LLM-augmented training set). OUT_DIR receives train.tsv,
valid.tsv, test.tsv and augmented.tsv: `user<TAB>item`, 0-based row and column indices,
sorted by user, then item. RLMRec's release also has the profile embeddings
(usr_emb_np.pkl, itm_emb_np.pkl: one numpy row per user / item); when both are there they
become user_profiles.npy and item_profiles.npy (float32), what [data.profiles] reads.
Every input is read and checked before anything is written.
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
# (pickle in SRC_DIR, .npy in OUT_DIR, the matrix axis its rows follow)
PROFILES = (
    ("usr_emb_np.pkl", "user_profiles.npy", 0),
    ("itm_emb_np.pkl", "item_profiles.npy", 1),
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


def unpickle(path, what):
    """The object pickled in `path`, which should be `what` (for the error message)."""
    try:
        with open(path, "rb") as file, warnings.catch_warnings():
            # The published augmented sets name scipy's old `scipy.sparse.csr` module,
            # which still loads but warns; the warning says nothing about the data.
            warnings.simplefilter("ignore", DeprecationWarning)
            return SparseOnlyUnpickler(file).load()
    except OSError as err:
        raise ConversionError(f"{path}: cannot read: {err.strerror}") from err
    except Exception as err:  # a damaged pickle can fail in many ways; all mean the same here
        raise ConversionError(f"{path}: not a pickled {what}: {err}") from err


def load_matrix(path):
    """The users x items matrix pickled in `path`, as CSR with sorted, nonzero entries."""
    matrix = unpickle(path, "scipy sparse matrix")
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
    for pickle_name, split_name, _ in SPLITS[1:]:
        if split_name in matrices and matrices[split_name].shape != shape:
            other = matrices[split_name].shape
            raise ConversionError(
                f"{src / pickle_name}: shape {other[0]} x {other[1]} differs from "
                f"{src / SPLITS[0][0]}'s {shape[0]} x {shape[1]}"
            )
    return matrices


def load_profiles(src, shape):
    """{.npy name: float32 table} of the profile pickles, checked against the splits' shape."""
    paths = [src / pickle_name for pickle_name, _, _ in PROFILES]
    present = [path.exists() for path in paths]
    if not any(present):
        return {}
    if not all(present):
        have, lack = paths if present[0] else paths[::-1]
        raise ConversionError(f"{have} is there but {lack} is not: promax needs both tables")
    tables = {}
    for path, (_, npy_name, axis) in zip(paths, PROFILES):
        table = unpickle(path, "numpy array")
        if not isinstance(table, np.ndarray) or table.ndim != 2 or table.dtype.kind != "f":
            raise ConversionError(f"{path}: holds a {type(table).__name__}, not a 2-D float array")
        if table.shape[0] != shape[axis]:
            side = ("users", "items")[axis]
            raise ConversionError(
                f"{path}: {table.shape[0]} rows, but the splits have {shape[axis]} {side}"
            )
        if not np.isfinite(table).all():
            raise ConversionError(f"{path}: holds NaN or infinite values")
        tables[npy_name] = np.ascontiguousarray(table, dtype=np.float32)
    dims = {table.shape[1] for table in tables.values()}
    if len(dims) > 1:
        raise ConversionError(f"{paths[0]} and {paths[1]}: the two tables differ in width")
    return tables


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
        profiles = load_profiles(args.src, matrices["train.tsv"].shape)
        args.out.mkdir(parents=True, exist_ok=True)
        for split_name, matrix in matrices.items():
            write_pairs(matrix, args.out / split_name)
            users, items = matrix.shape
            print(f"{args.out / split_name}: {matrix.nnz} pairs ({users} users x {items} items)")
        for npy_name, table in profiles.items():
            np.save(args.out / npy_name, table)
            print(f"{args.out / npy_name}: {table.shape[0]} x {table.shape[1]} float32")
    except (ConversionError, OSError) as err:
        print(f"prorec_to_tsv: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
