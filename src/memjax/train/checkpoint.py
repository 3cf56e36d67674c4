"""Checkpoints through orbax-checkpoint: the training state of each family of runs, and the trained model.

A training run with ``--out DIR`` writes::

    DIR/run.json                     the command's arguments (what ``--resume`` repeats)
    DIR/checkpoints/<family>/<epoch>/  every run's parameters, optimiser state and random state,
                                     and the metric history so far (the last two kept)
    DIR/model/0/                     the selected run's parameters per task (or the joint model),
                                     with each model's config, vocabulary and memory size
    DIR/model/integrity.json         the sha256 of every file of DIR/model/0/, and each model's
                                     vocabulary size and array shapes (checked on load)

Orbax writes a step into a temporary folder and renames it when complete, so a process killed
while saving leaves the previous step as the latest loadable one. Every failure to read a
checkpoint becomes a :class:`CheckpointError` with a one-line message, and a saved model is checked
before it is used (:func:`load_model`): a damaged or edited one never answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
from pathlib import Path

import jax
import numpy as np


class CheckpointError(Exception):
    """A checkpoint is missing, incomplete, corrupt or does not fit the model (one-line message)."""


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


INTEGRITY_FILE = "integrity.json"  # in a saved model's folder, beside its step folder
INTEGRITY_FORMAT = 1


# ------------------------------------------------------------------------- orbax's failed reads
# Orbax runs a restore's reads concurrently in an event loop of its own; when one read fails it closes
# that loop while the others are still in flight, and tensorstore, completing them, reports
# "RuntimeError: Event loop is closed" with a traceback (through sys.unraisablehook) after our one-line
# error, in 1 to 3 runs of 5; and the reads that failed too, their tasks never awaited, are logged by asyncio
# as "Task exception was never retrieved" with a traceback each when the tasks are freed (a few runs in a
# hundred with a garbled array file). These two alone are silenced: while orbax reads, and for good once a read has
# failed (its stray completions may come at any time after).

_lock = threading.Lock()
_reads = 0  # orbax reads under way
_failed = False  # a read has failed
_hooked = False


def _stray(exc) -> bool:
    return (_reads > 0 or _failed) and isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


def _stray_task(record: logging.LogRecord) -> bool:
    """False for asyncio's report of a task's exception never retrieved once a read has failed (a filter)."""
    return not ((_reads > 0 or _failed) and record.getMessage().startswith("Task exception was never retrieved"))


def _hook_stray_errors() -> None:
    """Wraps ``sys.unraisablehook`` (where tensorstore reports them) once, so that it drops
    :func:`_stray` errors and passes the rest on; filters asyncio's log by :func:`_stray_task`."""
    global _hooked
    if _hooked:
        return
    _hooked = True
    logging.getLogger("asyncio").addFilter(_stray_task)
    previous = sys.unraisablehook

    def unraisablehook(info):
        if not _stray(info.exc_value):
            previous(info)

    sys.unraisablehook = unraisablehook


@contextlib.contextmanager
def _reading(where: Path, what: str):
    """Orbax calls that read ``where``: any failure becomes one :class:`CheckpointError` line,
    ``<where>: <what> (<error type>: <first line>)``, and leaves no traceback behind (see above)."""
    global _reads, _failed
    with _lock:
        _hook_stray_errors()
        _reads += 1
    try:
        yield
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - orbax raises many kinds; the user gets one line
        _failed = True
        raise CheckpointError(f"{where}: {what} ({_one_line(e)})") from None
    finally:
        with _lock:
            _reads -= 1


def family_name(tasks, joint: bool) -> str:
    """The folder of a family's training checkpoints: ``joint`` or ``tasks_1_4_15``."""
    return "joint" if joint else "tasks_" + "_".join(str(t) for t in tasks)


def to_host(states: dict) -> dict:
    """Training states as NumPy arrays (PRNG keys as their raw uint32 data)."""
    states = dict(states)
    states["key"] = jax.random.key_data(states["key"])
    return jax.tree.map(np.asarray, jax.device_get(states))


def from_host(states: dict) -> dict:
    states = dict(states)
    states["key"] = jax.random.wrap_key_data(np.asarray(states["key"]))
    return states


class TrainingCheckpoints:
    """Periodic checkpoints of one family's runs: ``save(epoch, ...)`` and ``latest(...)``."""

    def __init__(self, directory: str | Path, keep: int = 2):
        import orbax.checkpoint as ocp  # imported when used: it adds 0.3 s to every command's start

        self.ocp = ocp
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, cleanup_tmp_directories=True)
        with _reading(self.directory, "unreadable training checkpoints"):
            self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, epoch: int, states: dict, history: dict[str, np.ndarray], meta: dict) -> None:
        """Saves (asynchronously) the host copies of ``states`` and the history after ``epoch`` epochs."""
        ocp = self.ocp
        tree = {"states": to_host(states), "history": {k: np.asarray(v) for k, v in history.items()}}
        self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                         meta=ocp.args.JsonSave({**meta, "epoch": epoch})))

    def latest(self, template, meta: dict, upgrade=None):
        """(epoch, states, history) of the latest complete checkpoint, or None when there is none.

        Args:
            template: ``template(epoch) -> {"states": ..., "history": ...}``, host arrays of the
                shapes expected after ``epoch`` epochs.
            meta: what the saved metadata must match (model and training configs, tasks, seeds).
            upgrade: ``upgrade(saved) -> saved``, the saved metadata as this version writes it (fields
                added since take their defaults) before it is compared; None: compared as saved.
        """
        ocp = self.ocp
        with _reading(self.directory, "unreadable training checkpoints"):
            self.manager.reload()
            step = self.manager.latest_step()
        if step is None:
            return None
        where = self.directory / str(step)
        with _reading(where, "unreadable checkpoint"):
            saved = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if not isinstance(saved, dict):
            raise CheckpointError(f"{where}: unreadable checkpoint (its metadata is not a JSON object)")
        if upgrade is not None:
            saved = upgrade(saved)
        for key, value in meta.items():
            if json.loads(json.dumps(saved.get(key))) != json.loads(json.dumps(value)):
                raise CheckpointError(f"{where}: checkpoint does not match this run ({key} differs)")
        expected = template(step)
        with _reading(where, "unreadable checkpoint"):
            _check_stored_shapes(_stored(ocp, where / "state"), expected, where)
            tree = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(expected)))
        tree = tree["state"]
        _check_shapes(expected, tree, where)
        return step, from_host(tree["states"]), {k: np.asarray(v) for k, v in tree["history"].items()}

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _leaf_name(path) -> str:
    """A pytree leaf's path as text: ``A``, ``hops/0/W``."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _shapes(tree) -> dict[str, list[int]]:
    return {_leaf_name(path): list(np.shape(leaf)) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _check_shapes(expected, found, where) -> None:
    """Raises CheckpointError unless ``found`` has the tree structure and array shapes of ``expected``."""
    a, tree_a = jax.tree.flatten(expected)
    b, tree_b = jax.tree.flatten(found)
    if tree_a != tree_b:
        raise CheckpointError(f"{where}: incompatible checkpoint (its parameters are not this model's)")
    for x, y in zip(a, b):
        if np.shape(x) != np.shape(y):
            raise CheckpointError(f"{where}: incompatible checkpoint (an array of shape {np.shape(y)} where the "
                                  f"model needs {np.shape(x)})")


def _stored(ocp, item: Path):
    """Orbax's metadata of a saved pytree (``item``: its folder in a step), the shape of every array,
    read without reading the arrays."""
    handler = ocp.StandardCheckpointHandler()
    try:
        return handler.metadata(item)
    finally:
        handler.close()


def _check_stored_shapes(stored, expected, where) -> None:
    """:func:`_check_shapes` against the shapes orbax's metadata gives (``stored``, see :func:`_stored`),
    before any array is read: orbax would read arrays of other shapes than the template's without a word."""
    found = _shapes_of_metadata(stored)
    needed = _shapes(expected)
    if set(found) != set(needed):
        raise CheckpointError(f"{where}: incompatible checkpoint (its parameters are not this model's)")
    for name, shape in needed.items():
        if found[name] != shape:
            raise CheckpointError(f"{where}: incompatible checkpoint (its array {name} has shape {tuple(found[name])} "
                                  f"where the model needs {tuple(shape)})")


def _shapes_of_metadata(stored) -> dict[str, list[int]]:
    """The shape of every array of orbax's metadata tree (its leaves: orbax's array metadata)."""
    return {_leaf_name(path): list(leaf.shape) for path, leaf in jax.tree_util.tree_flatten_with_path(stored)[0]}


def _this_process_only(ocp):
    """Manager options for files that one process writes alone (host copies, no cross-process barrier)."""
    index = jax.process_index()
    return ocp.CheckpointManagerOptions(
        create=False, multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=index,
                                                                                 active_processes={index}))


# ------------------------------------------------------------------------------ trained models


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _digests(directory: Path, step: int) -> dict[str, str]:
    """sha256 of every file of the step folder, by path relative to ``directory`` (``0/params/...``)."""
    return {f.relative_to(directory).as_posix(): _sha256(f)
            for f in sorted((directory / str(step)).rglob("*")) if f.is_file()}


def save_model(directory: str | Path, models: dict[str, dict]) -> None:
    """Saves trained models for answering: ``{label: {"params", "model", "vocab", "memory_size", "tasks"}}``.

    ``label`` is a task number as text, or ``joint``; ``model`` is the model config as a dict. Once the
    checkpoint is complete, ``integrity.json`` records the sha256 of each of its files and each model's
    vocabulary size and array shapes, which :func:`load_model` checks.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    shutil.rmtree(directory, ignore_errors=True)  # a resumed run writes its model again
    directory.mkdir(parents=True)
    params = {label: jax.tree.map(np.asarray, m["params"]) for label, m in models.items()}
    meta = {label: {k: v for k, v in m.items() if k != "params"} for label, m in models.items()}
    with ocp.CheckpointManager(directory, options=_this_process_only(ocp)) as manager:
        manager.save(0, args=ocp.args.Composite(params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)))
        manager.wait_until_finished()
    from memjax import __version__

    record = {"format": INTEGRITY_FORMAT, "memjax_version": __version__, "step": 0,
              "models": {label: {"vocab_size": len(m["vocab"]), "arrays": _shapes(params[label])}
                         for label, m in meta.items()},
              "sha256": _digests(directory, 0)}
    tmp = directory / (INTEGRITY_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, directory / INTEGRITY_FILE)  # complete or absent


def _read_record(directory: Path) -> dict | None:
    """The model's integrity record, or None for a model saved before memjax wrote one (memjax <= 0.4.0)."""
    path = directory / INTEGRITY_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable integrity record ({_one_line(e)})") from None
    ok = (isinstance(record, dict) and record.get("format") == INTEGRITY_FORMAT and _whole(record.get("step"))
          and isinstance(record.get("sha256"), dict) and isinstance(record.get("models"), dict)
          and all(isinstance(k, str) and isinstance(v, str) for k, v in record["sha256"].items())
          and all(isinstance(m, dict) and _whole(m.get("vocab_size")) and isinstance(m.get("arrays"), dict)
                  for m in record["models"].values()))
    if not ok:
        version = record.get("format") if isinstance(record, dict) else None
        if _whole(version) and version > INTEGRITY_FORMAT:
            raise CheckpointError(f"{path}: written by a newer memjax (integrity format {version}): upgrade memjax")
        raise CheckpointError(f"{path}: damaged integrity record (not the fields memjax writes)")
    return record


def _check_files(directory: Path, record: dict) -> None:
    """Every file the record lists is there with its recorded sha256 (before orbax reads any of them)."""
    for name, digest in record["sha256"].items():
        path = directory / name
        if ".." in Path(name).parts or not path.is_file():
            raise CheckpointError(f"{directory}: damaged model checkpoint (its file {name} is missing)")
        if _sha256(path) != digest:
            raise CheckpointError(f"{directory}: damaged model checkpoint (its file {name} is not the file "
                                  "that was written: its sha256 differs)")


def _whole(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_entry(m) -> str | None:
    """What is wrong with one saved model's metadata (its fields beside the parameters), or None.

    A saved model needs its config (``model``, a JSON object), its vocabulary (``vocab``: memjax's
    order, as many words as the config's ``vocab_size``) and its memory size (the config's, at
    least 1); ``tasks`` (task numbers) and ``family`` (a name) are optional (older models: MemN2N).
    """
    from memjax.data.dataset import Vocab

    if not isinstance(m, dict):
        return "its entry is not a JSON object"
    missing = [k for k in ("model", "vocab", "memory_size") if k not in m]
    if missing:
        return "no " + " or ".join(missing) + " recorded"
    cfg, vocab, memory = m["model"], m["vocab"], m["memory_size"]
    if not isinstance(cfg, dict):
        return "its config (model) is not a JSON object"
    if not isinstance(m.get("family", "memn2n"), str):
        return f"its family is {json.dumps(m['family'])}, not a model's name"
    if not isinstance(vocab, list) or not all(isinstance(w, str) for w in vocab):
        return "its vocabulary is not a list of words"
    if Vocab(vocab[2:]).words != vocab:
        return "its vocabulary is not in memjax's order (<pad>, <unk>, then each word once, sorted)"
    if not _whole(cfg.get("vocab_size")):
        return "its config has no vocab_size"
    if len(vocab) != cfg["vocab_size"]:
        return f"its vocabulary has {len(vocab)} words where its config says vocab_size {cfg['vocab_size']}"
    if not _whole(memory) or memory < 1:
        return f"its memory size is {json.dumps(memory)}, not a whole number of at least 1"
    if "memory_size" in cfg and cfg["memory_size"] != memory:
        return f"its memory size {memory} is not its config's memory_size {json.dumps(cfg['memory_size'])}"
    tasks = m.get("tasks", [])
    if not isinstance(tasks, list) or not all(_whole(t) and t >= 0 for t in tasks):  # your own data: 0
        return "its tasks are not a list of task numbers"
    return None


def load_model(directory: str | Path, templates) -> dict[str, dict]:
    """Loads what :func:`save_model` wrote, after checking it.

    Checked, in this order, each failure a :class:`CheckpointError` naming ``directory``: the sha256 of
    every file against ``integrity.json`` (before orbax reads any; a model saved before memjax wrote the
    record skips this), each model's metadata (:func:`check_entry`), that its config makes a model,
    that the recorded and stored array shapes are the ones its config gives, then the arrays read.

    Args:
        directory: the ``model`` folder.
        templates: ``templates(meta_of_one_model) -> params`` of the expected shapes (e.g. from
            ``jax.eval_shape`` of the model's init), used to check and restore each model.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no trained model here (train with --out to make one)")
    record = _read_record(directory)
    if record is not None:
        _check_files(directory, record)
    with _reading(directory, "unreadable or incompatible model checkpoint"):
        with ocp.CheckpointManager(directory, options=_this_process_only(ocp)) as manager:
            step = manager.latest_step()
            if step is None:
                raise CheckpointError(f"{directory}: no complete model checkpoint")
            if record is not None and record["step"] != step:
                raise CheckpointError(f"{directory}: damaged model checkpoint (its integrity record is for step "
                                      f"{record['step']}, its checkpoint is step {step})")
            meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            if not isinstance(meta, dict) or not meta:
                raise CheckpointError(f"{directory}: the model checkpoint has no models")
            target = {}
            for label, m in meta.items():
                problem = check_entry(m)
                if problem is not None:
                    raise CheckpointError(f"{directory}: damaged model checkpoint (model {label}: {problem})")
                try:
                    target[label] = templates(m)
                except Exception as e:  # noqa: BLE001 - a config the model's class refuses
                    raise CheckpointError(f"{directory}: damaged model checkpoint (model {label}: its config does "
                                          f"not make a {m.get('family', 'memn2n')} model: {_one_line(e)})") from None
            if record is not None:
                _check_record(directory, record, meta, target)
            _check_stored_shapes(_stored(ocp, directory / str(step) / "params"), target, directory)
            params = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target)))["params"]
        _check_shapes(target, params, directory)
    return {label: {**m, "params": params[label]} for label, m in meta.items()}


def _check_record(directory: Path, record: dict, meta: dict, target: dict) -> None:
    """The models, vocabulary sizes and array shapes recorded when the model was written are the ones
    its metadata and this memjax's model classes give (the files' digests matched: a difference means
    the model classes changed since)."""
    if set(record["models"]) != set(meta):
        raise CheckpointError(f"{directory}: damaged model checkpoint (its integrity record lists models "
                              f"{', '.join(sorted(record['models']))}, its metadata {', '.join(sorted(meta))})")
    for label, m in meta.items():
        recorded = record["models"][label]
        if recorded["vocab_size"] != len(m["vocab"]):
            raise CheckpointError(f"{directory}: damaged model checkpoint (model {label}: vocabulary of "
                                  f"{len(m['vocab'])} words, {recorded['vocab_size']} when written)")
        if recorded["arrays"] != _shapes(target[label]):
            raise CheckpointError(f"{directory}: incompatible model checkpoint (model {label}: its arrays' shapes "
                                  "when written are not the ones this memjax's model gives for its config)")
