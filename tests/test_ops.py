import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from np_reference import np_position_weights

from memjax.ops import address, bags_of_words, encode_sentence, hop, masked_softmax, position_weights, read, temporal_encoding

rng = np.random.default_rng(0)


def np_softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("formula", ["paper", "official"])
@pytest.mark.parametrize("J", [1, 4, 7])
def test_position_weights_match_numpy(formula, J):
    L, d = 7, 5
    mask = jnp.arange(L) < J
    np.testing.assert_allclose(position_weights(mask, d, formula), np_position_weights(J, L, d, formula),
                               rtol=1e-6, atol=1e-6)


def test_position_weights_with_a_fixed_length():
    """The authors' code uses one J (the padded length) for every sentence."""
    mask = jnp.arange(7) < 3
    np.testing.assert_allclose(position_weights(mask, 5, "official", length=7),
                               np_position_weights(3, 7, 5, "official", J=7), rtol=1e-6, atol=1e-6)


def test_encode_sentence_bow_and_pe():
    V, d = 9, 4
    E = rng.normal(size=(V, d)).astype(np.float32)
    E[0] = 0
    ids = np.array([3, 5, 2, 0, 0])
    np.testing.assert_allclose(encode_sentence(jnp.asarray(E), jnp.asarray(ids), "bow"), E[[3, 5, 2]].sum(0),
                               rtol=1e-6)
    l = np_position_weights(3, 5, d, "paper")
    np.testing.assert_allclose(encode_sentence(jnp.asarray(E), jnp.asarray(ids), "pe", "paper"),
                               (l * E[ids]).sum(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("encoding, formula, length", [("bow", "official", None), ("pe", "paper", None),
                                                       ("pe", "official", None), ("pe", "official", 6)])
def test_bags_of_words_encode_like_the_word_sum(encoding, formula, length):
    V, d = 9, 4
    E = rng.normal(size=(V, d)).astype(np.float32)
    E[0] = 0
    ids = jnp.array([3, 5, 3, 0, 0])
    bags, g = bags_of_words(ids, V, encoding, formula, length, d)
    np.testing.assert_allclose(jnp.sum(g * (bags @ E), axis=0), encode_sentence(jnp.asarray(E), ids, encoding,
                                                                                 formula, length), rtol=1e-5, atol=1e-6)


def test_temporal_encoding_is_a_lookup():
    T = rng.normal(size=(6, 3)).astype(np.float32)
    time = np.array([0, 2, 2, 5, 1, 3])
    np.testing.assert_array_equal(temporal_encoding(jnp.asarray(T), jnp.asarray(time)), T[time])


def test_masked_softmax_matches_numpy_and_equals_sliced():
    scores = rng.normal(size=8).astype(np.float32)
    mask = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)
    p = np.asarray(masked_softmax(jnp.asarray(scores), jnp.asarray(mask)))
    expected = np.zeros(8)
    expected[mask] = np_softmax(scores[mask])
    np.testing.assert_allclose(p, expected, rtol=1e-6, atol=1e-7)
    # masked equals sliced: padding a memory of 5 slots with 3 masked ones changes nothing
    prefix = np.arange(8) < 5
    padded = np.asarray(masked_softmax(jnp.asarray(scores), jnp.asarray(prefix)))
    sliced = np.asarray(masked_softmax(jnp.asarray(scores[:5]), jnp.ones(5, bool)))
    np.testing.assert_allclose(padded[:5], sliced, rtol=1e-6)
    assert np.all(padded[5:] == 0)
    assert np.all(np.asarray(masked_softmax(jnp.asarray(scores), jnp.zeros(8, bool))) == 0)


def test_address_linear_drops_the_softmax():
    u = rng.normal(size=4).astype(np.float32)
    m = rng.normal(size=(5, 4)).astype(np.float32)
    mask = np.array([1, 1, 1, 1, 0], bool)
    lin = np.asarray(address(jnp.asarray(u), jnp.asarray(m), jnp.asarray(mask), linear=True))
    np.testing.assert_allclose(lin, np.where(mask, m @ u, 0), rtol=1e-6)


def test_hop_matches_numpy():
    d, M = 6, 10
    u = rng.normal(size=d).astype(np.float32)
    keys = rng.normal(size=(M, d)).astype(np.float32)
    values = rng.normal(size=(M, d)).astype(np.float32)
    mask = np.arange(M) < 7
    p = np.zeros(M)
    p[mask] = np_softmax(keys[mask] @ u)
    u2, p2 = hop(jnp.asarray(u), jnp.asarray(keys), jnp.asarray(values), jnp.asarray(mask))
    np.testing.assert_allclose(p2, p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(u2, u + p @ values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(read(jnp.asarray(p), jnp.asarray(values)), p @ values, rtol=1e-5, atol=1e-6)


def test_gradients_of_ops():
    with jax.enable_x64(True):
        d, M = 4, 6
        r = np.random.default_rng(1)
        u = jnp.asarray(r.normal(size=d))
        keys = jnp.asarray(r.normal(size=(M, d)))
        values = jnp.asarray(r.normal(size=(M, d)))
        mask = jnp.arange(M) < 4
        check_grads(lambda u, k, v: hop(u, k, v, mask)[0], (u, keys, values), order=2, modes=["fwd", "rev"])
        check_grads(lambda s: masked_softmax(s, mask), (jnp.asarray(r.normal(size=M)),), order=2)
        E = jnp.asarray(r.normal(size=(7, d)))
        check_grads(lambda E: encode_sentence(E, jnp.array([1, 4, 2, 0]), "pe"), (E,), order=1, modes=["rev"])
