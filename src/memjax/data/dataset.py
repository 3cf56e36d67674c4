"""Vocabulary and vectorisation: bAbI questions to padded NumPy arrays (never inside jit).

Stories are stored as indices into a table of distinct sentences, because bAbI stories are built
from a small set of sentences: the models encode each distinct sentence once per step and gather.

Shapes (N questions, M memory slots, L words per sentence, Q words per question, U distinct
sentences, S supporting facts):

- ``sentences``: (U, L) int32 word ids; row 0 is the empty sentence (all padding).
- ``story``: (N, M) int32 rows of ``sentences``; slot 0 holds the most recent statement, slot i the
  one i statements earlier; 0 marks an empty slot. Only the most recent M statements are kept.
- ``query``: (N, Q) int32 word ids, 0-padded.
- ``answer``: (N,) int32 word ids.
- ``supporting``: (N, S) int32 memory slots of the supporting facts, -1 where absent or outside
  the memory window.
- ``task``: (N,) int32 bAbI task numbers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from memjax.data.babi import MAX_NUMBER, DataError, Question, data_root, parse_file, task_files

PAD, UNK = 0, 1


class Vocab:
    """Words to ids. Id 0 is padding and id 1 the unknown word; the rest are sorted."""

    def __init__(self, tokens: Iterable[str]):
        self.words = ["<pad>", "<unk>"] + sorted(set(tokens) - {"<pad>", "<unk>"})
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_questions(cls, questions: Iterable[Question]) -> "Vocab":
        tokens: set[str] = set()
        for q in questions:
            for s in q.story:
                tokens.update(s)
            tokens.update(q.query)
            tokens.add(q.answer)
        return cls(tokens)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def id(self, word: str) -> int:
        return self.index.get(word, UNK)

    def ids(self, tokens: Sequence[str]) -> list[int]:
        return [self.index.get(w, UNK) for w in tokens]


@dataclasses.dataclass
class Split:
    """The arrays of one split (see the module docstring for shapes)."""

    story: np.ndarray
    query: np.ndarray
    answer: np.ndarray
    supporting: np.ndarray
    task: np.ndarray

    def __len__(self) -> int:
        return int(self.answer.shape[0])

    def take(self, idx: np.ndarray) -> "Split":
        return Split(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclasses.dataclass
class Dataset:
    """A vectorised bAbI dataset: one task, or several tasks with one vocabulary (joint)."""

    name: str
    tasks: tuple[int, ...]
    vocab: Vocab
    sentences: np.ndarray
    train: Split
    valid: Split
    test: Split
    memory_size: int

    @property
    def sentence_mask(self) -> np.ndarray:
        """(U, L) bool: True where a word is present."""
        return self.sentences != PAD

    def story_words(self, split: Split) -> np.ndarray:
        """(N, M, L) word ids of the memory slots (the dense form of ``split.story``)."""
        return self.sentences[split.story]


class _Encoder:
    """Vectorises questions against a fixed vocabulary and a growing table of distinct sentences."""

    def __init__(self, vocab: Vocab, memory_size: int):
        self.vocab = vocab
        self.memory_size = memory_size
        self.table: dict[tuple[int, ...], int] = {(): 0}

    def sentence_id(self, sentence: Sequence[str]) -> int:
        key = tuple(self.vocab.ids(sentence))
        return self.table.setdefault(key, len(self.table))

    def split(self, questions: Sequence[Question], query_len: int, max_support: int) -> Split:
        n, m = len(questions), self.memory_size
        story = np.zeros((n, m), np.int32)
        query = np.zeros((n, query_len), np.int32)
        answer = np.zeros((n,), np.int32)
        supporting = np.full((n, max(max_support, 1)), -1, np.int32)
        task = np.zeros((n,), np.int32)
        for i, q in enumerate(questions):
            recent = q.story[-m:][::-1]  # slot 0 = most recent statement
            story[i, : len(recent)] = [self.sentence_id(s) for s in recent]
            ids = self.vocab.ids(q.query)[:query_len]
            query[i, : len(ids)] = ids
            answer[i] = self.vocab.id(q.answer)
            slots = [len(q.story) - 1 - f for f in q.supporting]
            slots = [s if s < m else -1 for s in slots]
            supporting[i, : len(slots)] = slots
            task[i] = q.task
        return Split(story, query, answer, supporting, task)

    def sentences(self) -> np.ndarray:
        width = max(1, max(len(k) for k in self.table))
        out = np.zeros((len(self.table), width), np.int32)
        for key, row in self.table.items():
            out[row, : len(key)] = key
        return out


def vectorize(
    name: str,
    train: Sequence[Question],
    valid: Sequence[Question],
    test: Sequence[Question],
    memory_size: int = 50,
    vocab: Vocab | None = None,
) -> Dataset:
    """Builds a :class:`Dataset` from parsed questions.

    The vocabulary (unless given) comes from the training and validation questions; words seen only
    in the test set map to the unknown id.
    """
    if memory_size < 1:
        raise DataError(f"memory size must be at least 1, got {memory_size}")
    if not train:
        raise DataError(f"{name}: no training questions")
    vocab = vocab or Vocab.from_questions(list(train) + list(valid))
    everything = [*train, *valid, *test]
    # the task numbers go into an int32 array: a larger one would end in an OverflowError inside NumPy
    bad = next((q.task for q in everything if not 0 <= q.task <= MAX_NUMBER), None)
    if bad is not None:
        raise DataError(f"{name}: task number {bad} is out of range (0 to {MAX_NUMBER})")
    query_len = max(len(q.query) for q in everything)
    max_support = max(len(q.supporting) for q in everything)
    enc = _Encoder(vocab, memory_size)
    splits = [enc.split(qs, query_len, max_support) for qs in (train, valid, test)]
    tasks = tuple(sorted({q.task for q in everything}))
    return Dataset(name, tasks, vocab, enc.sentences(), *splits, memory_size=memory_size)


def holdout(questions: Sequence[Question], fraction: float = 0.1, seed: int = 0):
    """Splits ``questions`` into (train, valid) with a seeded random ``fraction`` held out."""
    order = np.random.default_rng(seed).permutation(len(questions))
    n_valid = int(round(len(questions) * fraction))
    valid_idx = set(order[:n_valid].tolist())
    train = [q for i, q in enumerate(questions) if i not in valid_idx]
    valid = [q for i, q in enumerate(questions) if i in valid_idx]
    return train, valid


def load_questions(root: Path, set_name: str, task: int, valid: str = "release", seed: int = 0):
    """Parses one task into (train, valid, test) question lists."""
    files = task_files(root, set_name, task, valid)
    train = parse_file(files["train"], task)
    test = parse_file(files["test"], task)
    if files["valid"] is None:
        train, dev = holdout(train, 0.1, seed)
    else:
        dev = parse_file(files["valid"], task)
    return train, dev, test


def load_babi(
    tasks: Sequence[int],
    set_name: str = "en",
    data: str | None = None,
    memory_size: int = 50,
    joint: bool = False,
    valid: str = "release",
    seed: int = 0,
) -> list[Dataset]:
    """Loads bAbI tasks as datasets: one per task, or a single joint dataset.

    Args:
        tasks: task numbers.
        set_name: subfolder of the data root (``en``, ``en-10k``, ...).
        data: the data root (else ``$MEMJAX_DATA``).
        memory_size: the number of most recent statements kept in memory.
        joint: one dataset over all ``tasks`` with one vocabulary.
        valid: ``release`` or ``holdout`` (see :func:`memjax.data.babi.task_files`).
        seed: the seed of the ``holdout`` split.
    """
    root = data_root(data)
    parsed = {t: load_questions(root, set_name, t, valid, seed) for t in tasks}
    if joint:
        train, dev, test = ([q for t in tasks for q in parsed[t][i]] for i in range(3))
        return [vectorize(f"{set_name} joint", train, dev, test, memory_size)]
    return [vectorize(f"{set_name} task {t}", *parsed[t], memory_size=memory_size) for t in tasks]
