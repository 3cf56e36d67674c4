"""End-To-End Memory Networks (Sukhbaatar, Szlam, Weston & Fergus, 2015).

The math is written for one example (:meth:`MemN2N.apply`) and batched with ``jax.vmap`` once, in
:meth:`MemN2N.logits`. Parameters are plain pytrees (dicts and lists of arrays); Flax's
initialisers build them, so ``jax.vmap(model.init)(keys)`` makes the parameters of many runs at once.

Embedding matrices are stored as (V, d) arrays, the transpose of the paper's d x V, so that row w is
the vector of word w and row 0 (padding) stays zero.

Weight tying (section 2.2 of the paper):

- ``adjacent``: K+1 embeddings E_0..E_K; B = E_0, A^k = E_{k-1}, C^k = E_k and W^T = C^K;
  u^{k+1} = u^k + o^k. Temporal tables are tied the same way.
- ``layerwise``: A^k = A, C^k = C for every hop, separate B and W, and u^{k+1} = H u^k + o^k.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.ops.addressing import address, hop, read
from memjax.ops.encoding import bags_of_words, encode_sentence, temporal_encoding

VOCAB_PARAMS = ("embed", "A", "B", "C", "W")


@dataclasses.dataclass(frozen=True)
class MemN2NConfig:
    """MemN2N hyperparameters; the defaults are the per-task bAbI recipe of the paper's code.

    Two defaults follow the authors' code rather than the paper's text, because the published
    numbers were made with it and they matter on bAbI (measured on validation data, see README):
    position encoding with the code's formula and one fixed J (``pe_formula="official"``, J set to
    the padded length by :func:`memjax.train.protocol.build_configs`), and empty memory slots that
    take part in the attention softmax as zero vectors (``attend_empty=True``).
    """

    vocab_size: int
    memory_size: int = 50
    dim: int = 20
    hops: int = 3
    encoding: str = "pe"  # "bow" or "pe"
    pe_formula: str = "official"  # "official" (the authors' code) or "paper"
    pe_length: int | None = None  # J of position encoding: None = each sentence's own length
    temporal: bool = True
    attend_empty: bool = True  # empty slots join the softmax as zero vectors (the authors' code)
    tying: str = "adjacent"  # "adjacent" or "layerwise"
    init_std: float = 0.1

    def __post_init__(self):
        if self.encoding not in ("bow", "pe"):
            raise ValueError(f"encoding must be 'bow' or 'pe', got {self.encoding!r}")
        if self.tying not in ("adjacent", "layerwise"):
            raise ValueError(f"tying must be 'adjacent' or 'layerwise', got {self.tying!r}")
        if self.hops < 1 or self.dim < 1 or self.memory_size < 1 or self.vocab_size < 3:
            raise ValueError("hops, dim and memory_size must be positive and the vocabulary non-trivial")


def random_time(key: jax.Array, occupied: jnp.ndarray, memory: int, noise: float) -> jnp.ndarray:
    """Time indices with random noise (RN): empty memories inserted at random time positions.

    As in the authors' code: a story with n statements draws nblank uniformly from
    {0, ..., ceil(noise * n) - 1}, then a random sorted subset of n time indices out of
    {0, ..., n + nblank - 1}; the most recent statement gets the smallest. Indices past the table
    are clamped to its last row.

    Args:
        key: PRNG key.
        occupied: (B,) int number of statements in each story's memory.
        memory: M, the number of slots (and rows of the time table).
        noise: the fraction of empty memories (0.1 in the paper).

    Returns:
        (B, M) int32 time indices, non-decreasing along the slots (slot 0 = most recent).
    """
    width = memory + int(math.ceil(noise * memory))
    k_blank, k_order = jax.random.split(key)
    n = occupied.astype(jnp.int32)
    limit = jnp.ceil(noise * n.astype(jnp.float32))
    nblank = jnp.floor(jax.random.uniform(k_blank, n.shape) * limit).astype(jnp.int32)
    scores = jax.random.uniform(k_order, (n.shape[0], width))
    positions = jnp.arange(width)
    scores = jnp.where(positions[None, :] < (n + nblank)[:, None], scores, 2.0)  # only {0..n+nblank-1}
    chosen = jnp.argsort(scores, axis=1)[:, :memory]  # a random subset, first n entries valid
    chosen = jnp.where(jnp.arange(memory)[None, :] < n[:, None], chosen, width)
    return jnp.minimum(jnp.sort(chosen, axis=1), memory - 1).astype(jnp.int32)


class MemN2N:
    """End-To-End Memory Network for question answering over a vocabulary."""

    name = "memn2n"

    def __init__(self, cfg: MemN2NConfig):
        self.cfg = cfg

    def init(self, key: jax.Array) -> dict:
        """Draws parameters from N(0, init_std^2) with the padding rows set to zero."""
        c = self.cfg
        normal = nnx.initializers.normal(c.init_std)
        keys = iter(jax.random.split(key, 2 * c.hops + 8))

        def vocab_matrix():
            return normal(next(keys), (c.vocab_size, c.dim)).at[0].set(0.0)

        def time_table():
            return normal(next(keys), (c.memory_size, c.dim))

        if c.tying == "adjacent":
            params = {"embed": [vocab_matrix() for _ in range(c.hops + 1)]}
            if c.temporal:
                params["temporal"] = [time_table() for _ in range(c.hops + 1)]
            return params
        params = {"A": vocab_matrix(), "B": vocab_matrix(), "C": vocab_matrix(), "W": vocab_matrix(),
                  "H": normal(next(keys), (c.dim, c.dim))}
        if c.temporal:
            params["TA"], params["TC"] = time_table(), time_table()
        return params

    def padding_mask(self, params: dict) -> dict:
        """A pytree of multipliers for the gradients: 0 on the padding row of vocabulary matrices."""
        row = jnp.ones((self.cfg.vocab_size, 1)).at[0].set(0.0)
        return {name: jax.tree.map(lambda _: row if name in VOCAB_PARAMS else 1.0, value)
                for name, value in params.items()}

    def encode_sentences(self, params: dict, sentences: jnp.ndarray) -> list[jnp.ndarray]:
        """Encodes the distinct sentences with every embedding that reads memory, once for a batch.

        Each sentence becomes weighted bags of words (constants), so that its encoding under an
        embedding E is a dense product ``sum_r g_r * (bags_r @ E)``: the same value as the sum
        over words of :func:`memjax.ops.encode_sentence`, with a matrix product for a gradient
        instead of a scatter.

        Args:
            params: the parameter pytree.
            sentences: (U, L) word ids; row 0 is the empty sentence.

        Returns:
            a list of (U, d) tables: E_0..E_K (adjacent tying) or [A, C] (layer-wise).
        """
        c = self.cfg
        bags, g = jax.vmap(lambda s: bags_of_words(s, c.vocab_size, c.encoding, c.pe_formula, c.pe_length,
                                                   c.dim))(sentences)
        bags, g = jax.lax.stop_gradient(bags), g[0]  # (U, R, V), (R, d)
        matrices = params["embed"] if c.tying == "adjacent" else [params["A"], params["C"]]
        return [jnp.einsum("urv,vd,rd->ud", bags, E, g) for E in matrices]

    def apply(self, params: dict, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray,
              time: jnp.ndarray | None = None, linear=False):
        """Answers one question.

        Args:
            params: the parameter pytree.
            sentences: (U, L) word ids of the distinct sentences; row 0 is the empty sentence.
            story: (M,) rows of ``sentences`` in the memory slots (slot 0 = most recent), 0 = empty.
            query: (Q,) word ids of the question.
            time: (M,) time index of each slot (default: the slot index).
            linear: True during linear start (no softmax in the memory layers).

        Returns:
            (logits (V,), attention (hops, M)).
        """
        return self.answer(params, self.encode_sentences(params, sentences), story, query, time, linear)

    def answer(self, params: dict, tables: list[jnp.ndarray], story: jnp.ndarray, query: jnp.ndarray,
               time: jnp.ndarray | None = None, linear=False):
        """:meth:`apply` with the sentences already encoded by :meth:`encode_sentences`."""
        c = self.cfg
        occupied = story != 0
        # Empty slots are masked out of the softmax, or (attend_empty) hold zero vectors that
        # still take a share of it, as in the authors' code.
        mask = jnp.ones_like(occupied) if c.attend_empty else occupied
        if time is None:
            time = jnp.arange(story.shape[0])

        def memory(table, temporal):
            m = table[story]
            if c.temporal:
                m = m + temporal_encoding(temporal, time) * occupied[:, None]
            return m

        def encode(embedding, ids):
            return encode_sentence(embedding, ids, c.encoding, c.pe_formula, c.pe_length)

        attention = []
        if c.tying == "adjacent":
            E = params["embed"]
            T = params.get("temporal", [None] * (c.hops + 1))
            mems = [memory(tables[k], T[k]) for k in range(c.hops + 1)]
            u = encode(E[0], query)
            for k in range(c.hops):
                u, p = hop(u, mems[k], mems[k + 1], mask, linear)
                attention.append(p)
            logits = E[c.hops] @ u
        else:
            keys = memory(tables[0], params.get("TA"))
            values = memory(tables[1], params.get("TC"))
            u = encode(params["B"], query)
            for _ in range(c.hops):
                p = address(u, keys, mask, linear)
                u = params["H"] @ u + read(p, values)
                attention.append(p)
            logits = params["W"] @ u
        return logits, jnp.stack(attention)

    def logits(self, params: dict, sentences: jnp.ndarray, batch: dict, key: jax.Array | None = None,
               linear=False, noise: float = 0.0):
        """Answers a batch: ``batch["story"]`` (B, M) and ``batch["query"]`` (B, Q).

        With ``key`` and ``noise > 0`` the time indices get random noise (training only).
        Distinct sentences are encoded once per call; when the table is larger than the batch's
        memory, the batch's own sentences are encoded instead (same result, less work).

        Returns:
            (logits (B, V), attention (B, hops, M)).
        """
        story, query = batch["story"], batch["query"]
        b, m = story.shape
        if sentences.shape[0] > b * m:
            sentences = jnp.concatenate([jnp.zeros_like(sentences[:1]), sentences[story.reshape(-1)]])
            story = jnp.where(story != 0, 1 + jnp.arange(b * m, dtype=story.dtype).reshape(b, m), 0)
        if key is not None and noise > 0:
            time = random_time(key, jnp.sum(story != 0, axis=1), m, noise)
        else:
            time = jnp.broadcast_to(jnp.arange(m), (b, m))
        tables = self.encode_sentences(params, sentences)
        return jax.vmap(self.answer, in_axes=(None, None, 0, 0, 0, None))(params, tables, story, query, time, linear)
