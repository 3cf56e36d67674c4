"""bAbI protocols: per task (best of N runs on validation) and joint, with results.json."""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np

import memjax
from memjax import paper
from memjax.data.dataset import Dataset, load_babi
from memjax.models.memn2n import MemN2N, MemN2NConfig
from memjax.train.engine import Fit, Trainer, TrainConfig, occupancy, steps_per_epoch

FAIL_THRESHOLD = 5.0  # a task fails when its test error is above 5%

# Recipe differences of joint training (all tasks, one model) from the per-task defaults.
JOINT_MODEL = {"dim": 50}
JOINT_TRAIN = {"epochs": 60, "decay_every": 15, "ls_epochs": 30}


def build_configs(model: str, ds: Dataset, joint: bool, model_overrides: dict, train_overrides: dict):
    """The model and training configs: the paper's recipe, then the user's overrides.

    With ``pe_formula="official"`` and no ``pe_length``, J is fixed as in the authors' code: the
    padded sentence length, plus one for the time word when temporal encoding is on.
    """
    if model != "memn2n":
        raise ValueError(f"unknown model {model!r}")
    m = {**(JOINT_MODEL if joint else {}), **{k: v for k, v in model_overrides.items() if v is not None}}
    t = {**(JOINT_TRAIN if joint else {}), **{k: v for k, v in train_overrides.items() if v is not None}}
    mcfg = MemN2NConfig(vocab_size=len(ds.vocab), memory_size=ds.memory_size, **m)
    if mcfg.pe_formula == "official" and mcfg.pe_length is None:
        width = max(ds.sentences.shape[1], ds.train.query.shape[1]) + int(mcfg.temporal)
        mcfg = dataclasses.replace(mcfg, pe_length=width)
    return mcfg, TrainConfig(**t)


def _bucket(x: int, first: int, factor: int) -> int:
    bound = first
    while bound < x:
        bound *= factor
    return bound


def families(datasets: list[Dataset], batch_size: int = 32) -> list[list[int]]:
    """Groups per-task datasets that train well as one program (see :class:`Trainer`).

    A family shares the steps per epoch; its memory widths (the most statements a story holds) fall
    in one power-of-two bucket from 16 up and its numbers of distinct sentences in one bucket of
    160 x 8^k, so that padding to the family's largest costs little. On bAbI-1k this makes four
    families (measured: splitting the 14 short-story tasks by distinct sentences, 8 + 6, took
    their training from about 87 s to 72 s, compilation included).

    Returns:
        lists of indices into ``datasets``.
    """
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, ds in enumerate(datasets):
        key = (steps_per_epoch(len(ds.train), batch_size), _bucket(occupancy(ds), 16, 2),
               _bucket(len(ds.sentences), 160, 8))
        groups.setdefault(key, []).append(i)
    return [groups[k] for k in sorted(groups)]


def _select(errors: dict[str, np.ndarray]) -> int:
    """The run with the lowest validation error (ties: lower training error, then first)."""
    order = np.lexsort((np.arange(len(errors["valid"])), errors["train"], errors["valid"]))
    return int(order[0])


def _task_errors(fit: Fit, ds: Dataset, split: str, task: int) -> np.ndarray:
    arrays = getattr(ds, split)
    sel = arrays.task == task
    if not sel.any():
        return np.full(len(fit.seeds), np.nan)
    return 100.0 * np.mean(fit.predictions[split][:, sel] != arrays.answer[sel][None], axis=1)


def _task_entry(fit: Fit, ds: Dataset, task: int, best: int) -> dict:
    per = {s: _task_errors(fit, ds, s, task) for s in ("train", "valid", "test")}
    runs = [{"seed": int(seed), **{f"{s}_error": float(per[s][i]) for s in per}}
            for i, seed in enumerate(fit.seeds)]
    return {"test_error": float(per["test"][best]), "valid_error": float(per["valid"][best]),
            "train_error": float(per["train"][best]), "selected_seed": int(fit.seeds[best]),
            "n_train": int(np.sum(ds.train.task == task)), "n_valid": int(np.sum(ds.valid.task == task)),
            "n_test": int(np.sum(ds.test.task == task)), "runs": runs}


def _history_rows(fit: Fit, label) -> list[dict]:
    rows = []
    n_epochs = next(iter(fit.history.values())).shape[1]
    for i, seed in enumerate(fit.seeds):
        for e in range(n_epochs):
            rows.append({"task": label, "seed": int(seed), "epoch": e + 1,
                         **{k: round(float(v[i, e]), 6) for k, v in fit.history.items()}})
    return rows


def run_babi(
    model: str = "memn2n",
    set_name: str = "en",
    tasks: list[int] = (1,),
    joint: bool = False,
    seeds: int = 1,
    data: str | None = None,
    memory: int = 50,
    valid: str = "release",
    model_overrides: dict | None = None,
    train_overrides: dict | None = None,
    out: str | Path | None = None,
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict:
    """Trains and evaluates on bAbI; returns (and with ``out`` writes) the results dictionary.

    Per task, ``seeds`` runs are trained at once and the run with the lowest validation error is
    reported. Joint: one model over all ``tasks``, the run with the lowest overall validation error.
    """
    t_start = time.perf_counter()
    if seeds < 1:
        raise ValueError("--seeds must be at least 1")
    datasets = load_babi(list(tasks), set_name, data, memory, joint=joint, valid=valid)
    seed_list = list(range(seeds))
    results = {"model": model, "set": set_name, "config": {}, "tasks": {}, "memjax_version": memjax.__version__,
               "device": f"{jax.devices()[0].platform} ({platform.node()})"}
    seconds = {"compile": 0.0, "train": 0.0, "eval": 0.0}
    history: list[dict] = []
    configs = [build_configs(model, ds, joint, model_overrides or {}, train_overrides or {}) for ds in datasets]
    mcfg0, tcfg = configs[0]
    results["config"] = {"model": dataclasses.asdict(mcfg0), "train": dataclasses.asdict(tcfg), "joint": joint,
                         "tasks": list(tasks), "seeds": seeds, "memory": memory, "valid": valid}
    results["config"]["model"].pop("vocab_size")
    for group in families(datasets, tcfg.batch_size):
        sets = [datasets[i] for i in group]
        label = "joint" if joint else ",".join(str(ds.tasks[0]) for ds in sets)
        trainer = Trainer([MemN2N(configs[i][0]) for i in group], tcfg, sets)
        cb = (lambda done, total, label=label: progress(label, done, total)) if progress else None
        fits = trainer.fit(seed_list, cb)
        for k in seconds:
            seconds[k] += fits[0].seconds[k]
        for ds, fit in zip(sets, fits):
            history += _history_rows(fit, "joint" if joint else str(ds.tasks[0]))
            best = _select(fit.errors)  # joint: the run with the lowest validation error over all tasks
            for t in ds.tasks:
                results["tasks"][str(t)] = _task_entry(fit, ds, t, best)
            if joint:
                results["joint_selected_seed"] = int(fit.seeds[best])
            for t in ds.tasks:
                e = results["tasks"][str(t)]
                log(f"task {t}: test error {e['test_error']:.1f}% (valid {e['valid_error']:.1f}%, "
                    f"seed {e['selected_seed']} of {seeds})")
    results["tasks"] = {str(t): results["tasks"][str(t)] for t in tasks if str(t) in results["tasks"]}
    test_errors = [v["test_error"] for v in results["tasks"].values()]
    results["mean_test_error"] = float(np.mean(test_errors))
    results["failed_tasks"] = int(sum(e > FAIL_THRESHOLD for e in test_errors))
    ref = paper.reference(model, set_name, joint)
    if ref is not None:
        label, row, mean, failed = ref
        results["paper"] = {"row": label, "tasks": {str(t): row[t] for t in tasks}, "mean_test_error": mean,
                            "failed_tasks": failed}
    seconds["total"] = time.perf_counter() - t_start
    results["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        with open(out / "metrics.jsonl", "w") as f:
            for row in history:
                f.write(json.dumps(row) + "\n")
    return results


def format_table(results: dict) -> str:
    """The per-task table: test error of the selected run, with the paper's number where known."""
    ref = results.get("paper")
    head = f"{'task':>5}  {'test err':>8}  {'valid err':>9}  {'train err':>9}"
    if ref:
        head += f"  {'paper':>6}"
    lines = [head, "-" * len(head)]
    for t, e in results["tasks"].items():
        line = f"{t:>5}  {e['test_error']:8.1f}  {e['valid_error']:9.1f}  {e['train_error']:9.1f}"
        if ref:
            line += f"  {ref['tasks'].get(t, float('nan')):6.1f}"
        lines.append(line)
    lines.append("-" * len(head))
    mean = f"{'mean':>5}  {results['mean_test_error']:8.1f}"
    if ref:
        mean += " " * 24 + f"  {np.mean(list(ref['tasks'].values())):6.1f}"
    lines.append(mean)
    failed = f"failed tasks (test error > {FAIL_THRESHOLD:g}%): {results['failed_tasks']} of {len(results['tasks'])}"
    if ref:
        failed += f"   paper: {ref['row']}, mean {ref['mean_test_error']} over 20 tasks, {ref['failed_tasks']} failed"
    lines.append(failed)
    return "\n".join(lines)
