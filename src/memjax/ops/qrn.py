"""The Query-Reduction Network's layer (Seo, Min, Farhadi & Hajishirzi, ICLR 2017), for one example.

A QRN layer reads the story's sentences x_1..x_T (oldest first) with a query q_t per step (the
question in the first layer, the previous layer's reduced queries above it):

- update gate z_t = sigmoid(w_z . (x_t * q_t) + b_z), a scalar per step;
- candidate reduced query h~_t = tanh(W_h [x_t; q_t] + b_h);
- reset gate r_t = sigmoid(w_r . (x_t * q_t) + b_r) (optional; 1 without it), which scales the candidate;
- h_t = z_t r_t h~_t + (1 - z_t) h_{t-1}, h_0 = 0.

A bidirectional layer runs the same gates and candidates forwards and backwards, each direction
with its own reset gate, and adds the two (the authors' code, seominjoon/qrn ``babi/model.py``).

The gates and the candidate depend on the inputs only, so the recurrence is linear in h:
h_t = a_t h_{t-1} + b_t with a_t = 1 - z_t, b_t = z_t r_t h~_t, which :func:`linear_recurrence`
computes as a parallel prefix scan (``jax.lax.associative_scan``, O(log T) depth) and
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


def qrn_init(key: jax.Array, dim: int, reset: bool = True, bidirectional: bool = False,
             forget_bias: float = 2.5, std: float = 1.0, dtype=jnp.float32) -> dict:
    """Parameters of one QRN layer over d-dimensional sentences and queries.

    Returns:
        ``{"wz": (d,), "bz": (), "Wh": (2d, d), "bh": (d,)}`` plus, with ``reset``, ``"wr": (d, R)``
        and ``"br": (R,)``, one reset gate per direction (R = 2 when ``bidirectional``, else 1).
        As the authors' code: the gates' weights N(0, std^2), the candidate's N(0, 1 / 2d) (TensorFlow's
        unit-scaling default); ``bz`` starts at ``-forget_bias`` (the update gate starts nearly shut:
        a new sentence changes the reduced query only where it matters), ``br`` and ``bh`` at 0.
    """
    kz, kh, kr = jax.random.split(key, 3)
    params = {"wz": std * jax.random.normal(kz, (dim,), dtype), "bz": jnp.asarray(-forget_bias, dtype),
              "Wh": jax.random.normal(kh, (2 * dim, dim), dtype) / jnp.sqrt(2.0 * dim).astype(dtype),
              "bh": jnp.zeros((dim,), dtype)}
    if reset:
        directions = 2 if bidirectional else 1
        params["wr"] = std * jax.random.normal(kr, (dim, directions), dtype)
        params["br"] = jnp.zeros((directions,), dtype)
    return params


def without_reset(params: dict) -> dict:
    """``params`` of a layer with its reset gate left out (the last layer of a stack runs without one)."""
    return {k: v for k, v in params.items() if k not in ("wr", "br")}


def qrn_gates(params: dict, x: jnp.ndarray, q: jnp.ndarray, mask: jnp.ndarray):
    """(z (T,), candidate (T, d), reset gates (T, R) or None) of one QRN layer: the update gate (0 at
    empty slots), the candidate reduced query, and the reset gate of each direction when ``params``
    has them.

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
    reset = jax.nn.sigmoid(xq @ params["wr"] + params["br"]) if "wr" in params else None
    return z, candidate, reset


def qrn_layer(params: dict, x: jnp.ndarray, q: jnp.ndarray, mask: jnp.ndarray, bidirectional: bool = False,
              parallel: bool = True):
    """One QRN layer: (h (T, d) the reduced queries, z (T,) the update gates).

    ``bidirectional``: the forward and the backward (h_t from h_{t+1}) recurrences added, each with its
    own reset gate (the first column forwards, the last backwards); else forwards only.
    ``parallel``: the associative scan (:func:`linear_recurrence`), else the sequential loop (same
    values).
    """
    z, candidate, reset = qrn_gates(params, x, q, mask)
    scan = linear_recurrence if parallel else linear_recurrence_loop
    decay, update = 1.0 - z, z[:, None] * candidate

    def direction(column, reverse):
        return scan(decay, update if reset is None else update * reset[:, column, None], reverse=reverse)

    h = direction(0, False)
    return (h + direction(-1, True) if bidirectional else h), z


def qrn_stack(layers: list, x: jnp.ndarray, q: jnp.ndarray, mask: jnp.ndarray, bidirectional: bool = True,
              parallel: bool = True):
    """Stacked QRN layers: (the last layer's reduced queries (T, d), update gates (K, T)).

    Args:
        layers: per layer, :func:`qrn_init`'s parameters (the same dict K times: layers with tied weights).
        x: (T, d) the sentences, oldest first; q: (d,) the question; mask: (T,) bool.
        bidirectional: every layer but the last runs both ways.

    Layer k's query at step t is layer k-1's reduced query h_t. As in the authors' code, the last
    layer runs forwards only and without its reset gate: its state after the last sentence answers.
    """
    gates = []
    for k, params in enumerate(layers):
        last = k == len(layers) - 1
        q, z = qrn_layer(without_reset(params) if last else params, x, q, mask, bidirectional and not last,
                         parallel)
        gates.append(z)
    return q, jnp.stack(gates)
