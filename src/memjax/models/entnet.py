"""The Recurrent Entity Network, EntNet (Henaff, Weston, Szlam, Bordes & LeCun, ICLR 2017).

A fixed number of memory slots (20), each a learned key w_j and a value h_j, read the story one sentence
at a time, oldest first; every sentence updates every slot through a gated recurrence, and the question
then attends over the slots (the ops: :mod:`memjax.ops.entity`):

- sentences and the question are encoded as s = sum_i f_i * e_i over word embeddings e_i, with learned
  multiplicative position masks f_i (one set for the story's sentences, one for the question);
- dynamic memory: g_j = sigmoid(s^T h_j + s^T w_j), h~_j = PReLU(U h_j + V w_j + W s),
  h_j <- normalise(h_j + g_j h~_j); the slots start as their keys (h_j = w_j);
- output: p_j = softmax(q^T h_j), u = sum_j p_j h_j, logits = R PReLU(q + H u).

The keys are learned and not tied to entities (the bAbI setup of docs/anchors.md). Initialisation
(not given in the anchors): embeddings, keys, U, V, W, H and R from N(0, 0.1^2), position masks 1 (each
sentence starts as its bag of words), PReLU slopes 0.25 (Torch's ``nn.PReLU``); :class:`EntNetConfig`
has the authors' code's choices where they differ.

:attr:`Prediction.attention` holds the slot gates: (B, N, M), for each slot j the gate g_j of each memory
slot's sentence (slot 0 the most recent; 0 where empty), ``Traits.attention = "slots"``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from memjax.models.base import Model, Phase, Prediction, Traits, softmax_prediction
from memjax.ops.entity import entity_read, entity_scan, masked_encoding, memory_init, output_init


@dataclasses.dataclass(frozen=True)
class EntNetConfig:
    """EntNet hyperparameters; the defaults are the paper's bAbI recipe (docs/anchors.md): 20 slots, d = 100.

    ``length``: the position masks' length K, the longest sentence or question of the data
    (:meth:`EntNet.data_defaults` sets it); words past it are not read.

    Three details of the authors' Torch code that the paper does not give (off by default, the paper's
    model): ``prelu_init`` 1.0 (the slopes start at 1, linear), ``biases`` (the gate's bias per slot and
    U's bias, :func:`memjax.ops.entity.memory_init`) and ``story_mask_std`` S > 0 (the story's position
    masks start from N(0, S^2), not 1; the question's start at 1 either way).
    """

    vocab_size: int
    memory_size: int = 50
    length: int = 0
    dim: int = 100
    slots: int = 20
    init_std: float = 0.1
    prelu_init: float = 0.25
    biases: bool = False
    story_mask_std: float = 0.0

    def __post_init__(self):
        if self.length < 1:
            raise ValueError("length must be positive (build_configs sets it from the data)")
        if self.dim < 1 or self.slots < 1 or self.memory_size < 1 or self.vocab_size < 3:
            raise ValueError("dim, slots and memory_size must be positive and the vocabulary non-trivial")
        if self.story_mask_std < 0:
            raise ValueError(f"story_mask_std must be at least 0 (0: the masks start at 1), not {self.story_mask_std}")


class EntNet(Model):
    """The Recurrent Entity Network (see the module docstring).

    Parameters: ``embed`` (V, d), ``story_mask`` and ``query_mask`` (K, d), ``memory``
    (:func:`memjax.ops.entity.memory_init`), ``output`` (:func:`memjax.ops.entity.output_init`),
    ``answer`` (V, d): R with the vocabulary as its leading axis.
    """

    # length_buckets: the story's empty slots are skipped by the scan, so a batch cut to its stories' longest
    # length (engine --buckets) answers as at the whole memory's, for less work
    traits = Traits("entnet", attention="slots", length_buckets=True)
    embeddings = ("embed", "answer")

    @staticmethod
    def data_defaults(ds, given: dict | None = None) -> dict:
        """``length``: the widest sentence or question of the data."""
        widths = [ds.sentences.shape[1]] + [s.query.shape[1] for s in (ds.train, ds.valid, ds.test)]
        return {"length": max(1, *widths)}

    def init(self, key: jax.Array) -> dict:
        c = self.cfg
        k = jax.random.split(key, 4)
        ones = jnp.ones((c.length, c.dim))
        story_mask = ones if c.story_mask_std == 0 else \
            c.story_mask_std * jax.random.normal(jax.random.fold_in(key, 2), (c.length, c.dim))
        return {"embed": (c.init_std * jax.random.normal(k[0], (c.vocab_size, c.dim))).at[0].set(0.0),
                "story_mask": story_mask, "query_mask": ones,
                "memory": memory_init(k[1], c.dim, c.slots, c.init_std, c.prelu_init, biases=c.biases),
                "output": output_init(k[2], c.dim, c.init_std, c.prelu_init),
                "answer": (c.init_std * jax.random.normal(k[3], (c.vocab_size, c.dim))).at[0].set(0.0)}

    # ---- one example, from the ops ---------------------------------------------------------------
    def encode_sentences(self, params: dict, sentences: jnp.ndarray) -> jnp.ndarray:
        """(U, d): every distinct sentence (U, L) encoded once (row 0, empty, encodes to 0)."""
        return jax.vmap(lambda ids: masked_encoding(params["embed"], ids, params["story_mask"]))(sentences)

    def apply(self, params: dict, sentences: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray):
        """Answers one question.

        Args:
            params: the parameter pytree.
            sentences: (U, L) word ids of the distinct sentences, row 0 empty.
            story: (M,) rows of ``sentences`` per memory slot (slot 0 the most recent), 0 = empty.
            query: (Q,) the question's word ids.

        Returns:
            (logits (V,), gates (N, M): each entity slot's gate per memory slot).
        """
        return self._answer(params, self.encode_sentences(params, sentences), story, query)

    def _answer(self, params: dict, encoded: jnp.ndarray, story: jnp.ndarray, query: jnp.ndarray):
        """:meth:`apply` from the encoded sentences (U, d)."""
        order = story[::-1]  # reading order: oldest first (empty slots lead, skipped)
        h, gates = entity_scan(params["memory"], encoded[order], order != 0)
        q = masked_encoding(params["embed"], query, params["query_mask"])
        y, _ = entity_read(params["output"], h, q)
        return params["answer"] @ y, gates[::-1].T

    def logits(self, params: dict, data: dict, batch: dict):
        """(answer logits (B, V), the words that may not be answers at -1e30; gates (B, N, M))."""
        encoded = self.encode_sentences(params, data["sentences"])  # once per batch, not once per example
        logits, gates = jax.vmap(self._answer, in_axes=(None, None, 0, 0))(params, encoded, batch["story"],
                                                                         batch["query"])
        if data.get("answers") is not None:
            logits = jnp.where(data["answers"], logits, -1e30)
        return logits, gates

    # ---- the model interface (memjax.models.base) -------------------------------------------------
    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        del phase
        logits, _ = self.logits(params, data, batch)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["answer"]), jnp.argmax(logits, -1)

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        return softmax_prediction(*self.logits(params, data, batch))
