"""Dynamic Memory Networks: DMN+ (Xiong, Merity & Socher 2016).

A story's sentences are read into facts, the question drives several episodes of attention over
them, and each episode updates the memory:

- sentence reader: position encoding over word embeddings, f_i = sum_j l_j * E[w_ij] with the
  paper's l_kj = (1 - j/J) - (k/d)(1 - 2j/J), J the sentence's own length;
- input fusion: a bidirectional GRU over the sentences in story order, the two directions summed;
- question: a GRU over the question's word embeddings, its last state q;
- episodic memory: m^0 = q; per pass t, gates g = softmax over facts of
  W2 tanh(W1 [f*q; f*m; |f-q|; |f-m|] + b1) + b2, an attention GRU over the facts (its update gate
  replaced by g) gives the context c^t, and m^t = ReLU(W_t [m^{t-1}; c^t; q] + b_t) with untied
  W_t per pass; the gate network and the attention GRU are shared by the passes;
- answer: logits = W_a [m^T; q] + b_a (one symbol per distinct answer, a multi-word one included).

:meth:`DMNPlus.apply` answers one question with the ops of :mod:`memjax.ops.recurrent`;
:meth:`DMNPlus.batch_logits` is the same function for a batch, organised for speed (the path the
engine trains): the distinct sentences are encoded once and gathered, the input-side products of
every GRU are taken for all steps before its scan, the two fusion directions run in one scan, and
the question's part of the gate network is computed once for all passes. Tests check that the
two agree.

Memory slots follow :mod:`memjax.data.dataset`: slot 0 is the most recent statement, so the story
order is the slots read from the last occupied one back to slot 0.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.data.babi import answer_words
from memjax.models.base import Model, Phase, Prediction, Traits, softmax_prediction
from memjax.ops.addressing import masked_softmax
from memjax.ops.encoding import encode_sentence, weighted_bags
from memjax.ops.recurrent import (affine, answer_logits, attention_gru_init, attention_gru_sequence, bigru, dropout, episode,
                                  gate_blocks, gate_init, gate_question_part, gate_scores_given, gated_gru_sequence, gru_cell, gru_init,
                                  gru_scan, gru_sequence, memory_update,
                                  memory_update_init)


@dataclasses.dataclass(frozen=True)
class DMNPlusConfig:
    """DMN+ hyperparameters; the defaults are the bAbI-10k recipe of docs/reproduction.md.

    ``dim`` is both the embedding and the hidden size (80 in the recipe). ``embed_init``: word
    embeddings are drawn from U(-a, a) with this a (sqrt(3): unit variance).
    """

    vocab_size: int
    memory_size: int = 50
    dim: int = 80
    hops: int = 3  # episodic passes
    embed_init: float = math.sqrt(3.0)
    pe_formula: str = "paper"
    # where training's dropout acts before the episodes: "facts", the outputs of the input fusion layer (as
    # the memjax tables were made), or "sentences", the position-encoded sentences before fusion, the
    # paper's "initial sentence encodings"; the final memory, the answer module's input, is dropped in both
    dropout_at: str = "facts"
    unroll: int = 64  # steps per loop iteration of the recurrences (a speed knob: the same function, up to
    # float rounding): on a CPU a whole unrolled sequence runs about 4x faster than a loop (measured), and
    # compiles slower (bAbI-10k task 2, 50 facts, 2 runs: unroll 64 compiled in 34 s and trained 1,632
    # examples/s, unroll 16 in 16 s and 1,382 examples/s)

    def __post_init__(self):
        if self.hops < 1 or self.dim < 1 or self.memory_size < 1 or self.vocab_size < 3:
            raise ValueError("hops, dim and memory_size must be positive and the vocabulary non-trivial")
        if self.pe_formula not in ("paper", "official"):
            raise ValueError(f"pe_formula must be 'paper' or 'official', got {self.pe_formula!r}")
        if self.dropout_at not in ("facts", "sentences"):
            raise ValueError(f"dropout_at must be 'facts' or 'sentences', got {self.dropout_at!r}")


def _gru_inputs(params: dict, xs: jnp.ndarray) -> jnp.ndarray:
    """x W + b for every step at once: (..., d_in) -> (..., n H)."""
    return affine(xs, params["W"], params["b"])


class DMNPlus(Model):
    """DMN+ for question answering over a vocabulary (see the module docstring)."""

    # length_buckets: batch_logits takes stories cut to their first m slots (engine --buckets)
    traits = Traits("dmn+", attention="pass", dropout=True, length_buckets=True)

    def __init__(self, cfg: DMNPlusConfig):
        self.cfg = cfg

    # ---- parameters ------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> dict:
        """Parameters: embeddings U(-a, a) with row 0 (padding) zero, Glorot-uniform weights, zero biases.

        The vocabulary-sized arrays are drawn with the vocabulary as their leading axis, and the
        answer layer's scale does not depend on the vocabulary size, so that padding the
        vocabulary (tasks trained together) leaves the other values unchanged.
        """
        c, d = self.cfg, self.cfg.dim
        k = jax.random.split(key, 8)
        embed = jax.random.uniform(k[0], (c.vocab_size, d), minval=-c.embed_init, maxval=c.embed_init)
        limit = math.sqrt(6.0 / (2 * d + d))
        answer_w = jax.random.uniform(k[1], (c.vocab_size, 2 * d), minval=-limit, maxval=limit)
        return {
            "embed": embed.at[0].set(0.0),
            "question": gru_init(k[2], d, d),
            "fusion": {"fwd": gru_init(k[3], d, d), "bwd": gru_init(k[4], d, d)},
            "gate": gate_init(k[5], d, d),
            "attention": attention_gru_init(k[6], d, d),
            "memory": [memory_update_init(kk, d) for kk in jax.random.split(k[7], c.hops)],
            "answer": {"W": answer_w.T, "b": jnp.zeros((c.vocab_size,))},
        }

    def unpad(self, params: dict) -> dict:
        """Parameters trained with a padded vocabulary, cut back to this model's vocabulary."""
        v = self.cfg.vocab_size
        out = dict(params)
        out["embed"] = params["embed"][:v]
        out["answer"] = {"W": params["answer"]["W"][:, :v], "b": params["answer"]["b"][:v]}
        return out

    # ---- host-side inputs ------------------------------------------------------------------------
    def bags(self, ids) -> np.ndarray:
        """(N, 2, V) position-encoding bags of sentences (see :func:`memjax.ops.weighted_bags`)."""
        c = self.cfg
        return weighted_bags(ids, c.vocab_size, c.dim, "pe", c.pe_formula, None)[0]

    def query_inputs(self, ids) -> np.ndarray:
        """The questions as word ids (the question module is a GRU over words)."""
        return np.asarray(ids, np.int32)

    def factors(self) -> jnp.ndarray:
        """(2, d) factors g of the position encoding."""
        c = self.cfg
        return jnp.asarray(weighted_bags(np.zeros((1, 1), np.int64), c.vocab_size, c.dim, "pe", c.pe_formula)[1])

    def dropout_shape(self, memory: int) -> tuple[int, ...]:
        """Per example, the uniforms that dropout takes: (M + 1, d): one row per fact, one for the memory."""
        return (memory + 1, self.cfg.dim)

    # ---- one example, from the ops ---------------------------------------------------------------
    def apply(self, params: dict, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray):
        """Answers one question.

        Args:
            params: the parameter pytree.
            sentences: (U, L) word ids of the distinct sentences; row 0 is the empty sentence.
            story: (M,) rows of ``sentences`` per slot (slot 0 = most recent), 0 = empty.
            query: (Q,) word ids of the question.

        Returns:
            (logits (V,), attention gates (hops, M) per slot).
        """
        c = self.cfg
        words = sentences[story]  # (M, L)
        x = jax.vmap(lambda w: encode_sentence(params["embed"], w, "pe", c.pe_formula, None))(words)  # (M, d)
        order = jnp.arange(story.shape[0])[::-1]  # story order: oldest slot first (empty slots lead, masked)
        mask = (story != 0)[order]
        facts = bigru(params["fusion"]["fwd"], params["fusion"]["bwd"], x[order], mask) * mask[:, None]
        q = gru_scan(params["question"], params["embed"][query], query != 0)[-1]
        m, gates = q, []
        for t in range(c.hops):
            ctx, g = episode(params["attention"], params["gate"], facts, mask, q, m)
            m = memory_update(params["memory"][t], m, ctx, q)
            gates.append(g[::-1])  # back to slot order (order reversed is its own inverse)
        return answer_logits(params["answer"], m, q), jnp.stack(gates)

    # ---- the batched path used for training and evaluation ---------------------------------------
    def batch_logits(self, params: dict, sentence_bags: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray,
                     answers: jnp.ndarray | None = None, drop: jnp.ndarray | None = None, rate: float = 0.0):
        """Answers a batch (the function of :meth:`apply` per example; see the module docstring).

        Args:
            params: the parameter pytree.
            sentence_bags: (U, 2, V) bags of the distinct sentences (:meth:`bags`); row 0 is empty.
            story: (B, M) rows of ``sentence_bags`` per slot, 0 = empty.
            query: (B, Q) question word ids.
            answers: optional (V,) bool, the words that may be answers (others get -inf logits).
            drop: optional (B, M + 1, d) uniforms in [0, 1) for dropout (training): units of the
                facts (or of the sentence encodings, ``dropout_at="sentences"``) and of the final
                memory whose uniform is below ``rate`` are zeroed, the rest scaled by 1 / (1 - rate).
            rate: the dropout rate.

        Returns:
            (logits (B, V), attention gates (B, hops, M) per slot).
        """
        c = self.cfg
        b, m = story.shape
        d = c.dim
        unroll = max(1, min(c.unroll, m))
        g = self.factors()
        E = params["embed"]
        table = sentence_bags.reshape(sentence_bags.shape[0], -1) @ (g[:, None, :] * E[None]).reshape(-1, d)
        occupied = story != 0  # (B, M) in slot order
        x = table[story]  # (B, M, d)
        slot_drop = None if drop is None else drop[:, :m]
        if c.dropout_at == "sentences":
            x = dropout(x, slot_drop, rate)

        # input fusion: the forward GRU in story order (slots M-1..0) and the backward GRU (slots
        # 0..M-1) side by side in one loop
        fw, bw = params["fusion"]["fwd"], params["fusion"]["bwd"]
        xs = jnp.stack([_gru_inputs(fw, x[:, ::-1]), _gru_inputs(bw, x)], axis=2)  # (B, M, 2, 3d)
        masks = jnp.stack([occupied[:, ::-1], occupied], axis=2)  # (B, M, 2)
        hs = gru_sequence(jnp.stack([fw["U"], bw["U"]]), jnp.moveaxis(xs, (1, 2), (0, 1)),
                          jnp.moveaxis(masks, (1, 2), (0, 1)), jnp.zeros((2, b, d)), unroll)  # (M, 2, B, d)
        facts = (hs[::-1, 0] + hs[:, 1]).transpose(1, 0, 2) * occupied[..., None]  # (B, M, d) slot order
        if c.dropout_at == "facts":
            facts = dropout(facts, slot_drop, rate)

        # question: a GRU over the words, its last state
        qp = params["question"]
        qx = jnp.moveaxis(_gru_inputs(qp, E[query]), 1, 0)  # (Q, B, 3d)
        q = gru_sequence(qp["U"], qx, (query != 0).T, jnp.zeros((b, d)), c.unroll)[-1]

        # episodes: the question's part of the gate features once, the facts' input products once
        gp, ap = gate_blocks(params["gate"], d), params["attention"]
        fixed = gate_question_part(gp, facts, q)  # (B, M, h)
        attn_x = jnp.moveaxis(_gru_inputs(ap, facts), 1, 0)[::-1]  # (M, B, 2d) in story order
        mem, attention = q, []
        for t in range(c.hops):
            scores = gate_scores_given(gp, fixed, facts, mem)  # (B, M)
            gates = jax.vmap(masked_softmax)(scores, occupied)  # 0 at empty slots: the GRU skips them
            ctx = attention_gru_sequence(ap["U"], attn_x, gates.T[::-1], jnp.zeros((b, d)), unroll)
            up = params["memory"][t]
            mem = jax.nn.relu(jnp.concatenate([mem, ctx, q], axis=1) @ up["W"] + up["b"])
            attention.append(gates)
        mem = dropout(mem, None if drop is None else drop[:, m], rate)
        logits = jnp.concatenate([mem, q], axis=1) @ params["answer"]["W"] + params["answer"]["b"]
        if answers is not None:
            logits = jnp.where(answers, logits, -1e30)
        return logits, jnp.stack(attention, axis=1)

    # ---- the model interface (memjax.models.base) -------------------------------------------------
    def inputs(self, sentences, vocab_words) -> dict:
        del vocab_words
        return {"sentences": self.bags(sentences)}

    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        logits, _ = self.batch_logits(params, data["sentences"], batch["story"], batch["query"], data["answers"],
                                      phase.drop, phase.rate)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["answer"]), jnp.argmax(logits, -1)

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        return softmax_prediction(*self.batch_logits(params, data["sentences"], batch["story"], batch["query"],
                                                     data["answers"]))



# ================================================================================================
# DMN (Kumar et al. 2016)
# ================================================================================================

END = 0  # the decoder's end-of-answer token


def gate_targets(support, hops: int, end: int | None = None):
    """The slot each pass's gates are supervised with: (B, hops) from the supporting slots (B, S)
    (-1 absent); pass i is pointed at supporting fact i, passes beyond them at the last one.

    With ``end`` (the slot of the end-of-passes candidate), the pass after the last supporting fact
    is pointed at ``end`` instead, and the passes after it at nothing (-1)."""
    support = jnp.asarray(support)
    count = jnp.sum(support >= 0, axis=1)
    passes = jnp.minimum(jnp.arange(hops)[None], jnp.maximum(count - 1, 0)[:, None])
    slots = jnp.take_along_axis(support, passes, axis=1)
    if end is None:
        return slots
    i = jnp.arange(hops)[None]
    return jnp.where(i < count[:, None], slots, jnp.where(i == count[:, None], end, -1))


@dataclasses.dataclass(frozen=True)
class DMNConfig:
    """DMN hyperparameters (Kumar et al. 2016, "Ask Me Anything").

    ``answer_words``: the decoder's output words besides the end token (index 0): the pieces of
    the training answers, "apple,football" being the two words "apple" and "football" (set from
    the data by :meth:`DMN.data_defaults`). ``max_answer``: the most words an answer has.
    ``answer_join``: what joins the decoded words into the answer's text: "," as bAbI writes
    answers of several words, " " where the training answers are written with spaces.
    ``supervise``: strong supervision, a cross-entropy on each pass's gates with the supporting
    facts (pass i is pointed at supporting fact i, the last one for passes beyond them), weighted
    by ``gate_weight``.

    ``stop``: the paper's criterion for stopping (strongly supervised only): a learned
    end-of-passes vector joins the facts as one more candidate of every pass's gates (it takes no
    part in the episode). A question with n supporting facts has pass n + 1 pointed at it and no
    gate target after that; in training the memory stops changing after pass n, at test time at
    the first pass whose gates pick the end vector. ``hops`` is then the most passes (set from the
    data by :meth:`DMN.data_defaults`: the most supporting facts of a training question, plus one).
    """

    vocab_size: int
    memory_size: int = 50
    dim: int = 80
    hops: int = 3
    answer_words: tuple = ()
    max_answer: int = 1
    answer_join: str = ","
    supervise: bool = True
    gate_weight: float = 1.0
    embed_init: float = math.sqrt(3.0)
    temporal: bool = False  # an extension, not in the paper: a learned vector per slot (how recent the
    # fact is) added to each fact, as MemN2N's temporal encoding (``--te``)
    unroll: int = 8  # input-GRU steps per loop iteration (the episodes are unrolled up to 64 facts)
    stop: bool = False  # the paper's end-of-passes candidate (``--stop``), strongly supervised only;
    # ``memjax train`` and ``run_babi`` turn it on where the gates are supervised (``build_configs``)

    def __post_init__(self):
        if self.hops < 1 or self.dim < 1 or self.memory_size < 1 or self.vocab_size < 3 or self.max_answer < 1:
            raise ValueError("hops, dim, memory_size and max_answer must be positive and the vocabulary non-trivial")
        if self.stop and not self.supervise:
            raise ValueError("--stop needs the supporting facts: the end of the passes is learned from them "
                             "(drop --no-supervise, or --stop)")
        object.__setattr__(self, "answer_words", tuple(self.answer_words))


class DMN(Model):
    """The Dynamic Memory Network of Kumar et al. 2016 for bAbI.

    - input module: a GRU over the story's words (oldest sentence first); the state after each
      sentence's last word is that sentence's fact c_t;
    - question module: the same GRU over the question's words; its last state is q;
    - episodic memory: per pass i, gates g_t = softmax over facts of
      W2 tanh(W1 z(c_t, m, q) + b1) + b2 with z = [c, m, q, c*q, c*m, |c-q|, |c-m|, c^T Wb q,
      c^T Wb m]; the episode e is the last state of h_t = g_t GRU(c_t, h_{t-1}) + (1 - g_t) h_{t-1};
      the memory m^i = GRU(e, m^{i-1}), m^0 = q (the gates are a softmax, as in the supervised
      setting of the paper, rather than sigmoids);
    - answer module: a GRU decoder, a_0 = m^T, y_t = softmax(W a_t), a_t = GRU([y_{t-1}; q], a_{t-1}),
      emitting the answer's words and then the end token.

    ``batch_loss`` and ``batch_predict`` are what the engine trains and evaluates; the predicted
    word sequence is mapped back to the vocabulary's answer (one bAbI answer token such as
    "apple,football"), -1 when it is none of them.
    """

    traits = Traits("dmn", attention="pass", dropout=True, uses_support=True, answers_as_words=True)

    def __init__(self, cfg: DMNConfig):
        self.cfg = cfg

    # ---- parameters ------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> dict:
        c, d = self.cfg, self.cfg.dim
        out = len(c.answer_words) + 1
        k = jax.random.split(key, 8)
        embed = jax.random.uniform(k[0], (c.vocab_size, d), minval=-c.embed_init, maxval=c.embed_init)
        features = 7 * d + 2
        glorot = jax.nn.initializers.glorot_uniform()
        k1, k2, k3 = jax.random.split(k[3], 3)
        extra = {"time": 0.1 * jax.random.normal(k[2], (c.memory_size, d))} if c.temporal else {}
        if c.stop:
            extra["end"] = 0.1 * jax.random.normal(jax.random.fold_in(k[2], 1), (d,))
        return {
            **extra,
            "embed": embed.at[0].set(0.0),
            "input": gru_init(k[1], d, d),
            "gate": {"Wb": glorot(k1, (d, d)), "W1": glorot(k2, (features, d)), "b1": jnp.zeros((d,)),
                     "W2": glorot(k3, (d, 1))[:, 0], "b2": jnp.zeros(())},
            "episode": gru_init(k[4], d, d),
            "memory": gru_init(k[5], d, d),
            "decoder": gru_init(k[6], out + d, d),
            "answer": {"W": glorot(k[7], (d, out)), "b": jnp.zeros((out,))},
        }

    def dropout_shape(self, memory: int) -> tuple[int, ...]:
        """Dropout uniforms per example: one row per fact and one for the final memory."""
        return (memory + 1, self.cfg.dim)

    # ---- host-side inputs ------------------------------------------------------------------------
    @staticmethod
    def data_defaults(ds, given: dict) -> dict:
        """The decoder's words (the words of the training and validation answers), answer length and
        joint (a space if any answer is written with spaces); with ``stop``, the passes: the most
        supporting facts of a training question, plus one."""
        answers = {ds.vocab.words[a] for split in (ds.train, ds.valid) for a in split.answer}
        pieces = sorted({p for a in answers for p in answer_words(a)})
        out = {"answer_words": tuple(pieces), "max_answer": max(len(answer_words(a)) for a in answers),
               "answer_join": " " if any(" " in a for a in answers) else ","}
        if given.get("stop", DMNConfig.stop):
            out["hops"] = int(np.max(np.sum(ds.train.supporting >= 0, axis=1), initial=0)) + 1
        return out

    def bags(self, ids) -> np.ndarray:
        """The distinct sentences as word ids (the input module reads words)."""
        return np.asarray(ids, np.int32)

    def query_inputs(self, ids) -> np.ndarray:
        return np.asarray(ids, np.int32)

    def extra_data(self, vocab_words) -> dict:
        """``answer_seq`` (V, A + 1): each vocabulary word as decoder targets (its pieces, then the
        end token, then -1), all -1 for words that are no answer the decoder can spell."""
        c = self.cfg
        index = {w: i + 1 for i, w in enumerate(c.answer_words)}
        table = np.full((c.vocab_size, c.max_answer + 1), -1, np.int32)
        for v, word in enumerate(vocab_words[: c.vocab_size]):
            pieces = answer_words(word)
            if v > 1 and len(pieces) <= c.max_answer and all(p in index for p in pieces):
                table[v, : len(pieces)] = [index[p] for p in pieces]
                table[v, len(pieces)] = END
        return {"answer_seq": table}

    # ---- the model -------------------------------------------------------------------------------
    def _encode(self, params, sentences, story, query, drop=None, rate=0.0):
        """(facts (B, M, d) in slot order, occupied (B, M), q (B, d))."""
        c = self.cfg
        b, m = story.shape
        E, ip = params["embed"], params["input"]
        words = sentences[story][:, ::-1]  # (B, M, L) in story order (empty slots first)
        width = words.shape[2]
        flat = words.reshape(b, m * width)
        xw = jnp.moveaxis(_gru_inputs(ip, E[flat]), 1, 0)  # (M L, B, 3d)
        hs = gru_sequence(ip["U"], xw, (flat != 0).T, jnp.zeros((b, c.dim)), c.unroll)
        facts = hs.reshape(m, width, b, c.dim)[:, -1][::-1].transpose(1, 0, 2)  # (B, M, d) slot order
        occupied = story != 0
        if c.temporal:  # slot i holds the i-th most recent fact
            facts = facts + params["time"][:m]
        facts = facts * occupied[..., None]
        facts = dropout(facts, None if drop is None else drop[:, :m], rate)
        qx = jnp.moveaxis(_gru_inputs(ip, E[query]), 1, 0)
        q = gru_sequence(ip["U"], qx, (query != 0).T, jnp.zeros((b, c.dim)), c.unroll)[-1]
        return facts, occupied, q

    def _memory(self, params, facts, occupied, q, passes=None):
        """Passes of the episodic memory: (final memory (B, d), gate scores (B, hops, M'), gates),
        M' = M + 1 with ``stop`` (the end-of-passes candidate in the last column).

        ``passes`` (B,), with ``stop``: how many passes change the memory (training: the supporting
        facts' count); None: until the gates pick the end-of-passes candidate."""
        c = self.cfg
        b, m_slots = facts.shape[:2]
        gp, ep, mp = params["gate"], params["episode"], params["memory"]
        d = c.dim
        episode_x = jnp.moveaxis(_gru_inputs(ep, facts), 1, 0)[::-1]  # (M, B, 3d) story order
        if c.stop:  # the end-of-passes vector: one more candidate of the gates
            facts = jnp.concatenate([facts, jnp.broadcast_to(params["end"], (b, 1, d))], axis=1)
            occupied = jnp.concatenate([occupied, jnp.ones((b, 1), bool)], axis=1)
        W1 = gp["W1"]
        qb = q @ gp["Wb"].T  # c^T Wb q = c . (Wb q)
        fixed = (facts @ W1[:d] + (facts * q[:, None]) @ W1[3 * d:4 * d] + jnp.abs(facts - q[:, None]) @ W1[5 * d:6 * d]
                 + (q @ W1[2 * d:3 * d])[:, None] + jnp.einsum("bmd,bd->bm", facts, qb)[..., None] * W1[7 * d]
                 + gp["b1"])

        def one_pass(carry, i):
            mem, going = carry
            mb = mem @ gp["Wb"].T
            z = jnp.tanh(fixed + (mem @ W1[d:2 * d])[:, None] + (facts * mem[:, None]) @ W1[4 * d:5 * d]
                         + jnp.abs(facts - mem[:, None]) @ W1[6 * d:7 * d]
                         + jnp.einsum("bmd,bd->bm", facts, mb)[..., None] * W1[7 * d + 1])
            scores = jnp.where(occupied, z @ gp["W2"] + gp["b2"], -1e30)
            gates = jax.vmap(masked_softmax)(scores, occupied)
            e = gated_gru_sequence(ep["U"], episode_x, gates[:, :m_slots].T[::-1], jnp.zeros_like(mem),
                                   min(64, m_slots))
            if c.stop:
                going = (i < passes) if passes is not None else going & (jnp.argmax(scores, -1) != m_slots)
                mem = jnp.where(going[:, None], gru_cell(mp, mem, e), mem)
            else:
                mem = gru_cell(mp, mem, e)
            return (mem, going), (scores, gates)

        # the passes share their weights: one loop over them, so that the unrolled episode is compiled
        # once rather than once per pass (task 8's 9 passes: 94 s of XLA compilation otherwise)
        (mem, _), (scores_all, gates_all) = jax.lax.scan(one_pass, (q, jnp.ones((b,), bool)), jnp.arange(c.hops))
        return mem, jnp.moveaxis(scores_all, 0, 1), jnp.moveaxis(gates_all, 0, 1)

    def _decode(self, params, mem, q):
        """Decoder logits (B, A + 1, out) for A + 1 steps, each fed the previous step's softmax."""
        c = self.cfg
        dp, ap = params["decoder"], params["answer"]
        out = ap["W"].shape[1]
        a, y, logits = mem, jnp.zeros((mem.shape[0], out)), []
        for _ in range(c.max_answer + 1):
            a = gru_cell(dp, a, jnp.concatenate([y, q], axis=1))
            step = a @ ap["W"] + ap["b"]
            logits.append(step)
            y = jax.nn.softmax(step)
        return jnp.stack(logits, axis=1)

    def _answers(self, table, logits):
        """Decoded word sequences mapped to vocabulary ids (B,), -1 where none matches."""
        seq = jnp.argmax(logits, -1)  # (B, A + 1)
        ended = jnp.cumsum(seq == END, axis=1) - (seq == END) > 0  # after the first end token
        seq = jnp.where(ended, -1, seq)
        match = jnp.all(seq[:, None, :] == table[None], axis=-1) & (table[None, :, 0] >= 0)
        return jnp.where(jnp.any(match, axis=1), jnp.argmax(match, axis=1), -1)

    def batch_loss(self, params, data, batch, drop=None, rate=0.0):
        """(loss per example (B,), predicted answer ids (B,)): decoder cross-entropy, plus the gates'
        cross-entropy with the supporting facts when supervised."""
        c = self.cfg
        facts, occupied, q = self._encode(params, data["sentences"], batch["story"], batch["query"], drop, rate)
        supervised = c.supervise and "supporting" in batch
        passes = jnp.sum(batch["supporting"] >= 0, axis=1) if supervised and c.stop else None
        mem, scores, _ = self._memory(params, facts, occupied, q, passes)
        mem = dropout(mem, None if drop is None else drop[:, facts.shape[1]], rate)
        logits = self._decode(params, mem, q)
        target = data["answer_seq"][batch["answer"]]  # (B, A + 1)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(target, 0))
        loss = jnp.sum(jnp.where(target >= 0, ce, 0.0), axis=1)
        if supervised:
            slot = gate_targets(batch["supporting"], c.hops, facts.shape[1] if c.stop else None)  # -1: none
            logp = jax.nn.log_softmax(scores, axis=-1)
            picked = jnp.take_along_axis(logp, jnp.maximum(slot, 0)[..., None], axis=-1)[..., 0]
            loss = loss - c.gate_weight * jnp.sum(jnp.where(slot >= 0, picked, 0.0), axis=1)
        return loss, self._answers(data["answer_seq"], logits)

    def batch_predict(self, params, data, batch):
        """Predicted answer ids (B,) (-1: the decoded words are no known answer)."""
        return self.predict(params, data, batch).answer

    # ---- the model interface (memjax.models.base) -------------------------------------------------
    def inputs(self, sentences, vocab_words) -> dict:
        return {"sentences": self.bags(sentences), **self.extra_data(vocab_words)}

    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        return self.batch_loss(params, data, batch, phase.drop, phase.rate)

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        """The decoded answers: vocabulary ids (-1: words that are no known answer), the decoded words
        (B, A + 1) (ids into ``cfg.answer_words`` plus one, 0 = the end, -1 after it), the probability of
        the decoded sequence (each step's most probable word, up to the end), and the gates per pass."""
        facts, occupied, q = self._encode(params, data["sentences"], batch["story"], batch["query"])
        mem, _, gates = self._memory(params, facts, occupied, q)
        logits = self._decode(params, mem, q)
        seq = jnp.argmax(logits, -1)  # (B, A + 1)
        ended = jnp.cumsum(seq == END, axis=1) - (seq == END) > 0  # after the first end token
        steps = jnp.max(jax.nn.softmax(logits, axis=-1), axis=-1)
        probability = jnp.prod(jnp.where(ended, 1.0, steps), axis=1)
        return Prediction(self._answers(data["answer_seq"], logits), probability, None,
                          gates[:, :, : facts.shape[1]], jnp.where(ended, -1, seq))

    def answer_text(self, prediction: Prediction, row: int, vocab_words: list[str]) -> str:
        """The decoded words, joined as the training answers were (``cfg.answer_join``)."""
        pieces = []
        for w in np.asarray(prediction.words)[row]:
            if w <= END:
                break
            pieces.append(self.cfg.answer_words[int(w) - 1])
        return self.cfg.answer_join.join(pieces) if pieces else "?"

    def attention(self, params, sentences, story, query):
        """Gates per pass (B, hops, M) for a batch (slot order; with ``stop``, M + 1: the last column
        is the end-of-passes candidate)."""
        facts, occupied, q = self._encode(params, sentences, story, query)
        return self._memory(params, facts, occupied, q)[2]

