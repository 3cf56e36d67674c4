"""DMN / DMN+ recurrent ops against float64 NumPy loops written from the papers' equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from memjax.ops import (answer_init, answer_logits, attention_gru_cell, attention_gru_init, attention_gru_scan, bigru, episode,
                        fact_attention, gate_features, gate_init, gate_scores, gru_cell, gru_init, gru_memory_update, gru_scan,
                        memory_update, memory_update_init)

D, H, T = 5, 5, 6  # H == D so that the attention GRU's context can feed the memory update
TOL = dict(rtol=1e-5, atol=1e-5)
rng = np.random.default_rng(0)


def randn(*shape):
    return rng.normal(size=shape).astype(np.float32)


def f64(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def randomize(params, scale=0.5):
    """Non-zero biases so that they are tested too."""
    return jax.tree.map(lambda a: jnp.asarray(a + scale * randn(*a.shape)), params)


# ------------------------------------------------------------------------------ NumPy references


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_gru_cell(p, h, x):
    p, h, x = f64(p), np.asarray(h, np.float64), np.asarray(x, np.float64)
    H_ = h.shape[0]
    W = [p["W"][:, i * H_:(i + 1) * H_] for i in range(3)]
    U = [p["U"][:, i * H_:(i + 1) * H_] for i in range(3)]
    b = [p["b"][i * H_:(i + 1) * H_] for i in range(3)]
    out = np.zeros(H_)
    for j in range(H_):
        u = np_sigmoid(sum(x[i] * W[0][i, j] for i in range(len(x))) + sum(h[i] * U[0][i, j] for i in range(H_)) + b[0][j])
        r = np_sigmoid(sum(x[i] * W[1][i, j] for i in range(len(x))) + sum(h[i] * U[1][i, j] for i in range(H_)) + b[1][j])
        c = np.tanh(sum(x[i] * W[2][i, j] for i in range(len(x))) + r * sum(h[i] * U[2][i, j] for i in range(H_)) + b[2][j])
        out[j] = u * c + (1 - u) * h[j]
    return out


def np_gru_scan(p, xs, n, reverse=False):
    """States for the first ``n`` positions (padding after them carries the last state)."""
    H_ = p["U"].shape[0]
    h = np.zeros(H_)
    out = np.zeros((len(xs), H_))
    order = range(n - 1, -1, -1) if reverse else range(n)
    for t in order:
        h = np_gru_cell(p, h, xs[t])
        out[t] = h
    if not reverse:
        out[n:] = h
    else:
        out[n:] = 0.0  # the backward GRU starts at the last real position: padding holds h0
    return out


def np_attention_gru_cell(p, h, x, g):
    p, h, x = f64(p), np.asarray(h, np.float64), np.asarray(x, np.float64)
    H_ = h.shape[0]
    Wr, Wc = p["W"][:, :H_], p["W"][:, H_:]
    Ur, Uc = p["U"][:, :H_], p["U"][:, H_:]
    br, bc = p["b"][:H_], p["b"][H_:]
    out = np.zeros(H_)
    for j in range(H_):
        r = np_sigmoid(x @ Wr[:, j] + h @ Ur[:, j] + br[j])
        c = np.tanh(x @ Wc[:, j] + r * (h @ Uc[:, j]) + bc[j])
        out[j] = g * c + (1 - g) * h[j]
    return out


def np_attention_gru_scan(p, facts, gates, n):
    h = np.zeros(p["U"].shape[0])
    for t in range(n):
        h = np_attention_gru_cell(p, h, facts[t], gates[t])
    return h


def np_gate_features(f, q, m):
    f, q, m = (np.asarray(a, np.float64) for a in (f, q, m))
    return np.concatenate([f * q, f * m, np.abs(f - q), np.abs(f - m)])


def np_gate_scores(p, facts, q, m):
    p = f64(p)
    return np.array([np.tanh(np_gate_features(f, q, m) @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"] for f in facts])


def np_fact_attention(scores, n):
    s = np.asarray(scores, np.float64)[:n]
    out = np.zeros(len(scores))
    if n:
        e = np.exp(s - s.max())
        out[:n] = e / e.sum()
    return out


def np_episode(ap, gp, facts, n, q, m):
    g = np_fact_attention(np_gate_scores(gp, facts, q, m), n)
    return np_attention_gru_scan(ap, facts, g, n), g


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def params():
    k = jax.random.split(jax.random.key(0), 6)
    return {"gru": randomize(gru_init(k[0], D, H)), "bwd": randomize(gru_init(k[1], D, H)),
            "agru": randomize(attention_gru_init(k[2], D, H)), "gate": randomize(gate_init(k[3], D, 7)),
            "mem": randomize(memory_update_init(k[4], D)), "ans": randomize(answer_init(k[5], D, 11))}


def test_init_shapes(params):
    assert {k: v.shape for k, v in params["gru"].items()} == {"W": (D, 3 * H), "U": (H, 3 * H), "b": (3 * H,)}
    assert {k: v.shape for k, v in params["agru"].items()} == {"W": (D, 2 * H), "U": (H, 2 * H), "b": (2 * H,)}
    assert {k: v.shape for k, v in params["gate"].items()} == {"W1": (4 * D, 7), "b1": (7,), "W2": (7,), "b2": ()}
    assert params["mem"]["W"].shape == (3 * D, D) and params["ans"]["W"].shape == (2 * D, 11)
    raw = gru_init(jax.random.key(1), D, H)
    assert raw["W"].dtype == jnp.float32 and not np.any(raw["b"]) and np.all(np.isfinite(raw["W"]))


# --------------------------------------------------------------------------------------- GRU


def test_gru_cell_matches_numpy(params):
    h, x = randn(H), randn(D)
    np.testing.assert_allclose(gru_cell(params["gru"], h, x), np_gru_cell(params["gru"], h, x), **TOL)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("n", [0, 1, 4, T])
def test_gru_scan_matches_numpy(params, reverse, n):
    xs = randn(T, D)
    mask = jnp.arange(T) < n
    np.testing.assert_allclose(gru_scan(params["gru"], xs, mask, reverse=reverse),
                               np_gru_scan(params["gru"], xs, n, reverse), **TOL)


@pytest.mark.parametrize("reverse", [False, True])
def test_gru_scan_padding_equals_slicing(params, reverse):
    n, xs = 4, randn(T, D)
    padded = gru_scan(params["gru"], xs, jnp.arange(T) < n, reverse=reverse)
    sliced = gru_scan(params["gru"], xs[:n], jnp.ones(n, bool), reverse=reverse)
    np.testing.assert_allclose(padded[:n], sliced, **TOL)


def test_gru_scan_interior_padding_carries_the_state(params):
    xs, mask = randn(T, D), jnp.array([True, False, True, True, False, True])
    hs = gru_scan(params["gru"], xs, mask)
    np.testing.assert_allclose(hs[1], hs[0], **TOL)
    np.testing.assert_allclose(hs[-1], gru_scan(params["gru"], xs[np.asarray(mask)], jnp.ones(4, bool))[-1], **TOL)


def test_reverse_scan_equals_scanning_the_reversed_sequence(params):
    xs, mask, h0 = randn(T, D), jnp.ones(T, bool), randn(H)
    rev = gru_scan(params["gru"], xs, mask, h0=h0, reverse=True)
    np.testing.assert_allclose(rev, gru_scan(params["gru"], xs[::-1], mask, h0=h0)[::-1], **TOL)


def test_gru_scan_h0(params):
    xs, h0 = randn(T, D), randn(H)
    hs = gru_scan(params["gru"], xs, jnp.ones(T, bool), h0=h0)
    np.testing.assert_allclose(hs[0], np_gru_cell(params["gru"], h0, xs[0]), **TOL)


def test_bigru_is_forward_plus_backward(params):
    n, xs = 4, randn(T, D)
    mask = jnp.arange(T) < n
    expected = np_gru_scan(params["gru"], xs, n) + np_gru_scan(params["bwd"], xs, n, reverse=True)
    out = bigru(params["gru"], params["bwd"], xs, mask)
    np.testing.assert_allclose(out[:n], expected[:n], **TOL)
    sliced = bigru(params["gru"], params["bwd"], xs[:n], jnp.ones(n, bool))
    np.testing.assert_allclose(out[:n], sliced, **TOL)


# --------------------------------------------------------------------------------- attention GRU


@pytest.mark.parametrize("g", [0.0, 0.3, 1.0])
def test_attention_gru_cell_matches_numpy(params, g):
    h, x = randn(H), randn(D)
    out = attention_gru_cell(params["agru"], h, x, jnp.float32(g))
    np.testing.assert_allclose(out, np_attention_gru_cell(params["agru"], h, x, g), **TOL)
    if g == 0.0:
        np.testing.assert_array_equal(out, h)


@pytest.mark.parametrize("n", [0, 3, T])
def test_attention_gru_scan_matches_numpy_and_slicing(params, n):
    facts, gates = randn(T, D), rng.uniform(size=T).astype(np.float32)
    mask = jnp.arange(T) < n
    c = attention_gru_scan(params["agru"], facts, gates, mask)
    np.testing.assert_allclose(c, np_attention_gru_scan(params["agru"], facts, gates, n), **TOL)
    if n:
        np.testing.assert_allclose(c, attention_gru_scan(params["agru"], facts[:n], gates[:n], jnp.ones(n, bool)), **TOL)
    else:
        np.testing.assert_array_equal(c, np.zeros(H))


# ------------------------------------------------------------------------------------------ gates


def test_gate_features_and_scores_match_numpy(params):
    f, q, m, facts = randn(D), randn(D), randn(D), randn(T, D)
    np.testing.assert_allclose(gate_features(f, q, m), np_gate_features(f, q, m), **TOL)
    assert gate_features(f, q, m).shape == (4 * D,)
    np.testing.assert_allclose(gate_scores(params["gate"], facts, q, m), np_gate_scores(params["gate"], facts, q, m), **TOL)


@pytest.mark.parametrize("n", [1, 4, T])
def test_fact_attention_matches_numpy(n):
    scores = 3 * randn(T)
    g = fact_attention(scores, jnp.arange(T) < n)
    np.testing.assert_allclose(g, np_fact_attention(scores, n), **TOL)
    assert np.all(np.asarray(g)[n:] == 0)


def test_fact_attention_fully_masked_is_zeros():
    g = fact_attention(randn(T), jnp.zeros(T, bool))
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g, np.zeros(T))


# ----------------------------------------------------------------------------------------- episode


@pytest.mark.parametrize("n", [0, 2, T])
def test_episode_matches_numpy(params, n):
    facts, q, m = randn(T, D), randn(D), randn(D)
    c, g = episode(params["agru"], params["gate"], facts, jnp.arange(T) < n, q, m)
    c_np, g_np = np_episode(params["agru"], params["gate"], facts, n, q, m)
    np.testing.assert_allclose(g, g_np, **TOL)
    np.testing.assert_allclose(c, c_np, **TOL)


def test_episode_vmap_equals_loop(params):
    B = 3
    facts, q, m = randn(B, T, D), randn(B, D), randn(B, D)
    mask = jnp.arange(T)[None] < jnp.array([2, T, 0])[:, None]
    batched = jax.vmap(episode, in_axes=(None, None, 0, 0, 0, 0))(params["agru"], params["gate"], facts, mask, q, m)
    for b in range(B):
        c, g = episode(params["agru"], params["gate"], facts[b], mask[b], q[b], m[b])
        np.testing.assert_allclose(batched[0][b], c, **TOL)
        np.testing.assert_allclose(batched[1][b], g, **TOL)


# -------------------------------------------------------------------------------- memory, answer


def test_memory_updates_and_answer_match_numpy(params):
    m, c, q = randn(D), randn(D), randn(D)
    p = f64(params["mem"])
    z = np.concatenate([m, c, q]).astype(np.float64)
    expected = np.array([max(0.0, sum(z[i] * p["W"][i, j] for i in range(3 * D)) + p["b"][j]) for j in range(D)])
    np.testing.assert_allclose(memory_update(params["mem"], m, c, q), expected, **TOL)
    np.testing.assert_allclose(gru_memory_update(params["gru"], m, c), np_gru_cell(params["gru"], m, c), **TOL)
    a = f64(params["ans"])
    np.testing.assert_allclose(answer_logits(params["ans"], m, q), np.concatenate([m, q]) @ a["W"] + a["b"], **TOL)


def test_dmn_pass_composes_under_jit(params):
    """Sentences -> input fusion -> two episodes -> answer, jitted, with finite logits."""

    @jax.jit
    def run(p, xs, mask, q):
        facts = bigru(p["gru"], p["bwd"], xs, mask)
        m = q
        for _ in range(2):
            c, _ = episode(p["agru"], p["gate"], facts, mask, q, m)
            m = memory_update(p["mem"], m, c, q)
        return answer_logits(p["ans"], m, q)

    logits = run(params, randn(T, D), jnp.arange(T) < 4, randn(D))
    assert logits.shape == (11,) and np.all(np.isfinite(logits))


# ------------------------------------------------------------------------------------- gradients


def test_gradients():
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(3), 2)
        cast = lambda t: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), t)  # noqa: E731
        gp = cast(randomize(gru_init(k[0], D, H)))
        ap = cast(randomize(attention_gru_init(k[1], D, H)))
        gate = cast(randomize(gate_init(k[1], D, 4)))
        h, x, q, m = (jnp.asarray(randn(D), jnp.float64) for _ in range(4))
        facts = jnp.asarray(randn(T, D), jnp.float64)
        mask = jnp.arange(T) < 4
        check_grads(jax.jit(gru_cell), (gp, h, x), order=1, modes=["rev"])
        check_grads(jax.jit(attention_gru_cell), (ap, h, x, jnp.float64(0.4)), order=1, modes=["rev"])

        @jax.jit
        def loss(ap, gate, facts, q, m):
            c, g = episode(ap, gate, facts, mask, q, m)
            return jnp.sum(c * jnp.arange(1, H + 1)) + jnp.sum(g * jnp.arange(T))

        check_grads(loss, (ap, gate, facts, q, m), order=1, modes=["rev"])
