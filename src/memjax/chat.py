"""``memjax chat``: a conversation with a model trained on dialog bAbI (``--set dialog``).

The bot keeps what was said in its memory (each utterance with its speaker, the most recent
``memory_size``) and answers each user turn with one of its candidate utterances. When it answers with
an API call (``api_call italian paris six cheap``), memjax runs the call against the knowledge base and
writes the matching restaurants' facts into the memory as the dataset's result lines, and the bot goes
on without waiting: so a task-5 model proposes options, then gives a phone number or an address. It
also goes on after the utterances the training dialogs' users always answered with silence ("ok let
me look into some options for you"). Words the model never saw are reported, never fatal.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import BinaryIO, Sequence, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from memjax.data.babi import DataError
from memjax.data.dataset import Vocab
from memjax.data.dialog import BOT, KB, SILENCE, USER, _read_lines, _split_id, words
from memjax.infer import LimitError, Limits, choose_model, load_models, model_data, predictions
from memjax.models import DIALOG_FAMILIES, model_for
from memjax.models.base import Prediction
from memjax.train.checkpoint import CheckpointError

API_FIELDS = ("R_cuisine", "R_location", "R_number", "R_price")  # an api_call's words after "api_call", in order
MAX_GOING_ON = 4  # bot turns in a row without the user (results read, an option proposed, ...)
SPEAKERS = {"user": USER, "bot": BOT, "kb": KB}  # the speakers' names in JSON (memjax serve's /chat) -> history's


class KnowledgeBase:
    """The restaurants' facts (``ID restaurant R_relation value`` lines, as ``dialog-babi-kb-all.txt``)."""

    def __init__(self, facts: Sequence[tuple[str, str, str]]):
        self.facts: dict[str, list[tuple[str, str]]] = {}
        for name, relation, value in facts:
            self.facts.setdefault(name, []).append((relation, value))

    @classmethod
    def read(cls, path: str | Path) -> "KnowledgeBase":
        path = Path(path)
        facts = []
        for number, raw in enumerate(_read_lines(path), 1):
            if raw.strip():
                _, text = _split_id(path, number, raw)
                fact = text.split()
                if len(fact) != 3 or not fact[1].startswith("R_"):
                    raise DataError(f"{path}, line {number}: expected 'ID restaurant R_relation value'")
                facts.append(tuple(fact))
        if not facts:
            raise DataError(f"{path}: no facts")
        return cls(facts)

    def call(self, arguments: Sequence[str]) -> list[str]:
        """The result lines of ``api_call`` with ``arguments`` (cuisine, location, party size, price): every
        fact of each restaurant whose facts match all the arguments given, restaurants in name order.
        (The dataset's dialogs list 3 to 6 of the 8 restaurants of a cuisine, place and price, with the
        requested party size whatever the knowledge base says: a sample we cannot repeat. Matching the
        knowledge base's own party size gives a few restaurants too, and real ones.)"""
        wanted = dict(zip(API_FIELDS, arguments))
        lines = []
        for name in sorted(self.facts):
            facts = dict(self.facts[name])
            if all(facts.get(field) == value for field, value in wanted.items()):
                lines += [f"{name} {relation} {value}" for relation, value in self.facts[name]]
        return lines


@dataclasses.dataclass
class Reply:
    """One bot turn: the utterance, its probability, what the model read, and any API results it got."""

    text: str
    probability: float
    hops: list[list[tuple[int, str, float]]]  # per hop: (index in the dialog, utterance, weight), highest first
    unknown: list[str]
    results: list[str] = dataclasses.field(default_factory=list)  # the knowledge base's lines, after an api_call

    def to_dict(self) -> dict:
        return {"text": self.text, "probability": self.probability, "unknown_words": self.unknown,
                "results": self.results,
                "hops": [[{"index": i, "utterance": u, "weight": w} for i, u, w in hop] for hop in self.hops]}


class Chatbot:
    """A trained dialog model in conversation (see the module docstring)."""

    def __init__(self, label: str, model, params: dict, vocab: Vocab, kb: KnowledgeBase | None = None,
                 limits: Limits | None = None):
        self.label, self.model, self.cfg, self.vocab, self.kb = label, model, model.cfg, vocab, kb
        self.limits = limits or Limits()
        self.params = jax.tree.map(jnp.asarray, params)
        self._data = model_data(model, np.zeros((1, 1), np.int32), vocab.words)  # the candidates' arrays, once
        self.history: list[tuple[str, str]] = []  # (speaker, text), oldest first

    @classmethod
    def load(cls, directory: str | Path, task: int | str | None = None, kb: KnowledgeBase | None = None,
             limits: Limits | None = None, models: dict[str, dict] | None = None) -> "Chatbot":
        """The dialog model of ``task`` in a run's folder (the only one by default); ``models``: the folder's
        models if already loaded (:func:`memjax.infer.load_models`)."""
        models = load_models(directory) if models is None else models
        dialog = {k: m for k, m in models.items() if m.get("family") in DIALOG_FAMILIES}
        if not dialog:
            family = next(iter(models.values())).get("family", "memn2n")
            raise CheckpointError(f"{directory} holds a {family} model: memjax chat talks with dialog models "
                                  "(memjax train --set dialog)")
        label = choose_model(directory, dialog, task)
        m = dialog[label]
        return cls(label, model_for(m["family"], m["model"]), m["params"], Vocab(m["vocab"][2:]), kb, limits)

    def reset(self) -> None:
        """A new conversation: the memory emptied."""
        self.history = []

    def in_conversation(self, history: Sequence[tuple[str, str]]) -> "Chatbot":
        """A copy of the bot (its model, vocabulary and knowledge base shared) whose memory is ``history``:
        a server answers each request with its own copy, so that concurrent conversations never mix."""
        bot = copy.copy(self)
        bot.history = list(history)
        return bot

    def _ids(self, text: str, unknown: dict[str, None]) -> list[int]:
        out = []
        for w in words(text):
            if w not in self.vocab:
                unknown.setdefault(w)
            out.append(self.vocab.id(w))  # unknown words read as the unknown word, as in evaluation
        return out

    def _reply(self, query: list[int], unknown: dict[str, None]) -> Reply:
        """The bot's next turn after the user's turn ``query`` (its word ids); ``unknown``: that turn's new words."""
        kept = list(range(max(0, len(self.history) - self.cfg.memory_size), len(self.history)))
        said: dict[str, None] = {}  # the memory's new words were reported with their own turn
        rows = [self._ids(self.history[i][1], said) + [self.vocab.id(self.history[i][0])] for i in kept]
        width = 8
        while width < max([len(query)] + [len(r) for r in rows]):  # a few shapes: few recompilations
            width *= 2
        sentences = np.zeros((self.cfg.memory_size + 1, width), np.int32)
        for i, r in enumerate(rows):
            sentences[i + 1, : len(r)] = r
        story = np.zeros((1, self.cfg.memory_size), np.int32)
        recent = np.arange(len(rows), 0, -1)  # slot 0 = the most recent utterance
        story[0, : len(recent)] = recent
        q = np.zeros((1, width), np.int32)
        q[0, : len(query)] = query
        data = {**self._data, "sentences": jnp.asarray(sentences)}
        pred = predictions(self.model, self.params, data, story, q, chunk=1, keep=Prediction._fields)
        hops = []
        if pred.attention is not None:
            for p in pred.attention[0]:
                read = [(kept[row - 1], self.history[kept[row - 1]][1], float(p[slot])) for slot, row in enumerate(recent)]
                hops.append(sorted(read, key=lambda r: -r[2]))
        text = self.model.answer_text(pred, 0, self.vocab.words)
        return Reply(text, float(pred.probability[0]), hops, list(unknown))

    def say(self, text: str) -> list[Reply]:
        """The bot's answer to the user's ``text`` (``<SILENCE>`` lets it go on), then its turns that follow
        without the user: after an API call (its results written into the memory first), and after the
        utterances the training dialogs' users met with silence.

        Raises:
            LimitError: the turn is over :attr:`limits` (nothing is remembered of it).
            ValueError: the turn has no words, or is not Unicode text.
        """
        if len(text) > self.limits.max_line:
            raise LimitError(f"the turn has {len(text)} characters: at most {self.limits.max_line} are accepted", "turn")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the turn is not Unicode text (it holds a lone surrogate)") from None
        found = words(text)
        if not found:
            raise ValueError("an empty turn: say something, or <SILENCE> to let the bot go on")
        if len(found) > self.limits.max_statement_words:
            raise LimitError(f"the turn has {len(found)} words: at most {self.limits.max_statement_words} are accepted",
                             "turn")
        replies: list[Reply] = []
        user = " ".join(found)
        for _ in range(MAX_GOING_ON):
            unknown: dict[str, None] = {}
            reply = self._reply(self._ids(user, unknown) + [self.vocab.id(USER)], unknown)
            self.history += [(USER, user), (BOT, reply.text)]
            replies.append(reply)
            api = reply.text.split()
            if api and api[0] == "api_call":
                if self.kb is None:
                    break  # nothing to call: the user says what comes next
                reply.results = self.kb.call(api[1:])
                self.history += [(KB, line) for line in reply.results]
            elif self.candidate_index(reply.text) not in self.cfg.continues:
                break
            user = SILENCE
        if len(self.history) > self.limits.max_story:  # only the most recent memory_size are read; and what
            self.history = self.history[-min(self.cfg.memory_size, self.limits.max_story):]  # is kept fits the limits
        return replies

    def candidate_index(self, text: str) -> int:
        """The candidate index of an utterance (-1: not a candidate)."""
        try:
            return self.cfg.candidates.index(text)
        except ValueError:
            return -1


def default_kb(bot: Chatbot, path: str | Path | None = None) -> KnowledgeBase | None:
    """The knowledge base the bot's api_call reads (``memjax chat`` and ``memjax serve``'s ``--kb``): ``path``,
    else, for a model of tasks 1-5 (which share it), the release's ``dialog-babi-kb-all.txt``
    (:func:`memjax.data.dialog.dialog_root`); None for a model that makes no API call (task 6 has no file).

    Raises:
        DataError: the file is missing or malformed, or no dialog bAbI folder is found.
    """
    if path:
        return KnowledgeBase.read(path)
    if bot.cfg.entity_types and bot.label != "6":
        from memjax.data.dialog import dialog_root

        return KnowledgeBase.read(dialog_root() / "dialog-babi-kb-all.txt")
    return None


def converse(bot: Chatbot, stream: BinaryIO, out: TextIO, err: TextIO, show: int = 0, source: str = "<stdin>") -> int:
    """Reads user turns from ``stream`` (one per line; ``/reset`` starts a new conversation) and writes the
    bot's turns to ``out``; a turn that cannot be used is one line on ``err`` and the conversation goes on.
    ``show``: the most-read utterances printed per hop."""
    from memjax.ask import BOM, read_lines

    for number, data, whole in read_lines(stream, bot.limits.max_line):
        where = f"{source}:{number}"
        if number == 1 and data.startswith(BOM):
            data = data[len(BOM):]
        try:
            if not whole:
                raise LimitError(f"the turn is longer than {bot.limits.max_line} bytes (--max-line)", "turn")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
            if text.strip() == "/reset":
                bot.reset()
                print("(a new conversation)", file=out, flush=True)
                continue
            replies = bot.say(text)
        except (ValueError, LimitError) as e:
            print(f"memjax: {where}: {e}", file=err, flush=True)
            continue
        for reply in replies:
            if reply.unknown:
                print(f"memjax: {where}: words the model never saw: {', '.join(reply.unknown)}", file=err, flush=True)
            print(f"bot: {reply.text}", file=out)
            if reply.results:
                names = list(dict.fromkeys(line.split()[0] for line in reply.results))
                print(f"  (knowledge base: {len(names)} restaurants: {', '.join(names)})", file=out)
            elif reply.text.startswith("api_call") and bot.kb is None:
                print("  (no knowledge base to call: --kb FILE)", file=out)
            for k, hop in enumerate(reply.hops if show else []):
                if hop:  # a conversation's first turn has nothing to read
                    print(f"  hop {k + 1}: " + "; ".join(f"{u} ({w:.2f})" for _, u, w in hop[:show]), file=out)
        out.flush()
    return 0

