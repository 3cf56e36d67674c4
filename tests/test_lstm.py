"""The LSTM baselines: the LSTM ops against NumPy, masking, the attention, RMSprop, and training them."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from memjax.data.dataset import load_babi
from memjax.models import AttnLSTM, AttnLSTMConfig, LSTMConfig, LSTMReader
from memjax.models.lstm import lstm_init, lstm_scan, lstm_sequence, right_align
from memjax.train.optim import rmsprop_recipe

from cli_run import memjax
from test_cli import run

T, B, D, H = 7, 3, 4, 5
MASK = np.array([[1, 1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0]], bool)  # (B, T)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_lstm(W, U, b, xs, mask):
    """The reference: float64 NumPy, gates [i, f, g, o], padded steps keep the state."""
    h, c = np.zeros(U.shape[0]), np.zeros(U.shape[0])
    hs = []
    for x, keep in zip(xs, mask):
        z = x @ W + h @ U + b
        i, f, g, o = np.split(z, 4)
        c2 = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h2 = _sigmoid(o) * np.tanh(c2)
        if keep:
            h, c = h2, c2
        hs.append(h)
    return np.array(hs), h, c


def _case():
    k = jax.random.split(jax.random.key(0), 3)
    params = lstm_init(k[0], D, H, jnp.float64)
    params = {**params, "b": params["b"] + 0.3 * jax.random.normal(k[1], (4 * H,), jnp.float64)}
    return params, jax.random.normal(k[2], (B, T, D), jnp.float64)


def test_lstm_cell_scan_and_batched_sequence_match_numpy(x64):
    params, xs = _case()
    np_params = [np.asarray(params[k]) for k in ("W", "U", "b")]
    scan = jax.jit(lstm_scan)
    for i in range(B):
        hs, (h, c) = scan(params, xs[i], MASK[i])
        ref_hs, ref_h, ref_c = _numpy_lstm(*np_params, np.asarray(xs[i]), MASK[i])
        np.testing.assert_allclose(hs, ref_hs, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c, ref_c, rtol=1e-12, atol=1e-14)
    assert np.all(np.asarray(scan(params, xs[2], MASK[2])[0]) == 0)  # all padding: the zero state
    xw = jnp.moveaxis(xs @ params["W"] + params["b"], 1, 0)
    zeros = jnp.zeros((B, H), jnp.float64)
    for unroll in (1, 3):
        h, c = jax.jit(lstm_sequence, static_argnums=5)(params["U"], xw, MASK.T, zeros, zeros, unroll)
        np.testing.assert_allclose(h, [_numpy_lstm(*np_params, np.asarray(xs[i]), MASK[i])[1] for i in range(B)],
                                   rtol=1e-12, atol=1e-14)


def test_lstm_gradients(x64):
    """The hand-written gradient of the batched LSTM: vs finite differences and vs JAX's gradient of the scan."""
    params, xs = _case()
    k = jax.random.split(jax.random.key(3), 4)
    h0, c0 = jax.random.normal(k[0], (B, H), jnp.float64), jax.random.normal(k[1], (B, H), jnp.float64)
    wh, wc = jax.random.normal(k[2], (B, H), jnp.float64), jax.random.normal(k[3], (B, H), jnp.float64)

    def batched(p, xs, h0, c0):
        xw = jnp.moveaxis(xs @ p["W"] + p["b"], 1, 0)
        h, c = lstm_sequence(p["U"], xw, MASK.T, h0, c0, 2)
        return jnp.sum(h * wh) + jnp.sum(c * wc)

    check_grads(jax.jit(batched), (params, xs, h0, c0), order=1, modes=["rev"], atol=1e-7, rtol=1e-7)

    def per_example(p, xs, h0, c0):
        h, c = jax.vmap(lambda x, m, h, c: lstm_scan(p, x, m, (h, c))[1])(xs, MASK, h0, c0)
        return jnp.sum(h * wh) + jnp.sum(c * wc)

    grads = [jax.jit(jax.grad(f, argnums=(0, 1, 2, 3)))(params, xs, h0, c0) for f in (batched, per_example)]
    for a, b in zip(*map(jax.tree.leaves, grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_right_align_keeps_the_most_recent_words_in_order():
    words = jnp.array([[0, 3, 4, 0, 5, 0], [0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    np.testing.assert_array_equal(right_align(words, 4), [[0, 3, 4, 5], [0, 0, 0, 0], [3, 4, 5, 6]])


# ------------------------------------------------------------------------------------- the models


@pytest.fixture(scope="module")
def task2(data_root):
    return load_babi([2], "en", str(data_root))[0]


def _inputs(ds, n=6):
    m = int((ds.train.story[:n] != 0).sum(1).max())
    return jnp.asarray(ds.sentences), jnp.asarray(ds.train.story[:n, :m]), jnp.asarray(ds.train.query[:n])


def _padded(sentences, story, query):
    """The same questions with 5 more empty slots, sentences 3 words wider and questions 2 words wider."""
    return jnp.pad(sentences, ((0, 0), (0, 3))), jnp.pad(story, ((0, 0), (0, 5))), jnp.pad(query, ((0, 0), (0, 2)))


def _attn(ds, **kw):
    return AttnLSTM(AttnLSTMConfig(vocab_size=len(ds.vocab), **{**AttnLSTM.data_defaults(ds), "dim": 8, "hidden": 6,
                                                                 **kw}))


def test_padding_changes_nothing_in_either_model(task2):
    lstm = LSTMReader(LSTMConfig(vocab_size=len(task2.vocab), dim=8, hidden=6))
    inputs = _inputs(task2)
    for model in (lstm, _attn(task2)):
        params = model.init(jax.random.key(1))
        logits = jax.jit(model.logits)
        np.testing.assert_allclose(logits(params, *_padded(*inputs)), logits(params, *inputs), rtol=1e-6, atol=1e-6)
    # the reader never reads the padding word: its embedding row does not matter
    params = lstm.init(jax.random.key(1))
    noisy = {**params, "embed": params["embed"].at[0].set(5.0)}
    logits = jax.jit(lstm.logits)
    np.testing.assert_allclose(logits(noisy, *inputs), logits(params, *inputs), rtol=1e-6, atol=1e-6)
    # vocabulary padding: the extra words can never be answers
    answers = jnp.arange(len(task2.vocab)) < len(task2.vocab) - 3
    assert np.all(np.argmax(logits(params, *inputs, answers), -1) < len(task2.vocab) - 3)


def test_attention_sums_to_one_over_the_real_story_words(task2):
    model = _attn(task2)
    params = model.init(jax.random.key(2))
    match, _, _, words, query = model.attention(params, *_padded(*_inputs(task2)))
    assert words.shape[1] == model.cfg.story_len and query.shape[1] == model.cfg.query_len
    real_q = np.asarray(query != 0)
    sums = np.asarray(match.sum(1))  # (B, Q): over the story's words
    np.testing.assert_allclose(sums[real_q], 1.0, rtol=1e-6)
    assert np.all(sums[~real_q] == 0)
    assert np.all(np.asarray(match)[np.asarray(words == 0)] == 0)  # no attention on padding
    # each story's words are its sentences' words, oldest first, right-aligned
    story = np.asarray(_inputs(task2)[1][0])
    expected = [w for s in story[::-1] if s for w in task2.sentences[s] if w]
    assert np.asarray(words[0])[-len(expected):].tolist() == expected and not np.any(np.asarray(words[0])[:-len(expected)])
    # the Keras example's variant: a softmax over the question's words
    over_q = _attn(task2, softmax_over="query").attention(params, *_inputs(task2))[0]
    keep = np.asarray(over_q.sum(2))[np.asarray(words != 0)]
    np.testing.assert_allclose(keep, 1.0, rtol=1e-6)


def test_attn_lstm_dropout_only_in_training(task2):
    model = _attn(task2)
    params = model.init(jax.random.key(3))
    inputs = _inputs(task2)
    keep_all = jnp.ones((inputs[1].shape[0],) + model.dropout_shape(0))
    logits = jax.jit(model.logits, static_argnums=6)
    plain = logits(params, *inputs)
    np.testing.assert_allclose(logits(params, *inputs, None, keep_all, 0.0), plain, rtol=1e-6)
    assert not np.allclose(logits(params, *inputs, None, keep_all * 0.1, 0.3), plain)


def test_lstm_init_and_rmsprop_as_keras():
    params = lstm_init(jax.random.key(0), D, H)
    b, U = params["b"], np.asarray(params["U"], np.float64)
    assert np.all(b[H:2 * H] == 1) and np.all(b[:H] == 0) and np.all(b[2 * H:] == 0)  # unit forget bias
    for k in range(4):  # orthogonal recurrent blocks
        np.testing.assert_allclose(U[:, k * H:(k + 1) * H].T @ U[:, k * H:(k + 1) * H], np.eye(H), atol=1e-5)
    # RMSprop: a = 0.9 a + 0.1 g^2, w -= lr g / (sqrt(a) + 1e-7); the padding row is frozen
    params = {"embed": jnp.array([[0.0, 0.0], [1.0, 2.0]]), "w": jnp.array([0.5, -1.0])}
    grads = {"embed": jnp.array([[3.0, 1.0], [0.2, -0.4]]), "w": jnp.array([1.0, 2.0])}
    tx = rmsprop_recipe(0.01, None, {"embed": jnp.array([[0.0], [1.0]]), "w": 1.0})
    state, p = tx.init(params), params
    for _ in range(2):
        updates, state = tx.update(grads, state, p)
        p = optax.apply_updates(p, updates)
    g = np.asarray(grads["w"])
    a1 = 0.1 * g ** 2
    a2 = 0.9 * a1 + 0.1 * g ** 2
    np.testing.assert_allclose(p["w"], np.asarray(params["w"]) - 0.01 * g / (np.sqrt(a1) + 1e-7)
                               - 0.01 * g / (np.sqrt(a2) + 1e-7), rtol=1e-6)
    assert np.all(p["embed"][0] == 0) and not np.allclose(p["embed"][1], params["embed"][1])


# -------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_lstm_short_run_learns_task_1(data_root):
    """A real run: the LSTM reader on bAbI-1k task 1 for 10 epochs (chance: 5 of 6 places wrong, 83%)."""
    from memjax.train.protocol import run_babi

    res = run_babi("lstm", "en", [1], data=str(data_root), train_overrides={"epochs": 10})
    task = res["tasks"]["1"]
    assert res["model"] == "lstm" and res["config"]["train"]["optimizer"] == "adam"
    assert res["config"]["train"]["patience"] == 20 and res["config"]["model"]["hidden"] == 100
    assert task["n_train"] == 900 and task["n_valid"] == 100 and task["n_test"] == 1000 and task["epochs"] == 10
    assert task["test_error"] < 70.0, task  # measured: 48.8 (valid 39)
    assert res["mean_test_error"] == task["test_error"] and res["failed_tasks"] == 1
    # the published LSTM row (MemN2N paper, Table 1) beside ours, for the tasks run
    assert res["paper"] == {"row": "LSTM (paper)", "tasks": {"1": 50.0}, "mean_test_error": 51.3, "failed_tasks": 20}


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_cli_trains_evaluates_and_asks_an_lstm(data_root, tmp_path):
    out = tmp_path / "run"
    r = run(["train", "--model", "lstm", "--tasks", "1", "--epochs", "3", "--dim", "16", "--seeds", "2",
             "--out", str(out)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["model"] == "lstm" and res["config"]["model"]["dim"] == 16 and res["config"]["model"]["hidden"] == 100
    assert res["config"]["train"]["optimizer"] == "adam" and res["tasks"]["1"]["epochs"] == 3
    e = run(["eval", "--checkpoint", str(out), "--out", str(tmp_path / "ev")], env_data=data_root)
    assert e.returncode == 0, e.stderr
    ev = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert ev["model"] == "lstm"
    for split in ("test", "valid", "train"):  # the saved model, as trained
        assert ev["tasks"]["1"][f"{split}_error"] == pytest.approx(res["tasks"]["1"][f"{split}_error"], abs=1e-9)
    story = "Mary went to the kitchen.\nMary travelled to the office.\nWhere is Mary?\n"
    a = memjax(["ask", "--checkpoint", str(out)], story)
    assert a.returncode == 0 and "Traceback" not in a.stderr, a.stderr
    lines = a.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Where is Mary? -> ")  # the reader attends to nothing
