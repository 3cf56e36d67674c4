"""MemN2N modules (Sukhbaatar et al. 2015) over the pure ops in :mod:`memjax.ops` (encoding, addressing).

Embedding matrices are (V, d), row w the vector of word w, as in :mod:`memjax.models.memn2n`; row 0
(the padding word) is initialised to zero. MemN2N's initialisation: every matrix N(0, 0.1^2).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.nn._util import load, over_batch, values as param_values
from memjax.ops import address, encode_sentence, hop, read, temporal_encoding

Array = jax.Array


def _vocab_init(init: Callable, key: Array, vocab_size: int, dim: int) -> Array:
    """A (V, d) matrix drawn by ``init`` with row 0 (padding) zero."""
    return init(key, (vocab_size, dim), jnp.float32).at[0].set(0.0)


class PositionEncoding(nnx.Module):
    """Sentence reader: word embedding E and position encoding, m = sum_j l_j * E[x_j] (MemN2N section 4.1).

    Wraps :func:`memjax.ops.encode_sentence`. Parameter: ``embedding`` (V, d), drawn by
    ``embedding_init`` (default N(0, 0.1^2), MemN2N's; DMN+ uses U(-sqrt 3, sqrt 3)) with row 0
    (padding) zero.

    Args:
        vocab_size: V.
        dim: d.
        encoding: ``"pe"`` (position encoding) or ``"bow"`` (bag of words, l_j = 1).
        formula: ``"official"`` (the authors' code) or ``"paper"``; see :func:`memjax.ops.position_factors`.
        length: J of the formula: None for each sentence's own length, an int for one fixed J.
        embedding_init: initializer of the (V, d) embedding.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, vocab_size: int, dim: int, *, encoding: str = "pe", formula: str = "official",
                 length: int | None = None, embedding_init: Callable = nnx.initializers.normal(0.1),
                 rngs: nnx.Rngs):
        if encoding not in ("pe", "bow"):
            raise ValueError(f"encoding must be 'pe' or 'bow', got {encoding!r}")
        if formula not in ("official", "paper"):
            raise ValueError(f"formula must be 'official' or 'paper', got {formula!r}")
        self.encoding, self.formula, self.length = encoding, formula, length
        self.embedding = nnx.Param(_vocab_init(embedding_init, rngs.params(), vocab_size, dim))

    def __call__(self, ids: Array) -> Array:
        """Encodes sentences.

        Args:
            ids: (..., L) int word ids, 0-padded; any leading batch axes.

        Returns:
            (..., d) sentence vectors.
        """
        E = self.embedding[...]
        return over_batch(lambda x: encode_sentence(E, x, self.encoding, self.formula, self.length), (1,), ids)

    def embed(self, ids: Array) -> Array:
        """The word vectors E[ids]: (...) int -> (..., d) (for a reader of words, e.g. a GRU)."""
        return jnp.take(self.embedding[...], ids, axis=0)

    def params(self) -> dict[str, Array]:
        """``{"embedding": (V, d)}``, the array :func:`memjax.ops.encode_sentence` takes."""
        return param_values(self, ["embedding"])

    @classmethod
    def from_params(cls, params: dict, **options) -> "PositionEncoding":
        """A module holding ``params["embedding"]`` (V, d); ``options``: the constructor's keywords."""
        v, d = jnp.shape(params["embedding"])
        module = cls(v, d, **options, rngs=nnx.Rngs(0))
        load(module, params, ["embedding"])
        return module


class TemporalEncoding(nnx.Module):
    """Temporal encoding T(i): one learned vector per memory slot's time index (MemN2N section 4.1).

    Wraps :func:`memjax.ops.temporal_encoding`. Parameter: ``table`` (M, d), N(0, init_std^2).

    Args:
        memory_size: M, the rows of the table (time indices 0..M-1; 0 = the most recent statement).
        dim: d.
        init_std: the standard deviation of the initial table.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, memory_size: int, dim: int, *, init_std: float = 0.1, rngs: nnx.Rngs):
        self.table = nnx.Param(nnx.initializers.normal(init_std)(rngs.params(), (memory_size, dim), jnp.float32))

    def __call__(self, time: Array) -> Array:
        """The vectors of time indices.

        Args:
            time: (..., M) int time index of each slot.

        Returns:
            (..., M, d).
        """
        return temporal_encoding(self.table[...], time)

    def params(self) -> dict[str, Array]:
        """``{"table": (M, d)}``."""
        return param_values(self, ["table"])

    @classmethod
    def from_params(cls, params: dict) -> "TemporalEncoding":
        """A module holding ``params["table"]`` (M, d)."""
        m, d = jnp.shape(params["table"])
        module = cls(m, d, rngs=nnx.Rngs(0))
        load(module, params, ["table"])
        return module


class MemoryHop(nnx.Module):
    """One MemN2N hop: p = softmax(u . m_i) over the keys, o = sum_i p_i c_i, u' = u + o (or H u + o).

    Wraps :func:`memjax.ops.hop` (adjacent tying: no parameters), or :func:`memjax.ops.address` and
    :func:`memjax.ops.read` with the layer-wise map ``H`` (d, d), N(0, init_std^2).

    Args:
        dim: d.
        layerwise: True for the layer-wise update u' = H u + o (a parameter ``H``).
        init_std: standard deviation of H's initial values.
        rngs: ``nnx.Rngs`` with a ``params`` stream (needed only when ``layerwise``).
    """

    def __init__(self, dim: int, *, layerwise: bool = False, init_std: float = 0.1, rngs: nnx.Rngs | None = None):
        self.layerwise = layerwise
        if layerwise:
            if rngs is None:
                raise ValueError("a layer-wise MemoryHop needs rngs for H")
            self.H = nnx.Param(nnx.initializers.normal(init_std)(rngs.params(), (dim, dim), jnp.float32))

    def __call__(self, u: Array, keys: Array, values: Array, mask: Array, linear: bool | Array = False
                 ) -> tuple[Array, Array]:
        """Reads memory once.

        Args:
            u: (..., d) controller state.
            keys: (..., M, d) input memory vectors m_i.
            values: (..., M, d) output memory vectors c_i.
            mask: (..., M) bool, the slots that take part in the softmax.
            linear: True (may be a traced scalar) for linear start: no softmax, p_i = u . m_i.

        Returns:
            (u' (..., d), attention p (..., M)).
        """
        if not self.layerwise:
            return over_batch(lambda u_, k, v, m: hop(u_, k, v, m, linear), (1, 2, 2, 1), u, keys, values, mask)
        H = self.H[...]

        def one(u_, k, v, m):
            p = address(u_, k, m, linear)
            return H @ u_ + read(p, v), p

        return over_batch(one, (1, 2, 2, 1), u, keys, values, mask)

    def params(self) -> dict[str, Array]:
        """``{"H": (d, d)}`` (layer-wise) or ``{}``."""
        return param_values(self, ["H"]) if self.layerwise else {}

    @classmethod
    def from_params(cls, params: dict, dim: int | None = None) -> "MemoryHop":
        """A layer-wise hop holding ``params["H"]`` (d, d), or an adjacent one (no parameters) for ``{}``
        (then ``dim`` is d, which the hop does not depend on)."""
        if "H" not in params:
            return cls(dim or 0)
        module = cls(jnp.shape(params["H"])[0], layerwise=True, rngs=nnx.Rngs(0))
        load(module, params, ["H"])
        return module


class MultiHopRead(nnx.Module):
    """MemN2N's memory: K hops over a story, from the question's encoding u^1 to u^{K+1} (MemN2N section 2).

    The memory layers of :class:`memjax.models.memn2n.MemN2N` as modules: :class:`PositionEncoding`
    for the sentences and the question, :class:`TemporalEncoding` added to the occupied slots, and
    :class:`MemoryHop` K times. Weight tying (section 2.2):

    - ``adjacent``: K+1 encoders ``embed[0..K]``; B = E_0, A^k = E_{k-1}, C^k = E_k, and the answer
      matrix W^T = E_K; temporal tables ``temporal[0..K]`` tied the same way.
    - ``layerwise``: encoders ``A``, ``B``, ``C``, answer matrix ``W`` (V, d), temporal tables ``TA``,
      ``TC``, and u^{k+1} = H u^k + o^k (``hop.H``).

    Initialisation as MemN2N's: every matrix N(0, init_std^2), padding rows zero.

    Args:
        vocab_size: V.
        dim: d.
        hops: K.
        memory_size: M, the temporal tables' rows.
        tying: ``"adjacent"`` or ``"layerwise"``.
        encoding, formula, length: the sentence encoding (see :class:`PositionEncoding`).
        temporal: add temporal encoding to the memory vectors.
        attend_empty: empty slots (all-padding sentences) take part in the softmax as zero vectors,
            as in the authors' code; False masks them out.
        init_std: the standard deviation of every initial matrix.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, vocab_size: int, dim: int, hops: int = 3, memory_size: int = 50, *, tying: str = "adjacent",
                 encoding: str = "pe", formula: str = "official", length: int | None = None, temporal: bool = True,
                 attend_empty: bool = True, init_std: float = 0.1, rngs: nnx.Rngs):
        if tying not in ("adjacent", "layerwise"):
            raise ValueError(f"tying must be 'adjacent' or 'layerwise', got {tying!r}")
        self.tying, self.hops, self.temporal, self.attend_empty = tying, hops, temporal, attend_empty
        normal = nnx.initializers.normal(init_std)

        def encoder():
            return PositionEncoding(vocab_size, dim, encoding=encoding, formula=formula, length=length,
                                    embedding_init=normal, rngs=rngs)

        def table():
            return TemporalEncoding(memory_size, dim, init_std=init_std, rngs=rngs) if temporal else None

        if tying == "adjacent":
            self.embed = nnx.List([encoder() for _ in range(hops + 1)])
            self.time = nnx.List([table() for _ in range(hops + 1)]) if temporal else None
            self.hop = MemoryHop(dim)
        else:
            self.A, self.B, self.C = encoder(), encoder(), encoder()
            self.W = nnx.Param(_vocab_init(normal, rngs.params(), vocab_size, dim))
            self.TA, self.TC = table(), table()
            self.hop = MemoryHop(dim, layerwise=True, init_std=init_std, rngs=rngs)

    def __call__(self, story: Array, query: Array, time: Array | None = None, linear: bool | Array = False
                 ) -> tuple[Array, Array]:
        """Reads the memory for a question.

        Args:
            story: (..., M, L) word ids of the memory slots (slot 0 = the most recent statement); a slot
                of padding only is empty.
            query: (..., Q) word ids of the question.
            time: (..., M) int time index per slot (default: the slot index).
            linear: True (may be a traced scalar) during linear start (no softmax).

        Returns:
            (u^{K+1} (..., d), attention (..., K, M)).
        """
        occupied = jnp.any(story != 0, axis=-1)  # (..., M)
        mask = jnp.ones_like(occupied) if self.attend_empty else occupied
        if time is None:
            time = jnp.broadcast_to(jnp.arange(story.shape[-2]), occupied.shape)

        def memory(encoder: PositionEncoding, table: TemporalEncoding | None) -> Array:
            m = encoder(story)
            return m if table is None else m + table(time) * occupied[..., None]

        if self.tying == "adjacent":
            tables = self.time if self.temporal else [None] * (self.hops + 1)
            mems = [memory(e, t) for e, t in zip(self.embed, tables)]
            pairs = [(mems[k], mems[k + 1]) for k in range(self.hops)]
            u = self.embed[0](query)
        else:
            pairs = [(memory(self.A, self.TA), memory(self.C, self.TC))] * self.hops
            u = self.B(query)
        attention = []
        for keys, vals in pairs:
            u, p = self.hop(u, keys, vals, mask, linear)
            attention.append(p)
        return u, jnp.stack(attention, axis=-2)

    def output_matrix(self) -> Array:
        """(V, d) answer matrix: E_K (adjacent tying) or W (layer-wise)."""
        return self.embed[self.hops].embedding[...] if self.tying == "adjacent" else self.W[...]

    def logits(self, u: Array) -> Array:
        """MemN2N's answer a = softmax(W u): (..., d) -> (..., V) logits."""
        return u @ self.output_matrix().T

    def params(self) -> dict:
        """The parameters in :class:`memjax.models.memn2n.MemN2N`'s layout.

        Adjacent: ``{"embed": [E_0..E_K], "temporal": [T_0..T_K]}``; layer-wise: ``{"A", "B", "C", "W",
        "H", "TA", "TC"}`` (temporal tables only with ``temporal``).
        """
        if self.tying == "adjacent":
            out = {"embed": [e.embedding[...] for e in self.embed]}
            if self.temporal:
                out["temporal"] = [t.table[...] for t in self.time]
            return out
        out = {"A": self.A.embedding[...], "B": self.B.embedding[...], "C": self.C.embedding[...], "W": self.W[...],
               "H": self.hop.H[...]}
        if self.temporal:
            out.update(TA=self.TA.table[...], TC=self.TC.table[...])
        return out

    @classmethod
    def from_params(cls, params: dict, hops: int | None = None, **options) -> "MultiHopRead":
        """A module holding MemN2N's parameters (the layout of :meth:`params`, e.g. ``MemN2N.init``'s).

        The tying, sizes and ``temporal`` follow from the dict, and K too with adjacent tying (``hops`` is
        needed for layer-wise tying, whose parameters do not depend on it); ``options``: the other constructor
        keywords (``encoding``, ``formula``, ``length``, ``attend_empty``); ``memory_size`` is the
        temporal tables' rows.
        """
        adjacent = "embed" in params
        E = params["embed"][0] if adjacent else params["A"]
        v, d = jnp.shape(E)
        temporal = ("temporal" in params) if adjacent else ("TA" in params)
        rows = jnp.shape(params["temporal"][0] if adjacent else params["TA"])[0] if temporal else 1
        if adjacent:
            hops = len(params["embed"]) - 1
        elif hops is None:
            raise ValueError("layer-wise parameters do not say how many hops: pass hops")
        module = cls(v, d, hops, rows, tying="adjacent" if adjacent else "layerwise", temporal=temporal, **options,
                     rngs=nnx.Rngs(0))
        if adjacent:
            for enc, E_k in zip(module.embed, params["embed"]):
                load(enc, {"embedding": E_k}, ["embedding"])
            for tab, T_k in zip(module.time if temporal else [], params.get("temporal", [])):
                load(tab, {"table": T_k}, ["table"])
        else:
            for name in ("A", "B", "C"):
                load(getattr(module, name), {"embedding": params[name]}, ["embedding"])
            load(module, params, ["W"])
            load(module.hop, params, ["H"])
            if temporal:
                load(module.TA, {"table": params["TA"]}, ["table"])
                load(module.TC, {"table": params["TC"]}, ["table"])
        return module
