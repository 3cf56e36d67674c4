"""DMN+ modules (Xiong et al. 2016) over the pure ops in :mod:`memjax.ops` (recurrent).

Matrices act on the right (``x @ W``), as in :mod:`memjax.ops.recurrent`; the parameters of each
module are the dict its op takes (``params()``), initialised by the op's own ``*_init`` function
(Glorot-uniform weights, zero biases), as :class:`memjax.models.dmn.DMNPlus` does.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.nn._util import load, over_batch, symmetric_uniform, values
from memjax.nn.memory import PositionEncoding
from memjax.ops import (answer_logits, attention_gru_cell, attention_gru_init, attention_gru_scan, bigru, episode,
                        fact_attention, gate_init, gate_scores, gru_cell, gru_init, gru_memory_update, gru_scan,
                        memory_update, memory_update_init)

Array = jax.Array
_GATED = ("W", "U", "b")


class _FromDict(nnx.Module):
    """Modules whose ``nnx.Param`` attributes are exactly the keys of their op's parameter dict."""

    _names: tuple[str, ...] = ()

    def params(self) -> dict[str, Array]:
        """The parameters as the op's dict (arrays, not ``nnx.Param``)."""
        return values(self, self._names)

    def _set(self, params: dict) -> None:
        for name in self._names:
            setattr(self, name, nnx.Param(jnp.asarray(params[name])))

    @classmethod
    def _holding(cls, params: dict, *sizes):
        """``cls(*sizes)`` holding ``params`` instead of its drawn parameters."""
        module = cls(*sizes, rngs=nnx.Rngs(0))
        load(module, params, cls._names)
        return module


class _Gated(_FromDict):
    """A gated recurrent unit of parameters ``W`` (d_in, nH), ``U`` (H, nH), ``b`` (nH,) drawn by ``_init``.

    Args:
        in_features: d_in.
        hidden: H.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    _names = _GATED
    _init = staticmethod(gru_init)

    def __init__(self, in_features: int, hidden: int, *, rngs: nnx.Rngs):
        self._set(self._init(rngs.params(), in_features, hidden))

    @classmethod
    def from_params(cls, params: dict):
        """A module holding ``{"W", "U", "b"}`` (the layout of its op's init)."""
        return cls._holding(params, jnp.shape(params["W"])[0], jnp.shape(params["U"])[0])


class GRU(_Gated):
    """Gated recurrent unit (DMN+ eq. 2-5), gate blocks [update u, reset r, candidate].

    Wraps :func:`memjax.ops.gru_cell` (:meth:`cell`) and :func:`memjax.ops.gru_scan` (``__call__``).
    Parameters ``W`` (d_in, 3H), ``U`` (H, 3H), ``b`` (3H,) from :func:`memjax.ops.gru_init`:
    Glorot-uniform per block, zero bias. Constructed as ``GRU(in_features, hidden, rngs=...)``.
    """

    _init = staticmethod(gru_init)

    def cell(self, h: Array, x: Array) -> Array:
        """One step: (..., H) state and (..., d_in) input -> (..., H) new state."""
        return gru_cell(self.params(), h, x)

    def __call__(self, xs: Array, mask: Array | None = None, h0: Array | None = None, reverse: bool = False) -> Array:
        """All states over sequences; padded steps carry the state unchanged.

        Args:
            xs: (..., T, d_in) inputs.
            mask: (..., T) bool, False at padding (default: all True).
            h0: (..., H) initial states (default: zeros).
            reverse: read each sequence from its end (a backward GRU).

        Returns:
            (..., T, H): position t holds the state after reading x_t.
        """
        p = self.params()
        if mask is None:
            mask = jnp.ones(xs.shape[:-1], bool)
        if h0 is None:
            return over_batch(lambda x, m: gru_scan(p, x, m, None, reverse), (2, 1), xs, mask)
        return over_batch(lambda x, m, h: gru_scan(p, x, m, h, reverse), (2, 1, 1), xs, mask, h0)


class AttentionGRU(_Gated):
    """Attention GRU (DMN+ eq. 12-13): a GRU whose update gate is a given scalar attention gate g_t.

    Wraps :func:`memjax.ops.attention_gru_cell` (:meth:`cell`) and :func:`memjax.ops.attention_gru_scan`
    (``__call__``). Parameters ``W`` (d_in, 2H), ``U`` (H, 2H), ``b`` (2H,), blocks [reset, candidate],
    from :func:`memjax.ops.attention_gru_init` (Glorot-uniform, zero bias). Constructed as
    ``AttentionGRU(in_features, hidden, rngs=...)``.
    """

    _init = staticmethod(attention_gru_init)

    def cell(self, h: Array, x: Array, g: Array) -> Array:
        """One step: (..., H) state, (..., d_in) fact, (...) gate -> (..., H) new state."""
        p = self.params()
        return over_batch(lambda h_, x_, g_: attention_gru_cell(p, h_, x_, g_), (1, 1, 0), h, x, g)

    def __call__(self, facts: Array, gates: Array, mask: Array | None = None, h0: Array | None = None) -> Array:
        """The final state over the facts: an episode's context vector c.

        Args:
            facts: (..., T, d_in).
            gates: (..., T) attention gates g_t.
            mask: (..., T) bool, False at padding (state carried; default: all True).
            h0: (..., H) initial states (default: zeros).

        Returns:
            (..., H).
        """
        p = self.params()
        if mask is None:
            mask = jnp.ones(gates.shape, bool)
        if h0 is None:
            return over_batch(lambda f, g, m: attention_gru_scan(p, f, g, m), (2, 1, 1), facts, gates, mask)
        return over_batch(lambda f, g, m, h: attention_gru_scan(p, f, g, m, h), (2, 1, 1, 1), facts, gates, mask, h0)


class InputFusion(nnx.Module):
    """DMN+ input module: position-encoded sentences, then a bidirectional GRU over them, summed (eq. 6-7).

    Wraps :func:`memjax.ops.encode_sentence` (via :class:`PositionEncoding` ``encoder``) and
    :func:`memjax.ops.bigru` (GRUs ``fwd`` and ``bwd``). Initialisation as DMN+'s: embedding
    U(-embed_init, embed_init) with row 0 zero, GRUs by :func:`memjax.ops.gru_init`.

    Args:
        vocab_size: V.
        dim: d, the embedding and hidden size.
        formula, length: the position encoding (DMN+: the paper's formula, each sentence's own J).
        embed_init: a of the embedding's U(-a, a).
        encoder: a :class:`PositionEncoding` to use (and share, e.g. with a question module) instead of
            a new one.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, vocab_size: int, dim: int, *, formula: str = "paper", length: int | None = None,
                 embed_init: float = math.sqrt(3.0), encoder: PositionEncoding | None = None, rngs: nnx.Rngs):
        self.encoder = encoder if encoder is not None else PositionEncoding(
            vocab_size, dim, formula=formula, length=length, embedding_init=symmetric_uniform(embed_init), rngs=rngs)
        self.fwd = GRU(dim, dim, rngs=rngs)
        self.bwd = GRU(dim, dim, rngs=rngs)

    def __call__(self, sentences: Array, mask: Array | None = None) -> Array:
        """Facts of stories.

        Args:
            sentences: (..., T, L) word ids of each story's sentences in reading order (oldest first).
            mask: (..., T) bool, False at padding sentences (default: sentences with any word).

        Returns:
            (..., T, d) facts f_t = forward state + backward state, zero at padding.
        """
        if mask is None:
            mask = jnp.any(sentences != 0, axis=-1)
        x = self.encoder(sentences)
        fwd, bwd = self.fwd.params(), self.bwd.params()
        return over_batch(lambda x_, m: bigru(fwd, bwd, x_, m) * m[:, None], (2, 1), x, mask)

    def params(self) -> dict:
        """``{"embed": (V, d), "fwd": GRU dict, "bwd": GRU dict}`` (DMN+'s ``embed`` and ``fusion``)."""
        return {"embed": self.encoder.embedding[...], "fwd": self.fwd.params(), "bwd": self.bwd.params()}

    @classmethod
    def from_params(cls, params: dict, **options) -> "InputFusion":
        """A module holding ``{"embed", "fwd", "bwd"}``; ``options``: ``formula``, ``length``."""
        v, d = jnp.shape(params["embed"])
        module = cls(v, d, **options, rngs=nnx.Rngs(0))
        load(module.encoder, {"embedding": params["embed"]}, ["embedding"])
        load(module.fwd, params["fwd"], _GATED)
        load(module.bwd, params["bwd"], _GATED)
        return module


class AttentionGate(_FromDict):
    """DMN+ attention gates g = softmax_t(W2 tanh(W1 z_t + b1) + b2), z_t = [f*q; f*m; |f-q|; |f-m|] (eq. 8-10).

    Wraps :func:`memjax.ops.gate_scores` and :func:`memjax.ops.fact_attention`. Parameters ``W1``
    (4d, hidden), ``b1`` (hidden,), ``W2`` (hidden,), ``b2`` () from :func:`memjax.ops.gate_init`.

    Args:
        dim: d.
        hidden: the scoring network's hidden size.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    _names = ("W1", "b1", "W2", "b2")

    def __init__(self, dim: int, hidden: int, *, rngs: nnx.Rngs):
        self._set(gate_init(rngs.params(), dim, hidden))

    def __call__(self, facts: Array, q: Array, m: Array, mask: Array) -> Array:
        """Gates over the facts.

        Args:
            facts: (..., T, d).
            q: (..., d) question.
            m: (..., d) previous memory.
            mask: (..., T) bool, False at padding.

        Returns:
            (..., T) gates, summing to 1 over the present facts (0 at padding).
        """
        p = self.params()
        return over_batch(lambda f, q_, m_, k: fact_attention(gate_scores(p, f, q_, m_), k), (2, 1, 1, 1),
                          facts, q, m, mask)

    @classmethod
    def from_params(cls, params: dict) -> "AttentionGate":
        """A gate network holding ``{"W1", "b1", "W2", "b2"}``."""
        four_d, hidden = jnp.shape(params["W1"])
        return cls._holding(params, four_d // 4, hidden)


class MemoryUpdate(_FromDict):
    """DMN+ memory update m' = ReLU(W [m; c; q] + b) (eq. 14).

    Wraps :func:`memjax.ops.memory_update`. Parameters ``W`` (3d, d) Glorot-uniform, ``b`` (d,) zero,
    from :func:`memjax.ops.memory_update_init`.

    Args:
        dim: d.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    _names = ("W", "b")

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self._set(memory_update_init(rngs.params(), dim))

    def __call__(self, m: Array, c: Array, q: Array) -> Array:
        """(..., d) memory, context and question -> (..., d) new memory."""
        p = self.params()
        return over_batch(lambda m_, c_, q_: memory_update(p, m_, c_, q_), (1, 1, 1), m, c, q)

    @classmethod
    def from_params(cls, params: dict) -> "MemoryUpdate":
        """A memory update holding ``{"W", "b"}``."""
        return cls._holding(params, jnp.shape(params["b"])[0])


class EpisodicMemory(nnx.Module):
    """DMN+ episodic memory: m^0 = q; per pass t, c^t = episode(facts, q, m^{t-1}), m^t = update_t(m^{t-1}, c^t, q).

    Wraps :func:`memjax.ops.episode` (the :class:`AttentionGate` ``gate`` and the :class:`AttentionGRU`
    ``attention``, shared by the passes) and :func:`memjax.ops.memory_update` (``updates``: one
    :class:`MemoryUpdate` per pass, untied as in DMN+, or one shared when ``tied``), or, with
    ``update="gru"``, :func:`memjax.ops.gru_memory_update` (the original DMN's m' = GRU(c, m), one GRU
    for every pass). Initialisation by the ops' ``*_init`` functions, as :class:`memjax.models.dmn.DMNPlus`.

    Args:
        dim: d, the fact, question and memory size.
        passes: the number of episodes.
        gate_hidden: the gate network's hidden size (default d, as DMN+).
        tied: one ReLU memory update shared by the passes (default: one per pass).
        update: ``"relu"`` (DMN+) or ``"gru"`` (DMN's GRU update, always tied).
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, dim: int, passes: int = 3, *, gate_hidden: int | None = None, tied: bool = False,
                 update: str = "relu", rngs: nnx.Rngs):
        if update not in ("relu", "gru"):
            raise ValueError(f"update must be 'relu' or 'gru', got {update!r}")
        self.passes, self.update = passes, update
        self.gate = AttentionGate(dim, gate_hidden or dim, rngs=rngs)
        self.attention = AttentionGRU(dim, dim, rngs=rngs)
        if update == "gru":
            self.updates = nnx.List([GRU(dim, dim, rngs=rngs)])
        else:
            self.updates = nnx.List([MemoryUpdate(dim, rngs=rngs) for _ in range(1 if tied else passes)])

    def __call__(self, facts: Array, mask: Array, q: Array) -> tuple[Array, Array]:
        """Runs the passes.

        Args:
            facts: (..., T, d).
            mask: (..., T) bool, False at padding facts.
            q: (..., d) question vectors.

        Returns:
            (final memory m^passes (..., d), gates (..., passes, T)).
        """
        att, gate = self.attention.params(), self.gate.params()
        ups = [u.params() for u in self.updates]

        def one(f, k, q_):
            m, gates = q_, []
            for t in range(self.passes):
                c, g = episode(att, gate, f, k, q_, m)
                up = ups[min(t, len(ups) - 1)]
                m = gru_memory_update(up, m, c) if self.update == "gru" else memory_update(up, m, c, q_)
                gates.append(g)
            return m, jnp.stack(gates)

        return over_batch(one, (2, 1, 1), facts, mask, q)

    def params(self) -> dict:
        """``{"gate", "attention", "memory"}``: DMN+'s layout (``memory`` a list of ``{"W", "b"}``, one per
        pass or one when tied; with ``update="gru"``, a GRU dict)."""
        memory = self.updates[0].params() if self.update == "gru" else [u.params() for u in self.updates]
        return {"gate": self.gate.params(), "attention": self.attention.params(), "memory": memory}

    @classmethod
    def from_params(cls, params: dict, passes: int | None = None) -> "EpisodicMemory":
        """A module holding ``{"gate", "attention", "memory"}`` (the layout of :meth:`params`).

        ``passes`` defaults to the length of the ``memory`` list; a one-element list with more passes is
        tied; a GRU dict (``update="gru"``) needs ``passes``.
        """
        gru = isinstance(params["memory"], dict)
        d = jnp.shape(params["attention"]["U"])[0]
        n = 1 if gru else len(params["memory"])
        passes = passes or n
        if not gru and n not in (1, passes):
            raise ValueError(f"{n} memory updates for {passes} passes")
        module = cls(d, passes, gate_hidden=jnp.shape(params["gate"]["W1"])[1], tied=n == 1 and passes > 1,
                     update="gru" if gru else "relu", rngs=nnx.Rngs(0))
        load(module.gate, params["gate"], AttentionGate._names)
        load(module.attention, params["attention"], _GATED)
        for u, p in zip(module.updates, [params["memory"]] if gru else params["memory"]):
            load(u, p, u._names)
        return module


class AnswerModule(_FromDict):
    """DMN+ answer layer: single-word logits W [m; q] + b.

    Wraps :func:`memjax.ops.answer_logits`. Parameters ``W`` (2d, V), ``b`` (V,). Initialisation as
    :class:`memjax.models.dmn.DMNPlus`: W ~ U(-a, a) with a = sqrt(6 / (3d)) (Glorot's limit for a
    (d, 2d) matrix: independent of V, so that padding the vocabulary does not change it), b = 0.

    Args:
        dim: d.
        vocab_size: V.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    _names = ("W", "b")

    def __init__(self, dim: int, vocab_size: int, *, rngs: nnx.Rngs):
        limit = math.sqrt(6.0 / (3 * dim))
        self.W = nnx.Param(symmetric_uniform(limit)(rngs.params(), (2 * dim, vocab_size)))
        self.b = nnx.Param(jnp.zeros((vocab_size,)))

    def __call__(self, m: Array, q: Array) -> Array:
        """(..., d) final memory and (..., d) question -> (..., V) logits."""
        p = self.params()
        return over_batch(lambda m_, q_: answer_logits(p, m_, q_), (1, 1), m, q)

    @classmethod
    def from_params(cls, params: dict) -> "AnswerModule":
        """An answer layer holding ``{"W": (2d, V), "b": (V,)}``."""
        two_d, v = jnp.shape(params["W"])
        return cls._holding(params, two_d // 2, v)
