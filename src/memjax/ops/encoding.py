"""Sentence encodings for one example: bag of words, position encoding, temporal encoding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def padding_row_mask(vocab_size: int) -> np.ndarray:
    """(V, 1) gradient multipliers for a (V, d) embedding: 0 on row 0 (the padding word), 1 elsewhere.

    A NumPy constant: built with an eager ``jnp`` update it compiled a program of its own.
    """
    mask = np.ones((vocab_size, 1), np.float32)
    mask[0] = 0.0
    return mask


def position_factors(mask: jnp.ndarray, dim: int, formula: str = "official",
                     length: int | None = None, xp=jnp) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Position encoding as a sum of two outer products: l_kj = sum_r a_jr g_rk.

    Both formulas are separable in (j, k), which lets a sentence be encoded as two weighted bags
    of words times the embedding matrix (see :func:`bags_of_words`).

    - ``"paper"``: l_kj = (1 - j/J) - (k/d)(1 - 2j/J) (Sukhbaatar et al. 2015, section 4.1):
      a_j = (1 - j/J, 1 - 2j/J), g_k = (1, -k/d).
    - ``"official"``: l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J), the authors' code:
      a_j = (1, (j - (J+1)/2) / J), g_k = (1, 4 (k - (d+1)/2) / d).

    Args:
        mask: (L,) bool, True for the words present (a prefix of the L slots).
        dim: the embedding size d.
        formula: ``"paper"`` or ``"official"``; j = 1..J and k = 1..d.
        length: J. None: the sentence's own length, as in the paper; an int: one fixed J for every
            sentence, as the authors' code does with the padded length.
        xp: the array module: ``jax.numpy``, or ``numpy`` for host-side precomputation.

    Returns:
        (a (L, 2), zero at padding positions; g (2, dim)).
    """
    J = xp.float32(length) if length else xp.maximum(xp.sum(mask), 1).astype(xp.float32)
    j = xp.arange(1, mask.shape[0] + 1, dtype=xp.float32)
    k = xp.arange(1, dim + 1, dtype=xp.float32)
    if formula == "paper":
        a = xp.stack([1.0 - j / J, 1.0 - 2.0 * j / J], axis=1)
        g = xp.stack([xp.ones(dim, xp.float32), -k / dim])
    elif formula == "official":
        a = xp.stack([xp.ones_like(j), (j - (J + 1) / 2.0) / J], axis=1)
        g = xp.stack([xp.ones(dim, xp.float32), 4.0 * (k - (dim + 1) / 2.0) / dim])
    else:
        raise ValueError(f"unknown position-encoding formula {formula!r}")
    return a * mask[:, None], g


def position_weights(mask: jnp.ndarray, dim: int, formula: str = "official", length: int | None = None) -> jnp.ndarray:
    """Position-encoding weights l_kj for one sentence, (L, dim), zero at padding positions.

    See :func:`position_factors` for the formulas and arguments.
    """
    a, g = position_factors(mask, dim, formula, length)
    return a @ g


def bags_of_words(ids: jnp.ndarray, vocab_size: int, encoding: str = "pe", formula: str = "official",
                  length: int | None = None, dim: int = 1) -> tuple[jnp.ndarray, jnp.ndarray]:
    """A sentence as weighted bags of words, so that its encoding is ``sum_r g_r * (bags_r @ E)``.

    Args:
        ids: (L,) word ids, 0-padded.
        vocab_size: V.
        encoding, formula, length: as in :func:`encode_sentence`.
        dim: the embedding size d (for the factors g).

    Returns:
        (bags (R, V), g (R, dim)); R = 1 for bag of words, 2 for position encoding.
    """
    mask = ids != 0
    if encoding == "bow":
        a, g = mask[:, None].astype(jnp.float32), jnp.ones((1, dim))
    elif encoding == "pe":
        a, g = position_factors(mask, dim, formula, length)
    else:
        raise ValueError(f"unknown encoding {encoding!r}: use 'bow' or 'pe'")
    return jnp.einsum("lv,lr->rv", jax.nn.one_hot(ids, vocab_size, dtype=a.dtype), a), g


def encode_sentence(embedding: jnp.ndarray, ids: jnp.ndarray, encoding: str = "pe",
                    formula: str = "official", length: int | None = None) -> jnp.ndarray:
    """Encodes one sentence as sum_j l_j * E[x_j] (bag of words: l_j = 1).

    Args:
        embedding: (V, d) embedding matrix; row 0 (padding) is expected to be zero.
        ids: (L,) word ids, 0-padded.
        encoding: ``"bow"`` or ``"pe"``.
        formula, length: see :func:`position_weights`.

    Returns:
        (d,) sentence vector.
    """
    vectors = jnp.take(embedding, ids, axis=0)  # (L, d)
    mask = ids != 0
    if encoding == "bow":
        return jnp.sum(vectors * mask[:, None], axis=0)
    if encoding == "pe":
        return jnp.sum(vectors * position_weights(mask, embedding.shape[-1], formula, length), axis=0)
    raise ValueError(f"unknown encoding {encoding!r}: use 'bow' or 'pe'")


def temporal_encoding(table: jnp.ndarray, time: jnp.ndarray) -> jnp.ndarray:
    """Temporal encoding T(i) for each memory slot.

    Args:
        table: (M, d) one learned vector per time index (index 0 = the most recent statement).
        time: (M,) int time index of each slot.

    Returns:
        (M, d).
    """
    return table[time]


def weighted_bags(ids, vocab_size: int, dim: int, encoding: str = "pe", formula: str = "official",
                  length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bags_of_words` of many sentences at once, on the host (NumPy): computed once per dataset.

    Args:
        ids: (N, L) word ids, 0-padded.
        vocab_size, dim, encoding, formula, length: as in :func:`bags_of_words`.

    Returns:
        (bags (N, R, V) float32 with the padding word's column zero; g (R, dim)): the encoding of
        row i under an embedding E is ``sum_r g_r * (bags[i, r] @ E)``.
    """
    ids = np.asarray(ids, np.int64)
    n, width = ids.shape
    lengths = (ids != 0).sum(axis=1)

    def word_weights(k):  # (width, R): the weights depend only on the position and the sentence's length
        mask = np.arange(width) < k
        if encoding == "bow":
            return mask[:, None].astype(np.float32)
        if encoding != "pe":
            raise ValueError(f"unknown encoding {encoding!r}: use 'bow' or 'pe'")
        return position_factors(mask, dim, formula, length, xp=np)[0].astype(np.float32)

    weights = np.stack([word_weights(k) for k in range(width + 1)])[lengths] * (ids != 0)[:, :, None]  # (N, L, R)
    out = np.zeros((n, weights.shape[2], vocab_size), np.float32)
    rows = np.broadcast_to(np.arange(n)[:, None], ids.shape)
    for r in range(weights.shape[2]):
        np.add.at(out[:, r], (rows, ids), weights[:, :, r])
    out[:, :, 0] = 0.0  # padding
    if encoding == "bow":
        g = np.ones((1, dim), np.float32)
    else:
        g = np.asarray(position_factors(np.ones(1, bool), dim, formula, length, xp=np)[1], np.float32)
    return out, g
