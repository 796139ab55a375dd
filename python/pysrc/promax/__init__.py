"""promax from Python: train, compare and tune recommenders with the same code, configs
and run folders as the `promax` command line.

    import promax
    run = promax.train("configs/experiments/quickstart.toml")
    print(run.metrics["test"]["recall@20"])

Every call runs the Rust library in-process with the GIL released (compare and tune train
their cells as `promax` child processes, as the command line does). Errors raise
:class:`PromaxError` with the message the command line prints.
"""

from __future__ import annotations

import csv
import json
import numbers
import os
import shutil
import sysconfig
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np

from . import _native
from ._native import PromaxError, __version__

__all__ = [
    "PromaxError",
    "Run",
    "Report",
    "Study",
    "train",
    "resume",
    "compare",
    "tune",
    "load_run",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]
Sets = Union[Mapping[str, Any], Iterable[str], None]


def _toml_value(v: Any) -> str:
    """A Python (or NumPy) value as the TOML text `--set key=value` takes."""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return repr(float(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) as a config value")


def _sets(sets: Sets) -> List[str]:
    """`{"train.seed": 7}` or `["train.seed=7"]` as `key=value` overrides."""
    if sets is None:
        return []
    if isinstance(sets, Mapping):
        return [f"{k}={_toml_value(v)}" for k, v in sets.items()]
    if isinstance(sets, str):
        raise TypeError("sets: give a dict {key: value} or a list of 'key=value' strings")
    return [str(s) for s in sets]


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def _promax_exe() -> str:
    """The `promax` command compare and tune spawn: this package's console script."""
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("promax", "promax.exe"):
        if (scripts / name).is_file():
            return str(scripts / name)
    found = shutil.which("promax")
    if found:
        return found
    raise PromaxError(
        f"the `promax` command of this package is not installed (looked in {scripts} "
        "and on PATH); reinstall the wheel"
    )


class Run:
    """A finished run folder: its metrics, epochs, config, embeddings and recommendations."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        if not (self.path / "metrics.json").is_file():
            raise PromaxError(
                f"{self.path} holds no finished run (no metrics.json); "
                "`promax.resume(path)` continues an interrupted one"
            )
        self._recommender: Optional[_native.RunRecommender] = None

    def __repr__(self) -> str:
        return f"promax.Run({str(self.path)!r})"

    @property
    def metrics(self) -> Dict[str, Any]:
        """`metrics.json`: valid and test metrics at the best epoch, timings, sizes."""
        with open(self.path / "metrics.json", encoding="utf-8") as f:
            return json.load(f)

    @property
    def config(self) -> Dict[str, Any]:
        """The run's resolved config (every key), as a dict."""
        return json.loads(_native.config_json(str(self.path)))

    @property
    def epochs(self) -> Any:
        """`epochs.csv`: one row per epoch (losses, validation metrics where evaluated,
        seconds). A pandas DataFrame when pandas is installed, else a list of dicts
        (numbers as floats, empty cells as None)."""
        path = self.path / "epochs.csv"
        try:
            import pandas  # type: ignore[import-not-found]
        except ImportError:
            pandas = None
        if pandas is not None:
            return pandas.read_csv(path)
        with open(path, newline="", encoding="utf-8") as f:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def embeddings(self) -> Tuple[Any, Any]:
        """The final user and item embeddings: two float32 NumPy arrays, `n_users × d`
        and `n_items × d`, views of one buffer read from the run folder (no copy)."""
        table, n_users = _native.embeddings(str(self.path))
        return table[:n_users], table[n_users:]

    def recommend(self, users: Iterable[Union[int, str]], k: int = 20) -> Tuple[Any, Any]:
        """The top `k` items of each of `users`, train items excluded, best first:
        `(items, scores)`, int64 and float32 arrays of shape `len(users) × k` (a user with
        fewer rankable items padded with -1 and NaN). Users are 0-based ids, or the
        dataset's own ids for a dataset with string ids (RecBole's); item ids are 0-based
        (`item_tokens()` maps them back)."""
        if isinstance(users, (str, numbers.Integral)):
            users = [users]
        return self._rec().top_k([str(u) for u in users], int(k))

    def user_tokens(self) -> Optional[List[str]]:
        """The dataset's own id of each user (RecBole tokens); None for 0-based files."""
        t = self._rec().tokens()
        return None if t is None else t[0]

    def item_tokens(self) -> Optional[List[str]]:
        """The dataset's own id of each item (RecBole tokens); None for 0-based files."""
        t = self._rec().tokens()
        return None if t is None else t[1]

    def _rec(self) -> "_native.RunRecommender":
        if self._recommender is None:
            self._recommender = _native.RunRecommender(str(self.path))
        return self._recommender


def _number(v: Optional[str]) -> Any:
    if v is None or v == "":
        return None
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


class Report:
    """A compare report: `rows` from `report.json`, and the files beside it."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        with open(self.path / "report.json", encoding="utf-8") as f:
            self.data: Dict[str, Any] = json.load(f)

    def __repr__(self) -> str:
        return f"promax.Report({str(self.path)!r})"

    @property
    def html(self) -> Path:
        return self.path / "report.html"

    @property
    def markdown(self) -> str:
        return (self.path / "report.md").read_text(encoding="utf-8")


class Study:
    """A tune study: its trials (`trials.json`) and the best trial's experiment file."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        with open(self.path / "trials.json", encoding="utf-8") as f:
            self.data: Any = json.load(f)

    def __repr__(self) -> str:
        return f"promax.Study({str(self.path)!r})"

    @property
    def best_config(self) -> Path:
        """`best.toml`: a ready experiment file of the best trial."""
        return self.path / "best.toml"


def _progress(progress: Optional[Callable[[Dict[str, Any]], Any]]):
    """The native epoch hook's callback: the epoch's row (JSON text) as a dict."""
    if progress is None:
        return None
    if not callable(progress):
        raise TypeError("progress: give a function called with each epoch's dict")
    return lambda row: progress(json.loads(row))


def train(
    config: PathLike,
    sets: Sets = None,
    out: Optional[PathLike] = None,
    overwrite: bool = False,
    progress: Optional[Callable[[Dict[str, Any]], Any]] = None,
) -> Run:
    """Trains `config` (a run config file; `sets` override keys, `{"train.seed": 7}`) into
    `out` (default: the run's folder under `runs/`), as `promax train` does. A finished run
    there is never replaced unless `overwrite`. `progress`, if given, is called after every
    epoch with its row (`epoch`, `losses`, `valid` metrics or None, `seconds`); an
    exception it raises, or Ctrl-C, stops the run after that epoch (resumable with
    :func:`resume`) and propagates."""
    folder = _native.train(
        os.fspath(config), _sets(sets), _path(out), bool(overwrite), _progress(progress)
    )
    return Run(folder)


def resume(
    run_dir: PathLike, progress: Optional[Callable[[Dict[str, Any]], Any]] = None
) -> Run:
    """Continues an interrupted run from its checkpoint (`promax train --resume`)."""
    return Run(_native.resume(os.fspath(run_dir), _progress(progress)))


def compare(
    config: PathLike, out: Optional[PathLike] = None, jobs: int = 1, sets: Sets = None
) -> Report:
    """Runs a compare file's matrix (resuming finished cells) and writes its report, as
    `promax compare` does; default `out`: `runs/<file name>`. Once started it runs to the
    end (Ctrl-C takes effect when it returns); to stop it, end the process: the cells
    resume on the next call."""
    exe = _promax_exe()
    folder = _native.matrix("compare", os.fspath(config), _sets(sets), exe, _path(out), int(jobs))
    return Report(folder)


def tune(
    config: PathLike, out: Optional[PathLike] = None, jobs: int = 1, sets: Sets = None
) -> Study:
    """Runs a tune study (validation metric only; resumable), as `promax tune` does;
    like :func:`compare`, it runs to the end once started."""
    exe = _promax_exe()
    folder = _native.matrix("tune", os.fspath(config), _sets(sets), exe, _path(out), int(jobs))
    return Study(folder)


def load_run(path: PathLike) -> Run:
    """A finished run folder (from Python or the command line)."""
    return Run(path)


