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
import numpy as np
import optax

from memjax.models.base import Model, Phase, Prediction, Traits, softmax_prediction
from memjax.ops.addressing import address, hop, read, softmax_with_empty, streaming_read
from memjax.ops.encoding import bags_of_words, encode_sentence, padding_row_mask, temporal_encoding, weighted_bags
from memjax.train.config import TrainConfig

VOCAB_PARAMS = ("embed", "A", "B", "C", "W")
# Memory read by projection: with at most this many temporal rows in use, time joins the bags as words
# (measured, per-task bAbI family of 8 tasks x 10 runs, 15 slots and 16 rows: an epoch 0.21-0.24 s
# against 0.24-0.26 s with time apart); with more, the wider bags leave the cache (5 tasks, 50 slots
# and rows: 70% slower), and time is read apart: a column of u T^T per slot, p scattered to its rows.
TIME_WORDS_ROWS = 32


def time_as_words(rows: int) -> bool:
    """Whether :meth:`MemN2N.batch_logits` reads ``rows`` temporal rows as words of the slots' bags."""
    return rows <= TIME_WORDS_ROWS


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
    memory_reads: str = "auto"  # how the batched path reads memory; the results are the same, the
    # speed is not: "encode" (each matrix encodes the sentences), "project" (u is projected through
    # each matrix into word space and weighs the slots' bags) or "auto" (the cheaper by a count of
    # the work, see :func:`reads_by_projection`)

    def __post_init__(self):
        if self.encoding not in ("bow", "pe"):
            raise ValueError(f"encoding must be 'bow' or 'pe', got {self.encoding!r}")
        if self.tying not in ("adjacent", "layerwise"):
            raise ValueError(f"tying must be 'adjacent' or 'layerwise', got {self.tying!r}")
        if self.hops < 1 or self.dim < 1 or self.memory_size < 1 or self.vocab_size < 3:
            raise ValueError("hops, dim and memory_size must be positive and the vocabulary non-trivial")
        if self.memory_reads not in ("auto", "encode", "project"):
            raise ValueError(f"memory_reads must be 'auto', 'encode' or 'project', got {self.memory_reads!r}")


@dataclasses.dataclass(frozen=True)
class MemN2NRecipe(TrainConfig):
    """MemN2N's training recipe (Sukhbaatar et al. 2015, section 4.2): SGD at 0.01 halved every 25
    epochs, each matrix's gradient clipped to norm 40, the batch's loss summed; defaults are the
    per-task recipe (:data:`memjax.train.recipes.MEMN2N_PER_TASK`).

    Its own settings, which MemN2N reads itself: ``linear_start`` (LS): the first ``ls_epochs``
    epochs, at ``ls_lr``, train with the softmaxes of the memory reads removed (the model's warm-up
    phase), and ``epochs`` more follow; ``random_noise`` (RN): in training, a fraction ``noise`` of
    empty memories is inserted at random among a story's time indices.
    """

    decay_every: int | None = 25
    max_grad_norm: float | None = 40.0
    linear_start: bool = True
    ls_epochs: int = 20
    ls_lr: float = 0.005
    random_noise: bool = True
    noise: float = 0.1

    @property
    def warmup_epochs(self) -> int:
        return self.ls_epochs if self.linear_start else 0

    @property
    def warmup_lr(self) -> float | None:
        return self.ls_lr

    def record(self) -> dict:
        return dataclasses.asdict(self)


def reads_by_projection(mode: str, batch: int, memory: int, distinct: int, width: int, dim: int, matrices: int,
                        hops: int) -> bool:
    """Whether :meth:`MemN2N.batch_logits` reads memory by projection (``mode`` "auto": by a count of work).

    A memory slot's vector under a matrix E is bag @ E' (bag: the slot's sentence as R weighted bags
    of V words, width = R V; E' = E scaled by the position-encoding factors), so u . m_i = bag_i . (E' u)
    and sum_i p_i m_i = (sum_i p_i bag_i) @ E'. *Encoding* computes the vectors: one (N, width) x
    (width, d) product per matrix for the N = min(distinct sentences, slots) sentences it needs, then
    about 2 + 6 hops / matrices passes over the (slots, d) vectors (gathers, scores, reads, their
    gradients). *Projection* never forms them: about 1 + 4 hops passes over the (slots, width) bags,
    and products of a width-long vector per example. Projection is chosen when it counts at most
    half the work: for joint bAbI (V = 175, 3,183 distinct sentences, d = 50) about 30x less; for the
    per-task models several times less; for many slots of few distinct sentences (large batches,
    long stories) encoding stays, where the counts are close and encoding measured faster.
    """
    if mode != "auto":
        return mode == "project"
    slots = batch * memory
    project = slots * width * (1 + 4 * hops)
    encode = 2 * matrices * min(distinct, slots) * width * dim + slots * dim * (2 * matrices + 6 * hops)
    return 2 * project <= encode


def noise_spread(memory: int, noise: float) -> int:
    """The most blanks random noise puts into a memory of M statements: ceil(noise M) - 1 (at least 0).

    Every time index of :func:`random_time` lies in [i, i + spread] for slot i.
    """
    return max(int(math.ceil(noise * memory)) - 1, 0)


def random_time(key: jax.Array, occupied: jnp.ndarray, memory: int, noise: float,
                table: int | None = None) -> jnp.ndarray:
    """Time indices with random noise (RN): empty memories inserted at random time positions.

    As in the authors' code: a story with n statements draws nblank uniformly from
    {0, ..., ceil(noise * n) - 1}, then a random sorted subset of n time indices out of
    {0, ..., n + nblank - 1}; the most recent statement gets the smallest. Indices past the table
    are clamped to its last row.

    Args:
        key: PRNG key.
        occupied: (B,) int number of statements in each story's memory (at most ``memory``).
        memory: M, the number of slots.
        noise: the fraction of empty memories (0.1 in the paper).
        table: rows of the time table (default M); may exceed M when memory is cut to the
            slots that can be occupied.

    Returns:
        (B, M) int32 time indices, non-decreasing along the slots (slot 0 = most recent).
    """
    uniforms = jax.random.uniform(key, (occupied.shape[0], noise_draws(memory, noise)))
    return time_from_uniforms(uniforms, occupied, memory, noise, table)


_FLOYD_MAX = 8  # up to this many blanks, Floyd's algorithm (unrolled); beyond, a top-k of random scores


def noise_draws(memory: int, noise: float) -> int:
    """Uniform draws per example that :func:`time_from_uniforms` takes (1 + s, or 1 + M + s for large s)."""
    most = noise_spread(memory, noise)
    return 1 + most if most <= _FLOYD_MAX else 1 + memory + most


def time_from_uniforms(uniforms: jnp.ndarray, occupied: jnp.ndarray, memory: int, noise: float,
                       table: int | None = None) -> jnp.ndarray:
    """:func:`random_time` from given uniform draws in [0, 1): (B, :func:`noise_draws`).

    Drawing every step's uniforms at once (the engine draws an epoch's) is much cheaper on a CPU
    than a random call per step. Column 0 picks nblank; the others pick the blanks' positions, a
    uniform random nblank-subset of {0, ..., n + nblank - 1}: by Floyd's algorithm for up to 8
    blanks (memories up to 90 slots at noise 0.1), else as the nblank smallest of iid scores.
    """
    table = memory if table is None else table
    most = noise_spread(memory, noise)
    n = occupied.astype(jnp.int32)
    slots = jnp.broadcast_to(jnp.arange(memory, dtype=jnp.int32), (n.shape[0], memory))
    if most == 0:
        return jnp.minimum(slots, table - 1)
    limit = jnp.ceil(noise * n.astype(jnp.float32))
    nblank = jnp.floor(uniforms[:, 0] * limit).astype(jnp.int32)
    total = n + nblank
    unused = memory + most  # past every slot
    if most <= _FLOYD_MAX:
        blanks = jnp.full((n.shape[0], most), unused, jnp.int32)
        for i in range(most):  # Floyd: for j = total - nblank .. total - 1, t ~ U{0..j}, or j if t is taken
            j = total - nblank + i
            t = jnp.minimum(jnp.floor(uniforms[:, 1 + i] * (j + 1).astype(jnp.float32)).astype(jnp.int32), j)
            t = jnp.where(jnp.any(blanks == t[:, None], axis=1), j, t)
            blanks = blanks.at[:, i].set(jnp.where(i < nblank, t, unused))
    else:
        scores = jnp.where(jnp.arange(unused) < total[:, None], uniforms[:, 1:], 2.0)
        _, blanks = jax.lax.top_k(-scores, most)
        blanks = jnp.where(jnp.arange(most) < nblank[:, None], blanks, unused)
    blanks = jnp.sort(blanks, axis=1)
    # The j-th blank (sorted) has blanks[j] - j statements before it, so the i-th statement has
    # every blank with blanks[j] - j <= i before it.
    before = blanks - jnp.arange(most)
    if most <= _FLOYD_MAX:
        shift = jnp.sum(before[:, :, None] <= slots[:, None, :], axis=1, dtype=jnp.int32)
    else:
        shift = jax.vmap(lambda b, s: jnp.searchsorted(b, s, side="right"))(before, slots).astype(jnp.int32)
    return jnp.minimum(slots + shift, table - 1).astype(jnp.int32)


class MemN2N(Model):
    """End-To-End Memory Network for question answering over a vocabulary."""

    # the engine gathers an epoch's batches at once (see Trainer._epoch): this model's steps are short
    traits = Traits("memn2n", attention="hop", epoch_batches=True)
    embeddings = VOCAB_PARAMS

    def __init__(self, cfg: MemN2NConfig):
        self.cfg = cfg

    def init(self, key: jax.Array) -> dict:
        """Draws parameters from N(0, init_std^2) with the padding rows set to zero.

        Two normal draws (one random call compiles and runs much faster on a CPU than one per
        matrix): the vocabulary matrices as one (V, n, d) array, so that padding the vocabulary
        with more rows leaves the other rows' values unchanged, and the rest as one flat vector.
        """
        c = self.cfg
        normal = jax.nn.initializers.normal(c.init_std)
        k_vocab, k_rest = jax.random.split(key)
        if c.tying == "adjacent":
            names, rest = ["embed"] * (c.hops + 1), {}
            if c.temporal:
                rest = {"temporal": [(c.memory_size, c.dim)] * (c.hops + 1)}
        else:
            names, rest = ["A", "B", "C", "W"], {"H": (c.dim, c.dim)}
            if c.temporal:
                rest.update(TA=(c.memory_size, c.dim), TC=(c.memory_size, c.dim))
        vocab = normal(k_vocab, (c.vocab_size, len(names), c.dim)).at[0].set(0.0)
        leaves, tree = jax.tree.flatten(rest, is_leaf=lambda x: isinstance(x, tuple))
        sizes = [math.prod(shape) for shape in leaves]
        flat = normal(k_rest, (sum(sizes),)) if sizes else jnp.zeros((0,))
        params = jax.tree.unflatten(tree, [x.reshape(shape) for x, shape in
                                           zip(jnp.split(flat, np.cumsum(sizes)[:-1]), leaves)])
        if c.tying == "adjacent":
            params["embed"] = [vocab[:, k] for k in range(c.hops + 1)]
        else:
            params.update({name: vocab[:, k] for k, name in enumerate(names)})
        return params

    # ---- training noise: random time (RN) ---------------------------------------------------------
    @staticmethod
    def _noisy(config) -> bool:
        """Whether the recipe adds random noise (a recipe other than :class:`MemN2NRecipe` has none)."""
        return isinstance(config, MemN2NRecipe) and config.random_noise and config.noise > 0

    def noise_draws(self, memory: int, config) -> int:
        """Uniforms per example and step that make the random time of a memory of ``memory`` slots."""
        return noise_draws(memory, config.noise) if self._noisy(config) else 0

    def time_rows(self, memory: int, config) -> int:
        """The temporal rows a training step with ``memory`` slots reads: slot i's time lies in
        [i, i + spread] with random noise (spread 0 without), so the rows past m + spread are never read."""
        spread = noise_spread(memory, config.noise) if self._noisy(config) else 0
        return min(self.cfg.memory_size, memory + spread)

    def step_bytes(self, batch: int, memory: int, config) -> int:
        """Bytes of the slot bags a training step reads memory through (float32 (B, M, R V), plus time as
        words); the engine groups runs by it (:meth:`memjax.train.engine.Trainer.group_size`)."""
        c = self.cfg
        width = (2 if c.encoding == "pe" else 1) * c.vocab_size
        rows = self.time_rows(memory, config)
        if c.temporal and time_as_words(rows):
            width += rows
        return 4 * batch * memory * width

    # ---- the model interface (memjax.models.base) -------------------------------------------------
    def inputs(self, sentences, vocab_words) -> dict:
        del vocab_words
        return {"sentences": self.bags(sentences)}

    def _batch_logits(self, params: dict, data: dict, batch: dict, phase: Phase):
        """:meth:`batch_logits` of a batch, with the random time of ``phase.noise`` (training)."""
        story = batch["story"]
        m = story.shape[1]
        time = time_rows = None
        # Time noise needs a memory of more than 1 / noise slots; below that every time is the slot's own.
        if phase.noise is not None and noise_spread(m, phase.config.noise) > 0:  # noise only where noise_draws > 0
            occupied = jnp.sum(story != 0, axis=1)
            time = time_from_uniforms(phase.noise, occupied, m, phase.config.noise, table=self.cfg.memory_size)
            time_rows = self.time_rows(m, phase.config)
        return self.batch_logits(params, data["sentences"], story, batch["query"], time=time, linear=phase.linear,
                                 answers=data["answers"], time_rows=time_rows)

    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        logits, _ = self._batch_logits(params, data, batch, phase)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["answer"]), jnp.argmax(logits, -1)

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        return softmax_prediction(*self._batch_logits(params, data, batch, Phase()))

    def padding_mask(self, params: dict) -> dict:
        """A pytree of multipliers for the gradients: 0 on the padding row of vocabulary matrices."""
        row = padding_row_mask(self.cfg.vocab_size)
        return {name: jax.tree.map(lambda _: row if name in VOCAB_PARAMS else 1.0, value)
                for name, value in params.items()}

    def decay_mask(self, params: dict) -> dict:
        """1 on every parameter (all are matrices): what L2 regularisation applies to, if asked for."""
        return jax.tree.map(lambda _: 1.0, params)

    def grow_memory(self, params: dict, memory_size: int) -> dict:
        """Parameters for a longer (or shorter) memory: temporal tables cut, or grown by repeating their last row.

        The repeated row is what slots past the table read anyway (clamped time indices), so a model
        grown this way answers as before; training it on longer stories then refines the new rows.
        Leading axes (runs) are kept.
        """
        def grow(table):
            m = table.shape[-2]
            if memory_size <= m:
                return table[..., :memory_size, :]
            last = jnp.repeat(table[..., -1:, :], memory_size - m, axis=-2)
            return jnp.concatenate([table, last], axis=-2)

        out = dict(params)
        for name in ("temporal", "TA", "TC"):
            if name in out:
                out[name] = jax.tree.map(grow, out[name])
        return out

    def unpad(self, params: dict) -> dict:
        """Parameters trained with a padded vocabulary, cut back to this model's vocabulary."""
        v = self.cfg.vocab_size
        return {name: jax.tree.map(lambda a: a[:v], value) if name in VOCAB_PARAMS else value
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

    # ---- the batched path used for training and evaluation ---------------------------------------
    def factors(self) -> jnp.ndarray:
        """(R, d) position factors g of the encoding (R = 1 for bag of words, 2 for PE)."""
        c = self.cfg
        _, g = bags_of_words(jnp.zeros((1,), jnp.int32), c.vocab_size, c.encoding, c.pe_formula, c.pe_length, c.dim)
        return g

    def bags(self, ids) -> np.ndarray:
        """Weighted bags of words of sentences or questions, computed once on the host.

        Args:
            ids: (N, L) word ids, 0-padded.

        Returns:
            (N, R, V) float32: the encoding of row i under an embedding E is sum_r g_r * (bags[i, r] @ E).
        """
        c = self.cfg
        return weighted_bags(ids, c.vocab_size, c.dim, c.encoding, c.pe_formula, c.pe_length)[0]

    def query_inputs(self, ids) -> np.ndarray:
        """What the engine stores for the questions: their bags (see :meth:`bags`)."""
        return self.bags(ids)

    def _scaled(self, E: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
        """E' = E scaled by the position-encoding factors g (R, d): (R V, d), so that a sentence's
        vector is its flattened weighted bags (:meth:`bags`) times E'."""
        # a broadcast product, not an einsum: its gradient is then a multiply and a sum over r (the
        # einsum's was a dot batched over d, with transposes around it)
        return (E[None] * g[:, None, :]).reshape(g.shape[0] * self.cfg.vocab_size, g.shape[1])

    def _roles(self, params: dict):
        """(query matrix, memory matrices, answer matrix, temporal tables, (key, value) per hop)."""
        c = self.cfg
        if c.tying == "adjacent":
            E = params["embed"]
            return E[0], E, E[c.hops], params.get("temporal"), [(k, k + 1) for k in range(c.hops)]
        T = [params["TA"], params["TC"]] if c.temporal else None
        return params["B"], [params["A"], params["C"]], params["W"], T, [(0, 1)] * c.hops

    def batch_logits(self, params: dict, sentence_bags: jnp.ndarray, story: jnp.ndarray, query_bags: jnp.ndarray,
                     time: jnp.ndarray | None = None, n_empty: jnp.ndarray | None = None, linear=False,
                     answers: jnp.ndarray | None = None, time_rows: int | None = None):
        """Answers a batch from precomputed bags (see :meth:`bags`); the path training uses.

        The same function as :meth:`apply` for every example, organised for speed: memory is read
        either through its vectors (every matrix that reads memory applied to the distinct sentences
        in one product, then one gather) or without forming them, through projections of u into
        word space (:func:`reads_by_projection` chooses), and empty slots beyond ``story``'s width
        are counted, not stored.

        Args:
            params: the parameter pytree.
            sentence_bags: (U, R, V) bags of the distinct sentences; row 0 is the empty sentence.
            story: (B, M) rows of ``sentence_bags`` per slot, 0 = empty. M may be smaller than
                ``cfg.memory_size`` when no story has more statements.
            query_bags: (B, R, V) bags of the questions.
            time: (B, M) time index per slot (default: the slot index).
            n_empty: (B,) empty slots that take part in the softmax (default: ``memory_size`` minus
                the occupied slots with ``attend_empty``, else 0).
            linear: True during linear start (no softmax in the memory layers).
            answers: optional (V,) bool, the words that may be answers (others get -inf logits).
            time_rows: a bound on ``time``'s indices (all below it), so that only the temporal tables'
                first rows take part (default: all rows; without ``time``: M).

        Returns:
            (logits (B, V), attention (B, hops, M)).
        """
        c = self.cfg
        g = self.factors()
        r, d = g.shape
        b, m = story.shape
        q_matrix, mems, w_matrix, temporal, pairs = self._roles(params)
        occupied = story != 0
        sentence_bags = jnp.asarray(sentence_bags)  # indexed with traced slots below (NumPy input too)
        distinct, width = sentence_bags.shape[0], r * c.vocab_size

        weights = [self._scaled(E, g) for E in mems]  # E' per matrix that reads memory
        if n_empty is None:
            n_empty = (c.memory_size - jnp.sum(occupied, axis=1)) if c.attend_empty else jnp.zeros((b,))
        # Temporal encoding: T(time_i) added to the occupied slots' vectors; only rows below
        # ``time_rows`` can be read (the slot index without noise: below M).
        tables, noisy = [None] * len(mems), time is not None
        if c.temporal:
            if time is None:
                time, time_rows = jnp.broadcast_to(jnp.arange(m), (b, m)), m
            rows_t = min(temporal[0].shape[0], time_rows or temporal[0].shape[0])
            tables = [t[:rows_t] for t in temporal]
            rows = jnp.arange(b)[:, None]

        def time_scores(k, u):  # u . T(time_i): a column of u T^T (without noise, column i)
            t = u @ tables[k].T
            return jnp.where(occupied, jnp.take_along_axis(t, time, axis=1) if noisy else t, 0.0)

        def time_read(v, p):  # sum_i p_i T(time_i): the p placed at their times' rows, times T
            at = p * occupied
            if noisy:
                at = jnp.zeros((b, tables[v].shape[0]), p.dtype).at[rows, time].add(at)
            return at @ tables[v]

        words = False  # time read as words of the slots' bags (projection, short memories), else apart
        if reads_by_projection(c.memory_reads, b, m, distinct, width, d, len(mems), c.hops):
            slot_bags = sentence_bags.reshape(distinct, width)[story]  # (B, M, R V), constants
            words = c.temporal and time_as_words(rows_t)
            if words:  # each occupied slot's time row joins its bag as a word, and T joins E': one
                # product and one pass over the bags where there were a gather, a scatter and two more
                # products per hop, forward and back
                when = (time[..., None] == jnp.arange(rows_t)) & occupied[..., None]
                slot_bags = jnp.concatenate([slot_bags, when.astype(slot_bags.dtype)], axis=-1)
                weights = [jnp.concatenate([w, t]) for w, t in zip(weights, tables)]

            def scores_of(k, u):  # u . m_i = bag_i . (E' u)
                return jnp.einsum("bmx,bx->bm", slot_bags, u @ weights[k].T)

            def read_of(v, p):  # sum_i p_i m_i = (sum_i p_i bag_i) E'
                return jnp.einsum("bm,bmx->bx", p, slot_bags) @ weights[v]
        else:
            if distinct > b * m:  # more distinct sentences than slots: encode the slots
                bags, pick = sentence_bags[story.reshape(-1)].reshape(b * m, width), lambda x: x
            else:
                bags, pick = sentence_bags.reshape(distinct, width), lambda x: x[story.reshape(-1)]
            # one memory per matrix that reads it: the sentences encoded, then gathered
            enc = [pick(bags @ w).reshape(b, m, d) for w in weights]

            def scores_of(k, u):
                return jnp.einsum("bmd,bd->bm", enc[k], u)

            def read_of(v, p):
                return jnp.einsum("bm,bmd->bd", p, enc[v])
        apart = c.temporal and not words
        u = query_bags.reshape(b, -1) @ self._scaled(q_matrix, g)
        attention = []
        for k, v in pairs:
            scores = scores_of(k, u) + time_scores(k, u) if apart else scores_of(k, u)
            p = jnp.where(linear, jnp.where(occupied, scores, 0.0), softmax_with_empty(scores, occupied, n_empty))
            o = read_of(v, p) + time_read(v, p) if apart else read_of(v, p)
            u = (u + o) if c.tying == "adjacent" else (u @ params["H"].T + o)
            if c.attend_empty:  # report the share of each empty slot too (what apply returns)
                share = (1.0 - jnp.sum(p, axis=1, keepdims=True)) / jnp.maximum(n_empty, 1)[:, None]
                p = jnp.where(occupied | linear, p, share)
            attention.append(p)
        logits = u @ w_matrix.T
        if answers is not None:
            logits = jnp.where(answers, logits, -1e30)
        return logits, jnp.stack(attention, axis=1)

    def long_logits(self, params: dict, sentence_bags: jnp.ndarray, story: jnp.ndarray, query_bags: jnp.ndarray,
                    chunk: int = 4096, answers: jnp.ndarray | None = None) -> jnp.ndarray:
        """:meth:`batch_logits` (no time noise, after linear start) for very long memories.

        Memory is read chunk by chunk with a streaming softmax (:func:`memjax.ops.streaming_read`):
        the distinct sentences are encoded once, and each hop gathers and scores ``chunk`` slots
        at a time, so time grows linearly with the memory and memory use stays that of one chunk.
        Slots past the temporal table read its last row (as random noise's clamped indices do).

        Args:
            story: (B, M) rows of ``sentence_bags`` per slot, 0 = empty; any M.
            chunk: slots per chunk (M is padded with empty slots to a multiple).

        Returns:
            (B, V) logits.
        """
        c = self.cfg
        g = self.factors()
        d = g.shape[1]
        b, m = story.shape
        chunk = max(1, min(chunk, m))
        n_chunks = -(-m // chunk)
        story = jnp.pad(story, ((0, 0), (0, n_chunks * chunk - m)))
        q_matrix, mems, w_matrix, temporal, pairs = self._roles(params)
        tables = [sentence_bags.reshape(sentence_bags.shape[0], -1) @ self._scaled(E, g) for E in mems]
        n_empty = (c.memory_size - jnp.sum(story != 0, axis=1)).astype(jnp.float32) if c.attend_empty else None
        if n_empty is not None:
            n_empty = jnp.maximum(n_empty, 0.0)

        def slots(k, ci):
            rows = jax.lax.dynamic_slice_in_dim(story, ci * chunk, chunk, axis=1)  # (B, C)
            vectors = tables[k][rows]
            if c.temporal:
                t = jnp.minimum(ci * chunk + jnp.arange(chunk), temporal[k].shape[0] - 1)
                vectors = vectors + temporal[k][t][None] * (rows != 0)[..., None]
            return rows != 0, vectors

        u = query_bags.reshape(b, -1) @ self._scaled(q_matrix, g)
        for k, v in pairs:
            def score_and_value(ci, k=k, v=v, u=u):
                mask, keys = slots(k, ci)
                _, values = slots(v, ci)
                return jnp.einsum("bcd,bd->bc", keys, u), mask, values

            o = streaming_read(score_and_value, n_chunks, b, d, n_empty)
            u = (u + o) if c.tying == "adjacent" else (u @ params["H"].T + o)
        logits = u @ w_matrix.T
        return jnp.where(answers, logits, -1e30) if answers is not None else logits

    def logits(self, params: dict, sentences: jnp.ndarray, batch: dict, key: jax.Array | None = None,
               linear=False, noise: float = 0.0):
        """Answers a batch given word ids: ``batch["story"]`` (B, M) and ``batch["query"]`` (B, Q).

        A convenience over :meth:`batch_logits` (the bags are made here, inside the trace). With
        ``key`` and ``noise > 0`` the time indices get random noise (training only).

        Returns:
            (logits (B, V), attention (B, hops, M)).
        """
        c = self.cfg
        story, query = batch["story"], batch["query"]
        make = jax.vmap(lambda s: bags_of_words(s, c.vocab_size, c.encoding, c.pe_formula, c.pe_length, c.dim)[0])
        time = None
        if key is not None and noise > 0:
            time = random_time(key, jnp.sum(story != 0, axis=1), story.shape[1], noise)
        return self.batch_logits(params, make(sentences), story, make(query), time=time, linear=linear)
