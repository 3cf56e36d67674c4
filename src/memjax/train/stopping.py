"""Early stopping, the recipe's ``patience``: per run, on the device, inside the scanned epochs.

Patience counts the epochs since the validation error last went down; the parameters kept are those
of the lowest validation error, the lowest validation loss among equal errors. A stopped run (its
patience spent) keeps its best; the host ends the training when every run has stopped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def start(params) -> dict:
    """The state early stopping adds to a run's: its best parameters, their (error, loss), epochs waited."""
    return {"best": params, "best_valid": jnp.full((2,), jnp.inf, jnp.float32), "waited": jnp.array(0, jnp.int32)}


def keep_best(state: dict, params, valid, valid_loss, patience: int) -> dict:
    """The early-stopping part of a run's state after an epoch with validation ``valid`` (error) and
    ``valid_loss``."""
    running = state["waited"] < patience
    score = jnp.stack([valid, valid_loss])
    best = state["best_valid"]
    lower = score[0] < best[0]
    better = running & (lower | ((score[0] == best[0]) & (score[1] < best[1])))
    return {"best": jax.tree.map(lambda p, q: jnp.where(better, p, q), params, state["best"]),
            "best_valid": jnp.where(better, score, best),
            "waited": jnp.where(running & lower, 0, state["waited"] + running.astype(jnp.int32))}


def all_stopped(waited: np.ndarray, patience: int) -> bool:
    """Whether every run has spent its patience (``waited``: the runs' counts, on the host)."""
    return bool(np.all(waited >= patience))


def chunk_size(total: int, target_calls: int = 10) -> int:
    """The largest divisor of ``total`` that gives at least ``target_calls`` host calls (or 1)."""
    best = 1
    for c in range(1, total + 1):
        if total % c == 0 and total // c >= min(target_calls, total):
            best = c
    return best


def chunk(total: int, patience: int | None) -> int:
    """Epochs per host call (a divisor of ``total``: :func:`chunk_size`); with early stopping at most half
    the patience, so that the host looks at the runs soon after their patience runs out."""
    base = chunk_size(total)
    if not patience:
        return base
    return max(d for d in range(1, base + 1) if total % d == 0 and d <= max(1, patience // 2))
