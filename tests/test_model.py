import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from np_reference import np_position_weights

from memjax.models import MemN2N, MemN2NConfig, memn2n
from memjax.models.memn2n import noise_draws, noise_spread, random_time, reads_by_projection, time_from_uniforms

V, M, L, Q, U = 12, 6, 5, 4, 8


def make_inputs(seed=0, n_sent=4):
    r = np.random.default_rng(seed)
    sentences = np.zeros((U, L), np.int32)
    for i in range(1, U):
        n = r.integers(1, L + 1)
        sentences[i, :n] = r.integers(2, V, size=n)
    story = np.zeros(M, np.int32)
    story[:n_sent] = r.integers(1, U, size=n_sent)
    query = np.zeros(Q, np.int32)
    query[:3] = r.integers(2, V, size=3)
    return sentences, story, query


def np_forward(params, cfg, sentences, story, query):
    """A plain NumPy MemN2N (PE, TE) following the paper's equations."""
    p = jax.tree.map(np.asarray, params)
    occupied = story > 0
    mask = np.ones_like(occupied) if cfg.attend_empty else occupied
    time = np.arange(len(story))

    def np_encode(E, ids):
        n = int((ids > 0).sum())
        return (np_position_weights(n, len(ids), E.shape[1], cfg.pe_formula, cfg.pe_length) * E[ids]).sum(0)

    def memory(E, T):
        return np.stack([np_encode(E, sentences[s]) for s in story]) + T[time] * occupied[:, None]

    def attend(u, m):
        s = m @ u
        a = np.zeros(len(story))
        e = np.exp(s[mask] - s[mask].max())
        a[mask] = e / e.sum()
        return a

    if cfg.tying == "adjacent":
        E, T = p["embed"], p["temporal"]
        u = np_encode(E[0], query)
        for k in range(cfg.hops):
            a = attend(u, memory(E[k], T[k]))
            u = u + a @ memory(E[k + 1], T[k + 1])
        return E[cfg.hops] @ u
    u = np_encode(p["B"], query)
    keys, values = memory(p["A"], p["TA"]), memory(p["C"], p["TC"])
    for _ in range(cfg.hops):
        u = p["H"] @ u + attend(u, keys) @ values
    return p["W"] @ u


VARIANTS = {  # (pe_formula, pe_length, attend_empty)
    "paper": ("paper", None, False),
    "official": ("official", L + 1, True),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("tying", ["adjacent", "layerwise"])
@pytest.mark.parametrize("hops", [1, 3])
def test_apply_matches_numpy_reference(tying, hops, variant):
    formula, length, attend_empty = VARIANTS[variant]
    cfg = MemN2NConfig(vocab_size=V, memory_size=M, dim=5, hops=hops, tying=tying, pe_formula=formula,
                       pe_length=length, attend_empty=attend_empty)
    model = MemN2N(cfg)
    params = model.init(jax.random.key(1))
    sentences, story, query = make_inputs()
    logits, attention = model.apply(params, jnp.asarray(sentences), jnp.asarray(story), jnp.asarray(query))
    np.testing.assert_allclose(logits, np_forward(params, cfg, sentences, story, query), rtol=2e-4, atol=2e-5)
    assert attention.shape == (hops, M)
    np.testing.assert_allclose(attention.sum(-1), 1.0, rtol=1e-5)
    empty = np.asarray(attention)[:, story == 0]
    if attend_empty:  # empty slots hold zero vectors: all get the same share, exp(0) / Z
        assert np.all(empty > 0) and np.allclose(empty, empty[:, :1])
    else:
        assert np.all(empty == 0)


def test_init_padding_rows_are_zero_and_shapes():
    model = MemN2N(MemN2NConfig(vocab_size=V, memory_size=M, dim=5, hops=3))
    params = model.init(jax.random.key(0))
    assert len(params["embed"]) == 4 and len(params["temporal"]) == 4
    for E in params["embed"]:
        assert E.shape == (V, 5) and np.all(np.asarray(E[0]) == 0)
    assert 0.05 < float(jnp.std(params["embed"][1][1:])) < 0.15  # N(0, 0.1)


def test_batched_logits_equal_a_python_loop():
    model = MemN2N(MemN2NConfig(vocab_size=V, memory_size=M, dim=5))
    params = model.init(jax.random.key(2))
    examples = [make_inputs(seed=s, n_sent=1 + s % M) for s in range(5)]
    sentences = examples[0][0]
    story = np.stack([e[1] for e in examples])
    query = np.stack([e[2] for e in examples])
    batched, att = model.logits(params, jnp.asarray(sentences), {"story": jnp.asarray(story),
                                                                 "query": jnp.asarray(query)})
    for i in range(5):
        one, a = model.apply(params, jnp.asarray(sentences), jnp.asarray(story[i]), jnp.asarray(query[i]))
        np.testing.assert_allclose(batched[i], one, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(att[i], a, rtol=1e-5, atol=1e-7)


def test_large_sentence_table_path_gives_the_same_answer():
    """With more distinct sentences than memory slots in the batch, the batch's own sentences are encoded."""
    model = MemN2N(MemN2NConfig(vocab_size=V, memory_size=2, dim=5, temporal=False))
    params = model.init(jax.random.key(3))
    sentences, _, query = make_inputs()
    story = np.array([[3, 5]], np.int32)  # 1 x 2 = 2 slots < 8 sentences
    batched, _ = model.logits(params, jnp.asarray(sentences), {"story": jnp.asarray(story),
                                                               "query": jnp.asarray(query[None])})
    one, _ = model.apply(params, jnp.asarray(sentences), jnp.asarray(story[0]), jnp.asarray(query))
    np.testing.assert_allclose(batched[0], one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw,time_words", [({}, True), ({}, False), ({"tying": "layerwise"}, True),
                                           ({"tying": "layerwise"}, False),
                                           ({"attend_empty": False, "temporal": False}, True)])
@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("linear", [False, True])
def test_memory_read_by_projection_equals_read_by_encoding(kw, time_words, noise, linear, monkeypatch):
    """Reading memory through projections of u into word space gives the logits, attention and
    gradients of reading it through the encoded memory vectors (time read as words in the bags, or
    apart: memn2n.TIME_WORDS_ROWS)."""
    if not time_words:  # (only with temporal encoding: without it there is no time to read)
        monkeypatch.setattr(memn2n, "TIME_WORDS_ROWS", 0)
    models = {mode: MemN2N(MemN2NConfig(vocab_size=V, memory_size=M, dim=5, memory_reads=mode, **kw))
              for mode in ("encode", "project")}
    params = models["encode"].init(jax.random.key(8))
    examples = [make_inputs(seed=s, n_sent=1 + s % M) for s in range(7)]
    sentences = jnp.asarray(models["encode"].bags(examples[0][0]))
    story = jnp.asarray(np.stack([e[1] for e in examples]))
    query = jnp.asarray(models["encode"].bags(np.stack([e[2] for e in examples])))
    answer = jnp.arange(7) % (V - 2) + 2
    time = random_time(jax.random.key(1), jnp.sum(story != 0, axis=1), M, 0.5) if noise else None

    def loss(params, model):
        logits, att = model.batch_logits(params, sentences, story, query, time=time, linear=linear)
        return jnp.sum(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, answer[:, None], 1)[:, 0]), (logits, att)

    (l_e, (logits_e, att_e)), g_e = jax.value_and_grad(loss, has_aux=True)(params, models["encode"])
    (l_p, (logits_p, att_p)), g_p = jax.value_and_grad(loss, has_aux=True)(params, models["project"])
    np.testing.assert_allclose(l_p, l_e, rtol=1e-5)
    np.testing.assert_allclose(logits_p, logits_e, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(att_p, att_e, rtol=1e-5, atol=1e-7)
    assert float(jnp.max(jnp.abs(logits_e))) > 1e-3  # not trivially zero
    for a, b in zip(jax.tree.leaves(g_p), jax.tree.leaves(g_e)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_automatic_choice_of_the_memory_read():
    """Projection where it counts far less work (joint bAbI: 175 words, 3,183 distinct sentences,
    d = 50; a per-task batch), encoding where many slots share few sentences; explicit modes win."""
    assert reads_by_projection("auto", 32, 50, 3183, 350, 50, 4, 3)
    assert reads_by_projection("auto", 32, 50, 373, 92, 20, 4, 3)
    assert not reads_by_projection("auto", 512, 50, 30, 40, 20, 4, 3)
    assert not reads_by_projection("auto", 32, 10000, 30, 40, 20, 4, 3)
    assert reads_by_projection("project", 512, 50, 30, 40, 20, 4, 3)
    assert not reads_by_projection("encode", 32, 50, 3183, 350, 50, 4, 3)
    with pytest.raises(ValueError, match="memory_reads"):
        MemN2NConfig(vocab_size=V, memory_reads="sparse")


def test_masked_memory_equals_sliced_memory():
    """Masked empty slots at the end of memory change nothing (without TE, whose table depends on M)."""
    sentences, story, query = make_inputs(n_sent=3)
    small = MemN2N(MemN2NConfig(vocab_size=V, memory_size=3, dim=5, temporal=False, attend_empty=False))
    big = MemN2N(MemN2NConfig(vocab_size=V, memory_size=M, dim=5, temporal=False, attend_empty=False))
    params = small.init(jax.random.key(4))
    a, att_a = small.apply(params, jnp.asarray(sentences), jnp.asarray(story[:3]), jnp.asarray(query))
    b, att_b = big.apply(params, jnp.asarray(sentences), jnp.asarray(story), jnp.asarray(query))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(att_a, att_b[:, :3], rtol=1e-6)


def test_random_time_noise():
    occupied = jnp.array([0, 1, 5, 10, 11, 20, 30, 50] * 32)
    t = np.asarray(random_time(jax.random.key(0), occupied, 50, 0.1))
    assert t.shape == (256, 50) and t.min() >= 0 and t.max() <= 49
    n = np.asarray(occupied)
    for i in range(256):
        ti = t[i, : n[i]]
        # increasing (most recent smallest), distinct until clamped to the last row
        assert np.all(np.diff(ti) >= 0) and np.all(np.diff(ti)[ti[1:] < 49] > 0)
        blanks = int(np.ceil(0.1 * n[i])) - 1  # at most ceil(0.1 n) - 1 empty memories
        if n[i]:
            assert ti.max() <= min(49, n[i] - 1 + max(blanks, 0))
        if n[i] <= 10:  # the authors' rule adds no blank to stories of 10 statements or fewer
            np.testing.assert_array_equal(ti, np.arange(n[i]))
    noisy = [(t[i, : n[i]] != np.arange(n[i])).any() for i in range(256) if n[i] == 30]
    assert 0.3 < np.mean(noisy) < 1.0  # nblank is 0, 1 or 2 for 30 statements
    quiet = np.asarray(random_time(jax.random.key(0), occupied, 50, 0.0))
    for i in range(8):
        np.testing.assert_array_equal(quiet[i, : n[i]], np.arange(n[i]))


@pytest.mark.parametrize("memory,noise", [(15, 0.1), (50, 0.1), (50, 0.5), (200, 0.1)])
def test_every_slot_time_is_below_memory_plus_spread(memory, noise):
    """Slot i's time lies in [i, i + spread] (spread = :func:`noise_spread`), empty slots included: the
    bound the engine passes as ``time_rows`` so that only the temporal tables' first rows are used."""
    rows = 4000
    rng = np.random.default_rng(1)
    u = jnp.asarray(rng.random((rows, noise_draws(memory, noise)), dtype=np.float32))
    occupied = jnp.asarray(rng.integers(0, memory + 1, rows))
    t = np.asarray(time_from_uniforms(u, occupied, memory, noise, table=10 * memory))
    spread = noise_spread(memory, noise)
    assert spread > 0 and t.max() <= memory - 1 + spread
    assert np.all(t >= np.arange(memory)) and np.all(t <= np.arange(memory) + spread)
    assert t.max() == memory - 1 + spread  # the bound is reached: it is not loose


@pytest.mark.parametrize("memory", [50, 200])  # Floyd's algorithm (4 blanks at most); top-k of scores (19)
def test_random_time_blanks_are_a_uniform_subset(memory):
    """nblank is uniform on {0, 1, 2} for 30 statements, and the blanks a uniform subset of the positions."""
    rows = 30000
    u = np.random.default_rng(0).random((rows, noise_draws(memory, 0.1)), dtype=np.float32)
    t = np.asarray(time_from_uniforms(jnp.asarray(u), jnp.full((rows,), 30), memory, 0.1))[:, :30]
    nblank = np.floor(u[:, 0] * 3).astype(int)
    np.testing.assert_allclose(np.bincount(nblank) / rows, [1 / 3] * 3, atol=0.015)
    position = np.zeros(32)
    adjacent = []
    for i in np.flatnonzero(nblank == 2):
        blanks = np.setdiff1d(np.arange(32), t[i])
        assert len(blanks) == 2 and np.all(np.diff(t[i]) > 0)
        position[blanks] += 1
        adjacent.append(blanks[1] - blanks[0] == 1)
    # every position equally likely (2/32); adjacent pairs: 31 of the C(32, 2) = 496 subsets
    np.testing.assert_allclose(position / (nblank == 2).sum(), 2 / 32, atol=0.012)
    assert abs(np.mean(adjacent) - 31 / 496) < 0.012


def test_model_gradients():
    with jax.enable_x64(True):
        cfg = MemN2NConfig(vocab_size=V, memory_size=M, dim=3, hops=2)
        model = MemN2N(cfg)
        params = jax.tree.map(lambda x: x.astype(jnp.float64), model.init(jax.random.key(5)))
        sentences, story, query = (jnp.asarray(a) for a in make_inputs())

        def loss(params):
            logits, _ = model.apply(params, sentences, story, query)
            return jax.nn.logsumexp(logits) - logits[4]

        check_grads(loss, (params,), order=1, modes=["rev"])


@pytest.mark.parametrize("kw", [{}, {"pe_formula": "paper"}, {"encoding": "bow"}, {"pe_length": 9}])
def test_host_bags_equal_the_traced_bags(kw):
    from memjax.ops.encoding import bags_of_words

    model = MemN2N(MemN2NConfig(vocab_size=V, memory_size=M, dim=5, **kw))
    sentences, _, _ = make_inputs()
    c = model.cfg
    ref = np.stack([np.asarray(bags_of_words(jnp.asarray(s), V, c.encoding, c.pe_formula, c.pe_length, c.dim)[0])
                    for s in sentences])
    np.testing.assert_allclose(model.bags(sentences), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("noise", [False, True])
def test_memory_cut_to_occupied_slots_and_padded_vocabulary_change_nothing(noise):
    """Empty slots are counted, not stored: a story cut to its occupied width, with the vocabulary
    padded and masked, answers exactly as the full memory does (with random time noise too)."""
    model = MemN2N(MemN2NConfig(vocab_size=V, memory_size=M, dim=5))
    wide = MemN2N(MemN2NConfig(vocab_size=V + 4, memory_size=M, dim=5))
    params = model.init(jax.random.key(6))
    padded = jax.tree.map(lambda a: jnp.pad(a, ((0, 4), (0, 0))) if a.shape[0] == V else a, params)
    examples = [make_inputs(seed=s, n_sent=1 + s % 3) for s in range(6)]
    sentences = examples[0][0]
    story = np.stack([e[1] for e in examples])
    query = np.stack([e[2] for e in examples])
    time = None
    if noise:
        time = random_time(jax.random.key(1), jnp.sum(jnp.asarray(story) != 0, axis=1), M, 0.5)
    full, att = model.batch_logits(params, jnp.asarray(model.bags(sentences)), jnp.asarray(story),
                                   jnp.asarray(model.bags(query)), time=time)
    bags = lambda ids: jnp.asarray(np.pad(model.bags(ids), ((0, 0), (0, 0), (0, 4))))
    # with noise, only the temporal tables' first rows are needed: times of stories of at most 3
    # statements are below 3 + noise_spread(3, 0.5) = 4 (see test_every_slot_time_is_below_memory_plus_spread)
    rows = None if time is None else 3 + noise_spread(3, 0.5)
    if time is not None:
        assert int(jnp.max(jnp.where(jnp.asarray(story[:, :3]) != 0, time[:, :3], 0))) < rows < M
    for mode in ("project", "encode"):
        cut_model = MemN2N(MemN2NConfig(vocab_size=V + 4, memory_size=M, dim=5, memory_reads=mode))
        cut, att_cut = cut_model.batch_logits(padded, bags(sentences), jnp.asarray(story[:, :3]), bags(query),
                                              time=None if time is None else time[:, :3],
                                              answers=jnp.arange(V + 4) < V, time_rows=rows)
        np.testing.assert_allclose(cut[:, :V], full, rtol=1e-5, atol=1e-6)
        assert np.all(np.asarray(cut[:, V:]) < -1e29)
        np.testing.assert_allclose(att_cut, att[:, :, :3], rtol=1e-5, atol=1e-7)
    assert np.all(story[:, 3:] == 0)


@pytest.mark.parametrize("kw", [{}, {"tying": "layerwise"}, {"attend_empty": False}])
def test_long_memory_streaming_path_equals_the_batched_path(kw):
    """Chunked scoring with a streaming softmax gives the logits of the whole-memory computation."""
    m = 37  # not a multiple of the chunk: the last chunk is padded with empty slots
    model = MemN2N(MemN2NConfig(vocab_size=V, memory_size=m, dim=5, **kw))
    params = model.init(jax.random.key(8))
    rng = np.random.default_rng(0)
    sentences = rng.integers(1, V, (U, L)) * (rng.random((U, L)) < 0.8)
    sentences[0] = 0
    story = np.zeros((4, m), np.int64)
    for i, n in enumerate([37, 20, 1, 0]):  # full, part-full, one statement, empty
        story[i, :n] = rng.integers(1, U, n)
    query = rng.integers(1, V, (4, Q))
    bags, qbags = jnp.asarray(model.bags(sentences)), jnp.asarray(model.bags(query))
    full, _ = model.batch_logits(params, bags, jnp.asarray(story), qbags)
    for chunk in (8, 37, 64):
        long = model.long_logits(params, bags, jnp.asarray(story), qbags, chunk=chunk)
        np.testing.assert_allclose(long, full, rtol=2e-5, atol=2e-6)


def test_streaming_read_equals_softmax_read():
    from memjax.ops import read, softmax_with_empty, streaming_read

    rng = np.random.default_rng(1)
    scores = jnp.asarray(rng.normal(size=(3, 12)) * 5, jnp.float32)
    mask = jnp.asarray(rng.random((3, 12)) < 0.6).at[2].set(False)  # the last row has no statement
    values = jnp.asarray(rng.normal(size=(3, 12, 4)), jnp.float32)
    n_empty = jnp.asarray([0.0, 3.0, 2.0])
    ref = jax.vmap(read)(softmax_with_empty(scores, mask, n_empty), values)
    chunks = lambda c: tuple(jax.lax.dynamic_slice_in_dim(a, c * 4, 4, axis=1) for a in (scores, mask, values))
    np.testing.assert_allclose(streaming_read(chunks, 3, 3, 4, n_empty), ref, rtol=1e-5, atol=1e-6)


def test_grow_memory_keeps_the_answers_and_repeats_the_last_time_row():
    small = MemN2N(MemN2NConfig(vocab_size=V, memory_size=M, dim=5, attend_empty=False))
    big = MemN2N(MemN2NConfig(vocab_size=V, memory_size=M + 4, dim=5, attend_empty=False))
    params = small.init(jax.random.key(9))
    grown = big.grow_memory(params, M + 4)
    for t_small, t_big in zip(params["temporal"], grown["temporal"]):
        np.testing.assert_array_equal(t_big[:M], t_small)
        np.testing.assert_array_equal(t_big[M:], np.repeat(t_small[-1:], 4, axis=0))
    sentences, story, query = make_inputs()
    a, _ = small.apply(params, jnp.asarray(sentences), jnp.asarray(story), jnp.asarray(query))
    b, _ = big.apply(grown, jnp.asarray(sentences), jnp.asarray(np.pad(story, (0, 4))), jnp.asarray(query))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert big.grow_memory(grown, M)["temporal"][0].shape == (M, 5)
