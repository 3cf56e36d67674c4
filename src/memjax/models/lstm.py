"""Recurrent baselines of the bAbI tables: an LSTM reader, and the attention + LSTM model of the Keras example.

``--model lstm`` (:class:`LSTMReader`): the "LSTM" row of Table 1 of Sukhbaatar et al. 2015 (after
Weston et al. 2015), weakly supervised (answers only). One LSTM reads the story's words, oldest
sentence first, then the question's words, over word embeddings; its last state goes through a
linear layer to a softmax over the vocabulary.

``--model attn-lstm`` (:class:`AttnLSTM`): the one-hop attention + LSTM model of Keras's bAbI
memory-network example (``examples/babi_memnn.py``). The story is its words (all sentences, oldest
first, right-aligned in ``story_len`` positions: padding first, as Keras's ``pad_sequences``), each
embedded twice, ``m`` (dim 64) and ``c`` (dim = the question length Q); the question's words are
embedded as ``u`` (dim 64), each with dropout 0.3 in training:

- match = softmax over the story's words of m u^T: (S, Q), one distribution per question word;
- response = match + c, transposed to (Q, S) and concatenated with u: (Q, S + 64);
- an LSTM (32 units) over the question positions, dropout 0.3, a dense layer, softmax.

Masking: padding words are skipped by the LSTMs (the state is carried through them) and take no
share of the softmax; their embedding rows are kept at zero. Keras's example masks nothing, and its
``Activation('softmax')`` on the (S, Q) match normalises the last axis (over the question's words);
``softmax_over="query"`` gives that variant (still masked).

The LSTM cell (:func:`lstm_cell`) is the usual one with gates [i, f, g, o]: i, f, o = sigmoid, g =
tanh, c' = f * c + i * g, h' = o * tanh(c'); weights are Glorot-uniform (input) and orthogonal
(recurrent), the forget gate's bias starts at 1 (as Keras's defaults; Keras 2's LSTM gates use a
hard sigmoid, ours the sigmoid). The batched path (:func:`lstm_sequence`) takes every step's input
product at once, scans the recurrence with ``jax.lax.scan`` and has a hand-written gradient;
:func:`lstm_scan` is the plain per-example op the tests compare it with.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.models.base import Model, Phase, Prediction, Traits, softmax_prediction
from memjax.ops.addressing import masked_softmax
from memjax.ops.recurrent import dropout

# ------------------------------------------------------------------------------------------- LSTM


def orthogonal(key: jax.Array, n: int, dtype=jnp.float32) -> jnp.ndarray:
    """A random (n, n) orthogonal matrix: the product of n Householder reflections I - 2 v v^T / v^T v
    with Gaussian v, by matrix products only.

    Not ``jax.nn.initializers.orthogonal``: its QR factorisation (LAPACK through a parallel batch
    map on the CPU's thread pool) hung a training whose vmapped runs initialise on two CPU devices
    at once (all pool threads waiting on each other; seen once in 17 bAbI tasks).
    """
    vs = jax.random.normal(key, (n, n), dtype)

    def reflect(q, v):
        return q - (2.0 / jnp.dot(v, v)) * jnp.outer(q @ v, v), None

    return jax.lax.scan(reflect, jnp.eye(n, dtype=dtype), vs)[0]


def lstm_init(key: jax.Array, in_dim: int, hidden: int, dtype=jnp.float32) -> dict:
    """Parameters of an LSTM with gate blocks [input i, forget f, candidate g, output o].

    Returns:
        ``{"W": (in_dim, 4H), "U": (H, 4H), "b": (4H,)}``: W Glorot-uniform over the whole (in, 4H)
        kernel, each (H, H) block of U orthogonal (:func:`orthogonal`), b zero except the forget
        block (1).
    """
    kw, ku = jax.random.split(key)
    W = jax.nn.initializers.glorot_uniform()(kw, (in_dim, 4 * hidden), dtype)
    U = jnp.concatenate([orthogonal(k, hidden, dtype) for k in jax.random.split(ku, 4)], axis=1)
    b = jnp.zeros((4 * hidden,), dtype).at[hidden:2 * hidden].set(1.0)
    return {"W": W, "U": U, "b": b}


def _gates(z: jnp.ndarray, c: jnp.ndarray):
    """(h', c') from the pre-activations z = x W + h U + b (..., 4H) and the cell c (..., H)."""
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def lstm_cell(params: dict, state: tuple, x: jnp.ndarray) -> tuple:
    """One LSTM step: ``state`` = (h, c), each (H,) or (..., H); ``x`` (d_in,) or (..., d_in)."""
    h, c = state
    return _gates(x @ params["W"] + h @ params["U"] + params["b"], c)


def lstm_scan(params: dict, xs: jnp.ndarray, mask: jnp.ndarray, state: tuple | None = None):
    """An LSTM over one sequence; padded steps carry the state unchanged.

    Args:
        params: from :func:`lstm_init`.
        xs: (T, d_in) inputs.
        mask: (T,) bool, False at padding.
        state: initial (h, c), each (H,); zeros when None.

    Returns:
        (hs (T, H): the state after each step, final (h, c)).
    """
    if state is None:
        hidden = params["U"].shape[0]
        state = (jnp.zeros((hidden,), xs.dtype), jnp.zeros((hidden,), xs.dtype))

    def step(carry, inp):
        x, keep = inp
        new = lstm_cell(params, carry, x)
        carry = tuple(jnp.where(keep, n, o) for n, o in zip(new, carry))
        return carry, carry[0]

    final, hs = jax.lax.scan(step, state, (xs, mask))
    return hs, final


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def lstm_sequence(U: jnp.ndarray, xw: jnp.ndarray, mask: jnp.ndarray, h0: jnp.ndarray, c0: jnp.ndarray,
                  unroll: int = 1) -> tuple:
    """The batched LSTM: final (h, c) (B, H) after a time-major sequence, padded steps skipped.

    Its gradient is written by hand (as :func:`memjax.ops.recurrent.gru_sequence`'s): the backward
    loop carries only the state's gradient and keeps each step's pre-activation gradient, and the
    gradient of U is one product over all steps, where JAX's own gradient of the loop takes a small
    weight product per step (measured on bAbI-1k task 2, 2 runs: 1.9x faster training). The tests
    check it against JAX's gradient of :func:`lstm_scan` and against finite differences.

    Args:
        U: (H, 4H) recurrent weights.
        xw: (T, B, 4H) input products x_t W + b of every step (taken before the loop).
        mask: (T, B) bool, False at padding (the state is carried).
        h0, c0: (B, H) initial state.
        unroll: steps per loop iteration (a speed knob; the result is the same).
    """
    return _lstm_sequence_fwd(U, xw, mask, h0, c0, unroll)[0]


def _lstm_sequence_fwd(U, xw, mask, h0, c0, unroll):
    def step(carry, inp):
        h, c = carry
        z, keep = inp
        i, f, g, o = jnp.split(z + h @ U, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
        c2 = f * c + i * g
        tc = jnp.tanh(c2)
        keep = keep[:, None]
        return (jnp.where(keep, o * tc, h), jnp.where(keep, c2, c)), (h, c, i, f, g, o, tc)

    final, saved = jax.lax.scan(step, (h0, c0), (xw, mask), unroll=max(1, min(unroll, xw.shape[0])))
    return final, (U, mask) + saved


def _lstm_sequence_bwd(unroll, res, cotangents):
    U, mask, h_prev, *saved = res

    def step(carry, inp):
        dh, dc = carry
        keep, c_prev, i, f, g, o, tc = inp
        dc_all = dc + dh * o * (1 - tc * tc)  # through h = o tanh(c)
        dz = jnp.concatenate([dc_all * g * i * (1 - i), dc_all * c_prev * f * (1 - f), dc_all * i * (1 - g * g),
                              dh * tc * o * (1 - o)], axis=-1)
        keep = keep[:, None]
        dz = jnp.where(keep, dz, 0.0)
        return (jnp.where(keep, dz @ U.T, dh), jnp.where(keep, dc_all * f, dc)), dz

    (dh0, dc0), dz = jax.lax.scan(step, cotangents, (mask, *saved), reverse=True,
                                  unroll=max(1, min(unroll, mask.shape[0])))
    hidden = U.shape[0]
    dU = h_prev.reshape(-1, hidden).T @ dz.reshape(-1, 4 * hidden)
    return dU, dz, None, dh0, dc0


lstm_sequence.defvjp(_lstm_sequence_fwd, _lstm_sequence_bwd)


# ------------------------------------------------------------------------------------------ shared


def _embedding(key, vocab: int, dim: int, scale: float) -> jnp.ndarray:
    """U(-scale, scale) rows, row 0 (padding) zero."""
    return jax.random.uniform(key, (vocab, dim), minval=-scale, maxval=scale).at[0].set(0.0)


def _output_layer(key, hidden: int, vocab: int) -> dict:
    """The answer layer, U(-1/sqrt(H), 1/sqrt(H)) drawn with the vocabulary as leading axis, so that
    a padded vocabulary (tasks trained together) leaves the other words' values unchanged."""
    limit = 1.0 / math.sqrt(hidden)
    W = jax.random.uniform(key, (vocab, hidden), minval=-limit, maxval=limit)
    return {"W": W.T, "b": jnp.zeros((vocab,))}


def _answer(params: dict, h: jnp.ndarray, answers: jnp.ndarray | None) -> jnp.ndarray:
    logits = h @ params["answer"]["W"] + params["answer"]["b"]
    return logits if answers is None else jnp.where(answers, logits, -1e30)


def story_words(sentences: jnp.ndarray, story: jnp.ndarray) -> jnp.ndarray:
    """(B, M L) word ids of the stories in reading order: oldest sentence first (empty slots lead).

    Args:
        sentences: (U, L) word ids of the distinct sentences, row 0 empty.
        story: (B, M) rows of ``sentences`` per slot, slot 0 the most recent.
    """
    words = sentences[story[:, ::-1]]  # (B, M, L)
    return words.reshape(story.shape[0], -1)


def right_align(words: jnp.ndarray, length: int) -> jnp.ndarray:
    """(B, length) the real (non-zero) words of each row, in order, right-aligned (padding first);
    the oldest words of a row with more than ``length`` are dropped (as ``pad_sequences``)."""
    real = words != 0
    after = jnp.cumsum(real[:, ::-1], axis=1)[:, ::-1] - real  # real words after each position
    target = jnp.where(real, length - 1 - after, length)
    target = jnp.where(target < 0, length, target)  # too old: out of range, dropped
    rows = jnp.arange(words.shape[0])[:, None]
    return jnp.zeros((words.shape[0], length), words.dtype).at[rows, target].set(words, mode="drop")


class _Baseline(Model):
    """What both baselines share: host inputs as word ids, the loss and prediction of the model interface."""

    def unpad(self, params: dict) -> dict:
        """Parameters trained with a padded vocabulary, cut back to this model's vocabulary."""
        v = self.cfg.vocab_size
        out = {**params, **{name: params[name][:v] for name in self.embeddings}}
        out["answer"] = {"W": params["answer"]["W"][:, :v], "b": params["answer"]["b"][:v]}
        return out

    def bags(self, ids) -> np.ndarray:
        """The distinct sentences as word ids (both models read words)."""
        return np.asarray(ids, np.int32)

    def query_inputs(self, ids) -> np.ndarray:
        return np.asarray(ids, np.int32)

    def batch_loss(self, params: dict, data: dict, batch: dict, drop=None, rate: float = 0.0):
        """(cross-entropy per example (B,), predicted answer ids (B,))."""
        logits = self.logits(params, data["sentences"], batch["story"], batch["query"], data.get("answers"),
                             drop, rate)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["answer"]), jnp.argmax(logits, -1)

    def batch_predict(self, params: dict, data: dict, batch: dict) -> jnp.ndarray:
        """Predicted answer ids (B,)."""
        return self.predict(params, data, batch).answer

    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        return self.batch_loss(params, data, batch, phase.drop, phase.rate)

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        logits = self.logits(params, data["sentences"], batch["story"], batch["query"], data.get("answers"))
        return softmax_prediction(logits, self.statement_attention(params, data["sentences"], batch["story"],
                                                                   batch["query"]))

    def statement_attention(self, params: dict, sentences, story, query):
        """(B, K, M) attention per memory slot, or None (the LSTM reader attends to nothing)."""
        del params, sentences, story, query
        return None


# ------------------------------------------------------------------------------------ LSTM reader


@dataclasses.dataclass(frozen=True)
class LSTMConfig:
    """LSTM reader hyperparameters. ``embed_init``: embeddings start U(-a, a) with this a (1: chosen on
    bAbI-1k validation, tasks 1, 6, 9, 15, 19, 2 runs each: mean validation error 49.8 at 1, 56.2 at
    0.1, 57.2 at 0.1 with dropout 0.3 on the last state).

    ``unroll``: recurrence steps per loop iteration (speed only; the results are the same). Measured
    on a 2-core CPU, bAbI-1k task 2 (304 steps), 2 runs: 3.6 s per epoch at 1, 5.1 s at 8, 9.6 s at 32.
    """

    vocab_size: int
    memory_size: int = 50
    dim: int = 50  # word embedding size
    hidden: int = 100  # LSTM state size
    embed_init: float = 1.0
    unroll: int = 1

    def __post_init__(self):
        if self.dim < 1 or self.hidden < 1 or self.memory_size < 1 or self.vocab_size < 3 or self.unroll < 1:
            raise ValueError("dim, hidden, memory_size and unroll must be positive and the vocabulary non-trivial")


class LSTMReader(_Baseline):
    """One LSTM over the story's words (oldest first) and then the question's; the last state -> softmax.

    Parameters: ``embed`` (V, d), ``lstm`` (:func:`lstm_init`), ``answer`` {W (H, V), b (V,)}.
    Dropout (``TrainConfig.dropout``), when asked for, applies to the last state.
    """

    traits = Traits("lstm", dropout=True)

    def init(self, key: jax.Array) -> dict:
        c = self.cfg
        k = jax.random.split(key, 3)
        return {"embed": _embedding(k[0], c.vocab_size, c.dim, c.embed_init), "lstm": lstm_init(k[1], c.dim, c.hidden),
                "answer": _output_layer(k[2], c.hidden, c.vocab_size)}

    def dropout_shape(self, memory: int) -> tuple[int, ...]:
        """Dropout uniforms per example: one per unit of the last state."""
        del memory
        return (self.cfg.hidden,)

    def read(self, params: dict, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray) -> jnp.ndarray:
        """The LSTM's last state (B, H) after the story's words and then the question's."""
        c, p = self.cfg, params["lstm"]
        ids = jnp.concatenate([story_words(sentences, story), query], axis=1)  # (B, T)
        table = params["embed"] @ p["W"] + p["b"]  # (V, 4H): each word's input product, once
        xw = table[ids.T]  # (T, B, 4H)
        zeros = jnp.zeros((ids.shape[0], c.hidden), xw.dtype)
        h, _ = lstm_sequence(p["U"], xw, ids.T != 0, zeros, zeros, c.unroll)
        return h

    def logits(self, params: dict, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray,
               answers: jnp.ndarray | None = None, drop: jnp.ndarray | None = None, rate: float = 0.0) -> jnp.ndarray:
        """Answer logits (B, V).

        Args:
            params: the parameter pytree.
            sentences: (U, L) word ids of the distinct sentences (:meth:`bags`), row 0 empty.
            story: (B, M) rows of ``sentences`` per slot (slot 0 the most recent), 0 = empty.
            query: (B, Q) question word ids, 0-padded.
            answers: optional (V,) bool, the words that may be answers (others get -1e30).
            drop: optional (B, H) uniforms for dropout on the last state (training), with ``rate``.
        """
        h = dropout(self.read(params, sentences, story, query), drop, rate)
        return _answer(params, h, answers)


# --------------------------------------------------------------------------- attention + LSTM


@dataclasses.dataclass(frozen=True)
class AttnLSTMConfig:
    """Hyperparameters of the Keras example's model.

    ``story_len`` (S) and ``query_len`` (Q) are the longest story (in words, within the memory
    window) and question of the data (:meth:`AttnLSTM.data_defaults` sets them): the LSTM's input
    has S + dim features, and ``c`` embeds words in Q dimensions, one per question position.
    Dropout (the example's 0.3 on the three embeddings and on the LSTM's output) is the training
    recipe's ``TrainConfig.dropout`` (``--dropout``; 0.3 in memjax's recipe for this model).
    ``softmax_over``: "story" (default, the attention of memory networks) or "query" (the example's
    ``Activation('softmax')``, which normalises the last axis).
    """

    vocab_size: int
    memory_size: int = 50
    story_len: int = 0
    query_len: int = 0
    dim: int = 64
    hidden: int = 32
    embed_init: float = 0.05  # Keras's Embedding: U(-0.05, 0.05)
    softmax_over: str = "story"

    def __post_init__(self):
        if self.story_len < 1 or self.query_len < 1:
            raise ValueError("story_len and query_len must be positive (build_configs sets them from the data)")
        if self.dim < 1 or self.hidden < 1 or self.memory_size < 1 or self.vocab_size < 3:
            raise ValueError("dim, hidden and memory_size must be positive and the vocabulary non-trivial")
        if self.softmax_over not in ("story", "query"):
            raise ValueError(f"softmax_over must be 'story' or 'query', got {self.softmax_over!r}")


class AttnLSTM(_Baseline):
    """The attention + LSTM model of Keras's bAbI memory-network example (see the module docstring).

    Parameters: ``embed_m`` (V, d), ``embed_c`` (V, Q), ``embed_q`` (V, d), ``lstm`` over S + d
    inputs, ``answer`` {W (H, V), b (V,)}.
    """

    traits = Traits("attn-lstm", attention="words", dropout=True)
    embeddings = ("embed_m", "embed_c", "embed_q")

    @staticmethod
    def data_defaults(ds, given: dict | None = None) -> dict:
        """``story_len``: the most words a story holds (its ``memory_size`` most recent sentences);
        ``query_len``: the longest question."""
        lengths = (ds.sentences != 0).sum(1)
        longest = max(int(lengths[s.story].sum(1).max(initial=0)) for s in (ds.train, ds.valid, ds.test))
        return {"story_len": max(1, longest), "query_len": int(ds.train.query.shape[1])}

    def init(self, key: jax.Array) -> dict:
        c = self.cfg
        k = jax.random.split(key, 5)
        return {"embed_m": _embedding(k[0], c.vocab_size, c.dim, c.embed_init),
                "embed_c": _embedding(k[1], c.vocab_size, c.query_len, c.embed_init),
                "embed_q": _embedding(k[2], c.vocab_size, c.dim, c.embed_init),
                "lstm": lstm_init(k[3], c.story_len + c.dim, c.hidden),
                "answer": _output_layer(k[4], c.hidden, c.vocab_size)}

    def dropout_shape(self, memory: int) -> tuple[int, ...]:
        """Dropout uniforms per example, flat: m (S d), c (S Q), u (Q d), the LSTM's output (H)."""
        del memory
        c = self.cfg
        return (c.story_len * c.dim + c.story_len * c.query_len + c.query_len * c.dim + c.hidden,)

    def _drops(self, drop: jnp.ndarray):
        c = self.cfg
        sizes = [c.story_len * c.dim, c.story_len * c.query_len, c.query_len * c.dim]
        m, cc, u, h = jnp.split(drop, np.cumsum(sizes), axis=-1)
        b = drop.shape[0]
        return (m.reshape(b, c.story_len, c.dim), cc.reshape(b, c.story_len, c.query_len),
                u.reshape(b, c.query_len, c.dim), h)

    def aligned_inputs(self, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray):
        """(story words (B, S) right-aligned, question words (B, Q)), cut or padded to the config's sizes."""
        c = self.cfg
        words = right_align(story_words(sentences, story), c.story_len)
        width = query.shape[1]
        query = jnp.pad(query, ((0, 0), (0, max(0, c.query_len - width))))[:, :c.query_len]
        return words, query

    def attention(self, params: dict, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray,
                  drop: jnp.ndarray | None = None, rate: float = 0.0):
        """(match (B, S, Q), c (B, S, Q), u (B, Q, d), story words (B, S), question words (B, Q))."""
        c = self.cfg
        words, query = self.aligned_inputs(sentences, story, query)
        m, cc, u = params["embed_m"][words], params["embed_c"][words], params["embed_q"][query]
        if drop is not None and rate > 0:
            dm, dc, du, _ = self._drops(drop)
            m, cc, u = dropout(m, dm, rate), dropout(cc, dc, rate), dropout(u, du, rate)
        scores = jnp.einsum("bsd,bqd->bsq", m, u)
        real = (words != 0)[:, :, None] & (query != 0)[:, None, :]
        match = masked_softmax(scores, real, axis=1 if c.softmax_over == "story" else 2)
        return match, cc, u, words, query

    def statement_attention(self, params: dict, sentences, story, query):
        """(B, 1, M) per memory slot, the word attention of the story's words in that slot's statement
        (each word's weight averaged over the question's words), normalised to sum to 1."""
        c = self.cfg
        match, _, _, words, query = self.attention(params, sentences, story, query)
        b, m = story.shape
        asked = (query != 0).astype(match.dtype)  # (B, Q)
        weight = jnp.einsum("bsq,bq->bs", match, asked) / jnp.maximum(jnp.sum(asked, axis=1, keepdims=True), 1.0)
        weight = weight / jnp.maximum(jnp.sum(weight, axis=1, keepdims=True), jnp.finfo(weight.dtype).tiny)
        # each story word's slot (plus one), moved as aligned_inputs() moves the words (oldest slot first)
        slot = jnp.broadcast_to(jnp.arange(m, 0, -1)[:, None], (m, sentences.shape[1])).reshape(-1)
        tagged = jnp.where(story_words(sentences, story) != 0, slot[None], 0)
        slots = right_align(tagged, c.story_len) - 1  # (B, S), -1 where no word
        rows = jnp.arange(b)[:, None]
        out = jnp.zeros((b, m), weight.dtype).at[rows, jnp.where(slots >= 0, slots, m)].add(weight, mode="drop")
        return out[:, None, :]

    def logits(self, params: dict, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray,
               answers: jnp.ndarray | None = None, drop: jnp.ndarray | None = None, rate: float = 0.0) -> jnp.ndarray:
        """Answer logits (B, V) (arguments as :meth:`LSTMReader.logits`; ``drop`` as :meth:`dropout_shape`)."""
        c = self.cfg
        match, cc, u, _, query = self.attention(params, sentences, story, query, drop, rate)
        x = jnp.concatenate([jnp.swapaxes(match + cc, 1, 2), u], axis=2)  # (B, Q, S + d)
        p = params["lstm"]
        xw = jnp.moveaxis(x @ p["W"] + p["b"], 1, 0)  # (Q, B, 4H)
        zeros = jnp.zeros((x.shape[0], c.hidden), xw.dtype)
        h, _ = lstm_sequence(p["U"], xw, query.T != 0, zeros, zeros, c.query_len)
        if drop is not None and rate > 0:
            h = dropout(h, self._drops(drop)[3], rate)
        return _answer(params, h, answers)
