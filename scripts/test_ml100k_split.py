"""Tests of ml100k_split.py on a tiny ml-100k-shaped folder (run by .ci/run):

    python3 -m unittest discover -s scripts -p 'test_*.py'
"""

import contextlib
import io
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ml100k_split  # noqa: E402

# Original user 30 comes first in the file but has the larger id, so it becomes user 1.
# User 8 and movie 112 have only ratings below 3, so neither survives.
RATINGS = (
    [(30, m, 5) for m in (101, 102, 103, 105, 106, 107, 108, 109, 110, 111)]
    + [(7, m, 3 + m % 3) for m in range(101, 107)]
    + [(7, 112, 2), (8, 101, 1)]
)


def item_line(movie):
    flags = ["0"] * len(ml100k_split.GENRES)
    flags[1 if movie == 101 else 0] = "1"
    if movie == 101:
        flags[5] = "1"  # Action and Comedy
    title = "Caf\u00e9 Society (1995) " if movie == 102 else f"Film {movie} (1995)"
    return "|".join([str(movie), title, "01-Jan-1995", "", "http://x"] + flags)


class SplitTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = Path(self.tmp.name) / "ml-100k"
        self.out = Path(self.tmp.name) / "out"
        self.src.mkdir()
        lines = (f"{u}\t{m}\t{r}\t88125094{k % 10}" for k, (u, m, r) in enumerate(RATINGS))
        (self.src / "u.data").write_text("\n".join(lines) + "\n", encoding="ascii")
        items = "\n".join(item_line(m) for m in range(101, 113)) + "\n"
        (self.src / "u.item").write_text(items, encoding="latin-1")
        users = "7|24|M|technician|85711\n8|53|F|other|94043\n30|23|M|writer|32067\n"
        (self.src / "u.user").write_text(users, encoding="latin-1")

    def tearDown(self):
        self.tmp.cleanup()

    def run_split(self):
        stderr = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
            code = ml100k_split.main([str(self.src), str(self.out)])
        return code, stderr.getvalue()

    def assert_refused(self, message):
        """The split fails, says `message` and writes nothing."""
        code, stderr = self.run_split()
        self.assertEqual(code, 1)
        self.assertIn(message, stderr)
        self.assertFalse(self.out.exists())

    def pairs(self, name):
        lines = (self.out / name).read_text(encoding="utf-8").splitlines()
        return [tuple(int(f) for f in line.split("\t")) for line in lines]

    def test_the_split_follows_the_seeded_rule(self):
        self.assertEqual(self.run_split(), (0, ""))
        # User 0 (6 positives): 1 valid, 1 test; user 1 (10): 2 and 2. The permutations are
        # numpy default_rng(2025)'s, drawn for user 0, then user 1.
        self.assertEqual(
            self.pairs("train.tsv"),
            [(0, 0), (0, 1), (0, 2), (0, 5), (1, 0), (1, 2), (1, 6), (1, 7), (1, 8), (1, 10)],
        )
        self.assertEqual(self.pairs("valid.tsv"), [(0, 4), (1, 4), (1, 9)])
        self.assertEqual(self.pairs("test.tsv"), [(0, 3), (1, 1), (1, 5)])

    def test_items_and_users_are_renumbered_in_original_id_order(self):
        self.assertEqual(self.run_split(), (0, ""))
        items = (self.out / "items.tsv").read_text(encoding="utf-8").splitlines()
        self.assertEqual(len(items), 11, "movie 112 has no rating of 3 or more")
        self.assertEqual(items[0], "0\tFilm 101 (1995)\tAction|Comedy\t101")
        self.assertEqual(items[1], "1\tCaf\u00e9 Society (1995)\tunknown\t102")
        users = (self.out / "users.tsv").read_text(encoding="utf-8").splitlines()
        self.assertEqual(users, ["0\t24\tM\ttechnician\t7", "1\t23\tM\twriter\t30"])

    def test_a_short_line_is_named_with_its_number(self):
        data = (self.src / "u.data").read_text(encoding="ascii").splitlines()
        data[1] = "30\t102\t5"
        (self.src / "u.data").write_text("\n".join(data) + "\n", encoding="ascii")
        self.assert_refused("u.data:2: expected 4 fields, found 3")

    def test_a_rated_movie_missing_from_u_item_is_named(self):
        items = (self.src / "u.item").read_text(encoding="latin-1").splitlines()
        (self.src / "u.item").write_text("\n".join(items[1:]) + "\n", encoding="latin-1")
        self.assert_refused("u.item: no line for movie 101")


if __name__ == "__main__":
    unittest.main()
