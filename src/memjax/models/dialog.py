"""Memory networks for goal-oriented dialog (Bordes, Boureau & Weston, ICLR 2017): response selection.

The memory holds the dialog so far, one utterance per slot (a bag of its words with its speaker word,
:mod:`memjax.data.dialog`), plus a learned vector per slot position (the utterance's time, slot 0 the
most recent). With one embedding A for memory and query, K hops of

    p = softmax(q . m_i),   o = sum_i p_i m_i,   q <- R (q + o)

and the candidate bot utterances embedded with their own matrix W (bags of words), the answer is the
candidate y maximising q . W phi(y). **Match type** (the paper's option for entities): for each
entity type of the knowledge base (cuisine, location, price, party size, rating, restaurant name,
phone, address), a candidate gets that type's match word when it holds a word of the type that also
stands in the dialog so far; the match words have their own vectors in W's space. They let the model
rank candidates with entities it never saw in training (the OOV test sets).

**Type words** (memjax's addition, ``type_words``, off by default): each word of memory and query that the
knowledge base types also adds its type's vector (a matrix of its own, in A's space) to its bag, so that an
utterance naming an entity never seen in training ("tokyo please") still says that a location was given,
where its own word reads as zero.

The supervised-embeddings baseline of the paper's table is the same scorer without memory reads: the
query and the whole dialog so far summed into one bag (``hops=0``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from memjax.data.dataset import PAD, UNK
from memjax.data.dialog import ENTITY_TYPES, DialogDataset, words
from memjax.models.base import Model, Phase, Prediction, Traits, softmax_prediction


@dataclasses.dataclass(frozen=True)
class DialogConfig:
    """Hyperparameters of :class:`DialogMemN2N`; the candidates and the words' entity types travel with the
    model (a checkpoint answers without the data files).

    Attributes:
        candidates: the candidate bot utterances (normalised text); answers are indices into them.
        entity_types: (word, type) pairs, types from :data:`memjax.data.dialog.ENTITY_TYPES`.
        match: add the match-type features to the candidates.
        hops: memory hops; 0 is the supervised-embeddings baseline (one bag of the whole dialog).
        continues: candidates after which the bot speaks again (the training dialogs' user always stayed
            silent there): ``memjax chat`` goes on without waiting for the user.
        unseen: words of the vocabulary that no training dialog holds (new entities of the candidates): like
            words outside the vocabulary, they read as the padding row (zero, never trained), so that a word
            never seen in a dialog has no trained meaning (not even one learned from candidates that were
            always wrong); they keep their identity for the match features.
        type_words: add each typed word's type vector to the bags of memory and query (see the module).
    """

    vocab_size: int
    memory_size: int = 50
    dim: int = 32
    hops: int = 3
    match: bool = True
    init_std: float = 0.1
    candidates: tuple[str, ...] = ()
    entity_types: tuple[tuple[str, str], ...] = ()
    continues: tuple[int, ...] = ()
    unseen: tuple[str, ...] = ()
    type_words: bool = False

    def __post_init__(self):
        if self.dim < 1 or self.memory_size < 1 or self.vocab_size < 3 or self.hops < 0:
            raise ValueError("dim and memory_size must be positive, hops at least 0, and the vocabulary non-trivial")
        if not self.candidates:
            raise ValueError("a dialog model needs its candidate utterances")
        unknown = {t for _, t in self.entity_types} - set(ENTITY_TYPES)
        if unknown:
            raise ValueError(f"unknown entity types {sorted(unknown)}: use {', '.join(ENTITY_TYPES)}")
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "entity_types", tuple(tuple(p) for p in self.entity_types))
        object.__setattr__(self, "continues", tuple(int(c) for c in self.continues))
        object.__setattr__(self, "unseen", tuple(self.unseen))


def candidate_arrays(candidates, entity_types, vocab_words: list[str]) -> dict[str, np.ndarray]:
    """The candidates as word ids ``cand_words`` (C, L) (0: padding; words outside the vocabulary left out)
    and their entity words ``cand_entities`` (C, E) with types ``cand_types`` (C, E) (1 + the index in
    :data:`ENTITY_TYPES`; 0: none)."""
    index = {w: i for i, w in enumerate(vocab_words)}
    types = dict(entity_types)
    rows = [[index[w] for w in words(c) if w in index] for c in candidates]
    ents = [[(index[w], 1 + ENTITY_TYPES.index(types[w])) for w in words(c) if w in index and w in types]
            for c in candidates]
    cw = np.zeros((len(rows), max(1, max(map(len, rows)))), np.int32)
    ce = np.zeros((len(rows), max(1, max(map(len, ents)))), np.int32)
    ct = np.zeros_like(ce)
    for i, (r, e) in enumerate(zip(rows, ents)):
        cw[i, : len(r)] = r
        if e:
            ce[i, : len(e)], ct[i, : len(e)] = zip(*e)
    return {"cand_words": cw, "cand_entities": ce, "cand_types": ct}


class DialogMemN2N(Model):
    """MemN2N for response selection (see the module docstring).

    Parameters: ``A`` (V, d) memory and query words, ``T`` (M, d) slot times, ``R`` (d, d) between hops,
    ``W`` (V, d) candidate words, ``match`` (types, d) the match words; with ``type_words``, ``types``
    (types, d) the type words of memory and query.
    """

    traits = Traits("memn2n-dialog", attention="hop")
    embeddings = ("A", "W")

    @staticmethod
    def data_defaults(ds, given: dict) -> dict:
        """The candidates and the entity types of a :class:`memjax.data.dialog.DialogDataset`."""
        del given
        if not isinstance(ds, DialogDataset):
            raise ValueError("dialog models train on dialog bAbI (--set dialog)")
        return {"candidates": tuple(ds.candidates), "entity_types": tuple(sorted(ds.entity_types.items())),
                "continues": tuple(ds.continues), "unseen": tuple(ds.unseen)}

    def inputs(self, sentences: np.ndarray, vocab_words: list[str]) -> dict:
        c = self.cfg
        rows = np.arange(len(vocab_words), dtype=np.int32)  # each word's row of A and W
        index = {w: i for i, w in enumerate(vocab_words)}
        rows[[index[w] for w in c.unseen if w in index] + [UNK]] = PAD  # the padding row: zero, never trained
        word_types = np.zeros(len(vocab_words), np.int32)  # 1 + the word's index in ENTITY_TYPES; 0: none
        for w, t in c.entity_types:
            if w in index:
                word_types[index[w]] = 1 + ENTITY_TYPES.index(t)
        return {"sentences": np.asarray(sentences, np.int32), "rows": rows, "word_types": word_types,
                **candidate_arrays(c.candidates, c.entity_types, vocab_words)}

    def answer_text(self, prediction: Prediction, row: int, vocab_words: list[str]) -> str:
        del vocab_words
        answer = int(np.asarray(prediction.answer)[row])
        return self.cfg.candidates[answer] if 0 <= answer < len(self.cfg.candidates) else "?"

    def init(self, key: jax.Array) -> dict:
        c = self.cfg
        k = jax.random.split(key, 5)
        normal = lambda kk, shape: c.init_std * jax.random.normal(kk, shape)  # noqa: E731
        params = {"A": normal(k[0], (c.vocab_size, c.dim)).at[0].set(0.0), "T": normal(k[1], (c.memory_size, c.dim)),
                  "R": normal(k[2], (c.dim, c.dim)), "W": normal(k[3], (c.vocab_size, c.dim)).at[0].set(0.0),
                  "match": normal(k[4], (len(ENTITY_TYPES), c.dim))}
        if c.type_words:  # its own key: the other draws stay those of a model without them
            params["types"] = normal(jax.random.fold_in(key, 1), (len(ENTITY_TYPES), c.dim))
        return params

    def bags(self, params: dict, data: dict, ids: jnp.ndarray) -> jnp.ndarray:
        """The bags (..., d) of word ids (..., L): rows of A, plus each typed word's type vector (type_words)."""
        bag = params["A"][data["rows"][ids]].sum(-2)
        if self.cfg.type_words:  # type 0 (none, and the padding word) one-hot to zero
            typed = jax.nn.one_hot(data["word_types"][ids] - 1, len(ENTITY_TYPES), dtype=bag.dtype).sum(-2)
            bag = bag + typed @ params["types"]
        return bag

    def state(self, params: dict, data: dict, batch: dict):
        """(the controller state after the hops (B, d), the hops' attention (B, K, M))."""
        story = batch["story"]  # (B, M) rows of data["sentences"]
        occupied = story != 0
        bags = self.bags(params, data, data["sentences"][story])  # (B, M, d); empty slots 0 (padding rows stay 0)
        q = self.bags(params, data, batch["query"])
        if self.cfg.hops == 0:  # supervised embeddings: the dialog and the query in one bag
            return q + bags.sum(1), jnp.zeros(story.shape[:1] + (0,) + story.shape[1:])
        memory = bags + params["T"][: story.shape[1]] * occupied[..., None]
        attention = []
        for _ in range(self.cfg.hops):
            scores = jnp.where(occupied, jnp.einsum("bmd,bd->bm", memory, q), -jnp.inf)
            p = jnp.where(occupied, jax.nn.softmax(scores, axis=-1), 0.0)  # a dialog's first turn: no memory
            q = (q + jnp.einsum("bm,bmd->bd", p, memory)) @ params["R"].T
            attention.append(p)
        return q, jnp.stack(attention, 1)

    def matches(self, data: dict, batch: dict) -> jnp.ndarray:
        """(B, C, types) float: 1 where a candidate holds a word of that type that the dialog so far holds."""
        story_words = data["sentences"][batch["story"]].reshape(batch["story"].shape[0], -1)
        said = jnp.concatenate([story_words, batch["query"]], axis=1)  # (B, n) word ids
        present = jnp.zeros((said.shape[0], self.cfg.vocab_size), bool)
        present = present.at[jnp.arange(said.shape[0])[:, None], said].set(True).at[:, 0].set(False)
        hit = present[:, data["cand_entities"]]  # (B, C, E)
        typed = jax.nn.one_hot(data["cand_types"] - 1, len(ENTITY_TYPES), dtype=bool)  # (C, E, types); 0 -> none
        return jnp.any(hit[..., None] & typed[None], axis=2).astype(jnp.float32)

    def logits(self, params: dict, data: dict, batch: dict):
        """(candidate logits (B, C), the hops' attention (B, K, M))."""
        q, attention = self.state(params, data, batch)
        candidates = params["W"][data["rows"][data["cand_words"]]].sum(1)  # (C, d)
        logits = q @ candidates.T
        if self.cfg.match:
            logits = logits + jnp.einsum("bct,bt->bc", self.matches(data, batch), q @ params["match"].T)
        return logits, attention

    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        del phase
        logits, _ = self.logits(params, data, batch)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["answer"]), jnp.argmax(logits, -1)

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        logits, attention = self.logits(params, data, batch)
        return softmax_prediction(logits, attention if self.cfg.hops else None)


@dataclasses.dataclass(frozen=True)
class EmbeddingsConfig(DialogConfig):
    """The supervised-embeddings baseline of the paper's table: no hops, no match type."""

    hops: int = 0
    match: bool = False


class DialogEmbeddings(DialogMemN2N):
    """Supervised embeddings (the paper's baseline): the dialog so far and the query as one bag, scored
    against each candidate's bag (:class:`DialogMemN2N` with ``hops=0``)."""

    traits = Traits("embeddings-dialog", attention=None)
