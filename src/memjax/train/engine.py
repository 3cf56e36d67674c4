"""The training engine: many independent runs of one model as one compiled program.

A run's state is ``{"params", "opt", "key"}``. One epoch is a ``lax.scan`` over minibatch steps with
the batches gathered on the device from a per-epoch permutation; a chunk of epochs is a ``lax.scan``
over epochs; the runs (seeds) are ``jax.vmap``-ed. The host only calls the compiled chunk a few
times per training, to report progress: there is no host round trip per step, and the program is
compiled once per data shape.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.data.dataset import Dataset, Split
from memjax.train.optim import sgd_recipe, step_decay_schedule


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters; defaults are the MemN2N per-task bAbI recipe.

    ``epochs`` counts the main schedule; with linear start, ``ls_epochs`` more epochs come first.
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.01
    decay_every: int = 25
    decay: float = 0.5
    max_grad_norm: float = 40.0
    linear_start: bool = True
    ls_epochs: int = 20
    ls_lr: float = 0.005
    random_noise: bool = True
    noise: float = 0.1
    loss: str = "sum"  # "sum" over the batch, as the authors' code; or "mean"

    @property
    def total_epochs(self) -> int:
        return self.epochs + (self.ls_epochs if self.linear_start else 0)


def _device_split(split: Split) -> dict:
    return {k: jnp.asarray(v) for k, v in split.arrays().items() if k != "supporting"}


@dataclasses.dataclass
class Fit:
    """What :meth:`Trainer.fit` returns: per-run results (leading axis = run)."""

    seeds: list[int]
    params: dict
    history: dict[str, np.ndarray]  # name -> (runs, epochs)
    predictions: dict[str, np.ndarray]  # split -> (runs, N) predicted answer ids
    errors: dict[str, np.ndarray]  # split -> (runs,) error in percent
    seconds: dict[str, float]  # compile (the training program), train, eval (compiles included)


def _chunk_size(total: int, target_calls: int = 10) -> int:
    """The largest divisor of ``total`` that gives at least ``target_calls`` host calls (or 1)."""
    best = 1
    for c in range(1, total + 1):
        if total % c == 0 and total // c >= min(target_calls, total):
            best = c
    return best


class Trainer:
    """Trains ``model`` on ``dataset`` for any number of seeds at once.

    Args:
        model: an object with ``init(key) -> params``, ``padding_mask(params)`` and
            ``logits(params, sentences, batch, key=None, linear=False, noise=0.0)``.
        config: the training recipe.
        dataset: the vectorised data (train, valid and test splits).
    """

    def __init__(self, model, config: TrainConfig, dataset: Dataset):
        self.model, self.config, self.dataset = model, config, dataset
        n = len(dataset.train)
        self.batch_size = min(config.batch_size, n)
        self.steps_per_epoch = n // self.batch_size
        self.data = {"sentences": jnp.asarray(dataset.sentences),
                     "train": _device_split(dataset.train), "valid": _device_split(dataset.valid),
                     "test": _device_split(dataset.test)}
        c = config
        schedule = step_decay_schedule(c.lr, self.steps_per_epoch, c.decay_every, c.decay,
                                       c.ls_epochs if c.linear_start else 0, c.ls_lr)
        template = jax.eval_shape(model.init, jax.random.key(0))
        self.tx = sgd_recipe(schedule, c.max_grad_norm, model.padding_mask(template))
        self.chunk = _chunk_size(c.total_epochs)
        self._chunk_fn = jax.jit(jax.vmap(self._run_chunk, in_axes=(0, None, None)), donate_argnums=0)
        self._predict_fn = jax.jit(jax.vmap(self._predict, in_axes=(0, None, None)))
        self._init_fn = jax.jit(jax.vmap(self._init))

    # ---- one run -------------------------------------------------------------------------------
    def _init(self, key):
        k_params, k_run = jax.random.split(key)
        params = self.model.init(k_params)
        return {"params": params, "opt": self.tx.init(params), "key": k_run}

    def _loss(self, params, sentences, batch, key, linear):
        c = self.config
        logits, _ = self.model.logits(params, sentences, batch, key=key, linear=linear,
                                      noise=c.noise if c.random_noise else 0.0)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["answer"])
        wrong = jnp.sum(jnp.argmax(logits, -1) != batch["answer"])
        return (jnp.sum(ce) if c.loss == "sum" else jnp.mean(ce)), (jnp.sum(ce), wrong)

    def _epoch(self, state, epoch, data):
        c, b, steps = self.config, self.batch_size, self.steps_per_epoch
        train = data["train"]
        key, k_perm, k_steps = jax.random.split(state["key"], 3)
        order = jax.random.permutation(k_perm, train["answer"].shape[0])[: steps * b].reshape(steps, b)
        linear = jnp.logical_and(c.linear_start, epoch < c.ls_epochs)
        grad_fn = jax.value_and_grad(self._loss, has_aux=True)

        def step(carry, xs):
            params, opt = carry
            idx, k = xs
            batch = jax.tree.map(lambda a: a[idx], train)
            (_, (ce, wrong)), grads = grad_fn(params, data["sentences"], batch, k, linear)
            updates, opt = self.tx.update(grads, opt, params)
            return (optax.apply_updates(params, updates), opt), (ce, wrong)

        (params, opt), (ce, wrong) = jax.lax.scan(
            step, (state["params"], state["opt"]), (order, jax.random.split(k_steps, steps)))
        seen = steps * b
        valid_error = self._error(params, data["sentences"], data["valid"])
        metrics = {"loss": jnp.sum(ce) / seen, "train_error": 100.0 * jnp.sum(wrong) / seen,
                   "valid_error": valid_error}
        return {"params": params, "opt": opt, "key": key}, metrics

    def _run_chunk(self, state, epoch0, data):
        epochs = epoch0 + jnp.arange(self.chunk)
        return jax.lax.scan(lambda s, e: self._epoch(s, e, data), state, epochs)

    def _predict(self, params, sentences, split, chunk: int = 512):
        """Predicted answer ids, (N,), computed ``chunk`` examples at a time."""
        inputs = {"story": split["story"], "query": split["query"]}
        n = inputs["story"].shape[0]
        chunk = min(chunk, n)
        padded = -(-n // chunk) * chunk
        chunks = jax.tree.map(
            lambda a: jnp.pad(a, [(0, padded - n)] + [(0, 0)] * (a.ndim - 1)).reshape(
                (padded // chunk, chunk) + a.shape[1:]), inputs)

        def answer(batch):
            logits, _ = self.model.logits(params, sentences, batch)
            return jnp.argmax(logits, -1)

        return jax.lax.map(answer, chunks).reshape(-1)[:n]

    def _error(self, params, sentences, split):
        return 100.0 * jnp.mean(self._predict(params, sentences, split) != split["answer"])

    # ---- many runs -----------------------------------------------------------------------------
    def fit(self, seeds: list[int], progress: Callable[[int, int], None] | None = None) -> Fit:
        """Trains one run per seed (vmapped) and evaluates every run on every split.

        Args:
            seeds: the seeds of the runs.
            progress: called as ``progress(epochs_done, total_epochs)`` after each chunk of epochs.
        """
        t0 = time.perf_counter()
        keys = jnp.stack([jax.random.key(s) for s in seeds])
        states = self._init_fn(keys)
        chunk_fn = self._chunk_fn.lower(states, 0, self.data).compile()
        compile_s = time.perf_counter() - t0

        t1 = time.perf_counter()
        total = self.config.total_epochs
        history = []
        for epoch0 in range(0, total, self.chunk):
            states, metrics = chunk_fn(states, epoch0, self.data)
            history.append(jax.device_get(metrics))
            if progress:
                progress(epoch0 + self.chunk, total)
        jax.block_until_ready(states)
        train_s = time.perf_counter() - t1

        t2 = time.perf_counter()
        predictions, errors = {}, {}
        for name in ("train", "valid", "test"):
            split = self.data[name]
            pred = np.asarray(self._predict_fn(states["params"], self.data["sentences"], split))
            predictions[name] = pred
            errors[name] = 100.0 * np.mean(pred != np.asarray(split["answer"])[None], axis=1)
        eval_s = time.perf_counter() - t2
        hist = {k: np.concatenate([h[k] for h in history], axis=1) for k in history[0]}
        return Fit(list(seeds), states["params"], hist, predictions, errors,
                   {"compile": compile_s, "train": train_s, "eval": eval_s})
