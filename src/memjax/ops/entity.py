"""The Recurrent Entity Network's ops (Henaff, Weston, Szlam, Bordes & LeCun, ICLR 2017), one example each.

- input encoder: a sentence of words e_1..e_L (embedded) is s = sum_i f_i * e_i with learned
  multiplicative position masks f_i (:func:`masked_encoding`);
- dynamic memory: N slots, each a key w_j (learned) and a value h_j; every sentence s updates every slot
  (:func:`slot_update`):

      g_j = sigmoid(s^T h_j + s^T w_j [+ b_j])
      h~_j = phi(U h_j [+ c] + V w_j + W s)
      h_j <- h_j + g_j * h~_j,  then  h_j <- h_j / ||h_j||

  with phi = PReLU; :func:`entity_scan` runs it over a story's sentences as a ``lax.scan``;
- output module: p_j = softmax_j(q^T h_j), u = sum_j p_j h_j, y = R phi(q + H u)
  (:func:`entity_read` gives phi(q + H u) and p; the answer layer R is the model's).

Dynamic-memory parameters: ``{"keys": (N, d), "U", "V", "W": (d, d), "alpha": (d,)}`` (alpha: PReLU's
slope per unit), and optionally ``"gate_bias"`` b (N,) and ``"U_bias"`` c (d,): the biases of the authors'
Torch code, which the paper's equations leave out (:func:`memory_init` ``biases=True``). Matrices act on
column vectors as in the paper (U h), written ``h @ U.T`` here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def prelu(x: jnp.ndarray, alpha: jnp.ndarray) -> jnp.ndarray:
    """PReLU: x where x > 0, alpha * x elsewhere (alpha broadcast over the last axis)."""
    return jnp.where(x > 0, x, alpha * x)


def masked_encoding(embed: jnp.ndarray, ids: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """One sentence as s = sum_i f_i * E[w_i] (padding words, id 0, have a zero embedding row).

    Args:
        embed: (V, d) word embeddings, row 0 zero.
        ids: (L,) word ids, 0 = padding.
        mask: (K, d) position masks f_i; words past position K are not read (K < L), and rows past L
            are unused (K > L).

    Returns:
        (d,) the sentence.
    """
    length = ids.shape[0]
    if mask.shape[0] < length:
        mask = jnp.pad(mask, ((0, length - mask.shape[0]), (0, 0)))
    return jnp.sum(embed[ids] * mask[:length] * (ids != 0)[:, None], axis=0)


def memory_init(key: jax.Array, dim: int, slots: int, std: float = 0.1, alpha: float = 0.25,
                dtype=jnp.float32, biases: bool = False) -> dict:
    """Dynamic-memory parameters: keys, U, V, W drawn from N(0, std^2), PReLU slopes ``alpha``; with
    ``biases`` also the gate's bias per slot and U's bias, N(0, std^2) as the Torch code draws every weight
    (from their own key: the other draws are those of ``biases=False``)."""
    k = jax.random.split(key, 4)
    params = {"keys": std * jax.random.normal(k[0], (slots, dim), dtype),
              "U": std * jax.random.normal(k[1], (dim, dim), dtype),
              "V": std * jax.random.normal(k[2], (dim, dim), dtype),
              "W": std * jax.random.normal(k[3], (dim, dim), dtype),
              "alpha": jnp.full((dim,), alpha, dtype)}
    if biases:
        kb, kc = jax.random.split(jax.random.fold_in(key, 1))
        params["gate_bias"] = std * jax.random.normal(kb, (slots,), dtype)
        params["U_bias"] = std * jax.random.normal(kc, (dim,), dtype)
    return params


def slot_update(params: dict, h: jnp.ndarray, s: jnp.ndarray, eps: float = 1e-6):
    """One sentence updates every slot.

    Args:
        params: dynamic-memory parameters (module docstring); the biases are added where present.
        h: (N, d) slot values.
        s: (d,) the sentence.
        eps: the smallest norm a slot is divided by.

    Returns:
        (new values (N, d), gates g (N,)).
    """
    w = params["keys"]
    logit = h @ s + w @ s
    pre = h @ params["U"].T + w @ params["V"].T + s @ params["W"].T
    if "gate_bias" in params:
        logit = logit + params["gate_bias"]
    if "U_bias" in params:
        pre = pre + params["U_bias"]
    g = jax.nn.sigmoid(logit)
    candidate = prelu(pre, params["alpha"])
    h = h + g[:, None] * candidate
    return h / jnp.maximum(jnp.linalg.norm(h, axis=-1, keepdims=True), eps), g


def entity_scan(params: dict, sentences: jnp.ndarray, mask: jnp.ndarray, h0: jnp.ndarray | None = None):
    """The dynamic memory over a story, oldest sentence first; masked (empty) sentences change nothing.

    Args:
        params: dynamic-memory parameters.
        sentences: (T, d) encoded sentences in reading order.
        mask: (T,) bool, False at empty sentences.
        h0: (N, d) initial values; the keys when None (the slots start as their keys).

    Returns:
        (final values (N, d), gates (T, N): 0 at masked sentences).
    """
    h0 = params["keys"] if h0 is None else h0

    def step(h, inp):
        s, keep = inp
        new, g = slot_update(params, h, s)
        return jnp.where(keep, new, h), jnp.where(keep, g, 0.0)

    return jax.lax.scan(step, h0, (sentences, mask))


def output_init(key: jax.Array, dim: int, std: float = 0.1, alpha: float = 0.25, dtype=jnp.float32) -> dict:
    """Output-module parameters ``{"H": (d, d) N(0, std^2), "alpha": (d,)}``."""
    return {"H": std * jax.random.normal(key, (dim, dim), dtype), "alpha": jnp.full((dim,), alpha, dtype)}


def entity_read(params: dict, h: jnp.ndarray, q: jnp.ndarray):
    """The output module before the answer layer: (phi(q + H u) (d,), attention p (N,)) for slots h (N, d)."""
    p = jax.nn.softmax(h @ q)
    u = p @ h
    return prelu(q + u @ params["H"].T, params["alpha"]), p
