"""Watching a training while it runs: ``metrics.jsonl`` as it grows, TensorBoard scalars, a report per chunk.

The engine trains a family of runs a chunk of epochs at a time (:meth:`memjax.train.engine.Trainer.fit`);
after each chunk, :func:`memjax.train.protocol.run_babi` hands the chunk's metrics to a :class:`Watch`:

* ``metrics.jsonl`` in the ``--out`` folder gets the chunk's rows appended (and flushed), the rows the
  finished run's file holds (same keys, same values; at the end the file is rewritten in its usual
  order). A fresh run empties the file when it starts; a resumed run (``--resume``) keeps the rows of
  the epochs its checkpoints hold and replaces the rest, so that no row is written twice.
* with ``tensorboard``, TensorBoard event files (through ``tensorboardX``, the optional extra
  ``memjax[tensorboard]``): one TensorBoard run per task and seed, ``DIR/task-1/seed-0`` (joint
  training: ``DIR/joint/seed-0``), with the scalars ``loss``, ``train_error`` and ``valid_error`` per
  epoch (step = epoch, from 1). Each training of a task and seed starts its run over (the events of an
  earlier training, or of the epochs after a resumed checkpoint, are purged: TensorBoard hides them).
* ``report``: a :class:`ChunkReport` per chunk, for a display (``memjax train``'s status line).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

METRICS_FILE = "metrics.jsonl"
MISSING_TENSORBOARDX = "--tensorboard needs tensorboardX: pip install 'memjax[tensorboard]'"
KEYS = ("task", "seed", "epoch")  # a row's identity; its other fields are the metrics


def history_rows(seeds: Sequence[int], history: dict[str, np.ndarray], label: str, start: int = 0) -> list[dict]:
    """``metrics.jsonl`` rows of one task's (or joint dataset's) runs, seed by seed, epoch by epoch.

    Args:
        seeds: the runs' seeds.
        history: metric name -> (runs, epochs) array.
        label: the rows' ``task``: the task number as text, or ``joint``.
        start: the epochs already written: rows begin at epoch ``start + 1``.
    """
    rows = []
    n_epochs = next(iter(history.values())).shape[1]
    for i, seed in enumerate(seeds):
        for e in range(start, n_epochs):
            rows.append({"task": label, "seed": int(seed), "epoch": e + 1,
                         **{k: round(float(v[i, e]), 6) for k, v in history.items()}})
    return rows


def _lines(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


@dataclasses.dataclass(frozen=True)
class ChunkReport:
    """Where a family's training stands when a chunk of its epochs has ended.

    Attributes:
        family: the family's name: a task (``"1"``), tasks trained together (``"1,4,5"``) or ``"joint"``.
        epoch: epochs done.
        total: the schedule's epochs (early stopping can end the training sooner).
        start: the epoch this process's training started from (0, or where a resumed run went on).
        seconds: training time since then, compilation excluded.
        examples: training examples of one epoch, all the family's runs together.
        rows: the chunk's new ``metrics.jsonl`` rows.
    """

    family: str
    epoch: int
    total: int
    start: int
    seconds: float
    examples: int
    rows: list[dict]

    @property
    def examples_per_second(self) -> float | None:
        """Training examples per second, all the family's runs together (None before any time passed)."""
        return self.examples * (self.epoch - self.start) / self.seconds if self.seconds > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left to the end of the schedule at the rate so far (None before any epoch)."""
        done = self.epoch - self.start
        return (self.total - self.epoch) * self.seconds / done if done > 0 else None

    def _latest(self) -> list[dict]:
        last = max(row["epoch"] for row in self.rows)
        return [row for row in self.rows if row["epoch"] == last]

    @property
    def loss(self) -> float:
        """The latest epoch's training loss, averaged over the family's runs."""
        return float(np.mean([row["loss"] for row in self._latest()]))

    @property
    def valid_error(self) -> float:
        """The latest epoch's validation error (%): per task the lowest of its runs, averaged over the tasks."""
        best: dict[str, float] = {}
        for row in self._latest():
            best[row["task"]] = min(best.get(row["task"], np.inf), row["valid_error"])
        return float(np.mean(list(best.values())))


class MetricsFile:
    """A run's ``metrics.jsonl`` as it grows: emptied by a fresh training, kept (its whole rows) by a resumed one."""

    def __init__(self, path: str | Path, resume: bool = False):
        self.path = Path(path)
        self.rows = _read_rows(self.path) if resume else []
        self._write_all()

    def _write_all(self) -> None:
        """The file holds ``self.rows``, replaced at once (a reader sees the old file or the new one)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(_lines(self.rows))
        os.replace(tmp, self.path)

    def replace(self, labels: Sequence[str], rows: list[dict]) -> None:
        """The rows of the tasks ``labels`` become ``rows`` (a family starting, or resuming from a checkpoint)."""
        labels = set(labels)
        old = [row for row in self.rows if row["task"] not in labels]
        if len(old) != len(self.rows) or rows:
            self.rows = old + list(rows)
            self._write_all()

    def append(self, rows: list[dict]) -> None:
        """Appends ``rows`` (one write, flushed)."""
        if rows:
            with open(self.path, "a") as f:
                f.write(_lines(rows))
            self.rows += rows

    def finish(self, rows: list[dict]) -> None:
        """The finished run's file: ``rows`` in their order (task by task, seed by seed, epoch by epoch)."""
        self.rows = list(rows)
        self._write_all()


def _read_rows(path: Path) -> list[dict]:
    """The whole rows of a ``metrics.jsonl`` (none when it is missing; a line cut short by a kill is dropped)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and set(KEYS) <= set(row):
            rows.append({**row, "task": str(row["task"])})
    return rows


def tensorboard_run(folder: str | Path, label: str, seed: int) -> Path:
    """The TensorBoard run (folder) of a task's run: ``folder/task-1/seed-0``, or ``folder/joint/seed-0``."""
    return Path(folder) / (label if label == "joint" else f"task-{label}") / f"seed-{seed}"


class TensorBoard:
    """TensorBoard event files of the runs, through tensorboardX (``ValueError`` with one line without it)."""

    def __init__(self, folder: str | Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ValueError(MISSING_TENSORBOARDX) from None
        self.folder = Path(folder)
        self._writer = SummaryWriter
        self.writers: dict[tuple[str, int], object] = {}

    def begin(self, labels: Sequence[str], seeds: Sequence[int]) -> None:
        """Opens the runs of a family; each starts over from step 1 (TensorBoard hides the older events)."""
        self.close()
        for label in labels:
            for seed in seeds:
                # flush_secs: the writer's thread writes the events out within a second; the suffix (the time
                # in ns) keeps a resumed training's file apart from, and sorted after, the earlier ones
                self.writers[(label, int(seed))] = self._writer(
                    str(tensorboard_run(self.folder, label, seed)), purge_step=1, flush_secs=1,
                    filename_suffix=f".{time.time_ns()}")

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            writer = self.writers[(row["task"], row["seed"])]
            for key, value in row.items():
                if key not in KEYS:
                    writer.add_scalar(key, value, row["epoch"])
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


class Watch:
    """What one training writes and reports as it goes (see the module's description).

    Args:
        out: the run's folder, for ``metrics.jsonl`` (None: no file).
        resume: the training resumes: keep the file's rows (each family replaces its own when it starts).
        tensorboard: a folder for TensorBoard event files (None: none).
        report: called with a :class:`ChunkReport` after each chunk of epochs.
    """

    def __init__(self, out: str | Path | None = None, resume: bool = False, tensorboard: str | Path | None = None,
                 report: Callable[[ChunkReport], None] | None = None):
        self.tensorboard = TensorBoard(tensorboard) if tensorboard is not None else None  # first: may fail
        self.metrics = MetricsFile(Path(out) / METRICS_FILE, resume) if out is not None else None
        self.report = report

    @property
    def active(self) -> bool:
        return self.metrics is not None or self.tensorboard is not None or self.report is not None

    def family(self, name: str, labels: Sequence[str], seeds: Sequence[int], total: int, examples: int) -> FamilyWatch:
        """The watch of one family: ``labels`` its datasets' names (the rows' ``task``), in the trainer's order."""
        return FamilyWatch(self, name, list(labels), [int(s) for s in seeds], total, examples)

    def finish(self, rows: list[dict]) -> None:
        """The run has ended: ``metrics.jsonl`` becomes ``rows``, the finished run's file."""
        if self.metrics is not None:
            self.metrics.finish(rows)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


class FamilyWatch:
    """A family's training as :class:`Watch` sees it: :meth:`begin`, :meth:`started`, :meth:`on_chunk` per
    chunk (the engine's ``on_chunk``), :meth:`end`."""

    def __init__(self, watch: Watch, name: str, labels: list[str], seeds: list[int], total: int, examples: int):
        self.watch, self.name, self.labels, self.seeds = watch, name, labels, seeds
        self.total, self.examples = total, examples
        self.written = self.start = 0  # epochs whose rows are written; where this training started
        self.t0 = time.perf_counter()

    def _rows(self, history: dict[str, np.ndarray], start: int) -> list[dict]:
        """Rows of epochs ``start + 1, ...`` from a (datasets, seeds, epochs) history."""
        rows = []
        for i, label in enumerate(self.labels):
            rows += history_rows(self.seeds, {k: np.asarray(v)[i] for k, v in history.items()}, label, start)
        return rows

    def begin(self, epoch: int = 0, history: dict[str, np.ndarray] | None = None) -> None:
        """Before training: from the start, or from a checkpoint after ``epoch`` epochs with its ``history``
        (its rows replace whatever the file held for these tasks)."""
        rows = self._rows(history, 0) if epoch and history else []
        w = self.watch
        if w.metrics is not None:
            w.metrics.replace(self.labels, rows)
        if w.tensorboard is not None:
            w.tensorboard.begin(self.labels, self.seeds)
            w.tensorboard.write(rows)
        self.written = self.start = epoch

    def started(self, epoch: int) -> None:
        """The compiled training starts at ``epoch`` (the engine's ``on_start``)."""
        self.start, self.t0 = epoch, time.perf_counter()

    def on_chunk(self, epoch: int, states, history: dict[str, np.ndarray]) -> None:
        """A chunk ended after ``epoch`` epochs; ``history``: every epoch's metrics so far, (datasets, seeds, epochs)."""
        seconds = time.perf_counter() - self.t0
        rows = self._rows(history, self.written)
        self.written = epoch
        w = self.watch
        if w.metrics is not None:
            w.metrics.append(rows)
        if w.tensorboard is not None:
            w.tensorboard.write(rows)
        if w.report is not None and rows:
            w.report(ChunkReport(self.name, epoch, self.total, self.start, seconds, self.examples, rows))

    def end(self) -> None:
        """The family's training has ended (or failed): its TensorBoard files are closed."""
        if self.watch.tensorboard is not None:
            self.watch.tensorboard.close()
