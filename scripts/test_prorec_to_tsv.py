"""Tests of prorec_to_tsv.py on tiny pickled matrices (run by .ci/run):

    python3 -m unittest discover -s scripts -p 'test_*.py'
"""

import contextlib
import io
import os
import pickle
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
import scipy.sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prorec_to_tsv  # noqa: E402


def coo(shape, pairs, values=None):
    """A COO matrix holding `pairs` in the given (unsorted) order."""
    users, items = zip(*pairs)
    data = np.ones(len(pairs)) if values is None else np.asarray(values, dtype=float)
    return scipy.sparse.coo_matrix((data, (users, items)), shape=shape)


class Shell:
    """What calling os.system on unpickling would run: it leaves a file behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ConvertTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = Path(self.tmp.name) / "src"
        self.out = Path(self.tmp.name) / "out"
        self.src.mkdir()

    def tearDown(self):
        self.tmp.cleanup()

    def put(self, name, obj):
        with open(self.src / name, "wb") as file:
            pickle.dump(obj, file)

    def put_splits(self, shape=(3, 4)):
        # Unsorted, with a repeated pair (train) and an explicit zero (valid), as COO allows.
        self.put("trn_mat.pkl", coo(shape, [(2, 1), (0, 3), (0, 0), (2, 1)]))
        self.put("val_mat.pkl", coo(shape, [(1, 2), (0, 1), (1, 0)], values=[1, 1, 0]))
        self.put("tst_mat.pkl", coo(shape, [(1, 3)]).tocsc())

    def convert(self):
        stderr = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            code = prorec_to_tsv.main([str(self.src), str(self.out)])
        return code, stderr.getvalue()

    def read(self, name):
        return (self.out / name).read_text()

    def assert_refused(self, *messages):
        """The conversion fails, says each of `messages` and writes nothing."""
        code, stderr = self.convert()
        self.assertEqual(code, 1)
        for message in messages:
            self.assertIn(message, stderr)
        self.assertFalse(self.out.exists(), "nothing is written when an input is bad")

    def test_every_split_becomes_sorted_zero_based_pairs(self):
        self.put_splits()
        # The published augmented sets are pickled as CSR.
        self.put("new_trn_rag_mat.pkl", coo((3, 4), [(2, 2), (0, 0), (2, 1), (0, 3)]).tocsr())
        self.assertEqual(self.convert(), (0, ""))
        self.assertEqual(self.read("train.tsv"), "0\t0\n0\t3\n2\t1\n")
        self.assertEqual(self.read("valid.tsv"), "0\t1\n1\t2\n")
        self.assertEqual(self.read("test.tsv"), "1\t3\n")
        self.assertEqual(self.read("augmented.tsv"), "0\t0\n0\t3\n2\t1\n2\t2\n")

    def test_sparse_arrays_are_read_like_matrices(self):
        self.put_splits()
        self.put("trn_mat.pkl", scipy.sparse.coo_array(coo((3, 4), [(1, 1), (0, 2)])))
        self.assertEqual(self.convert(), (0, ""))
        self.assertEqual(self.read("train.tsv"), "0\t2\n1\t1\n")

    def test_without_an_augmented_pickle_no_augmented_file_is_written(self):
        self.put_splits()
        self.assertEqual(self.convert(), (0, ""))
        self.assertFalse((self.out / "augmented.tsv").exists())

    def test_a_dense_array_is_refused_naming_the_file(self):
        self.put_splits()
        self.put("val_mat.pkl", np.ones((3, 4)))
        self.assert_refused(
            "val_mat.pkl: holds a ndarray, not a users x items scipy sparse matrix"
        )

    def test_a_shape_that_differs_from_train_is_refused(self):
        self.put_splits()
        self.put("tst_mat.pkl", coo((3, 5), [(0, 4)]))
        self.assert_refused("tst_mat.pkl: shape 3 x 5 differs from", "trn_mat.pkl's 3 x 4")

    def test_a_missing_split_is_named(self):
        self.put_splits()
        (self.src / "val_mat.pkl").unlink()
        self.assert_refused("val_mat.pkl: cannot read")

    def test_a_truncated_pickle_is_named(self):
        self.put_splits()
        data = (self.src / "trn_mat.pkl").read_bytes()
        (self.src / "trn_mat.pkl").write_bytes(data[: len(data) // 2])
        self.assert_refused("trn_mat.pkl: not a pickled scipy sparse matrix")

    def test_profile_pickles_become_float32_npy_tables(self):
        self.put_splits()
        users = np.arange(15, dtype=np.float64).reshape(3, 5) / 7
        items = -np.arange(20, dtype=np.float64).reshape(4, 5) / 3
        self.put("usr_emb_np.pkl", users)
        self.put("itm_emb_np.pkl", items)
        self.assertEqual(self.convert(), (0, ""))
        for name, table in (("user_profiles.npy", users), ("item_profiles.npy", items)):
            saved = np.load(self.out / name)
            self.assertEqual(saved.dtype, np.dtype("<f4"))
            np.testing.assert_array_equal(saved, table.astype(np.float32))

    def test_one_profile_table_alone_is_refused(self):
        self.put_splits()
        self.put("itm_emb_np.pkl", np.zeros((4, 5)))
        self.assert_refused("itm_emb_np.pkl is there but", "usr_emb_np.pkl is not")

    def test_a_profile_table_of_the_wrong_height_is_refused(self):
        self.put_splits()
        self.put("usr_emb_np.pkl", np.zeros((3, 5)))
        self.put("itm_emb_np.pkl", np.zeros((3, 5)))
        self.assert_refused("itm_emb_np.pkl: 3 rows, but the splits have 4 items")
        self.assertFalse(self.out.exists())

    def test_a_profile_table_with_nan_is_refused(self):
        self.put_splits()
        users = np.zeros((3, 5))
        users[1, 2] = np.nan
        self.put("usr_emb_np.pkl", users)
        self.put("itm_emb_np.pkl", np.zeros((4, 5)))
        self.assert_refused("usr_emb_np.pkl: holds NaN or infinite values")

    def test_a_pickle_that_would_run_code_is_refused_unrun(self):
        self.put_splits()
        marker = Path(self.tmp.name) / "ran"
        self.put("trn_mat.pkl", Shell(marker))
        self.assert_refused(
            "trn_mat.pkl: not a pickled scipy sparse matrix", "which no sparse matrix needs"
        )
        self.assertFalse(marker.exists())


if __name__ == "__main__":
    unittest.main()
