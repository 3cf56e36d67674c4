"""Recurrent operations of Dynamic Memory Networks for one example.

DMN: Kumar et al. 2016, "Ask Me Anything: Dynamic Memory Networks for Natural Language Processing".
DMN+: Xiong et al. 2016, "Dynamic Memory Networks for Visual and Textual Question Answering".

Every function works on ONE example (a sequence, a set of facts, one question); batch with
``jax.vmap``. Parameters are plain dicts of arrays. Matrices act on the right (``x @ W``), so
a weight of shape (in, out) maps an (in,) vector to an (out,) vector.
"""

from __future__ import annotations

import functools

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
    wx = jnp.split(x @ params["W"] + params["b"], blocks, axis=-1)  # any leading batch axes
    uh = jnp.split(h @ params["U"], blocks, axis=-1)
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
        h: (H,) previous state (or (..., H): leading batch axes are carried through).
        x: (d_in,) input (or (..., d_in)).

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
    """Z_t = W2 tanh(W1 z_t + b1) + b2 for every fact (DMN+ eq. 9), z_t = :func:`gate_features`.

    Computed as :func:`gate_question_part` (the same in every pass) plus the memory's part
    (:func:`gate_scores_given`): W1 z is the sum of its four blocks' products.

    Args:
        params: from ``gate_init``.
        facts: (T, d).
        q: (d,) question.
        m: (d,) previous memory.

    Returns:
        (T,) unnormalised scores.
    """
    return gate_scores_given(params, gate_question_part(params, facts, q), facts, m)


def _w1_blocks(W1: jnp.ndarray, d: int) -> jnp.ndarray:
    """W1 (4 d, hidden) as its four (d, hidden) blocks, one per feature of z (already split: as it is)."""
    return W1 if W1.ndim == 3 else W1.reshape(4, d, -1)


def gate_blocks(params: dict, d: int) -> dict:
    """The gate parameters with W1 split into its blocks once (4, d, hidden), for a model that scores
    several passes: :func:`gate_question_part` and :func:`gate_scores_given` take either form."""
    return {**params, "W1": _w1_blocks(params["W1"], d)}


def gate_question_part(params: dict, facts: jnp.ndarray, q: jnp.ndarray) -> jnp.ndarray:
    """The question's share of the gate network's first layer, W1[f * q] + W1[|f - q|] + b1 (the first
    and third blocks of W1 z), for every fact: the same in every pass, so computed once.

    Args:
        params: from ``gate_init``.
        facts: (..., T, d).
        q: (..., d) question.

    Returns:
        (..., T, hidden).
    """
    W1 = _w1_blocks(params["W1"], facts.shape[-1])
    return (facts * q[..., None, :]) @ W1[0] + jnp.abs(facts - q[..., None, :]) @ W1[2] + params["b1"]


def gate_scores_given(params: dict, question_part: jnp.ndarray, facts: jnp.ndarray, m: jnp.ndarray) -> jnp.ndarray:
    """Z_t = W2 tanh(question_part + W1[f * m] + W1[|f - m|]) + b2: the scores of a pass with memory ``m``.

    Args:
        params: from ``gate_init``.
        question_part: (..., T, hidden) from :func:`gate_question_part`.
        facts: (..., T, d).
        m: (..., d) previous memory.

    Returns:
        (..., T) unnormalised scores.
    """
    W1 = _w1_blocks(params["W1"], facts.shape[-1])
    z = jnp.tanh(question_part + (facts * m[..., None, :]) @ W1[1] + jnp.abs(facts - m[..., None, :]) @ W1[3])
    return z @ params["W2"] + params["b2"]


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


# ------------------------------------------------------------------- batched sequences (fast path)
#
# The functions above are written for one example and differentiated by JAX. Those below take the
# input products x W + b of a whole batch of sequences at once (affine) and run a GRU, an attention
# GRU or DMN's gated GRU over them, with hand-written gradients: on a CPU, the gradient JAX derives
# for a loop takes one small weight-gradient product per step (about 4x the forward time,
# measured); here the backward loop carries only the state's gradient, and the weight gradient is
# one product over all steps. Tests check each against the single-example functions or JAX's own
# gradients.


def dropout(x: jnp.ndarray, uniforms: jnp.ndarray | None, rate: float) -> jnp.ndarray:
    """Inverted dropout: units whose uniform is below ``rate`` are zeroed, the rest scaled by 1 / (1 - rate);
    ``x`` unchanged without uniforms or at rate 0 (evaluation)."""
    if uniforms is None or rate <= 0:
        return x
    return x * (uniforms >= rate) / (1.0 - rate)


@jax.custom_vjp
def affine(x: jnp.ndarray, W: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """x W + b over any leading axes of x: (..., n) -> (..., m); the input products of a whole sequence.

    The same function as ``x @ W + b``, with a hand-written gradient: dW = x^T dy and db = 1^T dy as
    two products over the flattened leading axes. JAX's own gradient sums db by a reduction and
    transposes x for dW, which XLA's CPU backend runs as slow tree reductions and copies (a profile
    of DMN+ training on bAbI-10k task 2, batch 100, stories of 50 facts: 82.6 against 69.4 ms of XLA
    operations per step).
    """
    return x @ W + b


def _affine_fwd(x, W, b):
    return x @ W + b, (x, W)


def _affine_bwd(res, dy):
    x, W = res
    flat = dy.reshape(-1, dy.shape[-1])
    return dy @ W.T, x.reshape(-1, x.shape[-1]).T @ flat, jnp.ones((flat.shape[0],), flat.dtype) @ flat


affine.defvjp(_affine_fwd, _affine_bwd)


def _gru_gates(U: jnp.ndarray, h: jnp.ndarray, xw: jnp.ndarray):
    """(update u, reset r, candidate h~, U_c h) for precomputed xw = x W + b; U is (H, 3H)."""
    hidden = h.shape[-1]
    uh = h @ U
    u = jax.nn.sigmoid(xw[..., :hidden] + uh[..., :hidden])
    r = jax.nn.sigmoid(xw[..., hidden:2 * hidden] + uh[..., hidden:2 * hidden])
    uhc = uh[..., 2 * hidden:]
    return u, r, jnp.tanh(xw[..., 2 * hidden:] + r * uhc), uhc


def _weight_grad(U: jnp.ndarray, prev: jnp.ndarray, duh: jnp.ndarray) -> jnp.ndarray:
    """sum over steps and batch of prev^T duh: one product (per stacked GRU when U is (K, H, nH))."""
    hidden, width = U.shape[-2:]
    if U.ndim == 2:
        return prev.reshape(-1, hidden).T @ duh.reshape(-1, width)
    k = U.shape[0]
    return jnp.einsum("kih,kig->khg", jnp.moveaxis(prev, 1, 0).reshape(k, -1, hidden),
                      jnp.moveaxis(duh, 1, 0).reshape(k, -1, width))


def _loop(step, carry, xs, length: int, unroll: int, reverse: bool = False):
    return jax.lax.scan(step, carry, xs, length=length, unroll=max(1, min(unroll, length)), reverse=reverse)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def gru_sequence(U: jnp.ndarray, xw: jnp.ndarray, mask: jnp.ndarray, h0: jnp.ndarray, unroll: int = 1) -> jnp.ndarray:
    """Every state of a GRU over a batch of sequences, from the input products xw = x W + b.

    Args:
        U: (H, 3H) state weights of :func:`gru_init` (blocks [update, reset, candidate]); or K GRUs
            run side by side, (K, H, 3H), with xw (T, K, B, 3H), mask (T, K, B) and h0 (K, B, H).
        xw: (T, ..., 3H) input products per step; any leading batch axes after T.
        mask: (T, ...) bool: False where a step is padding (the state is carried unchanged).
        h0: (..., H) initial states.
        unroll: steps per loop iteration (the whole sequence: no loop; fastest on a CPU).

    Returns:
        (T, ..., H): row t is the state after step t (the same as :func:`gru_scan` per sequence).
    """
    return _gru_sequence_fwd(U, xw, mask, h0, unroll)[0]


def _gru_sequence_fwd(U, xw, mask, h0, unroll):
    def step(h, inp):
        x, keep = inp
        u, r, c, uhc = _gru_gates(U, h, x)
        new = jnp.where(keep[..., None], u * c + (1 - u) * h, h)
        return new, (new, u, r, c, uhc)

    _, (hs, u, r, c, uhc) = _loop(step, h0, (xw, mask), xw.shape[0], unroll)
    prev = jnp.concatenate([h0[None], hs[:-1]])
    return hs, (U, mask, prev, u, r, c, uhc)


def _gru_sequence_bwd(unroll, res, dhs):
    U, mask, prev, u, r, c, uhc = res

    def step(dh, inp):
        dout, keep, hp, u_, r_, c_, uhc_ = inp
        dh = dh + dout
        dpre_u = dh * (c_ - hp) * u_ * (1 - u_)
        dpre_c = dh * u_ * (1 - c_ * c_)
        dpre_r = dpre_c * uhc_ * r_ * (1 - r_)
        dx = jnp.where(keep[..., None], jnp.concatenate([dpre_u, dpre_r, dpre_c], axis=-1), 0.0)
        duh = jnp.where(keep[..., None], jnp.concatenate([dpre_u, dpre_r, dpre_c * r_], axis=-1), 0.0)
        dprev = jnp.where(keep[..., None], dh * (1 - u_) + duh @ jnp.swapaxes(U, -1, -2), dh)
        return dprev, (dx, duh)

    dh0, (dxw, duh) = _loop(step, jnp.zeros_like(dhs[0]), (dhs, mask, prev, u, r, c, uhc), dhs.shape[0], unroll,
                            reverse=True)
    return _weight_grad(U, prev, duh), dxw, None, dh0


gru_sequence.defvjp(_gru_sequence_fwd, _gru_sequence_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def attention_gru_sequence(U: jnp.ndarray, xw: jnp.ndarray, gates: jnp.ndarray, h0: jnp.ndarray,
                           unroll: int = 1) -> jnp.ndarray:
    """The last state of an attention GRU over a batch of fact sequences (the episodes' contexts c).

    Args:
        U: (H, 2H) state weights of :func:`attention_gru_init` (blocks [reset, candidate]).
        xw: (T, ..., 2H) input products x W + b per fact.
        gates: (T, ...) attention gates; a gate of 0 (padding) leaves the state unchanged.
        h0: (..., H) initial states.
        unroll: steps per loop iteration.

    Returns:
        (..., H) the state after the last fact (:func:`attention_gru_scan` per sequence).
    """
    return _attention_gru_fwd(U, xw, gates, h0, unroll)[0]


def _attention_gates(U, h, xw):
    hidden = h.shape[-1]
    uh = h @ U
    r = jax.nn.sigmoid(xw[..., :hidden] + uh[..., :hidden])
    uhc = uh[..., hidden:]
    return r, jnp.tanh(xw[..., hidden:] + r * uhc), uhc


def _attention_gru_fwd(U, xw, gates, h0, unroll):
    def step(h, inp):
        x, g = inp
        r, c, uhc = _attention_gates(U, h, x)
        g = g[..., None]
        return g * c + (1 - g) * h, (h, r, c, uhc)

    h, (prev, r, c, uhc) = _loop(step, h0, (xw, gates), xw.shape[0], unroll)
    return h, (U, gates, prev, r, c, uhc)


def _attention_gru_bwd(unroll, res, dh_last):
    U, gates, prev, r, c, uhc = res

    def step(dh, inp):
        g, hp, r_, c_, uhc_ = inp
        g = g[..., None]
        dgate = jnp.sum(dh * (c_ - hp), axis=-1)
        dpre_c = dh * g * (1 - c_ * c_)
        dpre_r = dpre_c * uhc_ * r_ * (1 - r_)
        dx = jnp.concatenate([dpre_r, dpre_c], axis=-1)
        duh = jnp.concatenate([dpre_r, dpre_c * r_], axis=-1)
        return dh * (1 - g) + duh @ jnp.swapaxes(U, -1, -2), (dx, duh, dgate)

    dh0, (dxw, duh, dgates) = _loop(step, dh_last, (gates, prev, r, c, uhc), gates.shape[0], unroll, reverse=True)
    return _weight_grad(U, prev, duh), dxw, dgates, dh0


attention_gru_sequence.defvjp(_attention_gru_fwd, _attention_gru_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def gated_gru_sequence(U: jnp.ndarray, xw: jnp.ndarray, gates: jnp.ndarray, h0: jnp.ndarray,
                       unroll: int = 1) -> jnp.ndarray:
    """The last state of DMN's episode GRU: h_t = g_t GRU(c_t, h_{t-1}) + (1 - g_t) h_{t-1} (Kumar et al. eq. 7).

    The same as a GRU whose update gate u is scaled by the attention gate g: h_t = g u h~ + (1 - g u) h.

    Args:
        U: (H, 3H) state weights of :func:`gru_init`.
        xw: (T, ..., 3H) input products x W + b per fact.
        gates: (T, ...) gates g_t; 0 (padding) leaves the state unchanged.
        h0: (..., H) initial states.
        unroll: steps per loop iteration.

    Returns:
        (..., H) the state after the last fact: the episode e.
    """
    return _gated_gru_fwd(U, xw, gates, h0, unroll)[0]


def _gated_gru_fwd(U, xw, gates, h0, unroll):
    def step(h, inp):
        x, g = inp
        u, r, c, uhc = _gru_gates(U, h, x)
        z = g[..., None] * u
        return z * c + (1 - z) * h, (h, u, r, c, uhc)

    h, (prev, u, r, c, uhc) = _loop(step, h0, (xw, gates), xw.shape[0], unroll)
    return h, (U, gates, prev, u, r, c, uhc)


def _gated_gru_bwd(unroll, res, dh_last):
    U, gates, prev, u, r, c, uhc = res

    def step(dh, inp):
        g, hp, u_, r_, c_, uhc_ = inp
        g = g[..., None]
        dz = dh * (c_ - hp)  # z = g u
        dgate = jnp.sum(dz * u_, axis=-1)
        dpre_u = dz * g * u_ * (1 - u_)
        dpre_c = dh * g * u_ * (1 - c_ * c_)
        dpre_r = dpre_c * uhc_ * r_ * (1 - r_)
        dx = jnp.concatenate([dpre_u, dpre_r, dpre_c], axis=-1)
        duh = jnp.concatenate([dpre_u, dpre_r, dpre_c * r_], axis=-1)
        return dh * (1 - g * u_) + duh @ jnp.swapaxes(U, -1, -2), (dx, duh, dgate)

    dh0, (dxw, duh, dgates) = _loop(step, dh_last, (gates, prev, u, r, c, uhc), gates.shape[0], unroll, reverse=True)
    return _weight_grad(U, prev, duh), dxw, dgates, dh0


gated_gru_sequence.defvjp(_gated_gru_fwd, _gated_gru_bwd)
