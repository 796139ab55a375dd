"""The SHA-256 sums docs/data.md lists against the datasets at PROMAX_DATA__ROOT (CI points
it at the copy of the data the project's measurements were made on):

    PROMAX_DATA__ROOT=data python3 -m unittest discover -s scripts -p 'test_*.py'

Only the files present there are checked; without the variable the test is skipped.
"""

import hashlib
import os
import re
import unittest
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "data.md"
SUM_LINE = re.compile(r"^([0-9a-f]{64})  (\S+)$", re.MULTILINE)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DataSumsTest(unittest.TestCase):
    def test_the_documented_sums_match_the_data(self):
        root = os.environ.get("PROMAX_DATA__ROOT")
        if not root:
            self.skipTest("PROMAX_DATA__ROOT is not set")
        listed = SUM_LINE.findall(DOC.read_text(encoding="utf-8"))
        self.assertGreater(len(listed), 10, f"{DOC} lists the sums in a code block")
        present = [(want, name) for want, name in listed if (Path(root) / name).is_file()]
        if not present:
            self.skipTest(f"none of the files {DOC} lists is under {root}")
        for want, name in present:
            with self.subTest(file=name):
                self.assertEqual(sha256(Path(root) / name), want, f"{root}/{name}")


if __name__ == "__main__":
    unittest.main()
