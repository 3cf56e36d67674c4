"""The one interface every model family implements; the engine, the protocols, ``eval``, ``ask``,
``serve`` and ``plot`` use nothing else of a model.

A family is a class built from its frozen config (``Family(cfg)``) that derives from :class:`Model`:

- host side (NumPy, once per dataset): :meth:`Model.data_defaults` (config fields read from the
  data), :meth:`Model.inputs` (the arrays the device functions read, from the distinct sentences),
  :meth:`Model.query_inputs`;
- parameters: :meth:`Model.init`, and the masks of the optimiser recipe (:meth:`Model.padding_mask`,
  :meth:`Model.decay_mask`), :meth:`Model.unpad`;
- device side (pure, batched, jit-compiled by the engine): :meth:`Model.loss` (training and
  validation) and :meth:`Model.predict` (answers, their probabilities and what the model attended to);
- what the engine needs to know, as data: :attr:`Model.traits` and a few sizes
  (:meth:`Model.noise_draws`, :meth:`Model.dropout_shape`, :meth:`Model.step_bytes`).

A batch is ``{"story": (B, M) int rows of data["sentences"] per memory slot (slot 0 the most recent,
0 = empty), "query": (B, ...) the question's inputs, "answer": (B,) answer ids, "supporting": (B, S)
supporting facts' slots (-1: none; with ``traits.uses_support``)}``; ``data`` is what
:meth:`Model.inputs` made, plus ``"answers"`` (V,) bool: the words that may be answers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from memjax.ops.encoding import padding_row_mask


@dataclasses.dataclass(frozen=True)
class Traits:
    """What a family is, as the engine and the front ends need to know it.

    Attributes:
        name: the ``--model`` name.
        attention: what :attr:`Prediction.attention` holds per row: ``"hop"`` (MemN2N's hops), ``"pass"``
            (DMN and DMN+: the gates of each episodic pass), ``"chosen"`` (MemNN: the memory chosen at
            each hop), ``"words"`` (the attention LSTM: its word attention summed per statement), ``"gate"``
            (QRN: each layer's update gate per statement, not summing to 1), ``"slots"`` (EntNet: per entity
            slot, its gate at each sentence), or None (the LSTM reader attends to nothing).
        dropout: the model applies ``TrainConfig.dropout`` (its :meth:`Model.dropout_shape` uniforms).
        random_inputs: the loss draws per-example uniforms every training step whatever the dropout
            (MemNN: sampled negatives, unseen words), shaped as :meth:`Model.dropout_shape`.
        uses_support: batches carry the supporting facts' slots (strong supervision).
        epoch_batches: gather the epoch's batches at once rather than in each step (see
            :meth:`memjax.train.engine.Trainer`: a speed choice, same results).
        length_buckets: the loss takes stories cut to their first m slots (``--buckets``).
        cpu_legacy_emitters: on a CPU, compile with XLA's older fusion emitters
            (:func:`memjax.train.engine.compiler_options`).
        answers_as_words: :meth:`Model.predict` decodes answers as word sequences (the DMN decoder).
    """

    name: str
    attention: str | None = None
    dropout: bool = False
    random_inputs: bool = False
    uses_support: bool = False
    epoch_batches: bool = False
    length_buckets: bool = False
    cpu_legacy_emitters: bool = False
    answers_as_words: bool = False


class Phase(NamedTuple):
    """How :meth:`Model.loss` is called: a training step's randomness, or none (evaluation).

    Attributes:
        linear: linear start (MemN2N: no softmax in the memory layers); may be traced.
        noise: (B, :meth:`Model.noise_draws`) uniforms for the model's own training noise (MemN2N's
            random time), or None.
        drop: (B, *:meth:`Model.dropout_shape`) uniforms for dropout or the model's random inputs, or None.
        rate: the dropout rate.
        config: the :class:`memjax.train.engine.TrainConfig` trained with (None: the model's defaults).
    """

    linear: Any = False
    noise: Any = None
    drop: Any = None
    rate: float = 0.0
    config: Any = None


class Prediction(NamedTuple):
    """What :meth:`Model.predict` returns for a batch of B questions.

    Attributes:
        answer: (B,) int, the predicted answer's vocabulary id (-1: decoded words that are no known answer).
        probability: (B,) the model's probability of that answer.
        scores: (B, V) probabilities of every vocabulary word, or None (answers decoded as words).
        attention: (B, K, M) per hop or pass, the weight of each memory slot (see :attr:`Traits.attention`),
            or None.
        words: (B, A) the decoded words (DMN: ids into ``cfg.answer_words`` plus one, 0 = the end), or None.
    """

    answer: Any
    probability: Any
    scores: Any = None
    attention: Any = None
    words: Any = None


class Model:
    """The base of every family: the interface with its defaults. A family overrides :meth:`init`,
    :meth:`loss`, :meth:`predict` and :attr:`traits`, and whichever defaults do not fit it."""

    traits: ClassVar[Traits]
    # parameters holding one row per vocabulary word: the padding word's row gets no gradient, and
    # :meth:`unpad` cuts them back to the model's vocabulary after training with a padded one
    embeddings: ClassVar[tuple[str, ...]] = ("embed",)

    def __init__(self, cfg):
        self.cfg = cfg

    # ---- host side -------------------------------------------------------------------------------
    @staticmethod
    def data_defaults(ds, given: dict) -> dict:
        """Config fields read from the dataset ``ds`` (given the user's settings ``given``): none by default."""
        del ds, given
        return {}

    def inputs(self, sentences: np.ndarray, vocab_words: list[str]) -> dict:
        """The host arrays the device functions read: ``{"sentences": ...}`` from the distinct sentences'
        word ids (U, L) (row 0 empty), plus any table the family needs from the vocabulary."""
        del vocab_words
        return {"sentences": np.asarray(sentences, np.int32)}

    def query_inputs(self, ids) -> np.ndarray:
        """The questions' inputs from their word ids (N, Q)."""
        return np.asarray(ids, np.int32)

    @property
    def keeps_unknown(self) -> bool:
        """Whether words the model never saw are read as the unknown word (else they are left out)."""
        return False

    def answer_text(self, prediction: Prediction, row: int, vocab_words: list[str]) -> str:
        """The answer of ``prediction``'s ``row`` as text."""
        answer = int(np.asarray(prediction.answer)[row])
        return vocab_words[answer] if answer >= 0 else "?"

    # ---- parameters ------------------------------------------------------------------------------
    def init(self, key) -> dict:
        """The parameter pytree, drawn from ``key``."""
        raise NotImplementedError

    def padding_mask(self, params: dict) -> dict:
        """Gradient multipliers (a pytree like ``params``): 0 on the padding word's row of each embedding."""
        mask = jax.tree.map(lambda _: 1.0, params)
        for name in self.embeddings:
            if name in mask:
                mask[name] = padding_row_mask(self.cfg.vocab_size)
        return mask

    def decay_mask(self, params: dict) -> dict:
        """1 on the weights L2 regularisation applies to (matrices and embeddings), 0 on biases."""
        return jax.tree.map(lambda a: 1.0 if len(a.shape) >= 2 else 0.0, params)

    def unpad(self, params: dict) -> dict:
        """Parameters trained with a padded vocabulary (tasks trained together), cut to this model's."""
        v = self.cfg.vocab_size
        return {**params, **{name: params[name][:v] for name in self.embeddings if name in params}}

    # ---- pretrained word vectors (e.g. GloVe; ``data["pretrained"]``, ``["covered"]``, ``["frozen"]``) ----------
    def takes_pretrained(self, params) -> bool:
        """Whether pretrained word vectors can start this model: it has one (V, d) ``embed`` matrix
        (``params``: the parameters or their shapes)."""
        embed = params.get("embed") if isinstance(params, dict) else None
        return embed is not None and not isinstance(embed, (list, dict)) and len(embed.shape) == 2

    def start_from(self, params: dict, vectors, covered) -> dict:
        """``params`` with the covered rows (V,) of ``embed`` replaced by the pretrained ``vectors`` (V, d)."""
        return {**params, "embed": jnp.where(covered[:, None], vectors, params["embed"])}

    def hold(self, params: dict, data: dict) -> dict:
        """The parameters a training step differentiates: pretrained rows kept fixed (``data["frozen"]``,
        with ``--glove-freeze``) behind ``stop_gradient``, so that no gradient (and no L2) reaches them."""
        if "frozen" not in data:
            return params
        embed = params["embed"]
        return {**params, "embed": jnp.where(data["frozen"][:, None], jax.lax.stop_gradient(embed), embed)}

    # ---- what the engine sizes ---------------------------------------------------------------------
    def noise_draws(self, memory: int, config) -> int:
        """Uniforms per example and training step for the model's own noise (:attr:`Phase.noise`); 0: none."""
        del memory, config
        return 0

    def dropout_shape(self, memory: int) -> tuple[int, ...]:
        """Shape of one example's dropout (or random-input) uniforms for a memory of ``memory`` slots."""
        raise ValueError(f"--model {self.traits.name} has no dropout")

    def step_bytes(self, batch: int, memory: int, config) -> int | None:
        """Bytes a run's training step streams, when that decides how many runs to compute at once
        (:meth:`memjax.train.engine.Trainer.group_size`); None: all at once."""
        del batch, memory, config
        return None

    # ---- device side -------------------------------------------------------------------------------
    def loss(self, params: dict, data: dict, batch: dict, phase: Phase = Phase()):
        """(loss per example (B,), predicted answer ids (B,)) of a batch (see the module docstring)."""
        raise NotImplementedError

    def predict(self, params: dict, data: dict, batch: dict) -> Prediction:
        """The answers of a batch, their probabilities and what the model attended to."""
        raise NotImplementedError


def softmax_prediction(logits, attention=None) -> Prediction:
    """A :class:`Prediction` from answer logits (B, V): the most probable word and the softmax."""
    scores = jax.nn.softmax(logits, axis=-1)
    answer = jnp.argmax(logits, -1)
    return Prediction(answer, jnp.take_along_axis(scores, answer[:, None], axis=1)[:, 0], scores, attention)
