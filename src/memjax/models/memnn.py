"""Memory Networks (Weston, Chopra & Bordes 2014), strongly supervised, for bAbI.

The four components, as pure functions of the parameters:

- **I** (input feature map): a text is its word ids, optionally followed by the ids of its n-grams
  (orders 2..n, numbered after the words), in one int array (:meth:`MemNN.bags`); a feature
  vector ``Phi(t)`` is the sum of the rows of a (features, d) table: ``U Phi(t)`` is an embedding
  *gather and sum*, never a dense product over the vocabulary.
- **G** (write): sentence i of the story goes into the next memory slot, so its slot (counted from
  the newest, as everywhere in memjax) is its write time.
- **O** (output): ``k`` supporting memories chosen one after another. Hop i scores every memory
  ``y`` against ``x = [question, o_1, ..., o_{i-1}]`` with

      s_O(x, y, y') = e_x . (e_y - e_y') + t(x, y, y'),   e_x = U_q Phi(q) + U_o sum_j Phi(o_j),
                                                          e_y = U_y Phi(y)

  where ``t`` holds the paper's write-time features ("x is older than y", "x is older than y'",
  "y is older than y'"), each weighted by ``e_x . u_t`` (learned columns of U). We give them signs
  so that ``s_O(x, y, y') = -s_O(x, y', y)``: with the paper's 0/1 values the margin constraints of
  two memories that differ only in age (Mary went to the office / Mary went to the kitchen) cannot
  both hold. As in the paper, the arg max is a loop over the memories, oldest first, that keeps
  the winner of each comparison ``s_O(x, challenger, winner) > 0``.
- **R** (response): every word ``w`` of the vocabulary is ranked by
  ``s_R(x, w) = (V_q Phi(q) + V_o sum_j Phi(o_j)) . V_w w``.

Training is the paper's margin ranking loss with the supporting facts (strong supervision): at
hop i, the true fact f must beat every other memory m by the margin gamma,
``max(0, gamma - s_O(x, f, m))``, the hop's input x built from the true facts before it; the true
answer must beat every other word, ``max(0, gamma - s_R(x, r) + s_R(x, w))``. ``negatives`` > 0
samples that many wrong memories and words per example and step instead of all of them (the
paper samples; on bAbI's short stories scoring all of them is cheaper than sampling).

Extensions (Weston et al. 2015, "Towards AI-complete question answering", the strongly supervised
bAbI row): ``adaptive`` memory (a special STOP memory that hop i may select, ending the
hops: a variable number of supporting facts, up to ``max_hops``), ``ngrams`` (bags of n-grams as
well as words), ``nonlinear`` (e_x goes through a residual tanh layer, ``e + W2 tanh(W1 e + b)``,
in O and R: words of the question and of the chosen facts interact).

Unseen words (Weston et al. 2014, section 3.6): with ``unseen`` on, an occurrence of the unknown
word (id 1: a word never seen in training) is represented by the words around it, through a left-
and a right-context table per role, and a memory word that also occurs in the question adds a
*match* feature (a learned vector per word, one shared by all unknown words) to e_y, so that a
story about a new name can still be answered. To learn them, each training example pretends,
with probability ``unseen_rate``, that one of its words was never seen (everywhere in the example,
with the n-grams that contain it): a share ``unseen_asked_share`` of the draws (default half) one of
its question's words, the others any word of its memories or question, never its answer's; so that
a new word is learned both where it is asked about and in a sentence the question is not about,
which must then not draw the hops. The validation loss adds ``unseen_valid_copies`` copies (default
4) of each example with a word pretended unseen (fixed per example), so that early stopping keeps an
epoch where the unseen-word path has learned too. Both defaults were chosen on bAbI-1k task 1's
validation questions (experiments/memnn_unseen.py --split valid --compare: experiments/results/
memnn_unseen_choices.md).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from memjax.data.babi import answer_words
from memjax.data.dataset import UNK
from memjax.models.base import Model, Phase, Prediction, Traits, softmax_prediction

STOP = -2  # the selection of the STOP memory (adaptive hops); -1 marks an unused hop
EMPTY = -1e30  # the score of an empty memory slot


def ngram_list(sentences: np.ndarray, queries: np.ndarray, order: int) -> tuple:
    """The n-grams (2..order consecutive word ids) of the given texts (rows of word ids, 0-padded),
    sorted: the n-gram vocabulary of :class:`MemNN` (those of new texts that are not in it are
    left out, as unknown words are)."""
    found: set[tuple[int, ...]] = set()
    for rows in (sentences, queries):
        for row in np.asarray(rows):
            words = [int(w) for w in row if w]
            for n in range(2, order + 1):
                found.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return tuple(sorted(found, key=lambda g: (len(g), g)))


@dataclasses.dataclass(frozen=True)
class MemNNConfig:
    """MemNN hyperparameters. ``ngram_ids`` is the n-gram vocabulary (set from the training data
    by :meth:`MemNN.data_defaults` when ``ngrams`` > 1).

    With ``unseen``, three fields shape the training only (a saved model answers the same whatever
    they are, so records saved before a field existed load with its default):

    - ``unseen_rate``: the share of training examples that pretend one of their words unseen;
    - ``unseen_asked_share``: the share of those draws that take one of the question's words (a new
      name asked about); the others take any word of the example's memories or question (a new name
      anywhere, e.g. in a sentence the question is not about). In [0, 1];
    - ``unseen_valid_copies``: copies of each validation example, each with a word pretended unseen
      (drawn as in training, the same copies every epoch), whose mean loss the validation loss adds,
      so that early stopping keeps an epoch where the unseen-word path has learned. 0: none.
    """

    vocab_size: int
    memory_size: int = 50
    dim: int = 50
    hops: int = 2  # k, the supporting memories chosen (fixed hops); with adaptive, the most hops
    adaptive: bool = False
    ngrams: int = 1  # 1: bag of words; n: also the 2..n-grams
    nonlinear: bool = False
    unseen: bool = False
    unseen_rate: float = 0.1
    unseen_asked_share: float = 0.5  # chosen on validation: experiments/memnn_unseen.py --split valid
    unseen_valid_copies: int = 4  # chosen on validation: experiments/memnn_unseen.py --split valid
    margin: float = 0.1
    negatives: int = 0  # 0: every wrong memory and word; else a sample of that many per example and step
    ngram_ids: tuple = ()
    init_scale: float = 0.1

    def __post_init__(self):
        if self.hops < 1 or self.dim < 1 or self.memory_size < 1 or self.vocab_size < 3 or self.ngrams < 1:
            raise ValueError("hops, dim, memory_size and ngrams must be positive and the vocabulary non-trivial")
        if not 0.0 <= self.unseen_rate < 1.0 or self.margin <= 0 or self.negatives < 0:
            raise ValueError("unseen_rate must be in [0, 1), margin positive and negatives >= 0")
        share, copies = self.unseen_asked_share, self.unseen_valid_copies
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ValueError(f"unseen_asked_share must be a number in [0, 1], got {share!r}")
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 0:
            raise ValueError(f"unseen_valid_copies must be a whole number >= 0, got {copies!r}")
        object.__setattr__(self, "ngram_ids", tuple(tuple(int(w) for w in g) for g in self.ngram_ids))

    @property
    def features(self) -> int:
        """Rows of the feature tables: the words, then the n-grams."""
        return self.vocab_size + len(self.ngram_ids)


def _table(key, rows: int, d: int, scale: float) -> jnp.ndarray:
    return (scale * jax.random.normal(key, (rows, d))).at[0].set(0.0)


class MemNN(Model):
    """The strongly supervised Memory Network (see the module docstring).

    The engine calls ``batch_loss`` (margin losses, with the answers predicted by the full O and R
    modules) and ``batch_predict``; :meth:`select` and :meth:`respond` are the O and R modules on
    their own, :meth:`scores` the O module's per-memory scores.
    """

    # cpu_legacy_emitters: XLA's older CPU fusion emitters train it 2.4x faster at LLVM level 1 (see
    # engine.compiler_options); random_inputs: the engine draws per-example uniforms (negatives, unseen
    # words) every step
    traits = Traits("memnn", attention="chosen", random_inputs=True, uses_support=True, cpu_legacy_emitters=True)

    def __init__(self, cfg: MemNNConfig):
        self.cfg = cfg
        self._ngram_index = {g: cfg.vocab_size + i for i, g in enumerate(cfg.ngram_ids)}

    # ---- parameters ------------------------------------------------------------------------------
    @staticmethod
    def data_defaults(ds, given: dict) -> dict:
        """The n-gram vocabulary (n-grams of the training stories' sentences and questions) when
        ``given`` asks for n-grams."""
        order = given.get("ngrams", MemNNConfig.ngrams)
        if order == 1:
            return {}
        used = np.unique(ds.train.story)
        return {"ngram_ids": ngram_list(ds.sentences[used[used > 0]], ds.train.query, order)}

    def init(self, key: jax.Array) -> dict:
        c, d, f, v = self.cfg, self.cfg.dim, self.cfg.features, self.cfg.vocab_size
        keys = iter(jax.random.split(key, 32))
        s = c.init_scale
        O = {"q": _table(next(keys), f, d, s), "o": _hop_tables(next(keys), c.hops, f, d, s),
             "y": _table(next(keys), f, d, s),
             "time": s * jax.random.normal(next(keys), (2, d)), "stop": s * jax.random.normal(next(keys), (d,))}
        R = {"q": _table(next(keys), f, d, s), "o": _hop_tables(next(keys), c.hops, f, d, s),
             "y": _table(next(keys), v, d, s)}
        if c.unseen:
            for module in (O, R):
                for role in ("q", "o") + (("y",) if module is O else ()):
                    module[role + "L"] = _table(next(keys), v, d, s)
                    module[role + "R"] = _table(next(keys), v, d, s)
            O["match"] = _table(next(keys), v, d, s)
        if c.nonlinear:
            glorot = jax.nn.initializers.glorot_uniform()
            for module in (O, R):
                module["W1"] = glorot(next(keys), (d, d))
                module["b1"] = jnp.zeros((d,))
                module["W2"] = glorot(next(keys), (d, d)) * 0.1
        return {"O": O, "R": R}

    def padding_mask(self, params: dict) -> dict:
        """Multipliers for the updates: 0 on every table's padding row (feature 0 stays zero)."""
        def mask(path, p):
            ones = np.ones(p.shape, np.float32)  # NumPy: eager jnp operations compile a program each
            if path[-1].key not in ("time", "stop", "W1", "b1", "W2"):
                ones[..., 0, :] = 0.0  # (rows, d) or (hops, rows, d) tables
            return ones

        return jax.tree_util.tree_map_with_path(mask, params)

    def decay_mask(self, params: dict) -> dict:
        """1 on the tables and matrices (per-hop tables included), 0 on vectors."""
        return jax.tree.map(lambda p: float(p.ndim >= 2), params)

    def unpad(self, params: dict) -> dict:
        return params

    def dropout_shape(self, memory: int) -> tuple[int, ...]:
        """Per-example uniforms of a step: one per memory (and STOP), one per word, and two for
        the unseen-word draw."""
        return (memory + 1 + self.cfg.vocab_size + 2,)

    # ---- I: input features -----------------------------------------------------------------------
    def features(self, ids) -> np.ndarray:
        """Texts (rows of word ids, 0-padded) as feature ids: the words, then their n-grams."""
        ids = np.asarray(ids, np.int32)
        c = self.cfg
        if c.ngrams == 1 or not c.ngram_ids:
            return ids
        width = ids.shape[1]
        extra = sum(max(0, width - n + 1) for n in range(2, c.ngrams + 1))
        out = np.zeros((ids.shape[0], width + extra), np.int32)
        out[:, :width] = ids
        for r, row in enumerate(ids):
            words = [int(w) for w in row if w]
            grams = [self._ngram_index.get(tuple(words[i:i + n]), 0)
                     for n in range(2, c.ngrams + 1) for i in range(len(words) - n + 1)]
            grams = [g for g in grams if g]
            out[r, width:width + len(grams)] = grams
        return out

    def bags(self, ids) -> np.ndarray:
        return self.features(ids)

    def query_inputs(self, ids) -> np.ndarray:
        return self.features(ids)

    def extra_data(self, vocab_words) -> dict:
        """``ngram_words`` (features, n): the words of each n-gram row (0 for words and padding),
        to drop the n-grams of a word pretended unseen; with ``unseen``, ``answer_words`` (V, k): each
        word's id and, for an answer of several words ("apple,football"), theirs (0-padded), which
        training never pretends unseen in an example with that answer."""
        c = self.cfg
        table = np.zeros((c.features, max(2, c.ngrams)), np.int32)
        for i, g in enumerate(c.ngram_ids):
            table[c.vocab_size + i, : len(g)] = g
        out = {"ngram_words": table}
        if c.unseen:
            index = {w: i for i, w in enumerate(vocab_words or ())}
            parts = [[index[p] for p in answer_words(w) if p in index and index[p] != i]
                     for i, w in enumerate(vocab_words or ())]
            words = np.zeros((c.vocab_size, 1 + max(map(len, parts), default=0)), np.int32)
            words[:, 0] = np.arange(c.vocab_size)
            for i, p in enumerate(parts[: c.vocab_size]):
                words[i, 1: 1 + len(p)] = p
            out["answer_words"] = words
        return out

    def _embed(self, module: dict, role: str, feats: jnp.ndarray) -> jnp.ndarray:
        """U_role Phi(text) for feature ids (..., P): (..., d). Unknown words (id 1) add their
        neighbours' left/right context rows when ``unseen`` is on. The role "o" (the chosen
        memories, feats (B, J, P)) has a table per hop: the response can tell the first fact
        from the second ("Mary went to the kitchen. Then she went to the bedroom.")."""
        v = self.cfg.vocab_size
        table = module[role]
        if role == "o":
            e = jnp.sum(table[jnp.arange(feats.shape[1])[None, :, None], feats], axis=-2)
        else:
            e = jnp.sum(table[feats], axis=-2)
        if self.cfg.unseen:
            words = jnp.where(feats < v, feats, 0)
            prev = jnp.pad(words, [(0, 0)] * (words.ndim - 1) + [(1, 0)])[..., :-1]
            nxt = jnp.pad(words, [(0, 0)] * (words.ndim - 1) + [(0, 1)])[..., 1:]
            unknown = (words == UNK)[..., None]
            e = e + jnp.sum(unknown * (module[role + "L"][prev] + module[role + "R"][nxt]), axis=-2)
        return e

    def _mix(self, module: dict, e: jnp.ndarray) -> jnp.ndarray:
        if not self.cfg.nonlinear:
            return e
        return e + jnp.tanh(e @ module["W1"] + module["b1"]) @ module["W2"]

    # ---- O: the supporting memories --------------------------------------------------------------
    def _candidates(self, params, feats, query):
        """e_y of every memory (B, M, d), with the match features of the question's words."""
        O = params["O"]
        e_y = self._embed(O, "y", feats)
        if self.cfg.unseen:
            v = self.cfg.vocab_size
            words = jnp.where(feats < v, feats, 0)
            qwords = jnp.where(query < v, query, 0)
            match = jnp.any((words[..., None] == qwords[:, None, None, :]) & (words[..., None] > 0), axis=-1)
            e_y = e_y + jnp.sum(match[..., None] * O["match"][words], axis=-2)
        return e_y

    def scores(self, params, e_x, e_y, occupied, last):
        """Per-memory parts of s_O for input e_x (B, d): (H (B, M), stop score (B,), c3 (B,)).

        s_O(x, y, y') = H(y) - H(y') + c3 sign(age(y') - age(y)) for two memories; against STOP,
        s_O(x, y, STOP) = H(y) - stop. ``last``: the slot of x's newest chosen memory (-1: none).
        """
        O = params["O"]
        g = jnp.einsum("bd,bmd->bm", e_x, e_y)
        c = e_x @ O["time"].T  # (B, 2): "x older than y" and "y older than y'"
        slots = jnp.arange(e_y.shape[1])
        newer_than_x = (last[:, None] >= 0) & (slots[None] < last[:, None])
        H = jnp.where(occupied, g + c[:, :1] * newer_than_x, EMPTY)
        return H, e_x @ O["stop"], c[:, 1]

    def _winner(self, H, stop, c3, allow_stop):
        """The paper's loop: memories oldest first, the challenger replaces the winner when
        s_O(x, challenger, winner) > 0. (B,) slots, STOP, or -1 when nothing can be chosen."""
        b, m = H.shape
        start = jnp.where(allow_stop, STOP, -1) * jnp.ones((b,), jnp.int32)

        def step(win, t):
            h = H[:, t]
            h_win = jnp.take_along_axis(H, jnp.maximum(win, 0)[:, None], axis=1)[:, 0]
            beats = jnp.where(win == -1, True, jnp.where(win == STOP, h > stop, h - h_win + c3 > 0))
            return jnp.where((h > EMPTY / 2) & beats, t, win), None

        win, _ = jax.lax.scan(step, start, jnp.arange(m - 1, -1, -1, dtype=jnp.int32))
        return win

    def _x(self, params, module_name, qfeat, chosen_feats, active):
        """e_x of [q, o_1, ...]: chosen_feats (B, J, P) with active (B, J)."""
        module = params[module_name]
        e = self._embed(module, "q", qfeat)
        if chosen_feats is not None:
            e = e + jnp.sum(active[..., None] * self._embed(module, "o", chosen_feats), axis=1)
        return self._mix(module, e)

    def memory_embeddings(self, params, sentences):
        """e_y = U_y Phi(m) of every distinct sentence (U, d), computed once when the memories are
        written, for :meth:`select` (not with ``unseen``: its match features depend on the question)."""
        if self.cfg.unseen:
            raise ValueError("with unseen words, a memory's embedding depends on the question")
        return self._embed(params["O"], "y", sentences)

    def select(self, params, sentences, story, query, memory_embeddings=None):
        """The O module: the chosen slots (B, hops), -1 after STOP (adaptive) or where none.
        ``memory_embeddings``: the sentences' e_y from :meth:`memory_embeddings` (else computed here)."""
        c = self.cfg
        occupied = story != 0
        if memory_embeddings is None:
            e_y = self._candidates(params, sentences[story], query)
        else:
            e_y = memory_embeddings[story]
        b = story.shape[0]
        chosen = jnp.full((b, c.hops), -1, jnp.int32)
        done = jnp.zeros((b,), bool)
        last = jnp.full((b,), -1, jnp.int32)
        for i in range(c.hops):
            active = chosen[:, :i] >= 0
            picked = sentences[jnp.take_along_axis(story, jnp.maximum(chosen[:, :i], 0), axis=1)] if i else None
            e_x = self._x(params, "O", query, picked, active)
            H, stop, c3 = self.scores(params, e_x, e_y, occupied, last)
            win = self._winner(H, stop, c3, c.adaptive)
            done = done | (win == STOP)
            win = jnp.where(done, -1, win)
            chosen = chosen.at[:, i].set(win)
            last = jnp.where(win >= 0, win, last)
        return chosen

    # ---- R: the response -------------------------------------------------------------------------
    def respond(self, params, feats, query, chosen, answers=None):
        """The R module: scores of every word (B, V) given the memories' feature ids (B, M, P) and
        the chosen slots (B, J) (-1: none)."""
        feats = jnp.take_along_axis(feats, jnp.maximum(chosen, 0)[..., None], axis=1)
        e = self._x(params, "R", query, feats, chosen >= 0)
        s = e @ params["R"]["y"].T
        if answers is not None:
            s = jnp.where(answers, s, -jnp.inf)
        return s

    # ---- engine hooks ----------------------------------------------------------------------------
    def _targets(self, support):
        """Per hop, the slot to choose (B, hops), STOP after the last fact (adaptive), -1 for none.

        An example whose listed facts are not all in memory (a -1 before a fact) is not supervised."""
        c = self.cfg
        prefix = jnp.cumprod(support >= 0, axis=1)
        count = jnp.sum(prefix, axis=1)
        count = jnp.where(jnp.any((support >= 0) & (prefix == 0), axis=1), 0, count)
        support = jnp.where(count[:, None] > 0, support, -1)
        hops = jnp.arange(c.hops)[None]
        padded = jnp.pad(support, [(0, 0), (0, max(0, c.hops - support.shape[1]))], constant_values=-1)
        if c.adaptive:
            target = jnp.where(hops < count[:, None], padded[:, : c.hops], -1)
            return jnp.where((hops == count[:, None]) & (count[:, None] > 0), STOP, target)
        last = jnp.take_along_axis(support, jnp.maximum(count - 1, 0)[:, None], axis=1)
        return jnp.where(hops < count[:, None], padded[:, : c.hops], last)  # beyond the facts: the last again

    def _unsee(self, data, story_feats, query, answer, u):
        """Pretends, per example with probability ``unseen_rate`` (``u[:, 0]``), that one of its words
        was never seen: every occurrence in the memories and the question becomes the unknown word, and
        the n-grams that contain it are dropped. ``u[:, 1]`` picks the word: below ``unseen_asked_share``,
        one of the question's distinct words (a new word asked about), else one of the whole example's,
        memories and question (a new word anywhere), each word of the set as likely; never the answer nor
        one of the answer's words (R ranks known words: an answer never seen cannot be given).

        The words of the memories alone matter: at test time a new name may stand in a sentence the
        question is not about, and that sentence must not draw the hops; pretending only question words
        unseen teaches that an unknown word in memory is the one asked about (experiments/memnn_unseen.py
        measures both)."""
        c = self.cfg
        v = c.vocab_size
        b = query.shape[0]
        rows = jnp.arange(b)[:, None]
        ids = jnp.concatenate([story_feats.reshape(b, -1), query], axis=1)
        ids = jnp.where(ids < v, ids, 0)  # the words (n-gram features out)
        present = jnp.zeros((b, v), bool).at[rows, ids].set(True)
        parts = data["answer_words"][answer] if "answer_words" in data else answer[:, None]
        present = present.at[rows, parts].set(False).at[:, : UNK + 1].set(False)  # answer, padding, unknown
        qwords = jnp.where(query < v, query, 0)
        in_query = jnp.zeros((b, v), bool).at[rows, qwords].set(True)
        share = c.unseen_asked_share
        asked = u[:, 1] < share  # a word of the question, else one of the whole example
        present = jnp.where(asked[:, None], present & in_query, present)
        n = jnp.sum(present, axis=1)
        within = jnp.where(asked, u[:, 1] / (share or 1.0), (u[:, 1] - share) / ((1.0 - share) or 1.0))  # [0, 1)
        pick = jnp.minimum((within * n).astype(jnp.int32), jnp.maximum(n - 1, 0))
        word = jnp.argmax(jnp.cumsum(present, axis=1) > pick[:, None], axis=1)  # the pick-th present word
        word = jnp.where((u[:, 0] < c.unseen_rate) & (n > 0), word, -1)

        def hide(feats, w):
            w = w.reshape(w.shape + (1,) * (feats.ndim - 1))
            in_gram = jnp.any(data["ngram_words"][feats] == w[..., None], axis=-1) & (feats >= v)
            return jnp.where(feats == w, UNK, jnp.where(in_gram, 0, feats))

        return hide(story_feats, word), hide(query, word)

    def batch_loss(self, params, data, batch, drop=None, rate=0.0):
        """(margin loss per example (B,), predicted answers (B,) from the full O and R modules).

        With ``unseen``, a training step (``drop`` given) pretends words unseen (:meth:`_unsee`); the
        evaluation loss (no ``drop``: the validation loss, which early stopping reads to choose among
        epochs of equal validation error) adds the mean loss of ``unseen_valid_copies`` copies of each
        example, each with a word pretended unseen, picked as in training by uniforms fixed per example
        (:meth:`_fixed_uniforms`). The reason: on task 1 the plain validation loss reaches 0 within a few
        epochs, and the first such epoch would be kept before the unseen-word path has learned
        (experiments/memnn_unseen.py --split valid compares 0, 1 and 4 copies)."""
        del rate
        c = self.cfg
        story, query = batch["story"], batch["query"]
        feats = data["sentences"][story]
        if drop is not None and c.unseen:
            feats, query = self._unsee(data, feats, query, batch["answer"], drop[:, -2:])
        loss = self._margin_loss(params, data, batch, feats, query, drop)
        if drop is None and c.unseen and c.unseen_valid_copies:
            for u in self._fixed_uniforms(story, query):
                hidden = self._unsee(data, feats, query, batch["answer"], u)
                loss = loss + self._margin_loss(params, data, batch, *hidden, None) / c.unseen_valid_copies
        predicted = self.batch_predict(jax.lax.stop_gradient(params), data, batch)
        return loss, predicted

    def _fixed_uniforms(self, story, query):
        """(``unseen_valid_copies``, B, 2) uniforms that depend on the example alone (its memories'
        sentence ids and its question), the same in every epoch: 0 (always pretend) and picks of
        :meth:`_unsee` spread evenly over [0, 1) from a per-example offset, so that about a share
        ``unseen_asked_share`` of the copies draws one of the question's words, the others one of the
        whole example's, as training's draws do."""
        k = self.cfg.unseen_valid_copies
        x = jnp.concatenate([story, query], axis=1).astype(jnp.uint32)
        h = jnp.sum(x * (2 * jnp.arange(x.shape[1], dtype=jnp.uint32) + 1), axis=1)  # position-weighted (wraps)
        offset = jax.vmap(lambda s: jax.random.uniform(jax.random.fold_in(jax.random.key(0), s)))(h)
        picks = (offset[None] + jnp.arange(k)[:, None]) / k
        return jnp.stack([jnp.zeros_like(picks), picks], axis=-1)

    def _margin_loss(self, params, data, batch, feats, query, drop):
        """The margin losses (B,) of a batch whose memories' and question's feature ids are ``feats``
        (B, M, P) and ``query`` (B, Q); ``drop``: the step's uniforms (sampled negatives) or None."""
        c = self.cfg
        story = batch["story"]
        b, m = story.shape
        occupied = story != 0
        targets = self._targets(batch["supporting"])  # (B, hops)
        e_y = self._candidates(params, feats, query)
        if drop is None or not c.negatives:
            keep_m = jnp.ones((b, m + 1), bool)
        else:  # a sample among the occupied slots (and STOP)
            u = jnp.where(jnp.concatenate([occupied, jnp.ones((b, 1), bool)], axis=1), drop[:, : m + 1], 2.0)
            keep_m = _sample(u, c.negatives)
        loss = jnp.zeros((b,))
        last = jnp.full((b,), -1, jnp.int32)
        slots = jnp.arange(m)
        for i in range(c.hops):
            given = targets[:, :i]
            active = given >= 0
            picked = jnp.take_along_axis(feats, jnp.maximum(given, 0)[..., None], axis=1) if i else None
            e_x = self._x(params, "O", query, picked, active)
            H, stop, c3 = self.scores(params, e_x, e_y, occupied, last)
            f = targets[:, i]
            is_stop = f == STOP
            h_f = jnp.where(is_stop, stop, jnp.take_along_axis(H, jnp.maximum(f, 0)[:, None], axis=1)[:, 0])
            # s_O(x, f, m) for every memory m, then for STOP
            sign = jnp.sign(slots[None] - f[:, None]).astype(H.dtype)  # +1 where m is older than f
            s_mem = h_f[:, None] - H + jnp.where(is_stop[:, None], 0.0, c3[:, None] * sign)
            wrong = occupied & (slots[None] != f[:, None]) & keep_m[:, :m]
            hinge = jnp.sum(jnp.where(wrong, jax.nn.relu(c.margin - s_mem), 0.0), axis=1)
            if c.adaptive:
                hinge = hinge + jnp.where(~is_stop & keep_m[:, m], jax.nn.relu(c.margin - (h_f - stop)), 0.0)
            loss = loss + jnp.where(f != -1, hinge, 0.0)
            last = jnp.where(f >= 0, f, last)
        # R: the true answer above every other word, given the true supporting facts
        facts = jnp.where(targets >= 0, targets, -1)
        s = self.respond(params, feats, query, facts)
        answers = data["answers"] & (jnp.arange(s.shape[1]) > UNK)
        keep_w = answers[None] if drop is None or not c.negatives else answers[None] & _sample(
            drop[:, m + 1: m + 1 + s.shape[1]], c.negatives)
        s_r = jnp.take_along_axis(s, batch["answer"][:, None], axis=1)
        wrong_w = keep_w & (jnp.arange(s.shape[1])[None] != batch["answer"][:, None])
        loss = loss + jnp.sum(jnp.where(wrong_w, jax.nn.relu(c.margin - s_r + s), 0.0), axis=1)
        return loss

    def batch_predict(self, params, data, batch):
        return self.predict(params, data, batch).answer

    # ---- the model interface (memjax.models.base) -------------------------------------------------
    def inputs(self, sentences, vocab_words) -> dict:
        return {"sentences": self.bags(sentences), **self.extra_data(vocab_words)}

    @property
    def keeps_unknown(self) -> bool:
        """With ``unseen``, a word never seen is read as the unknown word, by its context."""
        return self.cfg.unseen

    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        return self.batch_loss(params, data, batch, phase.drop, phase.rate)

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        """The R module's answer given the O module's chosen memories; the softmax of R's scores as the
        probabilities, and the chosen memories as one-hot rows per hop (all zero after STOP)."""
        story, query = batch["story"], batch["query"]
        chosen = self.select(params, data["sentences"], story, query)
        answers = data["answers"] & (jnp.arange(self.cfg.vocab_size) > UNK)
        scores = self.respond(params, data["sentences"][story], query, chosen, answers)
        attention = (chosen[..., None] == jnp.arange(story.shape[1])).astype(jnp.float32)
        return softmax_prediction(scores, attention)

    def apply(self, params, sentences, story, query):
        """One question (for ``memjax ask``/``serve``): (R scores of every word (V,), the chosen
        memories as one-hot rows per hop (hops, M)). ``sentences`` and ``query`` are feature ids
        (:meth:`features`)."""
        story, query = story[None], query[None]
        chosen = self.select(params, sentences, story, query)
        answers = jnp.arange(self.cfg.vocab_size) > UNK
        scores = self.respond(params, sentences[story], query, chosen, answers)[0]
        return jnp.where(answers, scores, -1e30), (chosen[0][:, None] == jnp.arange(story.shape[1])).astype(jnp.float32)

    def attention(self, params, sentences, story, query):
        """The chosen memories as one-hot rows per hop (B, hops, M) (all zero after STOP)."""
        chosen = self.select(params, sentences, story, query)
        return (chosen[..., None] == jnp.arange(story.shape[1])).astype(jnp.float32)


def _hop_tables(key, hops: int, rows: int, d: int, scale: float) -> jnp.ndarray:
    return (scale * jax.random.normal(key, (hops, rows, d))).at[:, 0].set(0.0)


def _sample(u: jnp.ndarray, k: int) -> jnp.ndarray:
    """A boolean mask with the k smallest of each row's uniforms on (a uniform k-subset)."""
    k = min(k, u.shape[-1])
    kth = -jax.lax.top_k(-u, k)[0][..., -1:]
    return u <= kth
