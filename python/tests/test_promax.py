"""The Python package over the installed wheel: the quick start trains to the command
line's metrics, embeddings and recommendations match the run folder and `promax
recommend`, errors carry the command line's messages, a RecBole `.inter` file trains, and
compare runs its cells through the wheel's `promax` command.

Run from anywhere: `python -m pytest python/tests` (CI: .ci/run, after the wheel is
installed into a fresh virtual environment).
"""

import json
import os
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import promax

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "configs" / "experiments" / "quickstart.toml"
# Smaller than the quick start, so that every test trains in about a second.
SMALL = {
    "data.synthetic.n_users": 200,
    "data.synthetic.n_items": 150,
    "train.max_epochs": 6,
    "eval.every": 2,
    "train.threads": 1,
}


def cli_binary() -> Path:
    """The `promax` command the Python results are checked against: the Rust binary
    named by CLI_UNDER_TEST (CI: the one `cargo test` built), else the wheel's own."""
    named = os.environ.get("CLI_UNDER_TEST")
    if named:
        return Path(named).resolve()
    return Path(sysconfig.get_path("scripts")) / "promax"


def cli(*args, cwd=REPO) -> str:
    out = subprocess.run(
        [str(cli_binary()), *map(str, args)], cwd=cwd, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def set_args(sets):
    args = []
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return args


def held_out(run_dir: Path):
    m = json.loads((run_dir / "metrics.json").read_text())
    return m["valid"], m["test"], m["best_epoch"], m["epochs_run"]


def test_the_quick_start_trains_to_the_command_lines_metrics(tmp_path):
    run = promax.train(QUICK, sets=SMALL, out=tmp_path / "py")
    assert isinstance(run, promax.Run)
    assert 0.0 < run.metrics["test"]["recall@20"] <= 1.0
    cli("train", QUICK, "--out", tmp_path / "cli", *set_args(SMALL))
    assert held_out(run.path) == held_out(tmp_path / "cli")
    assert run.config["train"]["max_epochs"] == 6
    epochs = run.epochs
    rows = epochs.to_dict("records") if hasattr(epochs, "to_dict") else epochs
    assert [r["epoch"] for r in rows] == list(range(1, run.metrics["epochs_run"] + 1))
    # A finished run is never replaced unless asked.
    with pytest.raises(promax.PromaxError, match="pass --overwrite"):
        promax.train(QUICK, sets=SMALL, out=tmp_path / "py")
    again = promax.train(QUICK, sets=SMALL, out=tmp_path / "py", overwrite=True)
    assert held_out(again.path) == held_out(run.path)


def test_embeddings_are_two_views_of_one_buffer(tmp_path):
    run = promax.train(QUICK, sets=SMALL, out=tmp_path / "run")
    users, items = run.embeddings()
    assert users.shape == (200, 32) and items.shape == (150, 32)
    assert users.dtype == np.float32
    assert users.base is not None and users.base is items.base, "views of one table"
    assert np.isfinite(users).all() and np.isfinite(items).all()
    loaded = promax.load_run(tmp_path / "run").embeddings()
    assert np.array_equal(loaded[0], users) and np.array_equal(loaded[1], items)


def test_recommend_equals_promax_recommend(tmp_path):
    run = promax.train(QUICK, sets=SMALL, out=tmp_path / "run")
    items, scores = run.recommend([0, 5, 199], k=10)
    assert items.shape == (3, 10) and scores.shape == (3, 10)
    assert items.dtype == np.int64 and scores.dtype == np.float32
    text = cli("recommend", run.path, "--users", "0,5,199", "--k", "10")
    lines = [line.split("\t") for line in text.splitlines()[1:]]
    want_items = np.array([int(f[2]) for f in lines]).reshape(3, 10)
    want_scores = np.array([np.float32(f[3]) for f in lines]).reshape(3, 10)
    assert np.array_equal(items, want_items)
    assert np.array_equal(scores, want_scores)
    assert (np.diff(scores, axis=1) <= 0).all(), "best first"
    with pytest.raises(promax.PromaxError, match="out of range"):
        run.recommend([200])


def test_errors_carry_the_command_lines_messages(tmp_path):
    with pytest.raises(promax.PromaxError, match=r"did you mean `train.lr`\?"):
        promax.train(QUICK, sets={"train.lrr": 0.1}, out=tmp_path / "x")
    with pytest.raises(promax.PromaxError, match="not found"):
        promax.train(tmp_path / "missing.toml")
    with pytest.raises(promax.PromaxError, match="no finished run"):
        promax.load_run(tmp_path)
    with pytest.raises(TypeError):
        promax.train(QUICK, sets="train.seed=1")
    assert not (tmp_path / "x").exists()


def test_a_recbole_inter_file_is_read_split_and_trained(tmp_path):
    data = tmp_path / "shop"
    data.mkdir()
    lines = ["item_id:token\tuser_id:token\trating:float"]
    for u in range(30):
        for k in range(10):
            lines.append(f"sku-{(u * 3 + k * 7) % 40}\tcustomer-{u}\t{1 + (u + k) % 5}")
    (data / "shop.inter").write_text("\n".join(lines) + "\n")
    sets = {
        "data.kind": "recbole",
        "data.path": str(data),
        "data.recbole.min_rating": 2.0,
        "train.max_epochs": 4,
        "eval.every": 1,
        "train.threads": 1,
    }
    config = REPO / "configs" / "experiments" / "lightgcn-synthetic.toml"
    run = promax.train(config, sets=sets, out=tmp_path / "run")
    users, items = run.embeddings()
    assert len(run.user_tokens()) == users.shape[0] == 30
    assert len(run.item_tokens()) == items.shape[0]
    assert run.user_tokens()[0] == "customer-0"
    assert (run.path / "user_ids.tsv").is_file()
    recs, _ = run.recommend(["customer-3"], k=5)
    tokens = run.item_tokens()
    text = cli("recommend", run.path, "--users", "customer-3", "--k", "5")
    want = [line.split("\t")[2] for line in text.splitlines()[1:]]
    assert [tokens[i] for i in recs[0]] == want
    with pytest.raises(promax.PromaxError, match="not in the run's dataset"):
        run.recommend(["customer-99"])


def test_compare_trains_its_cells_through_the_wheels_command(tmp_path):
    base = REPO / "configs"
    spec = tmp_path / "tiny.toml"
    spec.write_text(
        f'title = "tiny"\nlayers = [{json.dumps(str(base / "base.toml"))}]\n'
        'sets = ["train.max_epochs=4", "eval.every=1", "train.threads=1",'
        ' "data.synthetic.n_users=120", "data.synthetic.n_items=90"]\n'
        'seeds = [1, 2]\nbaseline = "base"\n'
        f'[[datasets]]\nname = "syn"\nconfig = {json.dumps(str(base / "datasets/synthetic.toml"))}\n'
        f'[[backbones]]\nname = "lightgcn"\nconfig = {json.dumps(str(base / "models/lightgcn.toml"))}\n'
        f'[[backbones]]\nname = "mf"\nconfig = {json.dumps(str(base / "models/mf.toml"))}\n'
        '[[methods]]\nname = "base"\nconfig = []\n'
    )
    report = promax.compare(spec, out=tmp_path / "out", jobs=2)
    assert report.html.is_file() and "tiny" in report.markdown
    cells = sorted(p.name for p in (tmp_path / "out" / "cells").iterdir())
    assert len(cells) == 4, cells
    for c in cells:
        assert (tmp_path / "out" / "cells" / c / "metrics.json").is_file()


def test_the_console_script_is_the_command_line():
    scripts = Path(sysconfig.get_path("scripts"))
    out = subprocess.run(
        [str(scripts / "promax"), "plugins"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "lightgcn" in out.stdout and "promax" in out.stdout
    bad = subprocess.run(
        [str(scripts / "promax"), "train", "--bogus"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--bogus" in bad.stderr
    # No counting allocator in Python's process: the peak memory is said to be unmeasured.
    bench = subprocess.run(
        [str(scripts / "promax"), "bench", "sdr", "--users", "50", "--items", "80", "--json"],
        capture_output=True,
        text=True,
    )
    assert bench.returncode == 0, bench.stderr
    assert json.loads(bench.stdout)["extra_bytes"] is None


def test_progress_reports_every_epoch_and_an_exception_stops_resumably(tmp_path):
    seen = []
    full = promax.train(QUICK, sets=SMALL, out=tmp_path / "full", progress=seen.append)
    assert [r["epoch"] for r in seen] == list(range(1, full.metrics["epochs_run"] + 1))
    assert seen[1]["valid"]["recall@20"] > 0 and seen[0]["valid"] is None

    class Stop(Exception):
        pass

    def stop_at_4(row):
        if row["epoch"] == 4:
            raise Stop()

    with pytest.raises(Stop):
        promax.train(QUICK, sets=SMALL, out=tmp_path / "cut", progress=stop_at_4)
    assert not (tmp_path / "cut" / "metrics.json").exists()
    with pytest.raises(promax.PromaxError, match="no finished run"):
        promax.load_run(tmp_path / "cut")
    resumed = promax.resume(tmp_path / "cut")
    assert held_out(resumed.path) == held_out(full.path)


def test_tune_runs_a_study_and_writes_its_best_config(tmp_path):
    spec = tmp_path / "study.toml"
    spec.write_text(
        f"config = {json.dumps(str(QUICK))}\n"
        'sets = ["data.synthetic.n_users=120", "data.synthetic.n_items=90",'
        ' "train.max_epochs=4", "eval.every=2", "train.threads=1"]\n'
        'metric = "recall@20"\nsampler = "grid"\nseeds = [3]\n'
        '[space]\n"train.lr" = { choice = [0.001, 0.01] }\n'
    )
    study = promax.tune(spec, out=tmp_path / "out")
    assert len(study.data["trials"]) == 2
    assert study.best_config.is_file()
    with pytest.raises(promax.PromaxError, match="is a test metric"):
        bad = tmp_path / "bad.toml"
        bad.write_text(spec.read_text().replace('"recall@20"', '"test_recall@20"'))
        promax.tune(bad, out=tmp_path / "bad")


def test_sets_take_numpy_values_and_lists(tmp_path):
    sets = dict(SMALL, **{"train.lr": np.float64(0.002), "train.seed": np.int64(3),
                          "eval.ks": [5, 20], "data.synthetic.affinity": np.float32(0.5)})
    run = promax.train(QUICK, sets=sets, out=tmp_path / "run")
    cfg = run.config
    assert cfg["train"]["lr"] == 0.002 and cfg["train"]["seed"] == 3
    assert cfg["eval"]["ks"] == [5, 20] and cfg["data"]["synthetic"]["affinity"] == 0.5


def test_ctrl_c_stops_a_run_on_its_own_thread_pool(tmp_path):
    import signal
    import threading
    import time

    sets = dict(SMALL, **{"data.synthetic.n_users": 3000, "data.synthetic.n_items": 2000,
                          "train.max_epochs": 400, "eval.patience": 400})
    # Python's own Ctrl-C handler, as in a terminal or a notebook: a process started in the
    # background (as CI may be) inherits SIGINT ignored, and Python then installs none.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            promax.train(QUICK, sets=sets, out=tmp_path / "run")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - start < 30
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert (tmp_path / "run" / "config.toml").is_file()
