"""Dialog bAbI (Bordes, Boureau & Weston, ICLR 2017): goal-oriented dialogs as response selection.

Each bot turn of a dialog is one example: the memory holds the dialog so far (user and bot utterances
and the knowledge base's result lines, each marked with its speaker: ``<user>``, ``<bot>``, ``<kb>``;
the slot order gives each its time), the query is the last user utterance, and the answer is the bot
utterance's index among the task's candidates.

Files (the release's layout): ``dialog-babi-task{T}-{name}-{trn,dev,tst,tst-OOV}.txt``, lines
``ID user<TAB>bot`` or ``ID restaurant R_relation value`` (a knowledge-base result), IDs restarting
at 1 for each dialog; ``dialog-babi-candidates.txt`` (tasks 1-5) and
``dialog-babi-task6-dstc2-candidates.txt``, one ``1 utterance`` per line; ``dialog-babi-kb-all.txt``,
the knowledge base of tasks 1-5 (``ID restaurant R_relation value``).

Words are whitespace-separated and lower-cased: entities such as ``resto_rome_cheap_thai_2stars``
stay one word, which the match-type features need.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from memjax.data.babi import MAX_NUMBER, DataError, unreadable
from memjax.data.dataset import Dataset, Split, Vocab, _Encoder

TASKS = {1: "API-calls", 2: "API-refine", 3: "options", 4: "phone-address", 5: "full-dialogs", 6: "dstc2"}
TITLES = {1: "issuing API calls", 2: "updating API calls", 3: "displaying options", 4: "providing information",
          5: "full dialogs", 6: "DSTC2"}
DIALOG_SET = "dialog"  # the --set name of dialog bAbI
SPLIT_FILES = {"train": "trn", "valid": "dev", "test": "tst", "oov": "tst-OOV"}
USER, BOT, KB = "<user>", "<bot>", "<kb>"
SILENCE = "<silence>"
# the knowledge base's relations, and the entity type each gives its value (the restaurant itself: "name")
RELATIONS = {"R_cuisine": "cuisine", "R_location": "location", "R_price": "price", "R_number": "number",
             "R_rating": "rating", "R_phone": "phone", "R_address": "address", "R_post_code": "post_code"}
ENTITY_TYPES = ("name", "cuisine", "location", "price", "number", "rating", "phone", "address", "post_code")


def words(text: str) -> list[str]:
    """An utterance's words: lower-cased, split at white space."""
    return text.lower().split()


def normalize(text: str) -> str:
    """An utterance as one string of its words (how candidates and bot turns are compared)."""
    return " ".join(words(text))


@dataclasses.dataclass
class Turn:
    """One example: the dialog before the user's turn, that turn, and the bot's answer."""

    history: list[tuple[str, list[str]]]  # (speaker, words), oldest first
    query: list[str]
    answer: str  # the bot utterance, normalised
    dialog: int  # the dialog's index in its file
    line: int  # the line number of the turn in its file


def _read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            # lines end at "\n" (or "\r\n") only: str.splitlines would also split at the Unicode line
            # separators a text may hold, and the messages would name the wrong line
            return [line.removesuffix("\r") for line in f.read().split("\n")]
    except OSError as e:
        raise DataError(unreadable(path, e)) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None


def _split_id(path: Path, number: int, line: str) -> tuple[int, str]:
    head, _, rest = line.partition(" ")
    if not (head.isascii() and head.isdigit()) or not rest.strip():
        raise DataError(f"{path}, line {number}: expected 'ID text' (a number, a space, the text), got {line[:60]!r}")
    if len(head) > 10 or int(head) > MAX_NUMBER:
        raise DataError(f"{path}, line {number}: line id {head[:20]} is out of range")
    return int(head), rest


def parse_dialogs(path: str | Path) -> list[Turn]:
    """Reads a dialog file into its examples (one per bot turn).

    Raises:
        DataError: one line naming the file and line: an unreadable file, a line that is not
            ``ID text``, a turn without a bot utterance, an ID that does not continue its dialog.
    """
    path = Path(path)
    turns: list[Turn] = []
    history: list[tuple[str, list[str]]] = []
    dialog, last = -1, 0
    for number, raw in enumerate(_read_lines(path), 1):
        if not raw.strip():
            last = 0  # a blank line ends a dialog
            continue
        ident, rest = _split_id(path, number, raw.rstrip("\n"))
        if ident == 1 or last == 0:
            if ident != 1:
                raise DataError(f"{path}, line {number}: a dialog starts with id {ident}, not 1")
            history, dialog = [], dialog + 1
        elif ident != last + 1:
            raise DataError(f"{path}, line {number}: id {ident} does not follow {last}")
        last = ident
        if "\t" in rest:
            user, _, bot = rest.partition("\t")
            query = words(user) or [SILENCE]  # task 6 leaves some user turns empty: as the others' <SILENCE>
            if not bot.strip():
                raise DataError(f"{path}, line {number}: a turn needs a bot utterance after the tab")
            turns.append(Turn(list(history), query, normalize(bot), dialog, number))
            history += [(USER, query), (BOT, words(bot))]
        else:
            history.append((KB, words(rest)))
    if not turns:
        raise DataError(f"{path}: no dialog turns (lines 'ID user<TAB>bot')")
    return turns


def parse_candidates(path: str | Path) -> list[str]:
    """The candidate bot utterances of a candidates file (``1 utterance`` per line), normalised, in order,
    without repeats."""
    path = Path(path)
    seen: dict[str, None] = {}
    for number, raw in enumerate(_read_lines(path), 1):
        if raw.strip():
            _, text = _split_id(path, number, raw)
            seen.setdefault(normalize(text), None)
    if not seen:
        raise DataError(f"{path}: no candidates")
    return list(seen)


def parse_kb(path: str | Path) -> dict[str, str]:
    """The entity type of every word of a knowledge-base file (``ID restaurant R_relation value``):
    the restaurants are ``name``; the values take their relation's type (see :data:`RELATIONS`)."""
    path = Path(path)
    types: dict[str, str] = {}
    for number, raw in enumerate(_read_lines(path), 1):
        if raw.strip():
            _, text = _split_id(path, number, raw)
            _add_fact(types, words(text), path, number)
    return types


def _add_fact(types: dict[str, str], fact: list[str], path, number) -> None:
    if len(fact) != 3 or fact[1] not in {r.lower() for r in RELATIONS}:
        if path is None:
            return  # a result line of a dialog that is not a fact (task 6 has a few): no types from it
        raise DataError(f"{path}, line {number}: expected 'ID restaurant R_relation value'")
    name, relation, value = fact
    types.setdefault(name, "name")
    types.setdefault(value, RELATIONS[next(r for r in RELATIONS if r.lower() == relation)])


def task_paths(root: str | Path, task: int) -> dict[str, Path | None]:
    """The files of ``task`` under the release folder ``root``: train, valid, test, oov (None for task 6),
    candidates and kb (None for task 6)."""
    if task not in TASKS:
        raise DataError(f"dialog bAbI has tasks 1-6, not {task}")
    root = Path(root)
    prefix = f"dialog-babi-task{task}-{TASKS[task]}"
    paths: dict[str, Path | None] = {k: root / f"{prefix}-{v}.txt" for k, v in SPLIT_FILES.items()}
    if task == 6:
        paths["oov"] = None
        paths["candidates"], paths["kb"] = root / "dialog-babi-task6-dstc2-candidates.txt", None
    else:
        paths["candidates"], paths["kb"] = root / "dialog-babi-candidates.txt", root / "dialog-babi-kb-all.txt"
    return paths


@dataclasses.dataclass
class DialogDataset(Dataset):
    """A vectorised dialog task: :class:`memjax.data.dataset.Dataset` (``answer`` = candidate index) plus
    the candidates, the words' entity types, each example's dialog and the OOV test split."""

    candidates: list[str] = dataclasses.field(default_factory=list)
    entity_types: dict[str, str] = dataclasses.field(default_factory=dict)
    dialogs: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # split -> (N,) dialog index
    oov: Split | None = None
    continues: tuple[int, ...] = ()  # candidates the user always answers with <SILENCE> in the training dialogs
    unseen: tuple[str, ...] = ()  # words of the vocabulary in no training dialog (only in candidates, dev dialogs)


def continuing(turns: Sequence[Turn], index: dict[str, int]) -> tuple[int, ...]:
    """The candidates after which the user of ``turns`` always stays silent (the bot goes on: "ok let me
    look into some options for you", "sure let me find an other option for you"), and never ends a dialog."""
    followed: dict[int, bool] = {}
    for a, b in zip(turns, list(turns[1:]) + [None]):
        silent = b is not None and b.dialog == a.dialog and b.query == [SILENCE]
        answer = index[a.answer]
        followed[answer] = followed.get(answer, True) and silent
    return tuple(sorted(c for c, always in followed.items() if always))


def _words_of(turns: Sequence[Turn]) -> set[str]:
    """Every word the dialogs of ``turns`` hold (utterances, results, answers) and the speaker words."""
    seen = {USER, BOT, KB}
    for t in turns:
        seen.update(t.query)
        seen.update(t.answer.split())
        for _, u in t.history:
            seen.update(u)
    return seen


def _sentence(speaker: str, utterance: list[str]) -> list[str]:
    return [*utterance, speaker]


def vectorize_dialogs(name: str, task: int, splits: dict[str, list[Turn]], candidates: Sequence[str],
                      entity_types: dict[str, str], memory_size: int | None = None,
                      paths: dict | None = None, vocab: Vocab | None = None) -> DialogDataset:
    """Builds a :class:`DialogDataset` from parsed splits (``train``, ``valid``, ``test``, optional ``oov``).

    The vocabulary holds the words of the training and validation dialogs, of the candidates and the
    speaker words; other words (new entities of the OOV set) read as the unknown word, but keep their
    identity for the match-type features through the candidates (which hold every bot utterance).
    ``memory_size``: the most recent utterances kept (default: the longest dialog so far of any split).
    ``vocab``: a trained model's (evaluation: its words; others read as the unknown word).
    """
    index = {c: i for i, c in enumerate(candidates)}
    for split, turns in splits.items():
        for t in turns:
            if t.answer not in index:
                where = f"{paths[split]}, line {t.line}" if paths and paths.get(split) else f"{name} {split}"
                raise DataError(f"{where}: the bot utterance {t.answer[:60]!r} is not among the candidates")
    tokens = {USER, BOT, KB}
    for split in ("train", "valid"):
        for t in splits[split]:
            tokens.update(t.query)
            for _, u in t.history:
                tokens.update(u)
    for c in candidates:
        tokens.update(words(c))
    vocab = vocab or Vocab(tokens)
    if memory_size is not None and memory_size < 1:
        raise DataError(f"memory size must be at least 1, got {memory_size}")
    longest = max(1, max(len(t.history) for turns in splits.values() for t in turns))
    memory = longest if memory_size is None else memory_size
    width = min(memory, longest)  # slots past the longest dialog would stay empty: the arrays stop there
    enc = _Encoder(vocab, width)
    query_len = max(len(t.query) + 1 for turns in splits.values() for t in turns)
    arrays, dialogs = {}, {}
    for split, turns in splits.items():
        n = len(turns)
        story = np.zeros((n, width), np.int32)
        query = np.zeros((n, query_len), np.int32)
        for i, t in enumerate(turns):
            recent = t.history[-width:][::-1]  # slot 0 = the most recent utterance
            story[i, : len(recent)] = [enc.sentence_id(_sentence(s, u)) for s, u in recent]
            ids = vocab.ids(_sentence(USER, t.query))
            query[i, : len(ids)] = ids
        answer = np.array([index[t.answer] for t in turns], np.int32)
        arrays[split] = Split(story, query, answer, np.full((n, 1), -1, np.int32), np.full((n,), task, np.int32))
        dialogs[split] = np.array([t.dialog for t in turns], np.int32)
    return DialogDataset(name, (task,), vocab, enc.sentences(), arrays["train"], arrays["valid"], arrays["test"],
                         memory_size=memory, candidates=list(candidates), entity_types=dict(entity_types),
                         dialogs=dialogs, oov=arrays.get("oov"), continues=continuing(splits["train"], index),
                         unseen=tuple(sorted(tokens - _words_of(splits["train"]))))


def dialog_root(flag: str | None = None) -> Path:
    """The dialog bAbI release folder (``dialog-bAbI-tasks``): ``flag``, else ``$MEMJAX_DIALOG_DATA``, else the
    data home's (see :func:`memjax.data.download.dialog_root`)."""
    from memjax.data import download

    return download.dialog_root(flag)


def load_dialog_task(task: int, root: str | Path | None = None, memory_size: int | None = None,
                     vocab: Vocab | None = None, candidates: Sequence[str] | None = None) -> DialogDataset:
    """Reads and vectorises one dialog bAbI task from the release folder ``root`` (default:
    :func:`memjax.data.download.dialog_root`).

    Entity types come from the knowledge base (tasks 1-5) and from the result lines of the training and
    validation dialogs (task 6 has no knowledge-base file). A trained model's ``vocab`` and ``candidates``
    (in its order) replace those of the data (evaluation).
    """
    if root is None:
        root = dialog_root()
    paths = task_paths(root, task)
    splits = {k: parse_dialogs(p) for k, p in paths.items() if k in SPLIT_FILES and p is not None}
    candidates = list(candidates) if candidates is not None else parse_candidates(paths["candidates"])
    types = parse_kb(paths["kb"]) if paths["kb"] is not None else {}
    for split in ("train", "valid"):
        for t in splits[split]:
            for speaker, fact in t.history:
                if speaker == KB:
                    _add_fact(types, fact, None, None)
    return vectorize_dialogs(f"dialog task {task}", task, splits, candidates, types, memory_size, paths, vocab)


def per_dialog_accuracy(correct: np.ndarray, dialogs: np.ndarray) -> float:
    """Percent of dialogs whose every response is right (``correct`` (N,) bool, ``dialogs`` (N,) ids)."""
    ids, inverse = np.unique(dialogs, return_inverse=True)
    wrong = np.zeros(len(ids), bool)
    np.logical_or.at(wrong, inverse, ~np.asarray(correct, bool))
    return 100.0 * float(np.mean(~wrong)) if len(ids) else 0.0
