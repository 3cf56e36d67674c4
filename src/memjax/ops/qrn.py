"""The Query-Reduction Network's layer (Seo, Min, Farhadi & Hajishirzi, ICLR 2017), for one example.

A QRN layer reads the story's sentences x_1..x_T (oldest first) with a query q_t per step (the
question in the first layer, the previous layer's reduced queries above it):

- update gate z_t = sigmoid(w_z . (x_t * q_t) + b_z), a scalar per step;
- reset gate r_t = sigmoid(w_r . (x_t * q_t) + b_r) (optional; 1 without it);
- candidate reduced query h~_t = r_t tanh(W_h [x_t; q_t] + b_h);
- h_t = z_t h~_t + (1 - z_t) h_{t-1}, h_0 = 0.

The gates and the candidate depend on the inputs only, so the recurrence is linear in h:
h_t = a_t h_{t-1} + b_t with a_t = 1 - z_t, b_t = z_t h~_t, which :func:`linear_recurrence` computes
as a parallel prefix scan (``jax.lax.associative_scan``, O(log T) depth) and
:func:`linear_recurrence_loop` as the plain sequential ``jax.lax.scan`` the tests compare it with.
Empty memory slots (``mask`` False) get z = 0: they leave h unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _as_columns(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``a`` (T,) or (T, d) broadcast against ``b`` (T, d)."""
    return a[:, None] if a.ndim == b.ndim - 1 else a


def linear_recurrence(a: jnp.ndarray, b: jnp.ndarray, h0: jnp.ndarray | None = None,
                      reverse: bool = False) -> jnp.ndarray:
    """All states of h_t = a_t h_{t-1} + b_t, by a parallel (associative) scan.

    Args:
        a: (T,) or (T, d) decay per step (a scalar per step broadcasts over the state).
        b: (T, d) input per step.
        h0: (d,) the state before the first step (zeros when None).
        reverse: run from the last step to the first (h_t from h_{t+1}).

    Returns:
        (T, d): h_1..h_T (in the input's order also when ``reverse``).
    """
    a = jnp.broadcast_to(_as_columns(a, b), b.shape)

    def combine(earlier, later):
        # composing h -> a1 h + b1, then h -> a2 h + b2: h -> (a2 a1) h + (a2 b1 + b2)
        a1, b1 = earlier
        a2, b2 = later
        return a2 * a1, a2 * b1 + b2

    decay, hs = jax.lax.associative_scan(combine, (a, b), reverse=reverse)
    if h0 is not None:
        hs = hs + decay * h0
    return hs


def linear_recurrence_loop(a: jnp.ndarray, b: jnp.ndarray, h0: jnp.ndarray | None = None,
                           reverse: bool = False) -> jnp.ndarray:
    """:func:`linear_recurrence` step by step with ``jax.lax.scan`` (the reference)."""
    a = jnp.broadcast_to(_as_columns(a, b), b.shape)
    h0 = jnp.zeros(b.shape[1:], b.dtype) if h0 is None else h0

    def step(h, inp):
        at, bt = inp
        h = at * h + bt
        return h, h

    return jax.lax.scan(step, h0, (a, b), reverse=reverse)[1]


def qrn_init(key: jax.Array, dim: int, reset: bool = True, gate_bias: float = 2.5, std: float = 1.0,
             dtype=jnp.float32) -> dict:
    """Parameters of one QRN layer (one direction) over d-dimensional sentences and queries.

    Returns:
        ``{"wz": (d,), "bz": (), "Wh": (2d, d), "bh": (d,)}`` plus ``"wr", "br"`` with ``reset``:
        weights N(0, std^2), ``bz`` (and ``br``) start at ``gate_bias``, ``bh`` at 0.
    """
    kz, kh, kr = jax.random.split(key, 3)
    params = {"wz": std * jax.random.normal(kz, (dim,), dtype), "bz": jnp.asarray(gate_bias, dtype),
              "Wh": std * jax.random.normal(kh, (2 * dim, dim), dtype), "bh": jnp.zeros((dim,), dtype)}
    if reset:
        params["wr"] = std * jax.random.normal(kr, (dim,), dtype)
        params["br"] = jnp.asarray(gate_bias, dtype)
    return params


def qrn_gates(params: dict, x: jnp.ndarray, q: jnp.ndarray, mask: jnp.ndarray):
    """(z (T,), candidate (T, d)) of one QRN layer: the update gate (0 at empty slots) and the
    candidate reduced query (times the reset gate when ``params`` has one).

    Args:
        params: from :func:`qrn_init`.
        x: (T, d) the sentences, oldest first.
        q: (T, d) the query at each step (or (d,): the same at every step).
        mask: (T,) bool, False at empty slots.
    """
    q = jnp.broadcast_to(q, x.shape)
    xq = x * q
    z = jax.nn.sigmoid(xq @ params["wz"] + params["bz"]) * mask
    candidate = jnp.tanh(jnp.concatenate([x, q], axis=-1) @ params["Wh"] + params["bh"])
    if "wr" in params:
        candidate = candidate * jax.nn.sigmoid(xq @ params["wr"] + params["br"])[:, None]
    return z, candidate


def qrn_layer(params: dict, x: jnp.ndarray, q: jnp.ndarray, mask: jnp.ndarray, reverse: bool = False,
              parallel: bool = True):
    """One direction of a QRN layer: (h (T, d) the reduced queries, z (T,) the update gates).

    ``reverse``: the backward direction (h_t from h_{t+1}); ``parallel``: the associative scan
    (:func:`linear_recurrence`), else the sequential loop (same values).
    """
    z, candidate = qrn_gates(params, x, q, mask)
    scan = linear_recurrence if parallel else linear_recurrence_loop
    return scan(1.0 - z, z[:, None] * candidate, reverse=reverse), z


def qrn_stack(layers: list, x: jnp.ndarray, q: jnp.ndarray, mask: jnp.ndarray, parallel: bool = True):
    """Stacked QRN layers: (the last layer's reduced queries (T, d), update gates (K, T)).

    Args:
        layers: per layer, ``{"fwd": params}`` or ``{"fwd": ..., "bwd": ...}`` (bidirectional: the
            backward direction's reduced queries are added to the forward's).
        x: (T, d) the sentences, oldest first; q: (d,) the question; mask: (T,) bool.

    Layer k's query at step t is layer k-1's reduced query h_t; the gates reported are the forward
    direction's.
    """
    gates = []
    for layer in layers:
        h, z = qrn_layer(layer["fwd"], x, q, mask, parallel=parallel)
        if "bwd" in layer:
            h = h + qrn_layer(layer["bwd"], x, q, mask, reverse=True, parallel=parallel)[0]
        q = h
        gates.append(z)
    return q, jnp.stack(gates)
