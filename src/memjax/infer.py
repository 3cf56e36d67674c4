"""Answering with a trained model: load it from a run's folder, give it a story and a question.

Examples:
    >>> qa = Answerer.load("runs/task1")                                    # doctest: +SKIP
    >>> a = qa.answer(["Mary went to the kitchen.", "Mary travelled to the office."], "Where is Mary?")
    >>> a.answer, round(a.probability, 2), a.hops[0][0]                      # doctest: +SKIP
    ('office', 0.98, (1, 'Mary travelled to the office.', 0.93))

Words the model never saw are left out of its input and reported in ``Answer.unknown``.
"""

from __future__ import annotations

import dataclasses
import weakref
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from memjax.data.babi import words
from memjax.data.dataset import UNK, Vocab
from memjax.models import DIALOG_FAMILIES, model_for
from memjax.models.base import Prediction
from memjax.train.checkpoint import CheckpointError, load_model


# how each kind of attention (memjax.models.base.Traits.attention) is named per row, for people
ROW_NAMES = {"hop": "hop", "pass": "pass", "chosen": "hop", "words": "attention", "gate": "layer", "slots": "slot"}


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much one question may bring: more is refused (:class:`LimitError`) before any work, so that
    what answering costs in memory is bounded whatever the input (a 1 MB statement of 500,000 words
    otherwise takes 1.6 GB). ``memjax ask`` reads its input by these; :class:`Answerer` checks them.

    Attributes:
        max_line: characters in a statement or a question (``memjax ask``: bytes in an input line;
            the server's body limit is the same 64 KiB).
        max_statement_words: words in a statement the model reads, or in the question (bAbI's
            statements have at most a dozen).
        max_story: statements in a story (bAbI's longest has 228; the server accepts as many).
    """

    max_line: int = 65_536
    max_statement_words: int = 1_000
    max_story: int = 1_000

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{f.name} must be a positive whole number, got {value!r}")


class LimitError(ValueError):
    """A story or question over one of the :class:`Limits`; ``field`` is ``"story"`` or ``"question"``.
    (A ValueError: callers that refuse bad input by ValueError refuse these too.)"""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def check_text(text: str, what: str, field: str, limits: Limits) -> list[str]:
    """The words of ``text`` (a statement or a question, named ``what`` in messages), after checking
    it against ``limits``: characters first, so that no more than ``max_line`` are ever split.

    Raises:
        LimitError: more than ``limits.max_line`` characters or ``limits.max_statement_words`` words.
        ValueError: ``text`` is not Unicode text (a lone surrogate, as JSON's ``"\\ud800"`` gives).
    """
    if len(text) > limits.max_line:
        raise LimitError(f"{what} has {len(text)} characters: at most {limits.max_line} are accepted", field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not Unicode text (it holds a lone surrogate)") from None
    found = words(text)
    if len(found) > limits.max_statement_words:
        raise LimitError(f"{what} has {len(found)} words: at most {limits.max_statement_words} are accepted", field)
    return found


@dataclasses.dataclass
class Answer:
    """What the model says about one question.

    Attributes:
        answer: the predicted answer, all its words (as the training data wrote them: "office",
            "apple,football", "living room").
        probability: the model's probability of it.
        hops: per hop (or episodic pass, or attention row), the story's statements as (index in the
            story, text, weight), highest weight first; statements outside the memory window are left
            out; empty for a model that attends to nothing (the LSTM reader).
        unknown: words of the story or question the model has never seen.
        top: the five most probable answers as (word, probability) (the answer alone for a decoder).
        attention: what ``hops`` holds (:attr:`memjax.models.base.Traits.attention`): ``"hop"``,
            ``"pass"``, ``"chosen"``, ``"words"``, ``"gate"`` (QRN: each layer's update gates), ``"slots"``
            (EntNet: each slot's gates), or None.
        reads_unknown: the model read the unknown words (as the unknown word, by their context)
            rather than leaving them out.
    """

    answer: str
    probability: float
    hops: list[list[tuple[int, str, float]]]
    unknown: list[str]
    top: list[tuple[str, float]]
    attention: str | None = "hop"
    reads_unknown: bool = False

    @property
    def row_name(self) -> str:
        """What one row of ``hops`` is called: hop, pass or attention."""
        return ROW_NAMES.get(self.attention or "", "hop")

    def to_dict(self) -> dict:
        return {"answer": self.answer, "probability": self.probability, "unknown_words": self.unknown,
                "top": [{"word": w, "probability": p} for w, p in self.top], "attention": self.attention,
                "unknown_words_read": self.reads_unknown,
                "hops": [[{"index": i, "sentence": s, "weight": w} for i, s, w in hop] for hop in self.hops]}


def _model(meta: dict):
    """The model a saved entry describes (models saved before the family was recorded are MemN2N)."""
    return model_for(meta.get("family", "memn2n"), meta["model"])


def _model_template(meta: dict):
    return jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), jax.eval_shape(lambda: _model(meta).init(jax.random.key(0))))


def load_models(directory: str | Path) -> dict[str, dict]:
    """Every model saved in a run's folder: ``{label: {"params", "model", "vocab", ...}}``."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"{directory}: no such folder")
    return load_model(directory / "model", _model_template)


# ------------------------------------------------------------------------------ one prediction path


def model_data(model, sentences: np.ndarray, vocab_words: Sequence[str], answers: np.ndarray | None = None) -> dict:
    """The device arrays ``model.predict`` reads for stories over the distinct sentences ``sentences``
    (U, L) word ids (row 0 empty): the model's inputs, and ``answers`` (V,) bool, the words that may be
    answers (default: every word, as the engine evaluates)."""
    data = dict(model.inputs(sentences, list(vocab_words)))
    data["answers"] = np.ones((model.cfg.vocab_size,), bool) if answers is None else np.asarray(answers, bool)
    return jax.tree.map(jnp.asarray, data)


_PROGRAMS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {keep: jitted predict}


def _program(model, keep: tuple[str, ...]):
    """``model.predict`` jit-compiled, returning only the fields ``keep`` (XLA drops the rest's work)."""
    programs = _PROGRAMS.setdefault(model, {})
    if keep not in programs:
        def run(params, data, story, query):
            out = model.predict(params, data, {"story": story, "query": query})
            return {k: getattr(out, k) for k in keep if getattr(out, k) is not None}

        programs[keep] = jax.jit(run)
    return programs[keep]


def predictions(model, params: dict, data: dict, story: np.ndarray, query: np.ndarray, chunk: int = 1000,
                keep: Sequence[str] = ("answer",)) -> Prediction:
    """``model.predict`` over questions ``story`` (N, M) and ``query`` (N, Q) word ids, ``chunk`` at a time
    (the last chunk padded, so that every chunk runs one compiled program): what eval, ask, serve and plot
    all answer with. ``keep``: the :class:`~memjax.models.base.Prediction` fields to compute (host arrays;
    the others are None)."""
    program = _program(model, tuple(keep))
    n = len(story)
    chunk = max(1, min(chunk, n)) if n else 1
    parts = []
    for i in range(0, n, chunk):
        pad = ((0, chunk - len(story[i:i + chunk])), (0, 0))
        out = program(params, data, jnp.asarray(np.pad(story[i:i + chunk], pad)),
                      jnp.asarray(model.query_inputs(np.pad(query[i:i + chunk], pad))))
        parts.append({k: np.asarray(v)[: len(story[i:i + chunk])] for k, v in out.items()})
    if not parts:  # no question: empty answers
        return Prediction(np.zeros((0,), np.int32), np.zeros((0,), np.float32))
    return Prediction(**{f: np.concatenate([p[f] for p in parts]) if f in parts[0] else None
                         for f in Prediction._fields})


class Answerer:
    """A trained model of any family ready to answer questions about new stories."""

    def __init__(self, label: str, model, params: dict, vocab: Vocab, memory_size: int, tasks: Sequence[int] = (),
                 limits: Limits | None = None):
        self.label, self.vocab, self.memory_size, self.tasks = label, vocab, memory_size, list(tasks)
        self.limits = limits or Limits()  # what one question may bring (see Limits)
        self.model, self.cfg = model, model.cfg
        self.params = jax.tree.map(jnp.asarray, params)
        # padding is never an answer
        self._answers = np.arange(model.cfg.vocab_size) > 0

    @classmethod
    def load(cls, directory: str | Path, task: int | str | None = None, limits: Limits | None = None,
             models: dict[str, dict] | None = None) -> "Answerer":
        """The model of ``task`` in a run's folder (the only one, or the joint model, by default), answering
        within ``limits`` (default :class:`Limits`); ``models``: the folder's models if already loaded
        (:func:`load_models`)."""
        models = load_models(directory) if models is None else models
        label = choose_model(directory, models, task)
        m = models[label]
        if m.get("family") in DIALOG_FAMILIES:
            raise CheckpointError(f"{directory}: a dialog model: talk with it through memjax chat")
        # load_models checked the entry: its vocabulary is in memjax's order and fits the config, its memory size too
        return cls(label, _model(m), m["params"], Vocab(m["vocab"][2:]), int(m["memory_size"]), m.get("tasks", ()), limits)

    @property
    def keeps_unknown(self) -> bool:
        """Whether unknown words are read (as the unknown word, by their context) rather than left out."""
        return self.model.keeps_unknown

    def _ids(self, found: Sequence[str], unknown: dict[str, None]) -> list[int]:
        """Word ids of the words ``found``; unknown words are left out, or kept as the unknown word by models
        that read them, and gathered in ``unknown`` (a dict as an ordered set: a list's ``in`` made
        thousands of new words quadratic)."""
        out = []
        for w in found:
            if w in self.vocab:
                out.append(self.vocab.id(w))
            else:
                if self.keeps_unknown:
                    out.append(UNK)
                unknown.setdefault(w)
        return out

    def answer(self, story: Sequence[str], question: str) -> Answer:
        """Answers ``question`` about ``story`` (statements oldest first; the last ``memory_size`` are read).

        Raises:
            LimitError: the story, a statement or the question is over :attr:`limits` (checked before
                any other work: what one answer costs is bounded by the limits).
            ValueError: the question has no words, or a text is not Unicode.
        """
        limits = self.limits
        if len(story) > limits.max_story:
            raise LimitError(f"the story has {len(story)} statements: at most {limits.max_story} are accepted",
                             "story")
        for i, s in enumerate(story):  # those outside the memory are never split, but held all the same
            if len(s) > limits.max_line:
                raise LimitError(f"statement {i + 1} has {len(s)} characters: at most {limits.max_line} are accepted",
                                 "story")
        unknown: dict[str, None] = {}
        found = check_text(question, "the question", "question", limits)
        if not found:
            raise ValueError("the question has no words")
        query = self._ids(found, unknown)
        first = max(0, len(story) - self.memory_size)
        kept = list(range(first, len(story)))
        encoded = [self._ids(check_text(story[i], f"statement {i + 1}", "story", limits), unknown) for i in kept]
        longest = max([1, len(query)] + [len(s) for s in encoded])
        width = 8
        while width < longest:  # padded to a few shapes, so that new stories rarely recompile
            width *= 2
        # distinct sentences: row 0 empty, then one row per kept statement; slot 0 = most recent
        sentences = np.zeros((self.memory_size + 1, width), np.int32)
        for i, ids in enumerate(encoded):
            sentences[i + 1, : len(ids)] = ids
        slots = np.zeros((1, self.cfg.memory_size), np.int32)
        recent = np.arange(len(encoded), 0, -1)[: self.cfg.memory_size]
        slots[0, : len(recent)] = recent
        q = np.zeros((1, width), np.int32)
        q[0, : len(query)] = query
        data = model_data(self.model, sentences, self.vocab.words, self._answers)
        pred = predictions(self.model, self.params, data, slots, q, chunk=1, keep=Prediction._fields)
        hops = []
        if pred.attention is not None:
            for p in pred.attention[0]:
                rows = [(kept[row - 1], story[kept[row - 1]], float(p[slot])) for slot, row in enumerate(recent)]
                hops.append(sorted(rows, key=lambda r: -r[2]))
        text, probability = self.model.answer_text(pred, 0, self.vocab.words), float(pred.probability[0])
        if pred.scores is not None:
            order = np.argsort(-pred.scores[0])
            top = [(self.vocab.words[int(i)], float(pred.scores[0][int(i)])) for i in order[:5]]
        else:
            top = [(text, probability)]
        return Answer(text, probability, hops, list(unknown), top, self.model.traits.attention, self.keeps_unknown)


def choose_model(directory, models: dict[str, dict], task: int | str | None) -> str:
    """The label of ``task``'s model among a folder's ``models``: the only one when ``task`` is None, the joint
    model for a task it was trained on. Raises CheckpointError (one line naming ``directory``) otherwise."""
    held = ", ".join(sorted(models, key=_order))
    if task is None:
        if len(models) != 1:
            raise CheckpointError(f"{directory} holds models for tasks {held}: choose one with --task")
        return next(iter(models))
    label = str(task)
    if label in models:
        return label
    joint = models.get("joint")
    if joint is not None and (label == "joint" or label.isdigit() and int(label) in joint.get("tasks", ())):
        return "joint"
    raise CheckpointError(f"{directory}: no model for task {task} (it holds {held})")


def _order(label: str):
    return (0, int(label)) if label.isdigit() else (1, 0)
