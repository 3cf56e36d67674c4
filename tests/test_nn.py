"""memjax.nn: each Flax NNX module against the pure ops (or the models' sequence of them) with the same parameters.

References are computed independently of the modules: the ops called on ONE example at a time in a
Python loop over the batch (or the models' ``apply``), with the parameter dicts the modules were
built from, so that a module that batches, orders or wires its op wrongly fails.
"""

import itertools
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import memjax.nn as mnn
from memjax import ops
from memjax.models.dmn import DMNPlus, DMNPlusConfig
from memjax.models.memn2n import MemN2N, MemN2NConfig

V, D, M, L, Q = 12, 6, 5, 4, 3  # vocabulary, dim, memory slots (= facts), words per sentence, question words
BATCH = (2, 2)  # two leading batch axes
TOL = dict(rtol=2e-5, atol=2e-6)
rng = np.random.default_rng(0)


def randn(*shape, scale=0.5):
    return jnp.asarray(scale * rng.normal(size=shape).astype(np.float32))


def randomize(tree, scale=0.3):
    """Non-zero biases and different values everywhere, so that every parameter is tested."""
    return jax.tree.map(lambda a: a + randn(*np.shape(a), scale=scale), tree)


def sentence_ids(*batch, width=L, empty_slots=True):
    """Word ids (..., width): a prefix of words in 1..V-1 per sentence, some sentences empty."""
    lengths = rng.integers(0 if empty_slots else 1, width + 1, size=batch)
    ids = rng.integers(1, V, size=batch + (width,))
    return jnp.asarray(np.where(np.arange(width) < lengths[..., None], ids, 0).astype(np.int32))


def examples():
    return list(itertools.product(*(range(b) for b in BATCH)))


def per_example(fn, *args):
    """fn called on each example (index i of every arg) in a Python loop; outputs stacked to BATCH.

    ``fn`` is jitted (compiled once for one example's shapes: faster than op-by-op), never vmapped.
    """
    fn = jax.jit(fn)
    outs = [fn(*(a[i] for a in args)) for i in examples()]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *outs)
    return jax.tree.map(lambda x: x.reshape(BATCH + x.shape[1:]), stacked)


def sum_grads(loss, params, *args, argnums=0):
    """Gradients of sum_i loss(params, *(a[i] for a in args)) over BATCH, one example at a time: the
    parameters' gradients summed, the inputs' (argnums > 0) stacked back to BATCH."""
    grad = jax.jit(jax.grad(loss, argnums=argnums))
    per = per_example(lambda *a: grad(params, *a), *args)  # leaves (*BATCH, ...)
    if argnums == 0:
        return jax.tree.map(lambda g: jnp.sum(g, axis=tuple(range(len(BATCH)))), per)
    return (jax.tree.map(lambda g: jnp.sum(g, axis=tuple(range(len(BATCH)))), per[0]),) + tuple(per[1:])


def close(a, b, **tol):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), **(tol or TOL)), a, b)


# ---------------------------------------------------------------------------------------- MemN2N


@pytest.mark.parametrize("encoding,formula,length", [("pe", "official", None), ("pe", "official", L),
                                                     ("pe", "paper", None), ("bow", "official", None)])
def test_position_encoding(encoding, formula, length):
    E = randn(V, D).at[0].set(0.0)
    pe = mnn.PositionEncoding.from_params({"embedding": E}, encoding=encoding, formula=formula, length=length)
    ids = sentence_ids(*BATCH, M)
    close(pe(ids), per_example(lambda s: jax.vmap(lambda x: ops.encode_sentence(E, x, encoding, formula, length))(s),
                               ids))
    close(pe.embed(ids), E[ids])
    close(pe.params()["embedding"], E)


def test_temporal_encoding():
    T = randn(M, D)
    te = mnn.TemporalEncoding.from_params({"table": T})
    time = jnp.asarray(rng.integers(0, M, size=BATCH + (M,)), jnp.int32)
    close(te(time), per_example(lambda t: ops.temporal_encoding(T, t), time))


@pytest.mark.parametrize("layerwise", [False, True])
@pytest.mark.parametrize("linear", [False, True])
def test_memory_hop(layerwise, linear):
    hop = mnn.MemoryHop(D, layerwise=layerwise, rngs=nnx.Rngs(1))
    u, keys, vals = randn(*BATCH, D), randn(*BATCH, M, D), randn(*BATCH, M, D)
    mask = jnp.asarray(rng.random(BATCH + (M,)) < 0.7).at[..., 0].set(True)

    def ref(u_, k, v, m):
        if not layerwise:
            return ops.hop(u_, k, v, m, linear)
        p = ops.address(u_, k, m, linear)
        return hop.params()["H"] @ u_ + ops.read(p, v), p

    close(hop(u, keys, vals, mask, linear), per_example(ref, u, keys, vals, mask))


def memn2n_setup(tying, temporal=True, attend_empty=True, formula="official", length=None):
    cfg = MemN2NConfig(vocab_size=V, memory_size=M, dim=D, hops=3, tying=tying, temporal=temporal,
                       attend_empty=attend_empty, pe_formula=formula, pe_length=length)
    model = MemN2N(cfg)
    params = model.init(jax.random.key(3))
    sentences = jnp.concatenate([jnp.zeros((1, L), jnp.int32), sentence_ids(7, empty_slots=False)])  # (U, L)
    story = jnp.asarray(rng.integers(0, 8, size=BATCH + (M,)), jnp.int32)  # rows, 0 = empty slot
    query = sentence_ids(*BATCH, width=Q, empty_slots=False)
    read = mnn.MultiHopRead.from_params(params, hops=cfg.hops, formula=formula, length=length,
                                        attend_empty=attend_empty)
    return model, params, sentences, story, query, read


@pytest.mark.parametrize("tying,temporal,attend_empty,formula,length", [
    ("adjacent", True, True, "official", L), ("adjacent", False, False, "paper", None),
    ("layerwise", True, True, "official", None), ("layerwise", True, False, "paper", L)])
def test_multi_hop_read_equals_memn2n(tying, temporal, attend_empty, formula, length):
    model, params, sentences, story, query, read = memn2n_setup(tying, temporal, attend_empty, formula, length)
    close(read.params(), params)
    time = jnp.asarray(np.sort(rng.integers(0, M, size=BATCH + (M,)), axis=-1), jnp.int32)
    for kwargs in ({}, {"time": time}, {"time": time, "linear": True}):
        u, attention = read(sentences[story], query, **kwargs)
        logits = read.logits(u)
        ref = per_example(lambda s, q, *t: model.apply(params, sentences, s, q, *t, linear=kwargs.get("linear", False)),
                          story, query, *([time] if "time" in kwargs else []))
        close((logits, attention), ref)


@pytest.mark.parametrize("tying", ["adjacent", "layerwise"])
def test_multi_hop_read_gradients(tying):
    model, params, sentences, story, query, read = memn2n_setup(tying)
    w = randn(*BATCH, V)

    def module_loss(module):
        u, _ = module(sentences[story], query)
        return jnp.sum(module.logits(u) * w)

    def op_loss(p, s, q, w_):  # one example
        return jnp.sum(model.apply(p, sentences, s, q)[0] * w_)

    graphdef, _ = nnx.split(read)
    grads = nnx.merge(graphdef, nnx.jit(nnx.grad(module_loss))(read)).params()
    close(grads, sum_grads(op_loss, params, story, query, w), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------ DMN+


def gru_params(init=ops.gru_init, in_dim=D, hidden=D, key=0):
    return randomize(init(jax.random.key(key), in_dim, hidden))


@pytest.mark.parametrize("reverse", [False, True])
def test_gru(reverse):
    p = gru_params(in_dim=4)
    gru = mnn.GRU.from_params(p)
    xs, h0 = randn(*BATCH, M, 4), randn(*BATCH, D)
    mask = jnp.asarray(rng.random(BATCH + (M,)) < 0.7)
    close(gru(xs, mask, reverse=reverse), per_example(lambda x, m: ops.gru_scan(p, x, m, None, reverse), xs, mask))
    close(gru(xs, mask, h0, reverse), per_example(lambda x, m, h: ops.gru_scan(p, x, m, h, reverse), xs, mask, h0))
    close(gru(xs), per_example(lambda x: ops.gru_scan(p, x, jnp.ones(M, bool)), xs))
    close(gru.cell(h0, xs[..., 0, :]), per_example(lambda h, x: ops.gru_cell(p, h, x), h0, xs[..., 0, :]))


def test_attention_gru():
    p = gru_params(ops.attention_gru_init, in_dim=4)
    agru = mnn.AttentionGRU.from_params(p)
    facts, gates, h0 = randn(*BATCH, M, 4), jax.nn.sigmoid(randn(*BATCH, M)), randn(*BATCH, D)
    mask = jnp.asarray(rng.random(BATCH + (M,)) < 0.7)
    close(agru(facts, gates, mask), per_example(lambda f, g, m: ops.attention_gru_scan(p, f, g, m), facts, gates, mask))
    close(agru(facts, gates, mask, h0),
          per_example(lambda f, g, m, h: ops.attention_gru_scan(p, f, g, m, h), facts, gates, mask, h0))
    close(agru.cell(h0, facts[..., 0, :], gates[..., 0]),
          per_example(lambda h, x, g: ops.attention_gru_cell(p, h, x, g), h0, facts[..., 0, :], gates[..., 0]))


def test_input_fusion():
    p = {"embed": randn(V, D).at[0].set(0.0), "fwd": gru_params(key=1), "bwd": gru_params(key=2)}
    fusion = mnn.InputFusion.from_params(p)
    words = sentence_ids(*BATCH, M)  # some sentences empty
    mask = jnp.any(words != 0, axis=-1)

    def ref(w, m):  # the model's sequence: position encoding (paper formula), bigru, masked
        x = jax.vmap(lambda s: ops.encode_sentence(p["embed"], s, "pe", "paper", None))(w)
        return ops.bigru(p["fwd"], p["bwd"], x, m) * m[:, None]

    close(fusion(words), per_example(ref, words, mask))
    close(fusion(words, mask), per_example(ref, words, mask))
    close(fusion.params(), p)


def test_gate_update_answer():
    gp = randomize(ops.gate_init(jax.random.key(4), D, 7))
    facts, q, m = randn(*BATCH, M, D), randn(*BATCH, D), randn(*BATCH, D)
    mask = jnp.asarray(rng.random(BATCH + (M,)) < 0.7).at[..., 0].set(True)
    close(mnn.AttentionGate.from_params(gp)(facts, q, m, mask),
          per_example(lambda f, q_, m_, k: ops.fact_attention(ops.gate_scores(gp, f, q_, m_), k), facts, q, m, mask))
    up = randomize(ops.memory_update_init(jax.random.key(5), D))
    c = randn(*BATCH, D)
    close(mnn.MemoryUpdate.from_params(up)(m, c, q), per_example(lambda *a: ops.memory_update(up, *a), m, c, q))
    ap = randomize(ops.answer_init(jax.random.key(6), D, V))
    close(mnn.AnswerModule.from_params(ap)(m, q), per_example(lambda *a: ops.answer_logits(ap, *a), m, q))


def episodic_setup(kind, passes=3):
    p = {"gate": randomize(ops.gate_init(jax.random.key(7), D, D)),
         "attention": gru_params(ops.attention_gru_init, key=8)}
    if kind == "gru":
        p["memory"] = gru_params(key=9)
    else:
        n = 1 if kind == "tied" else passes
        p["memory"] = [randomize(ops.memory_update_init(k, D)) for k in jax.random.split(jax.random.key(10), n)]
    facts, q = randn(*BATCH, M, D), randn(*BATCH, D)
    mask = jnp.asarray(rng.random(BATCH + (M,)) < 0.7).at[..., 0].set(True)

    def ref_one(params, f, k, q_):  # DMNPlus.apply's loop (ops.gru_memory_update for DMN's update)
        m, gates = q_, []
        for t in range(passes):
            c, g = ops.episode(params["attention"], params["gate"], f, k, q_, m)
            if kind == "gru":
                m = ops.gru_memory_update(params["memory"], m, c)
            else:
                m = ops.memory_update(params["memory"][0 if kind == "tied" else t], m, c, q_)
            gates.append(g)
        return m, jnp.stack(gates)

    return p, facts, mask, q, ref_one


@pytest.mark.parametrize("kind", ["untied", "tied", "gru"])
def test_episodic_memory(kind):
    p, facts, mask, q, ref_one = episodic_setup(kind)
    em = mnn.EpisodicMemory.from_params(p, passes=3)
    close(em(facts, mask, q), per_example(lambda *a: ref_one(p, *a), facts, mask, q))
    close(em.params(), p)


def test_episodic_memory_gradients():
    p, facts, mask, q, ref_one = episodic_setup("untied")
    em = mnn.EpisodicMemory.from_params(p)
    w = randn(*BATCH, D)

    def module_loss(module, facts, q):
        return jnp.sum(module(facts, mask, q)[0] * w)

    def op_loss(params, f, q_, k, w_):  # one example
        return jnp.sum(ref_one(params, f, k, q_)[0] * w_)

    graphdef, _ = nnx.split(em)
    g_state, g_facts, g_q = nnx.jit(nnx.grad(module_loss, argnums=(0, 1, 2)))(em, facts, q)
    r_params, r_facts, r_q = sum_grads(op_loss, p, facts, q, mask, w, argnums=(0, 1, 2))
    close((nnx.merge(graphdef, g_state).params(), g_facts, g_q), (r_params, r_facts, r_q), rtol=1e-4, atol=1e-5)


def test_dmn_plus_composition_equals_model():
    """InputFusion + GRU question module + EpisodicMemory + AnswerModule with DMN+'s parameters = DMNPlus.apply."""
    model = DMNPlus(DMNPlusConfig(vocab_size=V, memory_size=M, dim=D, hops=2))
    params = randomize(model.init(jax.random.key(11)), 0.1)
    params["embed"] = params["embed"].at[0].set(0.0)
    sentences = jnp.concatenate([jnp.zeros((1, L), jnp.int32), sentence_ids(7, empty_slots=False)])
    story = jnp.asarray(rng.integers(0, 8, size=BATCH + (M,)), jnp.int32)
    query = sentence_ids(*BATCH, width=Q, empty_slots=False)

    fusion = mnn.InputFusion.from_params({"embed": params["embed"], **params["fusion"]})
    question = mnn.GRU.from_params(params["question"])
    memory = mnn.EpisodicMemory.from_params(params)
    answer = mnn.AnswerModule.from_params(params["answer"])
    words = sentences[story][..., ::-1, :]  # story order: oldest slot first
    facts = fusion(words)
    q = question(fusion.encoder.embed(query), query != 0)[..., -1, :]
    m, gates = memory(facts, words.any(-1), q)
    ref = per_example(lambda s, qq: model.apply(params, sentences, s, qq), story, query)
    close((answer(m, q), gates[..., ::-1]), ref, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------ NNX: split/merge, jit, init


CASES = ("PositionEncoding", "TemporalEncoding", "MemoryHop", "MultiHopRead", "MultiHopRead-layerwise", "GRU",
         "AttentionGRU", "InputFusion", "AttentionGate", "MemoryUpdate", "EpisodicMemory", "AnswerModule")


def module_case(name):
    """(module, inputs) of the module ``name`` of CASES, with a batch; built when a test asks for it (building
    every module compiles their initialisers: at collection, that cost each test process seconds)."""
    r = nnx.Rngs(0)
    facts, q, m = randn(*BATCH, M, D), randn(*BATCH, D), randn(*BATCH, D)
    mask = jnp.asarray(rng.random(BATCH + (M,)) < 0.7).at[..., 0].set(True)
    words = sentence_ids(*BATCH, M)
    query = sentence_ids(*BATCH, width=Q, empty_slots=False)
    cases = {
        "PositionEncoding": lambda: (mnn.PositionEncoding(V, D, rngs=r), (words,)),
        "TemporalEncoding": lambda: (mnn.TemporalEncoding(M, D, rngs=r),
                                     (jnp.zeros(BATCH + (M,), jnp.int32) + jnp.arange(M),)),
        "MemoryHop": lambda: (mnn.MemoryHop(D, layerwise=True, rngs=r), (q, facts, facts + 1, mask)),
        "MultiHopRead": lambda: (mnn.MultiHopRead(V, D, 2, M, rngs=r), (words, query)),
        "MultiHopRead-layerwise": lambda: (mnn.MultiHopRead(V, D, 2, M, tying="layerwise", rngs=r), (words, query)),
        "GRU": lambda: (mnn.GRU(D, 4, rngs=r), (facts, mask)),
        "AttentionGRU": lambda: (mnn.AttentionGRU(D, 4, rngs=r), (facts, jax.nn.sigmoid(m[..., :M]), mask)),
        "InputFusion": lambda: (mnn.InputFusion(V, D, rngs=r), (words,)),
        "AttentionGate": lambda: (mnn.AttentionGate(D, 3, rngs=r), (facts, q, m, mask)),
        "MemoryUpdate": lambda: (mnn.MemoryUpdate(D, rngs=r), (m, facts[..., 0, :], q)),
        "EpisodicMemory": lambda: (mnn.EpisodicMemory(D, 2, rngs=r), (facts, mask, q)),
        "AnswerModule": lambda: (mnn.AnswerModule(D, V, rngs=r), (m, q)),
    }
    assert set(cases) == set(CASES)
    return cases[name]()


@pytest.mark.parametrize("name", CASES)
def test_split_merge_and_jit(name):
    module, inputs = module_case(name)
    out = module(*inputs)
    graphdef, state = nnx.split(module)
    assert all(isinstance(v, nnx.Param) for _, v in nnx.to_flat_state(state))
    close(nnx.merge(graphdef, state)(*inputs), out, rtol=0, atol=0)
    close(jax.jit(lambda s, *x: nnx.merge(graphdef, s)(*x))(state, *inputs), out, rtol=1e-5, atol=1e-6)
    close(nnx.jit(lambda mod, *x: mod(*x))(module, *inputs), out, rtol=1e-5, atol=1e-6)
    # from_params(params()) holds the same parameters
    twin = type(module).from_params(module.params(), **({"hops": 2} if "layerwise" in name else {}))
    close(twin.params(), module.params(), rtol=0, atol=0)
    assert jax.tree.structure(nnx.split(twin)[1]) == jax.tree.structure(state)


def test_initialisation():
    r = nnx.Rngs(0)
    read = mnn.MultiHopRead(120, 30, 2, 50, rngs=r)
    for E in read.params()["embed"]:
        assert np.all(E[0] == 0) and abs(float(jnp.std(E[1:])) - 0.1) < 0.01
    assert abs(float(jnp.std(read.params()["temporal"][0])) - 0.1) < 0.01
    fusion = mnn.InputFusion(120, 30, rngs=r)
    E = fusion.params()["embed"]
    assert np.all(E[0] == 0) and float(jnp.max(jnp.abs(E))) <= np.sqrt(3) and float(jnp.max(jnp.abs(E))) > 1.6
    ans = mnn.AnswerModule(30, 120, rngs=r).params()
    limit = np.sqrt(6 / 90)
    assert float(jnp.max(jnp.abs(ans["W"]))) <= limit and float(jnp.max(jnp.abs(ans["W"]))) > 0.9 * limit
    assert ans["W"].shape == (60, 120) and np.all(ans["b"] == 0)
    # two modules from one Rngs differ; the same seed gives the same parameters
    close(mnn.GRU(4, 5, rngs=nnx.Rngs(3)).params(), mnn.GRU(4, 5, rngs=nnx.Rngs(3)).params(), rtol=0, atol=0)
    assert not np.allclose(mnn.GRU(4, 5, rngs=r).params()["W"], mnn.GRU(4, 5, rngs=r).params()["W"])


def test_batch_axes_must_agree():
    gru = mnn.GRU(D, D, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError):
        gru(randn(2, M, D), jnp.ones((3, M), bool))


def test_import_changes_no_environment_or_config():
    code = """
import os, jax, flax, flax.nnx, memjax, memjax.ops, memjax.models
env, config, flax_config = dict(os.environ), dict(jax.config.values), dict(vars(flax.config))
import memjax.nn
assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
assert dict(jax.config.values) == config
assert dict(vars(flax.config)) == flax_config
print("ok")
"""
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": src})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# --- an NNX model trained through memjax's engine (memjax.nn.adapter) ---------------------------------------------

def _example():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "nn_qa.py"
    spec = importlib.util.spec_from_file_location("nn_qa", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_trains_through_the_engine_to_under_one_percent(data_root):
    """examples/nn_qa.py's MemN2N of memjax.nn modules, two seeds vmapped by the engine, 10 of its 60 epochs
    (measured: 0.3% and 0.4% test error; the full example 0.0-0.1%)."""
    import dataclasses

    from memjax.data.dataset import load_babi
    from memjax.infer import Answerer
    from memjax.train.engine import Trainer

    example = _example()
    ds = load_babi([1], "en", str(data_root), 50)[0]
    model = example.model_for("memn2n", ds)
    assert model.traits.name == "nn-memn2n" and model.traits.attention == "hop"
    fit = Trainer(model, dataclasses.replace(example.RECIPE, epochs=10), ds).fit([0, 1])
    best = int(np.argmin(fit.errors["valid"]))
    assert fit.errors["test"][best] <= 1.0, fit.errors
    embeddings = [a for path, a in jax.tree_util.tree_leaves_with_path(fit.params) if "embed" in str(path).lower()
                  and a.shape[1] == len(ds.vocab)]
    assert embeddings and all(np.all(np.asarray(a)[:, 0] == 0.0) for a in embeddings)  # the padding rows stay zero
    assert not np.allclose(*[np.asarray(jax.tree.leaves(fit.params)[0][s]) for s in (0, 1)])  # two different runs
    # the model answers a new story through the same prediction path as memjax ask
    qa = Answerer("1", model, jax.tree.map(lambda a: a[best], fit.params), ds.vocab, ds.memory_size, [1])
    a = qa.answer(["mary went to the kitchen", "john moved to the garden", "mary travelled to the office"],
                  "where is mary?")
    assert a.answer == "office" and len(a.hops) == 3 and a.hops[0][0][0] == 2
