"""bAbI protocols: per task (best of N runs on validation) and joint, with results.json."""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import memjax
from memjax import paper
from memjax.data.babi import data_root
from memjax.data.dataset import Dataset, load_babi
from memjax.data.dialog import DIALOG_SET, DialogDataset, dialog_root, load_dialog_task
from memjax.data.own import load_files
from memjax.models import DIALOG_FAMILIES, FAMILIES, model_for
from memjax.train import dialog as dialog_measures
from memjax.train.buckets import require_buckets
from memjax.train.checkpoint import CheckpointError, TrainingCheckpoints, family_name, save_model, to_host
from memjax.train.engine import SPLITS, Fit, Trainer, occupancy, steps_per_epoch
from memjax.train.recipes import recipe_for, with_overrides
from memjax.train.watch import ChunkReport, FamilyWatch, TensorBoard, Watch, history_rows

FAIL_THRESHOLD = 5.0  # a task fails when its test error is above 5%
RUN_FILE = "run.json"  # in a run's --out folder: the arguments that --resume repeats

def default_stop(model: str, model_overrides: dict | None) -> dict:
    """The overrides with DMN's ``stop`` filled in where the user left it unset (None or absent).

    The default is the paper's end-of-passes criterion wherever the gates are supervised, and fixed
    passes where they are not: chosen on validation (4 runs per task, the 20 tasks' mean validation
    error 8.13 with it, 8.37 with 3 fixed passes; README). Other models' overrides come back as given.
    """
    overrides = dict(model_overrides or {})
    if model == "dmn" and overrides.get("stop") is None:
        overrides["stop"] = overrides.get("supervise") is not False
    return overrides


def build_configs(model: str, ds: Dataset, joint: bool, model_overrides: dict, train_overrides: dict,
                  set_name: str = "en"):
    """The model and training configs: the paper's recipe (for ``set_name``), then the user's overrides.

    With ``pe_formula="official"`` and no ``pe_length``, J is fixed as in the authors' code: the
    padded sentence length, plus one for the time word when temporal encoding is on.
    """
    if model not in FAMILIES:
        raise ValueError(f"unknown model {model!r}: choose from {', '.join(FAMILIES)}")
    given = {k: v for k, v in model_overrides.items() if v is not None}
    model_class, cfg_class = FAMILIES[model]
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(cfg_class)})
    if unknown:
        cli = {"temporal": "--te", "supervise": "--no-supervise"}
        names = ", ".join(f"{o} ({cli.get(o, '--' + o.replace('_', '-'))})" for o in unknown)
        raise ValueError(f"--model {model} has no option {names}")
    given = default_stop(model, given)
    if train_overrides.get("buckets"):
        require_buckets(model_class.traits)
    recipe, recipe_model = recipe_for(model, joint, set_name)
    tcfg = with_overrides(recipe, model, train_overrides)
    if tcfg.dropout and not model_class.traits.dropout:
        raise ValueError(f"--model {model} has no dropout")
    given = {**recipe_model, **model_class.data_defaults(ds, given), **given}  # read from the data (DMN: the decoder's words)
    mcfg = cfg_class(vocab_size=len(ds.vocab), memory_size=ds.memory_size, **given)
    if model == "memn2n" and mcfg.pe_formula == "official" and mcfg.pe_length is None:
        width = max(ds.sentences.shape[1], ds.train.query.shape[1]) + int(mcfg.temporal)
        mcfg = dataclasses.replace(mcfg, pe_length=width)
    return mcfg, tcfg


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


def _label(ds: Dataset, joint: bool) -> str:
    """A trained model's name: its task number, or ``joint`` for one model over several tasks."""
    return "joint" if joint or len(ds.tasks) > 1 else str(ds.tasks[0])


def _upgraded(saved: dict, model_configs) -> dict:
    """A training checkpoint's metadata with its model configs as this version writes them: a field added
    to a family's config since it was saved takes its default (which trains as before the field existed)."""
    models = saved.get("model")
    if not isinstance(models, list) or len(models) != len(model_configs):
        return saved
    try:
        models = [dataclasses.asdict(type(m)(**s)) for m, s in zip(model_configs, models)]
    except (TypeError, ValueError):  # a field this version does not know, or a bad value: compared as saved
        return saved
    return {**saved, "model": models}


def _fit_with_checkpoints(trainer: Trainer, seeds: list[int], progress, out: Path, model_configs, tcfg,
                          tasks: list[int], joint: bool, resume: bool, log, watch: FamilyWatch | None = None) -> list[Fit]:
    """:meth:`Trainer.fit` with a checkpoint after every chunk of epochs, resuming from the latest; ``watch``
    is told where the training starts and what each chunk added (after its checkpoint)."""
    meta = {"tasks": tasks, "seeds": seeds, "model": [dataclasses.asdict(m) for m in model_configs],
            "train": tcfg.record()}
    checkpoints = TrainingCheckpoints(out / "checkpoints" / family_name(tasks, joint))
    try:
        start = None
        if resume:
            initial = to_host(trainer.initial_states(seeds))
            shape = (len(trainer.datasets), len(seeds))

            def template(epoch):
                return {"states": initial, "history": {k: np.zeros(shape + (epoch,), np.float32)
                                                       for k in ("loss", "train_error", "valid_error")}}

            start = checkpoints.latest(template, meta, lambda saved: _upgraded(saved, model_configs))
            if start is not None:
                log(f"{family_name(tasks, joint)}: resuming after epoch {start[0]} of {tcfg.total_epochs}")

        def on_chunk(epoch, states, history):
            checkpoints.save(epoch, states, history, meta)
            if watch is not None:
                watch.on_chunk(epoch, states, history)

        if watch is not None and start is not None:
            watch.begin(start[0], start[2])  # the checkpoint's epochs and history
        elif watch is not None:
            watch.begin()
        fits = trainer.fit(seeds, progress, resume=start, on_chunk=on_chunk,
                           on_start=watch.started if watch is not None else None)
    finally:
        checkpoints.close()
        if watch is not None:
            watch.end()
    return fits if isinstance(fits, list) else [fits]


# run.json's fields, as run_babi takes them, and what each must hold (a run.json read back is checked)
_RUN_FIELDS = {"model": "text", "set": "text", "tasks": "tasks", "joint": "bool", "seeds": "whole", "data": "text?",
               "memory": "whole", "valid": "split", "model_overrides": "object", "train_overrides": "object",
               "files": "files?", "devices": "whole?", "first_seed": "whole", "glove": "text",
               "glove_freeze": "bool", "memjax_version": "text"}
_KINDS = {"text": "a string", "split": '"release" or "holdout"', "bool": "true or false", "whole": "a whole number",
          "tasks": "a list of task numbers", "object": "a JSON object",
          "files": 'an object with "train" and "test" file names'}


def _fits(value, kind: str) -> bool:
    """Whether ``value`` is of ``kind`` (a key of ``_KINDS``; a trailing ``?`` also allows null)."""
    if kind.endswith("?"):
        return value is None or _fits(value, kind[:-1])
    if kind == "whole":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "tasks":
        return isinstance(value, list) and all(_fits(t, "whole") for t in value)
    if kind == "files":
        return (isinstance(value, dict) and isinstance(value.get("train"), str) and isinstance(value.get("test"), str)
                and _fits(value.get("valid"), "text?"))
    if kind == "split":
        return value in ("release", "holdout")
    return isinstance(value, {"text": str, "bool": bool, "object": dict}[kind])


def read_run(folder: str | Path, needed: bool = False) -> dict:
    """A run's ``run.json`` (the arguments it was trained with), checked field by field.

    Returns an empty dictionary when the folder has none, unless ``needed``. Raises
    :class:`~memjax.train.checkpoint.CheckpointError` (one line naming the file) for a file that is
    unreadable, not JSON, not an object, or holds a field of the wrong type.
    """
    path = Path(folder) / RUN_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        if not needed:
            return {}
        raise CheckpointError(f"{path}: not found (is {folder} the --out folder of a memjax run?)") from None
    except (OSError, ValueError) as e:  # ValueError: not UTF-8
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    try:
        run = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{path}: not JSON ({e})") from None
    if not isinstance(run, dict):
        what = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}.get(type(run), "a number")
        raise CheckpointError(f"{path}: holds {what}, not the JSON object of a run's arguments")
    for key, kind in _RUN_FIELDS.items():
        if key in run and not _fits(run[key], kind):
            raise CheckpointError(f"{path}: {key} is {json.dumps(run[key])[:80]}, expected "
                                  f"{_KINDS[kind.rstrip('?')]}{' or null' if kind.endswith('?') else ''}")
    return run


def resume_babi(out: str | Path, data: str | None = None, **kwargs) -> dict:
    """Continues the run whose ``--out`` folder is ``out``, with its saved arguments (``data`` may move)."""
    path = Path(out) / RUN_FILE
    arguments = read_run(out, needed=True)
    arguments.pop("memjax_version", None)
    unknown = sorted(set(arguments) - set(_RUN_FIELDS))
    if unknown:  # run_babi would refuse them with a traceback
        raise CheckpointError(f"{path}: unknown field {unknown[0]} (not an argument of memjax {memjax.__version__})")
    if "set" not in arguments:
        raise CheckpointError(f"{path}: no set recorded")
    if data is not None:
        arguments["data"] = data
    if arguments.get("model") == "dmn" and (arguments.get("model_overrides") or {}).get("stop") is None:
        # a DMN run from before --stop became the default (memjax <= 0.3.0 recorded no value): 3 fixed passes
        arguments["model_overrides"] = {**(arguments.get("model_overrides") or {}), "stop": False}
    set_name = arguments.pop("set")
    return run_babi(set_name=set_name, out=out, resume=True, **arguments, **kwargs)


def _seed_range(seeds: list[int]) -> str:
    """'4' for seeds 0-3 (how many), 'seeds 2-3' for runs that start at a later seed."""
    if seeds[0] == 0:
        return str(len(seeds))
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"


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
            "n_test": int(np.sum(ds.test.task == task)), "runs": runs,
            "epochs": int(next(iter(fit.history.values())).shape[1])}  # trained (fewer with early stopping)


def _history_rows(fit: Fit, label) -> list[dict]:
    return history_rows(fit.seeds, fit.history, label)


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
    resume: bool = False,
    files: dict | None = None,
    devices: int | None = None,
    glove: str | Path | None = None,
    glove_freeze: bool = False,
    first_seed: int = 0,
    report: Callable[[ChunkReport], None] | None = None,
    tensorboard: str | Path | None = None,
) -> dict:
    """Trains and evaluates on bAbI; returns (and with ``out`` writes) the results dictionary.

    Per task, ``seeds`` runs are trained at once and the run with the lowest validation error is
    reported. Joint: one model over all ``tasks``, the run with the lowest overall validation error.

    With ``out``, the folder also gets ``run.json`` (these arguments), periodic checkpoints of
    every family's runs and the selected models (see :mod:`memjax.train.checkpoint`); a fresh run
    replaces the checkpoints a folder held. With ``resume``, training continues from the latest
    checkpoints in ``out`` (use :func:`resume_babi` to repeat the saved arguments).

    With ``files`` (``{"train": path, "test": path, "valid": path or None}``), your own data (bAbI
    text or JSON lines, see :mod:`memjax.data.own`) replaces bAbI: one dataset, one model.

    ``devices``: use the first N local devices, splitting the runs over them, or, where the runs
    cannot be split, each batch (data parallel). Default: all devices, runs split, batches split
    only on accelerators (see :class:`Trainer`).

    ``glove``: a GloVe text file whose vectors start the word embeddings of the words they cover
    (DMN, DMN+; the embedding size defaults to the vectors' size); ``glove_freeze`` keeps them fixed.

    ``first_seed``: the runs' seeds are ``first_seed, ..., first_seed + seeds - 1``. A run's
    training depends on its seed, not on the other runs trained beside it, so runs added later with
    a new ``first_seed`` are the runs a larger ``seeds`` would have trained (checked: 2 + 2 DMN runs
    against 4 at once, identical errors). One run alone is laid out on one device and compiled as a
    program of its own, which can round differently (and training amplifies that).

    While it trains (:mod:`memjax.train.watch`): ``out``'s ``metrics.jsonl`` grows by each chunk of
    epochs' rows (a resumed run replaces the rows after its checkpoints'), ``tensorboard`` (a folder)
    gets TensorBoard event files (needs tensorboardX), and ``report`` is called with a
    :class:`memjax.train.watch.ChunkReport` after each chunk. ``progress(label, done, total)``, also
    called after each chunk, is the older, shorter report.
    """
    t_start = time.perf_counter()
    if seeds < 1:
        raise ValueError("--seeds must be at least 1")
    if first_seed < 0:
        raise ValueError(f"--first-seed must be at least 0, got {first_seed}")
    if resume and out is None:
        raise ValueError("resuming needs the run's folder")
    if tensorboard is not None:
        TensorBoard(tensorboard)  # without tensorboardX: one line now, before anything is read or written
    if files:
        files = {k: (str(Path(v).absolute()) if v else None) for k, v in files.items()}
        own = load_files(files["train"], files["test"], files.get("valid"), memory)
        datasets, tasks, set_name = [own], list(own.tasks), "own"
    dialog = set_name == DIALOG_SET
    if dialog != (model in DIALOG_FAMILIES):
        raise ValueError(f"--model {model} does not train on --set {set_name}: dialog bAbI (--set dialog) takes "
                         f"--model {' or '.join(DIALOG_FAMILIES)}, and they train on nothing else")
    if dialog and (joint or files):
        raise ValueError("dialog bAbI trains one model per task, on its own files (no --joint, no --train-file)")
    model_overrides = default_stop(model, model_overrides)  # run.json records the DMN default it got
    root = None if files else (dialog_root(data) if dialog else data_root(data))
    arguments = {"model": model, "set": set_name, "tasks": list(tasks), "joint": joint, "seeds": seeds,
                 "data": None if files else str(root), "memory": memory, "valid": valid,
                 "model_overrides": model_overrides or {}, "train_overrides": train_overrides or {}, "files": files,
                 "devices": devices, "first_seed": first_seed}
    if glove is not None:
        if model not in ("dmn", "dmn+"):
            raise ValueError("--glove initialises the word embeddings of --model dmn or dmn+")
        glove = str(Path(glove).absolute())
        arguments.update(glove=glove, glove_freeze=glove_freeze)
        if (model_overrides or {}).get("dim") is None:
            from memjax.data.glove import glove_dimension

            model_overrides = {**(model_overrides or {}), "dim": glove_dimension(glove)}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if not resume:
            for old in ("checkpoints", "model"):
                shutil.rmtree(out / old, ignore_errors=True)
            (out / RUN_FILE).write_text(json.dumps({**arguments, "memjax_version": memjax.__version__}, indent=2) + "\n")
    watch = Watch(out, resume, tensorboard, report)
    if dialog:
        datasets = [load_dialog_task(t, root, memory) for t in tasks]
    elif not files:
        datasets = load_babi(list(tasks), set_name, data, memory, joint=joint, valid=valid)
    seed_list = list(range(first_seed, first_seed + seeds))
    results = {"model": model, "set": set_name, "config": {}, "tasks": {}, "memjax_version": memjax.__version__,
               "device": f"{jax.devices()[0].platform} ({platform.node()})"}
    seconds = {"compile": 0.0, "train": 0.0, "eval": 0.0}
    history: list[dict] = []
    configs = [build_configs(model, ds, joint, model_overrides or {}, train_overrides or {}, set_name)
               for ds in datasets]
    mcfg0, tcfg = configs[0]
    results["config"] = {"model": dataclasses.asdict(mcfg0), "train": tcfg.record(), "joint": joint,
                         "tasks": list(tasks), "seeds": seeds, "first_seed": first_seed, "memory": memory,
                         "valid": valid, "devices": devices if devices is not None else len(jax.local_devices())}
    results["config"]["model"].pop("vocab_size")
    if dialog:  # the candidates and entity types travel with the saved model; here, how many
        for key in ("candidates", "entity_types", "continues", "unseen"):
            results["config"]["model"][key] = len(results["config"]["model"][key])
    pretrained = None
    if glove is not None:
        from memjax.data.glove import load_glove

        pretrained = [load_glove(glove, ds.vocab.words, cfg.dim) for ds, (cfg, _) in zip(datasets, configs)]
        results["config"]["glove"] = {"file": glove, "frozen": glove_freeze, "covered": {
            _label(ds, joint): [int(c.sum()), len(ds.vocab) - 1] for ds, (_, c) in zip(datasets, pretrained)}}
        for ds, (_, c) in zip(datasets, pretrained):
            log(f"{ds.name}: GloVe vectors for {int(c.sum())} of {len(ds.vocab) - 1} words"
                + (" (frozen)" if glove_freeze else ""))
    chosen = None
    if devices is not None:
        local = jax.local_devices()
        if not 1 <= devices <= len(local):
            raise ValueError(f"--devices {devices}: this process has {len(local)} device(s) "
                             f"({local[0].platform}); on a CPU set MEMJAX_CPU_DEVICES to split it into more")
        chosen = local[:devices]
    trained: dict[str, dict] = {}
    # Models other than MemN2N train each task as its own program: with early stopping a task that stops
    # early would otherwise wait (computing) for the slowest of its family, on a CPU the runs of one task
    # already fill the cores, and some models' inputs depend on the task (MemNN's n-grams).
    groups = [[i] for i in range(len(datasets))] if model != "memn2n" else families(datasets, tcfg.batch_size)
    for group in groups:
        sets = [datasets[i] for i in group]
        label = "joint" if joint else ",".join(_label(ds, joint) for ds in sets)
        trainer = Trainer([FAMILIES[model][0](configs[i][0]) for i in group], tcfg, sets, devices=chosen,
                          data_parallel=True if devices else None,
                          pretrained=[pretrained[i] for i in group] if pretrained else None, freeze=glove_freeze)
        cb = (lambda done, total, label=label: progress(label, done, total)) if progress else None
        family = watch.family(label, [_label(ds, joint) for ds in sets], seed_list, tcfg.total_epochs,
                              len(sets) * len(seed_list) * trainer.steps_per_epoch * trainer.batch_size
                              ) if watch.active else None
        if out is None or jax.process_count() > 1:  # several processes: no checkpoints (see README)
            if family is not None:
                family.begin()
            try:
                fits = trainer.fit(seed_list, cb, on_chunk=family.on_chunk if family else None,
                                   on_start=family.started if family else None)
            finally:
                if family is not None:
                    family.end()
        else:
            fits = _fit_with_checkpoints(trainer, seed_list, cb, out, [configs[i][0] for i in group], tcfg,
                                         [t for ds in sets for t in ds.tasks], joint, resume, log, family)
        for k in seconds:
            seconds[k] += fits[0].seconds[k]
        for i, fit in zip(group, fits):
            ds, mcfg = datasets[i], configs[i][0]
            history += _history_rows(fit, _label(ds, joint))
            best = _select(fit.errors)  # joint: the run with the lowest validation error over all tasks
            params = FAMILIES[model][0](mcfg).unpad(jax.tree.map(lambda a: a[best], fit.params))
            trained[_label(ds, joint)] = {
                "params": params, "family": model, "model": dataclasses.asdict(mcfg), "vocab": list(ds.vocab.words),
                "memory_size": ds.memory_size, "tasks": list(ds.tasks), "seed": int(fit.seeds[best])}
            for t in ds.tasks:
                results["tasks"][str(t)] = _task_entry(fit, ds, t, best)
            if isinstance(ds, DialogDataset):  # per-response and per-dialog accuracy, test and test-OOV
                oov = None
                if ds.oov is not None:
                    oov = _predictor(FAMILIES[model][0](mcfg), params, ds.sentences, vocab_words=ds.vocab.words)(ds.oov)
                results["tasks"][str(ds.tasks[0])].update(dialog_measures.entry(ds, fit.predictions["test"][best], oov))
            if _label(ds, joint) == "joint":
                results["joint_selected_seed"] = int(fit.seeds[best])
            for t in ds.tasks:
                e = results["tasks"][str(t)]
                log(f"task {t}: test error {e['test_error']:.1f}% (valid {e['valid_error']:.1f}%, "
                    f"seed {e['selected_seed']} of {_seed_range(seed_list)})")
    results["tasks"] = {str(t): results["tasks"][str(t)] for t in tasks if str(t) in results["tasks"]}
    _summarise(results, model, set_name, joint, tasks)
    seconds["total"] = time.perf_counter() - t_start
    results["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    if out is not None:
        save_model(out / "model", trained)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        watch.finish(history)  # metrics.jsonl: the rows in their usual order
    return results


def _summarise(results: dict, model: str, set_name: str, joint: bool, tasks: list[int]) -> None:
    """Adds the mean test error, the failed tasks and the paper's row (where known) to ``results``."""
    test_errors = [v["test_error"] for v in results["tasks"].values()]
    results["mean_test_error"] = float(np.mean(test_errors))
    results["failed_tasks"] = int(sum(e > FAIL_THRESHOLD for e in test_errors))
    if set_name == DIALOG_SET:  # training records the model's config; evaluation, whether it matched
        match = results["config"]["model"]["match"] if "config" in results else results["match"]
        results["paper"] = {"row": f"Bordes et al. 2017, Table 2: {model}" + (" + match type" if match else ""),
                            "column": dialog_measures.paper_column(model, match)}
        return
    ref = paper.reference(model, set_name, joint)
    if ref is not None:
        label, row, mean, failed = ref
        results["paper"] = {"row": label, "tasks": {str(t): row[t] for t in tasks if t in row},
                            "mean_test_error": mean, "failed_tasks": failed}


def format_table(results: dict) -> str:
    """The per-task table: test error of the selected run, with the paper's number where known (dialog
    bAbI: accuracies, :func:`memjax.train.dialog.format_table`)."""
    if results.get("set") == DIALOG_SET:
        return dialog_measures.format_table(results)
    ref = results.get("paper")
    head = f"{'task':>5}  {'test err':>8}  {'valid err':>9}  {'train err':>9}"
    if ref:
        head += f"  {'paper':>6}"
    lines = [head, "-" * len(head)]
    for t, e in results["tasks"].items():
        line = f"{t:>5}  {e['test_error']:8.1f}  {e['valid_error']:9.1f}  {e['train_error']:9.1f}"
        if ref:
            line += f"  {ref['tasks'][t]:6.1f}" if t in ref["tasks"] else f"  {'-':>6}"
        lines.append(line)
    lines.append("-" * len(head))
    mean = f"{'mean':>5}  {results['mean_test_error']:8.1f}"
    if ref and set(ref["tasks"]) == set(results["tasks"]):  # the paper's mean over the same tasks
        mean += " " * 24 + f"  {np.mean(list(ref['tasks'].values())):6.1f}"
    lines.append(mean)
    failed = f"failed tasks (test error > {FAIL_THRESHOLD:g}%): {results['failed_tasks']} of {len(results['tasks'])}"
    if ref:
        failed += f"   paper: {ref['row']}, mean {ref['mean_test_error']} over 20 tasks"
        failed += "" if ref["failed_tasks"] is None else f", {ref['failed_tasks']} failed"
    lines.append(failed)
    return "\n".join(lines)


def _predictor(model, params: dict, sentences: np.ndarray, chunk: int = 1000, vocab_words=None):
    """``predict(split)``: predicted answer ids of every question (no time noise), compiled once.

    ``sentences``: the distinct sentences' word ids (U, L). Questions go ``chunk`` at a time, the last
    chunk padded, so every split runs one program (:func:`memjax.infer.predictions`).
    """
    from memjax.infer import model_data, predictions

    data = model_data(model, sentences, vocab_words)

    def predict(split) -> np.ndarray:
        return predictions(model, params, data, split.story, split.query, chunk).answer

    return predict


def evaluate_babi(checkpoint: str | Path, set_name: str | None = None, tasks: list[int] | None = None,
                  data: str | None = None, valid: str | None = None, out: str | Path | None = None,
                  log: Callable[[str], None] = lambda s: None, files: dict | None = None) -> dict:
    """Evaluates the models saved in a run's folder on bAbI tasks; the same table as training.

    Defaults (set, tasks, validation split, data folder or own files) are the run's own. Each task
    is read with its model's vocabulary and memory size (words the model never saw become the
    unknown word). ``files`` evaluates on your own data instead (see :func:`run_babi`).
    """
    from memjax.data.dataset import Vocab, load_questions, vectorize
    from memjax.infer import load_models

    t_start = time.perf_counter()
    checkpoint = Path(checkpoint)
    models = load_models(checkpoint)
    run = read_run(checkpoint)  # checked: a damaged run.json is one line, not wrong defaults
    set_name = set_name or run.get("set", "en")
    valid = valid or run.get("valid", "release")
    joint = "joint" in models
    if tasks is None:
        tasks = run.get("tasks") or sorted(t for m in models.values() for t in m.get("tasks", []))
        if not tasks:
            raise CheckpointError(f"{checkpoint}: neither run.json nor the saved models name their tasks "
                                  "(give --tasks)")
    own = files or run.get("files")
    dialog = set_name == DIALOG_SET
    root = None if own else (dialog_root if dialog else data_root)(data or run.get("data"))
    if own:
        set_name = "own"
    results = {"model": run.get("model", "memn2n"), "set": set_name, "checkpoint": str(checkpoint), "tasks": {},
               "memjax_version": memjax.__version__, "device": f"{jax.devices()[0].platform} ({platform.node()})"}
    answered: dict = {}  # (dataset, predictions per split); your own files: read and answered once per model
    for t in tasks:
        label = "joint" if joint else str(t)
        if label not in models:
            raise ValueError(f"{checkpoint}: no model for task {t} (it holds {', '.join(sorted(models))})")
        m = models[label]
        key = label if own else t
        if key not in answered:
            vocab = Vocab(m["vocab"][2:])
            if own:
                ds = load_files(own["train"], own["test"], own.get("valid"), int(m["memory_size"]), vocab=vocab)
            elif dialog:
                ds = load_dialog_task(t, root, int(m["memory_size"]), vocab=vocab, candidates=m["model"]["candidates"])
            else:
                ds = vectorize(f"{set_name} task {t}", *load_questions(root, set_name, t, valid),
                               memory_size=int(m["memory_size"]), vocab=vocab)
            model = model_for(m.get("family", "memn2n"), m["model"])
            predict = _predictor(model, jax.tree.map(jnp.asarray, m["params"]), ds.sentences,
                                 vocab_words=ds.vocab.words)
            answered[key] = (ds, {split: predict(getattr(ds, split)) for split in SPLITS})
            if dialog and ds.oov is not None:
                answered[key][1]["oov"] = predict(ds.oov)
        ds, predictions = answered[key]
        entry = {}
        for split in SPLITS:
            arrays = getattr(ds, split)
            rows = np.flatnonzero(arrays.task == t) if own else np.arange(len(arrays))
            wrong = predictions[split][rows] != arrays.answer[rows]
            entry[f"{split}_error"] = float(100.0 * wrong.mean()) if len(rows) else float("nan")
            entry[f"n_{split}"] = len(rows)
        results["tasks"][str(t)] = {"test_error": entry["test_error"], "valid_error": entry["valid_error"],
                                    "train_error": entry["train_error"], "n_train": entry["n_train"],
                                    "n_valid": entry["n_valid"], "n_test": entry["n_test"], "model": label}
        if dialog:
            results["tasks"][str(t)].update(dialog_measures.entry(ds, predictions["test"], predictions.get("oov")))
            results["match"] = bool(m["model"].get("match", False))
        log(f"task {t}: test error {entry['test_error']:.1f}% (model {label})")
    _summarise(results, results["model"], set_name, joint, tasks)
    results["seconds"] = {"total": round(time.perf_counter() - t_start, 3)}
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
