"""Memory addressing and reads for one example."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_softmax(scores: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Softmax over the slots where ``mask`` is True; exactly zero elsewhere.

    Args:
        scores: (M,) float.
        mask: (M,) bool.

    Returns:
        (M,) probabilities; all zero when no slot is present.
    """
    scores = jnp.where(mask, scores, -jnp.inf)
    top = jnp.max(scores)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    e = jnp.where(mask, jnp.exp(scores - jax.lax.stop_gradient(top)), 0.0)
    return e / jnp.maximum(jnp.sum(e), jnp.finfo(e.dtype).tiny)


def address(query: jnp.ndarray, keys: jnp.ndarray, mask: jnp.ndarray, linear=False) -> jnp.ndarray:
    """Attention of ``query`` over memory ``keys``: p_i = softmax(u . m_i).

    Args:
        query: (d,) the controller state u.
        keys: (M, d) input memory vectors m_i.
        mask: (M,) bool, True for occupied slots.
        linear: bool (may be traced); True drops the softmax (the linear-start phase):
            p_i = u . m_i on occupied slots.

    Returns:
        (M,) attention weights.
    """
    scores = keys @ query
    return jnp.where(linear, jnp.where(mask, scores, 0.0), masked_softmax(scores, mask))


def read(weights: jnp.ndarray, values: jnp.ndarray) -> jnp.ndarray:
    """o = sum_i p_i c_i for (M,) weights and (M, d) output memory vectors."""
    return weights @ values


def hop(query, keys, values, mask, linear=False):
    """One memory hop: address with ``query``, read ``values``, return (u + o, p)."""
    p = address(query, keys, mask, linear)
    return query + read(p, values), p
