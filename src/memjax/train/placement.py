"""Where a family's runs and data live: devices, shardings, several processes, and compiler options.

The engine trains (datasets, seeds)-stacked runs. On one process they are spread over the local
devices along the tasks or the seeds axis (:func:`plan`); when they cannot be (one run, say) and
data parallelism is asked for, each step's batch is split over the devices instead. With several
processes, one mesh spans every process's devices and each batch is split over all of them
(:func:`plan_processes`, :func:`put_processes`).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding


def compiler_options(platform: str, legacy_emitters: bool = False) -> dict:
    """XLA options for the programs the engine compiles.

    On a CPU, LLVM's optimisation level 1 instead of XLA's default: these programs compile about
    a quarter faster with it and train as fast (measured in benchmarks/throughput.py; docs: speed).
    ``MEMJAX_XLA_OPT_LEVEL`` sets another level (0-3; ``default``: XLA's own choice).

    ``legacy_emitters`` (a model's ``traits.cpu_legacy_emitters``): on a CPU, XLA's older fusion code
    generators instead of its newer ones. MemNN trains 2.4x faster with them at level 1 (measured;
    the cause is not traced); the other models train 5-19% slower with them, and every program
    compiles 10-40% faster. ``MEMJAX_XLA_FUSION_EMITTERS`` overrides the model's choice for every
    program: ``legacy`` or ``new`` (unset or ``model``: the model's choice).
    """
    level = os.environ.get("MEMJAX_XLA_OPT_LEVEL", "1" if platform == "cpu" else "default").strip()
    if level not in ("", "default", "0", "1", "2", "3"):
        raise ValueError(f"MEMJAX_XLA_OPT_LEVEL={level!r}: give 0, 1, 2, 3 or default")
    emitters = os.environ.get("MEMJAX_XLA_FUSION_EMITTERS", "model").strip()
    if emitters not in ("", "model", "new", "legacy"):
        raise ValueError(f"MEMJAX_XLA_FUSION_EMITTERS={emitters!r}: give legacy, new or model")
    options = {} if level in ("", "default") else {"xla_backend_optimization_level": int(level)}
    if platform == "cpu" and (emitters == "legacy" or (emitters in ("", "model") and legacy_emitters)):
        options["xla_cpu_use_fusion_emitters"] = False
    return options


def fetch(tree):
    """Host copies of device arrays; with several processes, the whole (gathered) arrays."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


# A device computes at once (vmapped) only as many runs as keep the bytes their training steps stream
# under this (models with ``step_bytes``; see group_size), and loops over such groups: MemN2N's bags then
# stay in cache. Measured, one device: joint bAbI (2.2 MB a run) 5.6 s an epoch with 5 runs at once, 4.5 s
# one at a time; 5 tasks with 50 slots (0.6 MB a run) 0.59 s with 25 at once, 0.33 s with 5.
RUN_GROUP_BYTES = 3 * 2**20


def group_size(step_bytes: int | None, runs: int) -> int:
    """How many of a device's ``runs`` are computed at once (vmapped); the program loops over the groups.

    All of them, unless the model says how many bytes a run's training step streams (``step_bytes``,
    :meth:`memjax.models.base.Model.step_bytes`; MemN2N: its batch's slot bags): then as many as keep
    that under :data:`RUN_GROUP_BYTES`, so that the passes over those bags stay in cache.
    """
    if step_bytes is None:
        return runs
    return max(1, min(runs, RUN_GROUP_BYTES // max(1, step_bytes)))


def one_run(fn, axes: tuple):
    """``fn`` of one run, called with (datasets, seeds)-stacked arguments holding a single run: each
    argument loses its ``axes[i]`` leading axes of size 1 (None: as it is), and every output gains
    two. The same computation as the twice-vmapped program, which takes about twice as long to trace
    (1.0 against 0.5 s for a bAbI task-2 MemN2N on this project's CPU) and longer to compile."""
    def first(tree, k):
        return jax.tree.map(lambda a: a[(0,) * k], tree) if k else tree

    def run(*args):
        out = fn(*(first(a, k) for a, k in zip(args, axes)))
        return jax.tree.map(lambda a: a[None, None], out)

    return run


def layout(tasks: int, seeds: int, devices: int) -> tuple[int, int]:
    """(axis, number of devices) to spread the (tasks, seeds) runs over; (-1, 1) for one device."""
    for n in range(devices, 1, -1):
        if tasks % n == 0:
            return 0, n
        if seeds % n == 0:
            return 1, n
    return -1, 1


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one family's runs live.

    Attributes:
        states: the runs' states' sharding ((datasets, seeds)-stacked leaves).
        data: the datasets' sharding (datasets-stacked leaves).
        batch: data parallel: each step's batch is constrained to this sharding along its batch axis
            (the training program reads it when it is traced); None otherwise.
        runs: (axis, devices) the runs are spread over; (-1, 1) when they are not.
    """

    states: Sharding
    data: Sharding
    batch: NamedSharding | None = None
    runs: tuple[int, int] = (-1, 1)


def plan(devices: list, datasets: int, seeds: int, batch_size: int, data_parallel: bool) -> Placement:
    """One process: the runs spread over ``devices`` along the tasks or the seeds axis (data follow
    tasks); when they cannot be spread and ``data_parallel``, states and data replicated and each
    batch split over the devices, so that XLA computes each part on its own device and sums the
    gradients across them."""
    axis, n = layout(datasets, seeds, len(devices))
    if n == 1:
        parts = max((k for k in range(1, len(devices) + 1) if batch_size % k == 0), default=1)
        if parts > 1 and data_parallel:
            mesh = Mesh(np.array(devices[:parts]), ("batch",))
            everywhere = NamedSharding(mesh, PartitionSpec())
            return Placement(everywhere, everywhere, NamedSharding(mesh, PartitionSpec("batch")))
        one = jax.sharding.SingleDeviceSharding(devices[0])
        return Placement(one, one)
    mesh = Mesh(np.array(devices[:n]), ("runs",))
    runs = NamedSharding(mesh, PartitionSpec(*([None] * axis), "runs"))
    per_task = NamedSharding(mesh, PartitionSpec("runs") if axis == 0 else PartitionSpec())
    return Placement(runs, per_task, runs=(axis, n))


def plan_processes(batch_size: int) -> Placement:
    """Several processes: one mesh over every process's devices, each batch split over all of them."""
    devices = jax.devices()
    if batch_size % len(devices):
        raise ValueError(f"the batch size ({batch_size}) must be a multiple of the {len(devices)} devices "
                         "of all processes")
    mesh = Mesh(np.array(devices), ("batch",))
    everywhere = NamedSharding(mesh, PartitionSpec())
    return Placement(everywhere, everywhere, NamedSharding(mesh, PartitionSpec("batch")))


def put_processes(states, data, placement: Placement):
    """States and data on every process's devices (see :func:`plan_processes`).

    Each process feeds only its shard of the training questions (rows split evenly over the
    devices); everything else is replicated. Every process computes the same permutation, so
    the batches are the same as on one device; XLA moves the rows each device needs.
    """
    devices = jax.devices()
    mesh = placement.batch.mesh
    everywhere = placement.states
    rows = NamedSharding(mesh, PartitionSpec(None, "batch"))  # (datasets, questions, ...)
    mine = [i for i, d in enumerate(devices) if d.process_index == jax.process_index()]

    def put(x, sharding=everywhere):
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    def put_rows(x):  # pad the questions to a multiple of the devices, then keep this process's rows
        x = np.asarray(x)
        per = -(-x.shape[1] // len(devices))
        x = np.pad(x, [(0, 0), (0, per * len(devices) - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
        local = np.concatenate([x[:, i * per:(i + 1) * per] for i in mine], axis=1)
        return jax.make_array_from_process_local_data(rows, local, x.shape)

    states = jax.device_get({**states, "key": jax.random.key_data(states["key"])})
    states = jax.tree.map(put, states)
    states["key"] = jax.random.wrap_key_data(states["key"])
    placed = {k: jax.tree.map(put, v) for k, v in data.items() if k != "train"}
    placed["train"] = {k: (put(v) if k == "n" else put_rows(v)) for k, v in data["train"].items()}
    return states, placed


def over_runs(run_fn, states, epoch0, data, runs: tuple[int, int], group_size):
    """``run_fn(state, epoch0, data)`` of one run, over (tasks, seeds)-stacked ``states`` (``data``:
    tasks-stacked), in one program.

    The runs are vmapped over the devices they are spread on (``runs``: :attr:`Placement.runs`); on
    each device, ``group_size(its runs)`` of them at a time: whole tasks' seeds when a group holds
    them, else groups of one task's seeds. A run computes the same in any group.
    """
    t, s = jax.tree.leaves(states)[0].shape[:2]
    axis, n = runs
    nt, ns = (n, 1) if axis == 0 else (1, n) if axis == 1 else (1, 1)
    tl, sl = t // nt, s // ns  # a device's tasks and seeds
    group = group_size(tl * sl)
    per_task = jax.vmap(run_fn, in_axes=(0, None, None))  # a task's seeds

    def divisor(n, most):  # groups of equal size: one loop body to compile, no remainder
        return max(k for k in range(1, min(n, most) + 1) if n % k == 0)

    def local(st, d):  # one device's runs: states (tl, sl, ...), data (tl, ...)
        if group >= tl * sl:
            return jax.vmap(per_task, in_axes=(0, None, 0))(st, epoch0, d)
        if group >= sl:
            return jax.lax.map(lambda x: per_task(x[0], epoch0, x[1]), (st, d), batch_size=divisor(tl, group // sl))
        return jax.lax.map(lambda x: jax.lax.map(lambda r: run_fn(r, epoch0, x[1]), x[0],
                                                 batch_size=divisor(sl, group)), (st, d))

    if nt * ns == 1:
        return local(states, data)

    def split(a):  # (T, S, ...) -> (nt, ns, tl, sl, ...): the devices' axes first
        return jnp.moveaxis(a.reshape((nt, tl, ns, sl) + a.shape[2:]), 2, 1)

    def merge(a):
        return jnp.moveaxis(a, 1, 2).reshape((t, s) + a.shape[4:])

    out = jax.vmap(jax.vmap(local, in_axes=(0, None)))(jax.tree.map(split, states),
                                                       jax.tree.map(lambda a: a.reshape((nt, tl) + a.shape[1:]), data))
    return jax.tree.map(merge, out)
