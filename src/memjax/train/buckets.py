"""Length buckets (``--buckets``): an epoch's batches drawn by story length, each computed at its
bucket's length instead of the whole memory's (models with ``traits.length_buckets``: DMN+ and EntNet)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def plan_buckets(k: int, traits, stories, batch: int) -> "LengthPlan | None":
    """The :class:`LengthPlan` of ``k`` buckets (None for 0) for a family's training ``stories``
    (datasets, N, M); ValueError (one line) for a model without buckets or several datasets."""
    if not k:
        return None
    require_buckets(traits)
    if len(stories) != 1:
        raise ValueError("length buckets (--buckets) need one dataset per family: train the tasks one by one, or jointly")
    return length_plan(stories[0], batch, k)


def require_buckets(traits) -> None:
    """ValueError (one line, naming the families that do) unless a family with ``traits`` takes length buckets."""
    if not traits.length_buckets:
        from memjax.models import FAMILIES

        able = ", ".join(name for name, (cls, _) in FAMILIES.items() if cls.traits.length_buckets)
        raise ValueError(f"--model {traits.name} does not train in length buckets (--buckets): {able} do")


@dataclasses.dataclass(frozen=True)
class LengthPlan:
    """How an epoch's batches are drawn by story length (:func:`length_plan`).

    ``lengths``: the K bucket lengths, increasing, the last the whole memory's width; ``members``:
    per bucket, the training rows whose story fits its length and not the one before; ``batches``:
    per bucket, the whole batches drawn from its own rows each epoch; the rows left over in every
    bucket make ``pooled`` more batches at the length ``lengths[pool]`` (the longest bucket with
    rows left over).
    """

    lengths: tuple[int, ...]
    members: tuple[np.ndarray, ...]
    batches: tuple[int, ...]
    pooled: int
    pool: int

    @property
    def steps(self) -> np.ndarray:
        """The bucket of each step of an epoch, in bucket order (the epoch shuffles them)."""
        return np.repeat(list(range(len(self.lengths))) + [self.pool], list(self.batches) + [self.pooled]).astype(np.int32)


def length_plan(story: np.ndarray, batch_size: int, buckets: int) -> LengthPlan:
    """Length buckets for the training stories ``story`` (N, M) (slot 0 the most recent; a story of
    n statements fills slots 0..n-1).

    The bucket lengths are the stories' distinct lengths when there are at most ``buckets`` of them,
    else the lengths at the quantiles 1/K, 2/K, ..., 1 of the training stories; the last is always M.
    Each epoch, every bucket's rows are shuffled and cut into whole batches, and the rows left over
    in all buckets are shuffled together into batches at the longest of their lengths, so that an
    epoch still has N // batch_size steps and drops fewer than a batch of rows, as without buckets.
    """
    n, m = story.shape
    count = (story != 0).sum(1)
    distinct = np.unique(count)
    if len(distinct) <= buckets:
        lengths = distinct
    else:
        lengths = np.unique(np.quantile(count, np.arange(1, buckets + 1) / buckets, method="higher"))
    lengths = np.unique(np.maximum(np.append(lengths[:-1], m), 1))
    which = np.searchsorted(lengths, np.maximum(count, 1))  # the smallest bucket length >= the story's
    members = tuple(np.flatnonzero(which == k).astype(np.int32) for k in range(len(lengths)))
    batches = tuple(len(r) // batch_size for r in members)
    left = [len(r) - k * batch_size for r, k in zip(members, batches)]
    pooled = sum(left) // batch_size
    pool = max((k for k, r in enumerate(left) if r), default=len(lengths) - 1)
    return LengthPlan(tuple(int(v) for v in lengths), members, batches, pooled, pool)


def bucketed_order(plan: LengthPlan, batch_size: int, key, epoch):
    """(steps, B) training rows and (steps,) bucket per step of one epoch (see :func:`length_plan`).

    The rows are the run's own (shuffled with its ``key``); the order of the steps' buckets comes
    from the epoch number alone, the same for every run trained in the program (runs of one dataset:
    every run has the same number of batches per bucket)."""
    b = batch_size
    keys = jax.random.split(key, len(plan.lengths) + 1)
    batches, left = [], []
    for k, rows in enumerate(plan.members):
        rows = jnp.asarray(rows)[jax.random.permutation(keys[k], len(rows))]
        batches.append(rows[: plan.batches[k] * b].reshape(plan.batches[k], b))
        left.append(rows[plan.batches[k] * b:])
    pool = jnp.concatenate(left)
    pool = pool[jax.random.permutation(keys[-1], pool.shape[0])][: plan.pooled * b]
    order = jnp.concatenate(batches + [pool.reshape(plan.pooled, b)])
    shuffle = jax.random.permutation(jax.random.fold_in(jax.random.key(0x6275636B), epoch), order.shape[0])
    return order[shuffle], jnp.asarray(plan.steps)[shuffle]
