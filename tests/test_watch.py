"""Runs you can watch: metrics.jsonl growing during training, TensorBoard event files, the progress display."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from memjax import cli
from memjax.train.watch import ChunkReport, Watch, history_rows, tensorboard_run
from test_cli import MEMJAX, run

METRICS = ("loss", "train_error", "valid_error")


def _rows(path):
    """The whole rows of a metrics.jsonl (a line being written is left out)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _history(tasks=2, seeds=2, epochs=6, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(0, 100, (tasks, seeds, epochs)).astype(np.float32) for k in METRICS}


def _scalars(folder):
    """TensorBoard's reading of one run's folder: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


# ---- the pieces, without training -------------------------------------------------------------------------

def test_metrics_grow_chunk_by_chunk_and_a_resume_writes_no_row_twice(tmp_path):
    hist = _history()
    labels, seeds = ["1", "2"], [0, 1]
    final = [r for i, t in enumerate(labels) for r in history_rows(seeds, {k: v[i] for k, v in hist.items()}, t)]
    reports = []
    watch = Watch(tmp_path, report=reports.append)
    path = tmp_path / "metrics.jsonl"
    assert path.read_text() == ""  # a fresh training starts the file empty
    family = watch.family("1,2", labels, seeds, total=6, examples=4 * 90 * 100)
    family.begin()
    family.started(0)
    for epoch in (2, 4):
        family.on_chunk(epoch, None, {k: v[..., :epoch] for k, v in hist.items()})
        rows = _rows(path)
        assert len(rows) == 2 * 2 * epoch and {(r["task"], r["seed"], r["epoch"]) for r in rows} == {
            (r["task"], r["seed"], r["epoch"]) for r in final if r["epoch"] <= epoch}
        assert all(r in final for r in rows)  # the finished run's rows, value for value
    family.end()
    assert [r.epoch for r in reports] == [2, 4] and len(reports[-1].rows) == 2 * 2 * 2

    # killed after epoch 4, its last checkpoint after epoch 2 (and a line cut short): the resumed run keeps
    # epochs 1-2, then appends from epoch 3 on
    with open(path, "a") as f:
        f.write('{"task": "1", "seed": 0, "ep')
    watch = Watch(tmp_path, resume=True)
    family = watch.family("1,2", labels, seeds, total=6, examples=1)
    family.begin(2, {k: v[..., :2] for k, v in hist.items()})
    assert sorted(r["epoch"] for r in _rows(path)) == sorted(r["epoch"] for r in final if r["epoch"] <= 2)
    for epoch in (4, 6):
        family.on_chunk(epoch, None, {k: v[..., :epoch] for k, v in hist.items()})
    rows = _rows(path)
    keys = [(r["task"], r["seed"], r["epoch"]) for r in rows]
    assert len(keys) == len(set(keys)) == len(final) and sorted(rows, key=str) == sorted(final, key=str)
    watch.finish(final)
    assert _rows(path) == final


def test_chunk_report_rates_and_latest_metrics():
    rows = [{"task": t, "seed": s, "epoch": e, "loss": 1.0 + s, "train_error": 0.0, "valid_error": 10.0 * (s + 1) + (t == "2")}
            for t in ("1", "2") for s in (0, 1) for e in (3, 4)]
    r = ChunkReport("1,2", epoch=4, total=10, start=2, seconds=8.0, examples=1000, rows=rows)
    assert r.examples_per_second == 250.0 and r.eta == 24.0
    assert r.loss == 1.5 and r.valid_error == 10.5  # per task the best run, averaged over the tasks
    assert ChunkReport("1", 2, 10, 2, 0.0, 1, rows).eta is None


class _Stderr(io.StringIO):
    def __init__(self, terminal):
        super().__init__()
        self.terminal = terminal

    def isatty(self):
        return self.terminal


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_plain_lines_off_a_terminal_and_one_status_line_on_it(monkeypatch, terminal):
    err = _Stderr(terminal)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("COLUMNS", "120")
    progress = cli.TrainingProgress(True)
    rows = [{"task": "1", "seed": 0, "epoch": e, "loss": 0.5, "train_error": 1.0, "valid_error": 12.25} for e in (1, 2)]
    for epoch in (2, 4):
        progress(ChunkReport("1", epoch, 256, 0, 3.0 * epoch, 9000, rows))
    progress.log("task 1: test error 1.0%")
    text = err.getvalue()
    assert "epoch 4/256" in text and "ETA 12m36s" in text
    if terminal:  # a live display (rich), a row per family, redrawn in place; log lines go above it
        progress(ChunkReport("2", 3, 256, 0, 9.0, 9000, rows))
        progress.close()
        text = err.getvalue()
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # without the control sequences
        assert "\x1b[" in text and "\n" not in text.split("task 1: test error 1.0%")[0]  # redrawn, not new lines
        assert "task 1: test error 1.0%" in plain
        last = plain.splitlines()[-2:]  # the final frame: one row per family
        assert last[0].startswith("task 1 ") and "epoch 4/256  ETA 12m36s  3,000 ex/s  loss 0.5  valid 12.2%" in last[0]
        assert last[1].startswith("task 2 ") and "epoch 3/256" in last[1]
        assert all(len(line) <= 120 for line in plain.splitlines()), plain
    else:
        assert "\r" not in text and "\033" not in text
        assert text.splitlines() == ["task 1: epoch 2/256, ETA 12m42s, 3,000 examples/s, loss 0.5, valid error 12.2%",
                                     "task 1: epoch 4/256, ETA 12m36s, 3,000 examples/s, loss 0.5, valid error 12.2%",
                                     "task 1: test error 1.0%"]
    quiet = _Stderr(terminal)
    monkeypatch.setattr(sys, "stderr", quiet)
    cli.TrainingProgress(False)(ChunkReport("1", 2, 256, 0, 6.0, 9000, rows))
    assert quiet.getvalue() == ""


def test_tensorboard_runs_per_task_and_seed_and_a_resume_purges_later_epochs(tmp_path):
    hist, again = _history(tasks=1, seeds=2), _history(tasks=1, seeds=2, seed=1)
    watch = Watch(tensorboard=tmp_path)
    family = watch.family("joint", ["joint"], [3, 4], total=6, examples=1)
    family.begin()
    for epoch in (3, 6):
        family.on_chunk(epoch, None, {k: v[..., :epoch] for k, v in hist.items()})
    family.end()
    # resumed after epoch 3: epochs 4-6 trained again (other values here), the earlier 4-6 hidden
    watch = Watch(tensorboard=tmp_path)
    family = watch.family("joint", ["joint"], [3, 4], total=6, examples=1)
    family.begin(3, {k: v[..., :3] for k, v in hist.items()})
    family.on_chunk(6, None, {k: np.concatenate([v[..., :3], again[k][..., 3:]], -1) for k, v in hist.items()})
    family.end()
    for i, seed in enumerate([3, 4]):
        assert tensorboard_run(tmp_path, "joint", seed) == tmp_path / "joint" / f"seed-{seed}"
        scalars = _scalars(tmp_path / "joint" / f"seed-{seed}")
        assert set(scalars) == set(METRICS)
        for k in METRICS:
            expected = np.concatenate([hist[k][0, i, :3], again[k][0, i, 3:]])
            assert [s for s, _ in scalars[k]] == [1, 2, 3, 4, 5, 6]
            np.testing.assert_allclose([v for _, v in scalars[k]], expected, rtol=1e-5)


def test_tensorboard_without_tensorboardx_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX fails
    with pytest.raises(ValueError, match=r"^--tensorboard needs tensorboardX: pip install 'memjax\[tensorboard\]'$"):
        Watch(tmp_path / "out", tensorboard=tmp_path / "tb")
    assert not (tmp_path / "out").exists()


# ---- the command line ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, epochs", [
    (["--no-ls"], 40),  # MemN2N: four chunks of ten epochs in about 2 s
    pytest.param(["--model", "dmn+", "--dim", "8"], 6, marks=pytest.mark.slow),  # its compilation: about 20 s
], ids=["memn2n", "dmn_plus"])
def test_metrics_jsonl_grows_while_a_model_trains(data_root, tmp_path, flags, epochs):
    """MemN2N and DMN+ on bAbI-10k write each epoch's rows while they train (checked while the process runs),
    the same rows the finished file holds; stderr, not a terminal, gets plain progress lines."""
    out, err = tmp_path / "run", tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items()}
    env.update(MEMJAX_DATA=str(data_root), MEMJAX_CACHE="off")
    with open(err, "w") as stderr:
        proc = subprocess.Popen(MEMJAX + ["train", *flags, "--set", "en-10k", "--tasks", "1", "--epochs", str(epochs),
                                          "--out", str(out)],
                                env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        seen, deadline = [], time.time() + 600  # each reading of the file while the process still ran
        while time.time() < deadline:
            rows = _rows(out / "metrics.jsonl")
            if proc.poll() is not None:
                break
            if rows and (not seen or len(rows) > len(seen[-1])):
                seen.append(rows)
            time.sleep(0.05)
        stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.read_text()
    final = _rows(out / "metrics.jsonl")
    assert json.loads((out / "results.json").read_text())["tasks"]["1"]["epochs"] == epochs
    assert len(final) == epochs and [r["epoch"] for r in final] == list(range(1, epochs + 1))
    assert seen, "no rows before the command ended"
    assert len(seen[0]) < epochs and len(seen) >= 2, [len(s) for s in seen]  # the file grew during the training
    assert all(s == final[: len(s)] for s in seen)  # the finished file's rows, value for value
    text = err.read_text()
    assert "\r" not in text and "\033" not in text
    lines = [line for line in text.splitlines() if line.startswith("task 1: epoch ")]
    assert 1 <= len(lines) <= epochs and lines[-1].startswith(f"task 1: epoch {epochs}/{epochs}, ETA 0s, ")
    assert "examples/s, loss " in lines[-1] and "valid error" in lines[-1]
    assert "test err" in stdout


def test_tensorboard_event_files_of_a_training(data_root, tmp_path):
    out, tb = tmp_path / "run", tmp_path / "tb"
    r = run(["train", "--tasks", "1", "--seeds", "2", "--epochs", "3", "--ls-epochs", "1", "--quiet",
             "--out", str(out), "--tensorboard", str(tb)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    assert not r.stderr  # --quiet: no progress
    rows = _rows(out / "metrics.jsonl")
    assert sorted(p.name for p in (tb / "task-1").iterdir()) == ["seed-0", "seed-1"]
    for seed in (0, 1):
        scalars = _scalars(tb / "task-1" / f"seed-{seed}")
        assert set(scalars) == set(METRICS)
        mine = [row for row in rows if row["seed"] == seed]
        for k in METRICS:
            assert [s for s, _ in scalars[k]] == [1, 2, 3, 4]  # 3 epochs after 1 of linear start
            np.testing.assert_allclose([v for _, v in scalars[k]], [row[k] for row in mine], rtol=1e-5, atol=1e-6)


def test_tensorboard_flag_without_tensorboardx(data_root, tmp_path):
    shim = tmp_path / "shim" / "tensorboardX"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('not installed')\n")
    path = os.pathsep.join([str(shim.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    r = run(["train", "--tasks", "1", "--tensorboard", str(tmp_path / "tb"), "--out", str(tmp_path / "run")],
            env_data=data_root, PYTHONPATH=path)
    assert r.returncode == 2 and r.stderr == "memjax: error: --tensorboard needs tensorboardX: pip install " \
                                             "'memjax[tensorboard]'\n", r.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()


def test_resume_writes_no_row_twice(data_root, tmp_path):
    """A run resumed from an earlier checkpoint than its metrics.jsonl reached (killed between the two) drops
    the rows after the checkpoint and writes them again once: the file ends as the uninterrupted run's."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = ["train", "--tasks", "1", "--seeds", "2", "--epochs", "15", "--ls-epochs", "5", "--quiet"]
    r = run(args + ["--out", str(whole)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    shutil.copytree(whole, cut)
    steps = sorted(int(p.name) for p in (cut / "checkpoints" / "tasks_1").iterdir() if p.name.isdigit())
    assert steps == [18, 20]
    shutil.rmtree(cut / "checkpoints" / "tasks_1" / "20")  # the last checkpoint never written
    (cut / "results.json").unlink()
    with open(cut / "metrics.jsonl", "a") as f:
        f.write('{"task": "1", "seed": 1, "epoch": 2')  # a line cut short
    r = run(["train", "--resume", str(cut), "--tensorboard", str(tmp_path / "tb")], env_data=data_root)
    assert r.returncode == 0, r.stderr
    assert "resuming after epoch 18 of 20" in r.stderr
    assert (cut / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()
    rows = _rows(cut / "metrics.jsonl")
    assert len(rows) == 2 * 20 == len({(r["seed"], r["epoch"]) for r in rows})
    scalars = _scalars(tb := tmp_path / "tb" / "task-1" / "seed-1")
    assert [s for s, _ in scalars["loss"]] == list(range(1, 21)), tb  # the checkpoint's 18 epochs, then 2
