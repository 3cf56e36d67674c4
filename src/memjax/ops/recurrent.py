"""Recurrent operations of Dynamic Memory Networks for one example.

DMN: Kumar et al. 2016, "Ask Me Anything: Dynamic Memory Networks for Natural Language Processing".
DMN+: Xiong et al. 2016, "Dynamic Memory Networks for Visual and Textual Question Answering".

Every function works on ONE example (a sequence, a set of facts, one question); batch with
``jax.vmap``. Parameters are plain dicts of arrays. Matrices act on the right (``x @ W``), so
a weight of shape (in, out) maps an (in,) vector to an (out,) vector.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.ops.addressing import masked_softmax

_glorot = jax.nn.initializers.glorot_uniform()


def _blocks(key: jax.Array, rows: int, cols: int, n: int, dtype) -> jnp.ndarray:
    """``n`` Glorot-uniform (rows, cols) blocks side by side: (rows, n * cols)."""
    return jnp.concatenate([_glorot(k, (rows, cols), dtype) for k in jax.random.split(key, n)], axis=1)


def _gated_init(key: jax.Array, in_dim: int, hidden: int, n: int, dtype) -> dict:
    """``n`` gate blocks: Glorot-uniform input and state weights, zero bias."""
    kw, ku = jax.random.split(key)
    return {"W": _blocks(kw, in_dim, hidden, n, dtype), "U": _blocks(ku, hidden, hidden, n, dtype),
            "b": jnp.zeros((n * hidden,), dtype)}


def _reset_candidate(params: dict, h: jnp.ndarray, x: jnp.ndarray, blocks: int):
    """(first gate pre-activations or None, candidate h~): the last two blocks are [reset r, candidate]."""
    wx = jnp.split(x @ params["W"] + params["b"], blocks)
    uh = jnp.split(h @ params["U"], blocks)
    r = jax.nn.sigmoid(wx[-2] + uh[-2])
    cand = jnp.tanh(wx[-1] + r * uh[-1])
    return (wx[0] + uh[0] if blocks == 3 else None), cand


# ----------------------------------------------------------------------------------------- GRU


def gru_init(key: jax.Array, in_dim: int, hidden: int, dtype=jnp.float32) -> dict:
    """Parameters of a GRU; the gate blocks are ordered [update u, reset r, candidate].

    Args:
        key: PRNG key.
        in_dim: size d_in of the inputs x.
        hidden: size H of the state h.
        dtype: parameter dtype.

    Returns:
        ``{"W": (in_dim, 3H), "U": (H, 3H), "b": (3H,)}``: Glorot-uniform weights, zero bias.
    """
    return _gated_init(key, in_dim, hidden, 3, dtype)


def gru_cell(params: dict, h: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """One GRU step (DMN+ eq. 2-5).

        u  = sigmoid(W_u x + U_u h + b_u)
        r  = sigmoid(W_r x + U_r h + b_r)
        h~ = tanh(W x + r * (U h) + b)
        h' = u * h~ + (1 - u) * h

    Args:
        params: from ``gru_init``.
        h: (H,) previous state.
        x: (d_in,) input.

    Returns:
        (H,) new state.
    """
    update, cand = _reset_candidate(params, h, x, 3)
    u = jax.nn.sigmoid(update)
    return u * cand + (1 - u) * h


def _hidden_size(params: dict) -> int:
    return params["U"].shape[0]


def gru_scan(params: dict, xs: jnp.ndarray, mask: jnp.ndarray, h0: jnp.ndarray | None = None,
             reverse: bool = False) -> jnp.ndarray:
    """All GRU states over a sequence; padded steps carry the state unchanged.

    Args:
        params: from ``gru_init``.
        xs: (T, d_in) inputs.
        mask: (T,) bool, False at padding (where the state is carried unchanged).
        h0: (H,) initial state; zeros when None.
        reverse: read the sequence from its end to its start (the backward GRU).

    Returns:
        (T, H) states aligned with the positions of ``xs``: row t is the state after reading x_t
        (after x_t..x_{T-1} when ``reverse``).
    """
    if h0 is None:
        h0 = jnp.zeros((_hidden_size(params),), xs.dtype)

    def step(h, inp):
        x, keep = inp
        h = jnp.where(keep, gru_cell(params, h, x), h)
        return h, h

    _, hs = jax.lax.scan(step, h0, (xs, mask), reverse=reverse)
    return hs


def bigru(fwd: dict, bwd: dict, xs: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """DMN+ input fusion layer: f_t = forward GRU state + backward GRU state (DMN+ eq. 6-7).

    Args:
        fwd: ``gru_init`` parameters of the forward GRU.
        bwd: ``gru_init`` parameters of the backward GRU (same hidden size).
        xs: (T, d_in) sentence encodings.
        mask: (T,) bool, False at padding.

    Returns:
        (T, H) facts; padded rows hold carried states and should be masked by callers.
    """
    return gru_scan(fwd, xs, mask) + gru_scan(bwd, xs, mask, reverse=True)


# -------------------------------------------------------------------------------- attention GRU


def attention_gru_init(key: jax.Array, in_dim: int, hidden: int, dtype=jnp.float32) -> dict:
    """Parameters of an attention GRU: the GRU's blocks without the update gate, [reset r, candidate].

    Returns:
        ``{"W": (in_dim, 2H), "U": (H, 2H), "b": (2H,)}``.
    """
    return _gated_init(key, in_dim, hidden, 2, dtype)


def attention_gru_cell(params: dict, h: jnp.ndarray, x: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
    """One attention-GRU step: the update gate is the scalar attention g (DMN+ eq. 12-13).

        r  = sigmoid(W_r x + U_r h + b_r)
        h~ = tanh(W x + r * (U h) + b)
        h' = g * h~ + (1 - g) * h

    Args:
        params: from ``attention_gru_init``.
        h: (H,) previous state.
        x: (d_in,) fact.
        g: () attention gate of this fact.

    Returns:
        (H,) new state.
    """
    _, cand = _reset_candidate(params, h, x, 2)
    return g * cand + (1 - g) * h


def attention_gru_scan(params: dict, facts: jnp.ndarray, gates: jnp.ndarray, mask: jnp.ndarray,
                       h0: jnp.ndarray | None = None) -> jnp.ndarray:
    """Final attention-GRU state over the facts: the episode's context vector c.

    Args:
        params: from ``attention_gru_init``.
        facts: (T, d_in) facts.
        gates: (T,) attention gates g_t.
        mask: (T,) bool, False at padding (state carried unchanged).
        h0: (H,) initial state; zeros when None.

    Returns:
        (H,) the last state h_T = c.
    """
    if h0 is None:
        h0 = jnp.zeros((_hidden_size(params),), facts.dtype)

    def step(h, inp):
        x, g, keep = inp
        return jnp.where(keep, attention_gru_cell(params, h, x, g), h), None

    c, _ = jax.lax.scan(step, h0, (facts, gates, mask))
    return c


# ------------------------------------------------------------------------------ attention gates


def gate_init(key: jax.Array, dim: int, hidden: int, dtype=jnp.float32) -> dict:
    """Parameters of the two-layer gate scoring network on 4 * ``dim`` features.

    Returns:
        ``{"W1": (4 dim, hidden), "b1": (hidden,), "W2": (hidden,), "b2": ()}``.
    """
    k1, k2 = jax.random.split(key)
    return {"W1": _glorot(k1, (4 * dim, hidden), dtype), "b1": jnp.zeros((hidden,), dtype),
            "W2": _glorot(k2, (hidden, 1), dtype)[:, 0], "b2": jnp.zeros((), dtype)}


def gate_features(f: jnp.ndarray, q: jnp.ndarray, m: jnp.ndarray) -> jnp.ndarray:
    """z = [f * q; f * m; |f - q|; |f - m|] for one fact (DMN+ eq. 8).

    Args:
        f: (d,) fact.
        q: (d,) question.
        m: (d,) previous memory.

    Returns:
        (4d,) features.
    """
    return jnp.concatenate([f * q, f * m, jnp.abs(f - q), jnp.abs(f - m)])


def gate_scores(params: dict, facts: jnp.ndarray, q: jnp.ndarray, m: jnp.ndarray) -> jnp.ndarray:
    """Z_t = W2 tanh(W1 z_t + b1) + b2 for every fact (DMN+ eq. 9).

    Args:
        params: from ``gate_init``.
        facts: (T, d).
        q: (d,) question.
        m: (d,) previous memory.

    Returns:
        (T,) unnormalised scores.
    """
    z = jax.vmap(gate_features, in_axes=(0, None, None))(facts, q, m)
    return jnp.tanh(z @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]


def fact_attention(scores: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """g_t = softmax over the present facts (DMN+ eq. 10); 0 at padding, all 0 when none is present.

    Args:
        scores: (T,) float.
        mask: (T,) bool.

    Returns:
        (T,) attention gates.
    """
    return masked_softmax(scores, mask)


def episode(attn_gru_params: dict, gate_params: dict, facts: jnp.ndarray, mask: jnp.ndarray,
            q: jnp.ndarray, m: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """One DMN+ episode: score the facts, soft-attend, run the attention GRU.

    Args:
        attn_gru_params: from ``attention_gru_init(key, d, H)``.
        gate_params: from ``gate_init(key, d, hidden)``.
        facts: (T, d).
        mask: (T,) bool, False at padding.
        q: (d,) question.
        m: (d,) previous memory.

    Returns:
        c: (H,) context vector; g: (T,) attention gates.
    """
    g = fact_attention(gate_scores(gate_params, facts, q, m), mask)
    return attention_gru_scan(attn_gru_params, facts, g, mask), g


# ----------------------------------------------------------------------------- memory, answer


def memory_update_init(key: jax.Array, dim: int, dtype=jnp.float32) -> dict:
    """Parameters of the untied ReLU memory update: ``{"W": (3 dim, dim), "b": (dim,)}``."""
    return {"W": _glorot(key, (3 * dim, dim), dtype), "b": jnp.zeros((dim,), dtype)}


def memory_update(params: dict, m: jnp.ndarray, c: jnp.ndarray, q: jnp.ndarray) -> jnp.ndarray:
    """DMN+ memory update m' = relu(W [m; c; q] + b) (DMN+ eq. 14, untied weights per pass).

    Args:
        params: from ``memory_update_init``.
        m: (d,) previous memory.
        c: (d,) context vector of the episode.
        q: (d,) question.

    Returns:
        (d,) new memory.
    """
    return jax.nn.relu(jnp.concatenate([m, c, q]) @ params["W"] + params["b"])


def gru_memory_update(gru_params: dict, m: jnp.ndarray, c: jnp.ndarray) -> jnp.ndarray:
    """Original DMN memory update m' = GRU(c, m): the episode is the input, the memory the state."""
    return gru_cell(gru_params, m, c)


def answer_init(key: jax.Array, dim: int, vocab: int, dtype=jnp.float32) -> dict:
    """Parameters of the answer layer: ``{"W": (2 dim, vocab), "b": (vocab,)}``."""
    return {"W": _glorot(key, (2 * dim, vocab), dtype), "b": jnp.zeros((vocab,), dtype)}


def answer_logits(params: dict, m: jnp.ndarray, q: jnp.ndarray) -> jnp.ndarray:
    """Single-word answer logits W [m; q] + b.

    Args:
        params: from ``answer_init``.
        m: (d,) final memory.
        q: (d,) question.

    Returns:
        (V,) logits.
    """
    return jnp.concatenate([m, q]) @ params["W"] + params["b"]
