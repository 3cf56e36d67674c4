"""bAbI text format: parsing, tokenisation and locating the task files.

A bAbI file is a sequence of numbered lines. Numbering restarts at 1 with each new story.
A statement line is ``"<id> <sentence>"``; a question line is
``"<id> <question>\\t<answer>\\t<supporting ids>"``. An answer may have several words, joined by
commas as bAbI writes them (tasks 8 and 19: ``"apple,football"``, ``"n,w"``) or by spaces (your own
data: ``"living room"``). A question keeps its answer's text and its words; families that answer
with one symbol treat each distinct answer text as one symbol, as the memory-network papers do,
and the DMN decoder emits the words.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

TASK_NAMES = {
    1: "single-supporting-fact", 2: "two-supporting-facts", 3: "three-supporting-facts",
    4: "two-arg-relations", 5: "three-arg-relations", 6: "yes-no-questions", 7: "counting",
    8: "lists-sets", 9: "simple-negation", 10: "indefinite-knowledge", 11: "basic-coreference",
    12: "conjunction", 13: "compound-coreference", 14: "time-reasoning", 15: "basic-deduction",
    16: "basic-induction", 17: "positional-reasoning", 18: "size-reasoning", 19: "path-finding",
    20: "agents-motivations",
}
ALL_TASKS = tuple(range(1, 21))
# The data sets whose validation split ships with the release (a folder "<set>-valid...").
RELEASE_VALID = {"en": "en-valid", "en-10k": "en-valid-10k"}
ENV_VAR = "MEMJAX_DATA"

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PUNCT = re.compile(r"^[^\w]+$")
_ANSWER_SEP = re.compile(r"[,\s]+")


class DataError(Exception):
    """A problem with the user's data: the message is one line, fit to show as it is."""


# Numbers read from data (line numbers, supporting ids, task ids) end up in int32 arrays
# (memjax.data.dataset): larger ones are refused where they are read, naming the file and line.
MAX_NUMBER = 2**31 - 1


def _number(text: str) -> int | None:
    """``text`` as a whole number if it is written in ASCII digits, else None. One of more than 10
    digits comes back as ``MAX_NUMBER + 1``, above the range the callers check, unconverted: ``int``
    refuses strings of over 4300 digits. (``str.isdigit`` alone accepts "²", which ``int`` refuses,
    and "٣", which it reads as 3.)"""
    if not (text.isascii() and text.isdigit()):
        return None
    significant = text.lstrip("0")
    return int(significant or "0") if len(significant) <= 10 else MAX_NUMBER + 1


def tokenize(text: str) -> list[str]:
    """Lower-cases ``text`` and splits punctuation off the words.

    >>> tokenize("Where is Mary?")
    ['where', 'is', 'mary', '?']
    """
    return _TOKEN.findall(text.lower())


def words(text: str) -> list[str]:
    """The tokens of ``text`` without punctuation tokens (what the models read)."""
    return [t for t in tokenize(text) if not _PUNCT.match(t)]


def normalize_answer(text: str) -> str:
    """An answer's canonical text: lower case, runs of spaces as one, no spaces around commas.

    >>> normalize_answer(" Living  Room "), normalize_answer("Apple, football")
    ('living room', 'apple,football')
    """
    return re.sub(r"\s*,\s*", ",", " ".join(text.lower().split()))


def answer_words(answer: str) -> tuple[str, ...]:
    """The words of an answer, split at commas and spaces.

    >>> answer_words("apple,football"), answer_words("living room"), answer_words("office")
    (('apple', 'football'), ('living', 'room'), ('office',))
    """
    return tuple(w for w in _ANSWER_SEP.split(answer) if w)


@dataclasses.dataclass(frozen=True)
class Question:
    """One question with the story that precedes it.

    Attributes:
        story: the statements before the question, oldest first, each a list of words.
        query: the question's words.
        answer: the answer's text (:func:`normalize_answer`): one symbol for the families that answer
            with one; its words are :attr:`answer_words`.
        supporting: indices into ``story`` of the supporting facts.
        task: the bAbI task number (0 for data that is not from a numbered task).
    """

    story: tuple[tuple[str, ...], ...]
    query: tuple[str, ...]
    answer: str
    supporting: tuple[int, ...]
    task: int = 0

    @property
    def answer_words(self) -> tuple[str, ...]:
        """The answer's words (``("apple", "football")`` for ``"apple,football"``)."""
        return answer_words(self.answer)


def line_number(line: str) -> tuple[int | None, str]:
    """Splits a bAbI line number off: ``"1 Mary went home."`` -> ``(1, "Mary went home.")``; (None, line) if none
    (also for a number above :data:`MAX_NUMBER`, which no bAbI line has: the line is then text)."""
    head, _, rest = line.strip().partition(" ")
    number = _number(head)
    if number is not None and number <= MAX_NUMBER and rest.strip():
        return number, rest.strip()
    return None, line.strip()


def parse_lines(lines, source: str = "<input>", task: int = 0) -> list[Question]:
    """Parses bAbI-format lines into questions.

    Args:
        lines: an iterable of text lines.
        source: the file name used in error messages.
        task: the task number stored in each question.

    Line numbers and supporting ids are whole numbers in ASCII digits, at most :data:`MAX_NUMBER`.

    Raises:
        DataError: for a malformed line, naming ``source`` and the line number.
    """
    questions: list[Question] = []
    story: list[tuple[str, ...]] = []
    line_to_fact: dict[int, int] = {}
    previous = 0
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        head, _, rest = line.lstrip().partition(" ")
        number = _number(head)
        if number is None or not rest.strip():
            raise DataError(f"{where}: malformed line, expected '<number> <text>': {line[:60]!r}")
        if number > MAX_NUMBER:
            raise DataError(f"{where}: line number {head[:20]}{'...' if len(head) > 20 else ''} is out of range "
                            f"(at most {MAX_NUMBER})")
        if number == 1 or number <= previous:
            if number != 1:
                raise DataError(f"{where}: line number {number} does not follow {previous} and does not start a story")
            story, line_to_fact = [], {}
        previous = number
        if "\t" in rest:
            parts = rest.split("\t")
            if len(parts) < 2 or not parts[1].strip():
                raise DataError(f"{where}: question line without an answer")
            query = words(parts[0])
            if not query:
                raise DataError(f"{where}: empty question")
            answer = normalize_answer(parts[1])
            if not answer_words(answer):
                raise DataError(f"{where}: the answer has no words, got {parts[1]!r}")
            ids = parts[2].split() if len(parts) > 2 else []
            supporting = []
            for s in ids:
                fact = _number(s)  # an earlier line's number, so at most MAX_NUMBER
                if fact not in line_to_fact:
                    shown = s if len(s) <= 20 else s[:20] + "..."
                    raise DataError(f"{where}: supporting fact {shown!r} is not an earlier statement of this story")
                supporting.append(line_to_fact[fact])
            questions.append(Question(tuple(story), tuple(query), answer, tuple(supporting), task))
        else:
            if "?" in rest:
                raise DataError(f"{where}: a question needs a tab-separated answer ('question?<TAB>answer<TAB>ids')")
            sentence = words(rest)
            if not sentence:
                raise DataError(f"{where}: statement without words")
            line_to_fact[number] = len(story)
            story.append(tuple(sentence))
    return questions


def parse_file(path: str | os.PathLike, task: int = 0) -> list[Question]:
    """Parses one bAbI file (see :func:`parse_lines`), UTF-8 text with or without a byte-order mark."""
    path = Path(path)
    try:
        # utf-8-sig: a leading byte-order mark (Windows editors write one) is not part of line 1
        with open(path, encoding="utf-8-sig") as f:
            return parse_lines(f, source=str(path), task=task)
    except OSError as e:
        raise DataError(unreadable(path, e)) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def unreadable(path: str | os.PathLike, error: OSError) -> str:
    """The one-line message for a data file that cannot be opened or read (missing, a folder, no permission, ...)."""
    if isinstance(error, FileNotFoundError):
        return f"{path}: file not found"
    if isinstance(error, IsADirectoryError):
        return f"{path}: is a folder, not a file"
    return f"{path}: cannot read it ({error.strerror or error})"


def data_root(flag: str | None = None) -> Path:
    """The ``tasks_1-20_v1-2`` folder: ``flag`` if given, else ``$MEMJAX_DATA``, else the data home's (downloaded on first use).

    Raises:
        DataError: ``flag`` or ``$MEMJAX_DATA`` is not a folder, or the first-use download failed.
    """
    value = flag or os.environ.get(ENV_VAR)
    if not value:
        from memjax.data.download import ensure_release

        return ensure_release()
    root = Path(value).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found (expected a bAbI tasks_1-20_v1-2 folder)")
    return root


def parse_tasks(spec: str, tasks: int = 20) -> list[int]:
    """Parses a task list such as ``"1"``, ``"1,2,5-7"`` or ``"all"`` of a collection of ``tasks`` tasks
    (bAbI's 20; dialog bAbI's 6)."""
    spec = spec.strip().lower()
    count = tasks
    if spec == "all":
        return list(range(1, count + 1))
    tasks: list[int] = []
    what = "bAbI" if count == 20 else "dialog bAbI"
    for part in spec.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            rng = range(int(lo), int(hi) + 1) if sep else range(int(lo), int(lo) + 1)
        except ValueError:
            raise DataError(f"bad task list {spec!r}: use e.g. 1 or 1,2,5-7 or all") from None
        if not rng:
            raise DataError(f"bad task range {part!r} in {spec!r}")
        for t in rng:
            if not 1 <= t <= count:
                raise DataError(f"unknown task {t}: {what} has tasks 1 to {count}")
            if t not in tasks:
                tasks.append(t)
    return tasks


def _find(folder: Path, task: int, split: str) -> Path:
    candidates = [folder / f"qa{task}_{TASK_NAMES[task]}_{split}.txt", folder / f"qa{task}_{split}.txt"]
    for c in candidates:
        if c.is_file():
            return c
    missing = candidates[1] if "valid" in folder.name else candidates[0]  # the release's naming
    hint = ""
    if task == 3 and "10k" in folder.name and split == "train":
        hint = (" (en-10k task 3's training file is missing from this copy of bAbI: see SOURCE.md;"
                " use --set en, or other tasks)")
    raise DataError(f"{missing}: file not found{hint}")


def task_files(root: Path, set_name: str, task: int, valid: str = "release") -> dict[str, Path | None]:
    """Locates the files of one task.

    Args:
        root: the ``tasks_1-20_v1-2`` folder.
        set_name: ``en``, ``en-10k`` or any other subfolder in the bAbI layout.
        task: 1..20.
        valid: ``release`` to use the release's own validation split (``en-valid``, ``en-valid-10k``),
            ``holdout`` to hold out 10% of the training file instead.

    Returns:
        ``{"train": path, "valid": path or None, "test": path}``; ``valid`` is None for ``holdout``.
    """
    if task not in TASK_NAMES:
        raise DataError(f"unknown task {task}: bAbI has tasks 1 to 20")
    folder = root / set_name
    if not folder.is_dir():
        raise DataError(f"{folder}: data set folder not found (choose --set from: "
                        f"{', '.join(sorted(p.name for p in root.iterdir() if p.is_dir())) or 'none'})")
    if valid == "release":
        if set_name not in RELEASE_VALID:
            raise DataError(f"--set {set_name} has no release validation split: use --valid holdout")
        vfolder = root / RELEASE_VALID[set_name]
        if not vfolder.is_dir():
            raise DataError(f"{vfolder}: validation split folder not found (use --valid holdout)")
        _find(folder, task, "train")  # the full training file must be there too
        return {"train": _find(vfolder, task, "train"), "valid": _find(vfolder, task, "valid"),
                "test": _find(vfolder, task, "test")}
    if valid == "holdout":
        return {"train": _find(folder, task, "train"), "valid": None, "test": _find(folder, task, "test")}
    raise DataError(f"unknown validation split {valid!r}: use release or holdout")
