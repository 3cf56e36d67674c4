"""Sentence encodings for one example: bag of words, position encoding, temporal encoding."""

from __future__ import annotations

import jax.numpy as jnp


def position_weights(mask: jnp.ndarray, dim: int, formula: str = "paper", length: int | None = None) -> jnp.ndarray:
    """Position-encoding weights l_kj for one sentence.

    Args:
        mask: (L,) bool, True for the J words present (a prefix of the L slots).
        dim: the embedding size d.
        formula: ``"paper"``: l_kj = (1 - j/J) - (k/d)(1 - 2j/J) (Sukhbaatar et al. 2015, eq. 4.1);
            ``"official"``: l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J), the form used in the
            authors' Matlab code. j = 1..J and k = 1..d.
        length: J. None (default): the sentence's own length, as in the paper; an int: one fixed J
            for every sentence, as the authors' code does with the padded length.

    Returns:
        (L, dim) weights, zero at padding positions.
    """
    J = jnp.float32(length) if length else jnp.maximum(jnp.sum(mask), 1).astype(jnp.float32)
    j = jnp.arange(1, mask.shape[0] + 1, dtype=jnp.float32)[:, None]
    k = jnp.arange(1, dim + 1, dtype=jnp.float32)[None, :]
    if formula == "paper":
        l = (1.0 - j / J) - (k / dim) * (1.0 - 2.0 * j / J)
    elif formula == "official":
        l = 1.0 + 4.0 * (k - (dim + 1) / 2.0) * (j - (J + 1) / 2.0) / (dim * J)
    else:
        raise ValueError(f"unknown position-encoding formula {formula!r}")
    return l * mask[:, None]


def encode_sentence(embedding: jnp.ndarray, ids: jnp.ndarray, encoding: str = "pe",
                    formula: str = "paper", length: int | None = None) -> jnp.ndarray:
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
