"""EntNet (Henaff et al. 2017): the ops against NumPy (values and gradients), the model's batch against a
loop, the NNX module against the model, the slot gates in ask and plot, the optimiser recipe, and a short
real training run."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax.models.entnet import EntNet, EntNetConfig
from memjax.ops.entity import entity_read, entity_scan, masked_encoding, memory_init, output_init, slot_update


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


# ---------------------------------------------------------------------------------- NumPy reference


def np_prelu(x, a):
    return np.where(x > 0, x, a * x)


def np_slot_update(p, h, s):
    """The paper's update, slot by slot, as written: g_j, h~_j, h_j + g_j h~_j, normalised."""
    out, gates = np.zeros_like(h), np.zeros(h.shape[0])
    b, c = p.get("gate_bias", np.zeros(h.shape[0])), p.get("U_bias", np.zeros(h.shape[1]))  # the Torch code's
    for j in range(h.shape[0]):
        w = p["keys"][j]
        g = 1.0 / (1.0 + np.exp(-(s @ h[j] + s @ w + b[j])))
        cand = np_prelu(p["U"] @ h[j] + c + p["V"] @ w + p["W"] @ s, p["alpha"])
        new = h[j] + g * cand
        out[j], gates[j] = new / np.linalg.norm(new), g
    return out, gates


def np_entity_scan(p, xs, mask):
    h, gates = p["keys"].copy(), []
    for s, keep in zip(xs, mask):
        if keep:
            h, g = np_slot_update(p, h, s)
        else:
            g = np.zeros(h.shape[0])
        gates.append(g)
    return h, np.stack(gates)


def np_read(p, h, q):
    z = h @ q
    pj = np.exp(z - z.max())
    pj /= pj.sum()
    u = pj @ h
    return np_prelu(q + p["H"] @ u, p["alpha"]), pj


def _params(d=5, n=3, seed=0, biases=False):
    p = memory_init(jax.random.key(seed), d, n, std=0.5, biases=biases)
    p["alpha"] = jnp.linspace(0.1, 0.4, d)  # distinct slopes
    return jax.tree.map(lambda a: np.asarray(a, np.float64), p)


@pytest.mark.parametrize("biases", [False, True])
def test_slot_update_and_scan_match_numpy(x64, biases):
    rng = np.random.default_rng(0)
    p = _params(biases=biases)
    h = rng.normal(size=(3, 5))
    s = rng.normal(size=5)
    new, g = slot_update(p, h, s)
    ref_h, ref_g = np_slot_update(p, h, s)
    np.testing.assert_allclose(new, ref_h, rtol=1e-10)
    np.testing.assert_allclose(g, ref_g, rtol=1e-10)
    xs, mask = rng.normal(size=(6, 5)), np.array([False, True, True, False, True, True])
    hT, gates = entity_scan(p, xs, mask)
    ref_hT, ref_gates = np_entity_scan(p, xs, mask)
    np.testing.assert_allclose(hT, ref_hT, rtol=1e-10)
    np.testing.assert_allclose(gates, ref_gates, rtol=1e-10, atol=1e-15)
    op = output_init(jax.random.key(1), 5, std=0.5)
    op = jax.tree.map(lambda a: np.asarray(a, np.float64), op)
    q = rng.normal(size=5)
    y, att = entity_read(op, hT, q)
    ref_y, ref_att = np_read(op, ref_hT, q)
    np.testing.assert_allclose(y, ref_y, rtol=1e-10)
    np.testing.assert_allclose(att, ref_att, rtol=1e-10)


def test_memory_init_biases_are_drawn_apart_from_the_other_weights():
    plain, biased = memory_init(jax.random.key(5), 6, 4), memory_init(jax.random.key(5), 6, 4, biases=True)
    assert set(biased) - set(plain) == {"gate_bias", "U_bias"}
    for name, value in plain.items():  # the same draws with or without the biases
        np.testing.assert_array_equal(biased[name], value, err_msg=name)
    assert biased["gate_bias"].shape == (4,) and biased["U_bias"].shape == (6,)
    assert 0 < float(jnp.std(jnp.concatenate([biased["gate_bias"], biased["U_bias"]]))) < 1  # N(0, 0.1^2)


def test_masked_encoding_matches_numpy(x64):
    rng = np.random.default_rng(1)
    E = rng.normal(size=(7, 4))
    E[0] = 0
    ids = np.array([3, 1, 6, 0, 0])
    for k in (3, 5, 8):  # masks shorter than, as long as and longer than the sentence
        mask = rng.normal(size=(k, 4))
        ref = sum(mask[i] * E[w] for i, w in enumerate(ids) if w and i < k)
        np.testing.assert_allclose(masked_encoding(E, ids, mask), ref, rtol=1e-12)


def test_scan_gradients_match_numpy_finite_differences(x64):
    """jax.grad of a scalar of the recurrence and the output module against central differences of the
    NumPy reference, for every parameter (the Torch code's biases included)."""
    rng = np.random.default_rng(2)
    p = _params(d=4, n=3, seed=3, biases=True)
    op = jax.tree.map(lambda a: np.asarray(a, np.float64), output_init(jax.random.key(4), 4, std=0.5))
    xs, mask, q = rng.normal(size=(4, 4)), np.array([True, True, False, True]), rng.normal(size=4)
    c = rng.normal(size=4)

    def f(p, op, xs):
        h, gates = entity_scan(p, xs, mask)
        y, _ = entity_read(op, h, q)
        return jnp.dot(c, y) + jnp.sum(gates ** 2)

    def f_np(p, op, xs):
        h, gates = np_entity_scan(p, xs, mask)
        return c @ np_read(op, h, q)[0] + np.sum(gates ** 2)

    grads = jax.grad(f, argnums=(0, 1, 2))(p, op, xs)
    eps = 1e-6
    for which, tree in ((0, p), (1, op)):
        for name, value in tree.items():
            num = np.zeros_like(value)
            for idx in np.ndindex(value.shape):
                plus, minus = {k: v.copy() for k, v in tree.items()}, {k: v.copy() for k, v in tree.items()}
                plus[name][idx] += eps
                minus[name][idx] -= eps
                args_p = (plus, op) if which == 0 else (p, plus)
                args_m = (minus, op) if which == 0 else (p, minus)
                num[idx] = (f_np(*args_p, xs) - f_np(*args_m, xs)) / (2 * eps)
            np.testing.assert_allclose(grads[which][name], num, rtol=1e-5, atol=1e-7, err_msg=name)
    num = np.zeros_like(xs)
    for idx in np.ndindex(xs.shape):
        a, b = xs.copy(), xs.copy()
        a[idx] += eps
        b[idx] -= eps
        num[idx] = (f_np(p, op, a) - f_np(p, op, b)) / (2 * eps)
    np.testing.assert_allclose(grads[2], num, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------- model


def _toy(seed=0, b=4, m=6, u=9, length=5, vocab=12):
    rng = np.random.default_rng(seed)
    sentences = rng.integers(1, vocab, size=(u, length))
    sentences[:, 3:] = 0
    sentences[0] = 0
    story = rng.integers(1, u, size=(b, m))
    story[:, 4:] = 0  # the oldest slots empty
    query = rng.integers(1, vocab, size=(b, 3))
    answers = np.zeros(vocab, bool)
    answers[[2, 5, 7]] = True
    return sentences, story, query, answers


TORCH = {"prelu_init": 1.0, "biases": True, "story_mask_std": 0.1}  # the authors' code's choices


@pytest.mark.parametrize("options", [{}, TORCH], ids=["paper", "torch"])
def test_batch_equals_a_loop_over_stories_and_empty_slots_change_nothing(options):
    sentences, story, query, answers = _toy()
    model = EntNet(EntNetConfig(vocab_size=12, memory_size=6, length=5, dim=8, slots=4, **options))
    params = model.init(jax.random.key(0))
    data = {"sentences": jnp.asarray(sentences), "answers": jnp.asarray(answers)}
    batch = {"story": jnp.asarray(story), "query": jnp.asarray(query), "answer": jnp.array([2, 5, 7, 2])}
    logits, gates = model.logits(params, data, batch)
    assert gates.shape == (4, 4, 6)
    np.testing.assert_array_equal(np.asarray(gates)[:, :, 4:], 0.0)  # empty slots: no gate
    apply = jax.jit(model.apply)
    for i in range(4):
        li, gi = apply(params, data["sentences"], batch["story"][i], batch["query"][i])
        np.testing.assert_allclose(logits[i][answers], li[answers], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gates[i], gi, rtol=1e-5, atol=1e-6)
    # a memory with more empty slots answers the same
    wide = {**batch, "story": jnp.pad(batch["story"], ((0, 0), (0, 3)))}
    np.testing.assert_allclose(model.logits(params, data, wide)[0][:, answers], logits[:, answers], rtol=1e-5, atol=1e-6)
    pred = model.predict(params, data, batch)
    assert pred.attention.shape == (4, 4, 6) and bool(jnp.all(pred.scores[:, ~answers] == 0))


def test_a_batch_cut_to_its_longest_story_trains_as_the_whole_memory():
    """Length buckets (``--buckets``) compute a batch at its stories' longest length: loss and gradients
    as at the whole memory's width."""
    sentences, story, query, answers = _toy(2)
    model = EntNet(EntNetConfig(vocab_size=12, memory_size=6, length=5, dim=8, slots=4))
    assert model.traits.length_buckets
    params = model.init(jax.random.key(1))
    data = {"sentences": jnp.asarray(sentences), "answers": jnp.asarray(answers)}
    batch = {"story": jnp.asarray(story), "query": jnp.asarray(query), "answer": jnp.array([2, 5, 7, 2])}
    cut = {**batch, "story": batch["story"][:, :4]}  # every story fills at most 4 slots

    def mean_loss(p, b):
        return model.loss(p, data, b)[0].mean()

    (whole, g_whole), (short, g_short) = (jax.value_and_grad(mean_loss)(params, b) for b in (batch, cut))
    np.testing.assert_allclose(short, whole, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g_short, g_whole)
    assert float(jnp.abs(g_whole["memory"]["U"]).sum()) > 0  # the stories reach the memory's weights


def test_the_torch_options_draw_the_authors_initialisation():
    cfg = dict(vocab_size=12, memory_size=6, length=5, dim=8, slots=4)
    paper, torch = EntNet(EntNetConfig(**cfg)).init(jax.random.key(0)), EntNet(EntNetConfig(**cfg, **TORCH)).init(
        jax.random.key(0))
    np.testing.assert_array_equal(paper["story_mask"], 1.0)
    np.testing.assert_array_equal(torch["query_mask"], 1.0)  # the question's masks start at 1 either way
    assert 0.05 < float(jnp.std(torch["story_mask"])) < 0.2 and abs(float(jnp.mean(torch["story_mask"]))) < 0.05
    np.testing.assert_array_equal(torch["memory"]["alpha"], 1.0)
    np.testing.assert_array_equal(torch["output"]["alpha"], 1.0)
    assert {"gate_bias", "U_bias"} <= set(torch["memory"]) and not {"gate_bias", "U_bias"} & set(paper["memory"])
    np.testing.assert_array_equal(torch["embed"], paper["embed"])  # the other draws unchanged
    with pytest.raises(ValueError, match="story_mask_std must be at least 0"):
        EntNetConfig(**cfg, story_mask_std=-0.1)


@pytest.mark.parametrize("options", [{}, TORCH], ids=["paper", "torch"])
def test_nnx_module_equals_the_model(options):
    from memjax.nn import EntityMemory

    sentences, story, query, answers = _toy(1)
    model = EntNet(EntNetConfig(vocab_size=12, memory_size=6, length=5, dim=8, slots=4, **options))
    params = model.init(jax.random.key(3))
    _, gates = model.logits(params, {"sentences": jnp.asarray(sentences)}, {"story": story, "query": query})
    E = params["embed"]
    order = jnp.asarray(story[:, ::-1])
    s = jax.vmap(jax.vmap(lambda ids: masked_encoding(E, ids, params["story_mask"])))(jnp.asarray(sentences)[order])
    module = EntityMemory.from_params(params["memory"])
    h, g = module(s, order != 0)
    assert h.shape == (4, 4, 8)
    np.testing.assert_allclose(jnp.swapaxes(g[:, ::-1], 1, 2), gates, rtol=1e-6, atol=1e-7)
    for i in range(4):
        hi, _ = entity_scan(params["memory"], s[i], order[i] != 0)
        np.testing.assert_allclose(h[i], hi, rtol=1e-6, atol=1e-7)
    fresh = EntityMemory(8, slots=4, biases=bool(options), rngs=nnx.Rngs(0))
    assert jax.tree.map(jnp.shape, fresh.params()) == jax.tree.map(jnp.shape, params["memory"])
    if options:
        with pytest.raises(ValueError, match="both biases"):
            EntityMemory.from_params({k: v for k, v in params["memory"].items() if k != "U_bias"})


def test_adam_halves_its_rate_with_decay_every():
    from memjax.train.optim import recipe
    from memjax.train.recipes import RECIPES

    cfg = RECIPES["entnet"]
    assert (cfg.optimizer, cfg.lr, cfg.decay_every, cfg.max_grad_norm, cfg.epochs) == ("adam", 0.01, 25, 40.0, 200)
    params = {"w": jnp.zeros(3)}
    opt = recipe(cfg, 2, {"w": 1.0})
    state = opt.init(params)
    grads = {"w": jnp.array([1.0, -1.0, 0.5])}
    steps = []
    for _ in range(52):  # Adam's first steps are lr * sign(g): the rate is the step's size
        up, state = opt.update(grads, state, params)
        steps.append(float(jnp.abs(up["w"][0])))
    np.testing.assert_allclose([steps[0], steps[49], steps[50]], [0.01, 0.01, 0.005], rtol=1e-3)


def test_ask_and_plot_name_the_rows_slots():
    from memjax.infer import Answer
    from memjax.plot import _caption

    a = Answer("office", 0.9, [[(0, "a", 0.7), (1, "b", 0.1)]], [], [("office", 0.9)], "slots")
    assert a.row_name == "slot"
    assert "empty memory" not in _caption(a, [[0.7], [0.1]], 0, None)  # gates need not sum to one


# ---------------------------------------------------------------------------------------- training


@pytest.mark.slow
def test_entnet_short_run_learns_task_1(data_root):
    """A real run: bAbI-1k task 1, d = 20, 15 epochs, about 15 s (chance: 5 of 6 places wrong, 83%)."""
    from memjax.train.protocol import run_babi

    res = run_babi("entnet", "en", [1], data=str(data_root), model_overrides={"dim": 20},
                   train_overrides={"epochs": 15})
    task = res["tasks"]["1"]
    assert res["model"] == "entnet" and res["config"]["train"]["decay_every"] == 25
    assert task["test_error"] < 30.0, task  # measured: 12.7 (valid 11.0), 2026-12-06, 2-core CPU


@pytest.mark.slow
def test_entnet_trains_in_length_buckets(data_root):
    """A real run with ``--buckets 3``: bAbI-1k task 1 (stories of 2 to 10 sentences), d = 20, 15 epochs;
    the compiled program branches on each step's length."""
    from memjax.data.dataset import load_babi
    from memjax.train.engine import Trainer
    from memjax.train.recipes import ENTNET_10K

    ds = load_babi([1], "en", str(data_root))[0]
    cfg = dataclasses.replace(ENTNET_10K, epochs=15, buckets=3)
    model = EntNet(EntNetConfig(vocab_size=len(ds.vocab), memory_size=ds.memory_size, **EntNet.data_defaults(ds), dim=20))
    trainer = Trainer(model, cfg, ds)
    fit = trainer.fit([0])
    assert trainer.plan is not None and len(trainer.plan.lengths) == 3
    assert "conditional" in trainer.programs["train"].as_text()
    assert float(fit.errors["test"][0]) < 30.0, fit.errors  # chance: 83% wrong
