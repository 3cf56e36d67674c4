"""The paper's optimisation quirks as small optax transformations and schedules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def clip_each_by_norm(max_norm: float) -> optax.GradientTransformation:
    """Rescales each gradient leaf (each weight matrix) separately to an L2 norm of at most ``max_norm``.

    ``optax.clip_by_global_norm`` clips the whole tree at once; the MemN2N recipe clips every matrix
    on its own.
    """

    def update(updates, state, params=None):
        del params

        def clip(g):
            norm = jnp.sqrt(jnp.sum(jnp.square(g)))
            return g * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))

        return jax.tree.map(clip, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def multiply_by(mask) -> optax.GradientTransformation:
    """Multiplies updates by a fixed pytree of multipliers (e.g. 0 on padding rows, keeping them at zero)."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda g, m: g * m, updates, mask), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def step_decay_schedule(lr: float, steps_per_epoch: int, decay_every: int | None, decay: float = 0.5,
                        ls_epochs: int = 0, ls_lr: float | None = None) -> optax.Schedule:
    """Learning rate per step: ``ls_lr`` for the first ``ls_epochs`` epochs (a warm-up such as linear
    start), then ``lr`` multiplied by ``decay`` every ``decay_every`` epochs (None: constant)."""

    def schedule(step):
        epoch = step // steps_per_epoch
        main = epoch - ls_epochs
        rate = lr * decay ** jnp.floor_divide(jnp.maximum(main, 0), decay_every) if decay_every else lr
        if ls_epochs:
            rate = jnp.where(main < 0, ls_lr if ls_lr is not None else lr, rate)
        return rate

    return schedule


def triangular_schedule(lr_min: float, lr_max: float, steps_per_epoch: int, cycle_epochs: int) -> optax.Schedule:
    """Smith's triangular cyclic rate (2017): ``lr_min`` at step 0, up linearly to ``lr_max`` after
    ``cycle_epochs`` epochs, back down to ``lr_min`` after as many more, and again."""
    half = steps_per_epoch * cycle_epochs

    def schedule(step):
        x = jnp.abs(jnp.mod(step, 2 * half) / half - 1.0)  # 1 at the cycle's ends, 0 at its middle
        return lr_min + (lr_max - lr_min) * (1.0 - x)

    return schedule


def sgd_recipe(schedule: optax.Schedule, max_grad_norm: float | None, padding_mask) -> optax.GradientTransformation:
    """SGD as in the MemN2N paper: per-matrix clipping (None: none), padding rows frozen at zero, scheduled rate."""
    parts = [clip_each_by_norm(max_norm=max_grad_norm)] if max_grad_norm else []
    return optax.chain(*parts, multiply_by(padding_mask), optax.scale_by_learning_rate(schedule))


def adam_recipe(lr, max_grad_norm: float | None, padding_mask) -> optax.GradientTransformation:
    """Adam (the DMN+ recipe) at ``lr``, a rate or a schedule (EntNet's halving), padding rows frozen;
    optional global-norm clipping."""
    parts = [optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm else []
    return optax.chain(*parts, multiply_by(padding_mask), optax.adam(lr))


def rmsprop_recipe(lr: float, max_grad_norm: float | None, padding_mask, decay: float = 0.9,
                   eps: float = 1e-7) -> optax.GradientTransformation:
    """RMSprop at a constant rate as Keras's (the bAbI memory-network example's optimiser), padding
    rows frozen; optional global-norm clipping.

    Keras: a = decay * a + (1 - decay) * g^2 (a starts at 0), step -lr * g / (sqrt(a) + eps).
    """
    parts = [optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm else []
    return optax.chain(*parts, multiply_by(padding_mask),
                       optax.rmsprop(lr, decay=decay, eps=eps, eps_in_sqrt=False))


def adagrad_recipe(schedule: optax.Schedule, max_grad_norm: float | None, padding_mask,
                   initial_accumulator: float = 0.1, eps: float = 1e-7) -> optax.GradientTransformation:
    """AdaGrad at a scheduled rate (the QRN authors' optimiser; TensorFlow's accumulators start at
    0.1), padding rows frozen; optional global-norm clipping."""
    parts = [optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm else []
    return optax.chain(*parts, multiply_by(padding_mask),
                       optax.adagrad(schedule, initial_accumulator_value=initial_accumulator, eps=eps))


def recipe(config, steps_per_epoch: int, padding_mask) -> optax.GradientTransformation:
    """The optimiser of a :class:`memjax.train.config.TrainConfig`: ``sgd`` (as the MemN2N recipe: the
    warm-up epochs at their rate, then lr multiplied by ``decay`` every ``decay_every`` epochs;
    per-matrix clipping), ``adagrad`` (the same schedule; global-norm clipping), ``adam`` (with ``decay_every``:
    lr multiplied by ``decay`` every that many epochs; with ``cycle_epochs``: the triangular cyclic rate) or
    ``rmsprop`` at ``lr``."""
    c = config
    if c.optimizer == "adam":
        if c.cycle_epochs:
            rate = triangular_schedule(c.lr_min, c.lr, steps_per_epoch, c.cycle_epochs)
        else:
            rate = step_decay_schedule(c.lr, steps_per_epoch, c.decay_every, c.decay) if c.decay_every else c.lr
        return adam_recipe(rate, c.max_grad_norm, padding_mask)
    if c.optimizer == "rmsprop":
        return rmsprop_recipe(c.lr, c.max_grad_norm, padding_mask)
    schedule = step_decay_schedule(c.lr, steps_per_epoch, c.decay_every, c.decay, c.warmup_epochs, c.warmup_lr)
    if c.optimizer == "adagrad":
        return adagrad_recipe(schedule, c.max_grad_norm, padding_mask)
    return sgd_recipe(schedule, c.max_grad_norm, padding_mask)
