"""Checkpoints through orbax-checkpoint: the training state of each family of runs, and the trained model.

A training run with ``--out DIR`` writes::

    DIR/run.json                     the command's arguments (what ``--resume`` repeats)
    DIR/checkpoints/<family>/<epoch>/  every run's parameters, optimiser state and random state,
                                     and the metric history so far (the last two kept)
    DIR/model/0/                     the selected run's parameters per task (or the joint model),
                                     with each model's config, vocabulary and memory size

Orbax writes a step into a temporary folder and renames it when complete, so a process killed
while saving leaves the previous step as the latest loadable one. Every failure to read a
checkpoint becomes a :class:`CheckpointError` with a one-line message.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np


class CheckpointError(Exception):
    """A checkpoint is missing, incomplete, corrupt or does not fit the model (one-line message)."""


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


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
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, epoch: int, states: dict, history: dict[str, np.ndarray], meta: dict) -> None:
        """Saves (asynchronously) the host copies of ``states`` and the history after ``epoch`` epochs."""
        ocp = self.ocp
        tree = {"states": to_host(states), "history": {k: np.asarray(v) for k, v in history.items()}}
        self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                         meta=ocp.args.JsonSave({**meta, "epoch": epoch})))

    def latest(self, template, meta: dict):
        """(epoch, states, history) of the latest complete checkpoint, or None when there is none.

        Args:
            template: ``template(epoch) -> {"states": ..., "history": ...}``, host arrays of the
                shapes expected after ``epoch`` epochs.
            meta: what the saved metadata must match (model and training configs, tasks, seeds).
        """
        ocp = self.ocp
        self.manager.reload()
        step = self.manager.latest_step()
        if step is None:
            return None
        where = self.directory / str(step)
        try:
            saved = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # noqa: BLE001 - orbax raises many kinds; the user gets one line
            raise CheckpointError(f"{where}: unreadable checkpoint ({_one_line(e)})") from None
        for key, value in meta.items():
            if json.loads(json.dumps(saved.get(key))) != json.loads(json.dumps(value)):
                raise CheckpointError(f"{where}: checkpoint does not match this run ({key} differs)")
        try:
            tree = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template(step))))
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{where}: unreadable checkpoint ({_one_line(e)})") from None
        tree = tree["state"]
        _check_shapes(template(step), tree, where)
        return step, from_host(tree["states"]), {k: np.asarray(v) for k, v in tree["history"].items()}

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


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


def _this_process_only(ocp):
    """Manager options for files that one process writes alone (host copies, no cross-process barrier)."""
    index = jax.process_index()
    return ocp.CheckpointManagerOptions(
        create=False, multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=index,
                                                                                 active_processes={index}))


def save_model(directory: str | Path, models: dict[str, dict]) -> None:
    """Saves trained models for answering: ``{label: {"params", "model", "vocab", "memory_size", "tasks"}}``.

    ``label`` is a task number as text, or ``joint``; ``model`` is the model config as a dict.
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


def load_model(directory: str | Path, templates) -> dict[str, dict]:
    """Loads what :func:`save_model` wrote.

    Args:
        directory: the ``model`` folder.
        templates: ``templates(meta_of_one_model) -> params`` of the expected shapes (e.g. from
            ``jax.eval_shape`` of the model's init), used to check and restore each model.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no trained model here (train with --out to make one)")
    try:
        with ocp.CheckpointManager(directory, options=_this_process_only(ocp)) as manager:
            step = manager.latest_step()
            if step is None:
                raise CheckpointError(f"{directory}: no complete model checkpoint")
            meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            if not isinstance(meta, dict) or not meta:
                raise CheckpointError(f"{directory}: the model checkpoint has no models")
            target = {label: templates(m) for label, m in meta.items()}
            params = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target)))["params"]
        _check_shapes(target, params, directory)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{directory}: unreadable or incompatible model checkpoint ({_one_line(e)})") from None
    return {label: {**m, "params": params[label]} for label, m in meta.items()}
