"""Memory addressing and reads for one example."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_softmax(scores: jnp.ndarray, mask: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
    """Softmax along ``axis`` over the entries where ``mask`` is True; exactly zero elsewhere.

    Args:
        scores: (M,) float (or any shape, with ``axis`` the one to normalise).
        mask: bool, the shape of ``scores``.
        axis: the axis the weights sum to 1 along.

    Returns:
        probabilities, the shape of ``scores``; all zero along ``axis`` where no entry is present.
    """
    scores = jnp.where(mask, scores, -jnp.inf)
    top = jnp.max(scores, axis=axis, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    e = jnp.where(mask, jnp.exp(scores - jax.lax.stop_gradient(top)), 0.0)
    return e / jnp.maximum(jnp.sum(e, axis=axis, keepdims=True), jnp.finfo(e.dtype).tiny)


def softmax_with_empty(scores: jnp.ndarray, mask: jnp.ndarray, n_empty: jnp.ndarray) -> jnp.ndarray:
    """Softmax over the ``mask`` slots plus ``n_empty`` implicit slots whose score is exactly 0.

    Empty memory slots of the authors' code are zero vectors: their score is 0 and their value 0,
    so they only add ``n_empty * exp(0)`` to the softmax's normaliser. Counting them here, instead
    of materialising them, lets memory be cut to the slots that can be occupied with the same result.

    Args:
        scores: (..., M) float.
        mask: (..., M) bool, True for occupied slots.
        n_empty: (...) float, the number of implicit empty slots (0 for a plain masked softmax).

    Returns:
        (..., M) weights of the occupied slots (zero elsewhere); with the implicit slots they sum to 1.
    """
    n_empty = jnp.asarray(n_empty, scores.dtype)[..., None]
    top = jnp.max(jnp.where(mask, scores, -jnp.inf), axis=-1, keepdims=True)
    top = jnp.where(n_empty > 0, jnp.maximum(top, 0.0), top)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    e = jnp.exp(jnp.where(mask, scores - top, -jnp.inf))
    z = jnp.sum(e, axis=-1, keepdims=True) + n_empty * jnp.exp(-top)
    return e / jnp.maximum(z, jnp.finfo(e.dtype).tiny)


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


def streaming_read(score_and_value, n_chunks: int, batch: int, dim: int, n_empty: jnp.ndarray | None = None):
    """Softmax-weighted read over a memory seen one chunk at a time (an online softmax).

    The memory is never materialised whole: ``score_and_value(c)`` returns chunk c's scores
    (B, C), mask (B, C) and values (B, C, d), and a running maximum, normaliser and weighted sum
    carry the softmax across chunks (as in streaming attention), so memory use is that of one chunk
    however long the memory. Equal to ``read(softmax_with_empty(scores, mask, n_empty), values)``
    over the concatenated chunks.

    Args:
        score_and_value: chunk index (traced int) -> (scores, mask, values).
        n_chunks: the number of chunks.
        batch, dim: B and d.
        n_empty: (B,) implicit empty slots with score 0 and value 0 (see :func:`softmax_with_empty`).

    Returns:
        (B, d) the read vectors o.
    """
    init = (jnp.full((batch,), -jnp.inf), jnp.zeros((batch,)), jnp.zeros((batch, dim)))

    def step(carry, c):
        top, total, acc = carry
        scores, mask, values = score_and_value(c)
        new_top = jnp.maximum(top, jnp.max(jnp.where(mask, scores, -jnp.inf), axis=-1))
        safe = jnp.where(jnp.isfinite(new_top), new_top, 0.0)
        scale = jnp.exp(jnp.where(jnp.isfinite(top), top - safe, -jnp.inf))
        e = jnp.exp(jnp.where(mask, scores - safe[:, None], -jnp.inf))
        total = total * scale + jnp.sum(e, axis=-1)
        acc = acc * scale[:, None] + jnp.einsum("bc,bcd->bd", e, values)
        return (new_top, total, acc), None

    (top, total, acc), _ = jax.lax.scan(step, init, jnp.arange(n_chunks))
    if n_empty is not None:  # the empty slots: score 0 and value 0, so they only add to the normaliser
        safe = jnp.where(jnp.isfinite(top), top, -1e30)
        shift = jnp.where(n_empty > 0, jnp.maximum(safe, 0.0), safe)
        scale = jnp.exp(safe - shift)
        total = total * scale + jnp.where(n_empty > 0, n_empty * jnp.exp(-shift), 0.0)
        acc = acc * scale[:, None]
    return acc / jnp.maximum(total, jnp.finfo(acc.dtype).tiny)[:, None]
