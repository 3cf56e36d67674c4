"""The training engine: many independent runs, on one task or several, as one compiled program.

A run's state is ``{"params", "opt", "key"}``. One epoch is a ``lax.scan`` over minibatch steps with
the batches gathered on the device from a per-epoch permutation; a chunk of epochs is a ``lax.scan``
over epochs. Runs are ``jax.vmap``-ed twice: over seeds, and over tasks whose data are padded to
common shapes (a *family*: same model and recipe, same steps per epoch); where a run's steps stream
many bytes, each device computes its runs a group at a time (:meth:`Trainer.group_size`). The host
only calls the compiled chunk a few times per training, to report progress: there is no host round
trip per step, and the program is compiled once per family.

The engine knows a model only through the interface of :mod:`memjax.models.base` (its inputs, loss,
predictions, traits and sizes). What is the same for every example is prepared once on the host
(:mod:`memjax.train.arrays`: the model's inputs, memory cut to the slots some story fills, the
vocabularies of tasks trained together padded to one size with the padding words masked out of the
answers). Where the runs live is :mod:`memjax.train.placement`'s (on a CPU, :func:`memjax.configure_xla`
makes one device per core); length buckets are :mod:`memjax.train.buckets`'.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.data.dataset import Dataset
from memjax.models.base import Phase
from memjax.train import evaluate, optim, placement, stopping
from memjax.train.arrays import SPLITS, family_arrays, occupancy  # noqa: F401 (occupancy: public here)
from memjax.train.config import TrainConfig
from memjax.train.buckets import bucketed_order, length_plan, plan_buckets  # noqa: F401 (length_plan: public here)
from memjax.train.placement import compiler_options, fetch  # noqa: F401 (compiler_options: public here)


@dataclasses.dataclass
class Fit:
    """What :meth:`Trainer.fit` returns for one task (or joint dataset): per-run results (axis 0 = run)."""

    seeds: list[int]
    params: dict
    history: dict[str, np.ndarray]  # name -> (runs, epochs)
    predictions: dict[str, np.ndarray]  # split -> (runs, N) predicted answer ids
    errors: dict[str, np.ndarray]  # split -> (runs,) error in percent
    seconds: dict[str, float]  # of the whole family: compile (the training program), train, eval


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Minibatch steps in one epoch: whole batches of ``min(batch_size, n_train)`` examples."""
    return n_train // min(batch_size, n_train)


class Trainer:
    """Trains a model on one dataset, or on several datasets at once, for any number of seeds.

    Args:
        model: a :class:`memjax.models.base.Model` (the engine uses that interface alone); or one per dataset,
            all of the same architecture (their vocabularies and position-encoding lengths may differ:
            each dataset is encoded with its own model, and the runs use the largest vocabulary).
        config: the training recipe.
        dataset: a :class:`Dataset`, or a sequence of datasets trained together (one family).
        devices: the devices to spread the runs over (default: all local devices).
        data_parallel: when the runs cannot be spread over the devices, split each batch over them
            instead. Default: on accelerators only; on a CPU it is much slower for these small
            models (measured: one task-1 run, 0.48 s of training on one device, 3.3 s on two).
        pretrained: optional word vectors per dataset, ``(rows (V, d), covered (V,) bool)`` as
            :func:`memjax.data.glove.load_glove` returns them: the covered rows of the model's
            ``embed`` matrix start from them (models with one (V, d) ``embed`` matrix).
        freeze: keep the covered rows at their pretrained values (no gradient, no L2).
    """

    def __init__(self, model, config: TrainConfig, dataset: Dataset | Sequence[Dataset], devices=None,
                 data_parallel: bool | None = None, pretrained: Sequence[tuple] | None = None, freeze: bool = False):
        self.pretrained = pretrained
        self.single = isinstance(dataset, Dataset)
        self.datasets = [dataset] if self.single else list(dataset)
        models = list(model) if isinstance(model, (list, tuple)) else [model] * len(self.datasets)
        if len(models) != len(self.datasets) or not self.datasets:
            raise ValueError("give one model per dataset")
        traits = models[0].traits
        if config.dropout > 0 and not traits.dropout:
            raise ValueError(f"--model {traits.name} has no dropout")
        self.config = c = config
        # per-example uniforms every step: dropout masks, or the model's own random choices (MemNN)
        self._draws = c.dropout > 0 or traits.random_inputs
        sizes = [len(ds.train) for ds in self.datasets]
        self.batch_size = min(c.batch_size, min(sizes))
        steps = {steps_per_epoch(n, self.batch_size) for n in sizes}
        if len(steps) != 1:
            raise ValueError(f"datasets trained together need the same steps per epoch, got {sorted(steps)}")
        self.steps_per_epoch = steps.pop()
        vocab = max(m.cfg.vocab_size for m in models)
        self.model = type(models[0])(dataclasses.replace(models[0].cfg, vocab_size=vocab))
        self.memory = max(occupancy(ds) for ds in self.datasets)
        self.data = family_arrays(models, self.datasets, self.memory, vocab, pretrained, freeze)
        self.plan = plan_buckets(c.buckets, traits, self.data["train"]["story"], self.batch_size)
        template = jax.eval_shape(lambda: self.model.init(jax.random.key(0)))  # no eager key (a compile)
        if pretrained is not None and not self.model.takes_pretrained(template):
            raise ValueError("pretrained word vectors need a model with one embedding matrix (DMN, DMN+)")
        if pretrained is not None and len(pretrained) != len(self.datasets):
            raise ValueError("give pretrained word vectors for every dataset")
        self.tx = optim.recipe(c, self.steps_per_epoch, self.model.padding_mask(template))
        self._decay = self.model.decay_mask(template) if c.weight_decay else None
        self.chunk = stopping.chunk(c.total_epochs, c.patience)
        self.devices = list(devices) if devices is not None else jax.local_devices()
        self.data_parallel = (self.devices[0].platform != "cpu") if data_parallel is None else data_parallel
        self.placement = None  # where the runs live (placement.Placement), set before the programs are traced
        self._chunk_fns = {False: jax.jit(self._runs_chunk, donate_argnums=0),
                           True: jax.jit(placement.one_run(self._run_chunk, (2, None, 1)), donate_argnums=0)}
        predict = jax.vmap(self._predict, in_axes=(0, None, None))
        self._predict_fns = {False: jax.jit(jax.vmap(predict, in_axes=(0, 0, 0))),
                             True: jax.jit(placement.one_run(self._predict, (2, 1, 1)))}
        self._init_runs = jax.vmap(jax.vmap(lambda seed: self._init(jax.random.key(seed))))
        self._init_fn = jax.jit(self._init_runs)

    # ---- one run -------------------------------------------------------------------------------
    def _init(self, key):
        k_params, k_run = jax.random.split(key)
        params = self.model.init(k_params)
        state = {"params": params, "opt": self.tx.init(params), "key": k_run}
        return {**state, **stopping.start(params)} if self.config.patience else state

    def _loss(self, params, data, batch, uniforms, linear, drop=None):
        params = self.model.hold(params, data)  # pretrained rows kept fixed (the model knows which)
        phase = Phase(linear, uniforms, drop, self.config.dropout if drop is not None else 0.0, self.config)
        ce, predicted = self.model.loss(params, data, batch, phase)
        wrong = jnp.sum(predicted != batch["answer"])
        loss = jnp.sum(ce) if self.config.loss == "sum" else jnp.mean(ce)
        if self._decay is not None:
            squares = jax.tree.map(lambda w, on: on * jnp.sum(jnp.square(w)), params, self._decay)
            loss = loss + 0.5 * self.config.weight_decay * sum(jax.tree.leaves(squares))
        return loss, (jnp.sum(ce), wrong)

    def _epoch(self, state, epoch, data):
        """One epoch of one run: its steps in a ``lax.scan``, then its validation error (and early stopping)."""
        c, b, steps = self.config, self.batch_size, self.steps_per_epoch
        train = data["train"]
        key, k_perm, k_noise, k_drop = jax.random.split(state["key"], 4)
        order, lengths = self._epoch_rows(k_perm, epoch, train)
        draws, noise, drops = self._epoch_draws(k_noise, k_drop, train["story"].shape[1])
        linear = epoch < c.warmup_epochs  # the recipe's warm-up (MemN2N: linear start)
        rows = {k: train[k] for k in ("story", "query", "answer", "supporting") if k in train}
        # Models with ``epoch_batches`` (MemN2N) get the epoch's batches gathered at once, each step its
        # slice: gathered in a short step, a few rows of a large table (en-10k's 9,000 questions) were
        # split over both cores as if the table were the work (benchmarks/paired_steps.py). The others
        # gather in the step: DMN+ trained as fast either way and compiled 0.3-0.45 s slower.
        gathered = self.model.traits.epoch_batches
        batches = jax.tree.map(lambda a: a[order], rows) if gathered else order
        step = self._step(data, linear, draws, None if gathered else rows)
        (params, opt), (ce, wrong) = jax.lax.scan(
            step, (state["params"], state["opt"]), (batches, noise, drops, lengths))
        seen = steps * b
        valid, valid_loss = evaluate.error(self.model, c, params, data, data["valid"], linear, with_loss=True)
        metrics = {"loss": jnp.sum(ce) / seen, "train_error": 100.0 * jnp.sum(wrong) / seen, "valid_error": valid}
        new = {"params": params, "opt": opt, "key": key}
        if c.patience:
            new.update(stopping.keep_best(state, params, valid, valid_loss, c.patience))
        return new, metrics

    def _epoch_rows(self, key, epoch, train):
        """(steps, B) training rows of one epoch's batches, and (steps,) each step's length bucket."""
        b, steps = self.batch_size, self.steps_per_epoch
        if self.plan is not None:
            return bucketed_order(self.plan, b, key, epoch)
        size = train["answer"].shape[0]  # padded; the first n rows are this dataset's
        scores = jnp.where(jnp.arange(size) < train["n"], jax.random.uniform(key, (size,)), 2.0)
        return jnp.argsort(scores)[: steps * b].reshape(steps, b), jnp.zeros((steps,), jnp.int32)

    def _epoch_draws(self, k_noise, k_drop, memory: int):
        """(draws, noise, drops): the whole epoch's uniforms in one draw each (a random call per step costs
        more than the step's math): the model's own noise (``draws`` per example; 0: none) and the dropout
        (or random-input) uniforms."""
        steps, b = self.steps_per_epoch, self.batch_size
        draws = self.model.noise_draws(memory, self.config)
        noise = jax.random.uniform(k_noise, (steps, b, max(1, draws)))
        if self._draws:
            return draws, noise, jax.random.uniform(k_drop, (steps, b) + self.model.dropout_shape(memory))
        return draws, noise, jnp.zeros((steps,))

    def _step(self, data, linear, draws: int, rows=None):
        """The scan body of an epoch: one optimiser step on a batch (its rows gathered from ``rows`` when
        given, else given), at its length bucket's memory width with ``--buckets``."""
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)

        def update(params, opt, batch, u, dr):
            (_, (ce, wrong)), grads = grad_fn(params, data, batch, u if draws else None, linear,
                                              dr if self._draws else None)
            updates, opt = self.tx.update(grads, opt, params)
            return (optax.apply_updates(params, updates), opt), (ce, wrong)

        def at_length(m):  # the update with the stories cut to their first m slots (the m most recent)
            def branch(params, opt, batch, u, dr):
                batch = {**batch, "story": batch["story"][:, :m]}
                if self._draws:  # the dropout draws of m facts and of the memory (the last row)
                    dr = jnp.concatenate([dr[:, :m], dr[:, -1:]], axis=1)
                return update(params, opt, batch, u, dr)
            return branch

        def step(carry, xs):
            params, opt = carry
            batch, u, dr, length = xs
            if rows is not None:
                batch = jax.tree.map(lambda a: a[batch], rows)
            if self.placement.batch is not None:  # data parallel: each device takes a part of the batch
                batch = jax.lax.with_sharding_constraint(batch, self.placement.batch)
                u = jax.lax.with_sharding_constraint(u, self.placement.batch)
            if self.plan is None:
                return update(params, opt, batch, u, dr)
            # ``length`` is the same for every run of the program (see buckets.bucketed_order), so that
            # under vmap this stays a branch rather than every length computed and one selected
            return jax.lax.switch(length, [at_length(m) for m in self.plan.lengths], params, opt, batch, u, dr)

        return step

    def _run_chunk(self, state, epoch0, data):
        epochs = epoch0 + jnp.arange(self.chunk)
        return jax.lax.scan(lambda s, e: self._epoch(s, e, data), state, epochs)

    def group_size(self, runs: int) -> int:
        """How many of a device's ``runs`` are computed at once (:func:`placement.group_size`)."""
        return placement.group_size(self.model.step_bytes(self.batch_size, self.memory, self.config), runs)

    def _runs_chunk(self, states, epoch0, data):
        """A chunk of epochs of (tasks, seeds)-stacked runs, spread and grouped by :func:`placement.over_runs`."""
        return placement.over_runs(self._run_chunk, states, epoch0, data, self.placement.runs, self.group_size)

    def _predict(self, params, data, split):
        return evaluate.answers(self.model, self.config, params, data, split)

    # ---- many runs -----------------------------------------------------------------------------
    def _shardings(self, seeds: int):
        """(states' sharding, data's sharding) for ``seeds`` runs per dataset on this process's devices
        (:func:`memjax.train.placement.plan`)."""
        self.placement = placement.plan(self.devices, len(self.datasets), seeds, self.batch_size, self.data_parallel)
        return self.placement.states, self.placement.data

    def _place(self, states, data):
        """States and data on the devices (several processes: one mesh over all of theirs)."""
        if jax.process_count() > 1:
            self.placement = placement.plan_processes(self.batch_size)
            return placement.put_processes(states, data, self.placement)
        state_sharding, data_sharding = self._shardings(jax.tree.leaves(states)[0].shape[1])
        return jax.device_put(states, state_sharding), jax.device_put(data, data_sharding)

    def _compiler_options(self) -> dict:
        return compiler_options(self.devices[0].platform, self.model.traits.cpu_legacy_emitters)

    def _seeds(self, seeds: list[int]) -> np.ndarray:
        """(datasets, seeds) int32 seeds, one per run: the init program makes each run's key from its seed
        (``jax.random.key(seed)``), so that no key is made eagerly (each eager operation compiles a program)."""
        seeds = [int(s) for s in seeds]
        if any(not 0 <= s < 2**31 for s in seeds):
            raise ValueError(f"seeds must be in [0, 2**31), got {seeds}")
        return np.tile(np.asarray(seeds, np.int32), (len(self.datasets), 1))

    def initial_states(self, seeds: list[int], params: dict | None = None, sharding=None) -> dict:
        """The runs' states before training: (datasets, seeds)-stacked, on the host's default device.

        Args:
            seeds: the runs' seeds.
            params: optional starting parameters, (datasets, seeds)-stacked (e.g. a shorter task's
                trained parameters: a curriculum), with a fresh optimiser state; pass the result to
                :meth:`fit` as ``resume=(0, states, {})``.
            sharding: where to make them instead (every leaf): the init program then writes each
                run's state on its device, where moving them there afterwards compiled a slicing
                program per leaf shape (0.2 s of a family's start on 2 CPU devices).
        """
        seeds = self._seeds(seeds)
        init = self._init_fn if sharding is None else jax.jit(self._init_runs, out_shardings=sharding)
        states = init.lower(seeds).compile(self._compiler_options())(seeds)
        if params is None and self.pretrained is not None:  # (datasets, seeds)-stacked, each its dataset's vectors
            start = jax.vmap(jax.vmap(self.model.start_from, in_axes=(0, None, None)))
            params = start(states["params"], jnp.asarray(self.data["pretrained"]), jnp.asarray(self.data["covered"]))
        if params is not None:
            states = {**states, "params": params, "opt": jax.jit(jax.vmap(jax.vmap(self.tx.init)))(params)}
            if sharding is not None:
                states = jax.device_put(states, sharding)
        return states

    def fit(self, seeds: list[int], progress: Callable[[int, int], None] | None = None,
            resume: tuple[int, dict, dict] | None = None,
            on_chunk: Callable[[int, dict, dict], None] | None = None,
            on_start: Callable[[int], None] | None = None) -> Fit | list[Fit]:
        """Trains one run per seed and dataset, and evaluates every run on every split.

        Args:
            seeds: the seeds of the runs (the same seeds for every dataset).
            progress: called as ``progress(epochs_done, total_epochs)`` after each chunk of epochs.
            resume: ``(epochs_done, states, history)`` saved by ``on_chunk`` (states as
                :meth:`initial_states` makes them; history as name -> (datasets, seeds, epochs)):
                training continues from there and ends exactly where an uninterrupted run ends.
            on_chunk: called as ``on_chunk(epochs_done, states, history)`` after each chunk of
                epochs, before the next one starts (e.g. to save a checkpoint).
            on_start: called as ``on_start(first_epoch)`` once the programs are compiled, just before the
                first chunk of epochs starts (e.g. to time the training apart from the compilation).

        Returns:
            a :class:`Fit` (one dataset) or a list with one per dataset.
        """
        t0 = time.perf_counter()
        start, states, data, history = self._start(seeds, resume)
        chunk_fn, predict_fn, states = self._compile(seeds, states, data)
        compile_s = time.perf_counter() - t0

        if on_start:
            on_start(start)
        t1 = time.perf_counter()
        total = self.config.total_epochs
        for epoch0 in range(start, total, self.chunk):
            if self.config.patience and stopping.all_stopped(fetch(states["waited"]), self.config.patience):
                break
            states, metrics = chunk_fn(states, epoch0, data)
            history.append(fetch(metrics))
            if on_chunk:
                so_far = {k: np.concatenate([h[k] for h in history], axis=2) for k in history[0]}
                on_chunk(epoch0 + self.chunk, states, so_far)
            if progress:
                progress(epoch0 + self.chunk, total)
        jax.block_until_ready(states)
        train_s = time.perf_counter() - t1
        final = states["best"] if self.config.patience else states["params"]

        t2 = time.perf_counter()
        everything = fetch(predict_fn(final, data, data["eval"]))  # (tasks, seeds, N)
        eval_s = time.perf_counter() - t2
        hist = {k: np.concatenate([h[k] for h in history], axis=2) for k in history[0]}
        return self._fits(seeds, fetch(final), hist, everything, {"compile": compile_s, "train": train_s, "eval": eval_s})

    def _start(self, seeds: list[int], resume):
        """(first epoch, states, data, history so far) of a training. Without ``resume``, the states are
        only their shapes here (:meth:`_compile` makes them while the training program is traced)."""
        if resume is None and jax.process_count() == 1:
            state_sharding, data_sharding = self._shardings(len(seeds))
            states = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=state_sharding),
                                  jax.eval_shape(self._init_fn, self._seeds(seeds)))
            return 0, states, jax.device_put(self.data, data_sharding), []
        start, history = 0, []
        if resume is None:
            states = self.initial_states(seeds)
        else:
            start, states, saved = resume
            if start % self.chunk or not 0 <= start <= self.config.total_epochs:
                raise ValueError(f"cannot resume after {start} epochs: not a chunk boundary of this training")
            if start:
                history.append(saved)
        states, data = self._place(states, self.data)
        return start, states, data, history

    def _compile(self, seeds: list[int], states, data):
        """(training program, evaluation program, states), compiled for these states' shapes.

        Where ``states`` are only shapes (:meth:`_start`), the runs' initial states are made (their program
        compiled and run) on a second thread while the training program is traced here (tracing threads
        would only take turns at the GIL); the evaluation program is traced next and compiles beside the
        training program (XLA compiles without the GIL)."""
        options = self._compiler_options()
        one = len(self.datasets) == 1 and len(seeds) == 1
        chunk_program, predict_program = self._chunk_fns[one], self._predict_fns[one]
        shapes_only = isinstance(jax.tree.leaves(states)[0], jax.ShapeDtypeStruct)
        with ThreadPoolExecutor(1) as pool:
            made = pool.submit(lambda: self.initial_states(seeds, sharding=self.placement.states)) if shapes_only else None
            lowered = chunk_program.lower(states, 0, data)
            predict = pool.submit(lambda: predict_program.lower(states["params"], data, data["eval"]).compile(options))
            chunk_fn = lowered.compile(options)
            predict_fn = predict.result()
            if made is not None:
                states = made.result()
        self.programs = {"train": chunk_fn, "predict": predict_fn}  # the compiled programs, for inspection
        return chunk_fn, predict_fn, states

    def _fits(self, seeds: list[int], params, history: dict, everything: np.ndarray, seconds: dict):
        """The :class:`Fit` of each dataset from the family's (datasets, seeds)-stacked results."""
        bounds = np.cumsum([0] + [self.data[name]["answer"].shape[1] for name in SPLITS])
        fits = []
        for i, ds in enumerate(self.datasets):
            pred = {name: everything[i][:, bounds[k]:bounds[k + 1]][:, : len(getattr(ds, name))]
                    for k, name in enumerate(SPLITS)}
            errors = {name: 100.0 * np.mean(pred[name] != getattr(ds, name).answer[None], axis=1) for name in SPLITS}
            fits.append(Fit(list(seeds), jax.tree.map(lambda a: a[i], params), {k: v[i] for k, v in history.items()},
                            pred, errors, seconds))
        return fits[0] if self.single else fits
