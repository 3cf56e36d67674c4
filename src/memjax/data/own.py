"""Your own stories: bAbI text files or JSON lines, read into the same datasets as bAbI.

JSON lines: one question per line, a JSON object with

- ``"story"``: the statements before the question, oldest first: a list of strings, or one string
  with one statement per line;
- ``"question"``: the question (a string);
- ``"answer"``: the answer, a string of one or more words (``"office"``, ``"living room"``, or
  joined by commas as bAbI's ``"apple,football"``);
- ``"supporting"`` (optional): indices (from 0) into ``story`` of the statements that support the
  answer;
- ``"task"`` (optional): a task number (a whole number from 0 to 2147483647, stored as int32; default 0)
  to report errors per task.

A file whose name ends in ``.jsonl`` or ``.json`` is read as JSON lines; anything else as bAbI text
(see :func:`memjax.data.babi.parse_lines`). Every bad record stops with one line naming the file,
the line number and the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from memjax.data.babi import (MAX_NUMBER, DataError, Question, answer_words, normalize_answer, parse_file,
                              unreadable, words)
from memjax.data.dataset import Dataset, holdout, vectorize, Vocab


def parse_jsonl(path: str | os.PathLike) -> list[Question]:
    """Reads a JSON-lines file of questions (see the module docstring), UTF-8 with or without a byte-order mark."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading byte-order mark is not part of record 1
    except OSError as e:
        raise DataError(unreadable(path, e)) from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    questions = []
    # records end at "\n" only (read_text has turned "\r\n" into it): str.splitlines would also cut at
    # U+2028, U+0085, ..., which JSON allows unescaped inside strings
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            questions.append(parse_record(line, f"{path}:{lineno}"))
    if not questions:
        raise DataError(f"{path}: no questions")
    return questions


def _text(value: str) -> bool:
    """Whether ``value`` is Unicode text: JSON's ``"\\ud800"`` escapes give lone surrogates, which
    cannot be written out as UTF-8 (printing or saving them fails later)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_record(line: str, where: str = "<input>") -> Question:
    """One JSON-lines record as a question; ``where`` names it in error messages.

    Raises:
        DataError: one line starting with ``where``, for anything but a well-formed record.
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
    except ValueError:  # Python refuses to convert integers of over 4300 digits
        raise DataError(f"{where}: a number in the record has too many digits") from None
    except RecursionError:
        raise DataError(f"{where}: the record is nested too deeply") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with story, question and answer")
    for field in ("story", "question", "answer"):
        if field not in record:
            raise DataError(f"{where}: missing field {field!r}")
    story = record["story"]
    if isinstance(story, str):
        story = [s for s in story.splitlines() if s.strip()]
    if not isinstance(story, list) or not all(isinstance(s, str) for s in story):
        raise DataError(f"{where}: 'story' must be a list of strings (or one string, a statement per line)")
    statements = []
    for i, s in enumerate(story):
        w = words(s)
        if not w:
            raise DataError(f"{where}: statement {i} of the story has no words")
        if not _text(s):
            raise DataError(f"{where}: statement {i} of the story is not Unicode text (a lone surrogate escape)")
        statements.append(tuple(w))
    question, answer = record["question"], record["answer"]
    if not isinstance(question, str) or not words(question):
        raise DataError(f"{where}: 'question' must be a string with words")
    if not isinstance(answer, str) or not answer_words(normalize_answer(answer)):
        raise DataError(f"{where}: 'answer' must be a string with words")
    for field, value in (("question", question), ("answer", answer)):
        if not _text(value):
            raise DataError(f"{where}: {field!r} is not Unicode text (a lone surrogate escape)")
    supporting = record.get("supporting", [])
    # bool is an int in Python: true would silently be index 1
    if not isinstance(supporting, list) or not all(_whole(i) and 0 <= i < len(story) for i in supporting):
        raise DataError(f"{where}: 'supporting' must list indices of the story's statements (0 to {len(story) - 1})")
    task = record.get("task", 0)
    if not _whole(task) or not 0 <= task <= MAX_NUMBER:  # stored as int32
        shown = json.dumps(task)[:30]
        raise DataError(f"{where}: 'task' must be a whole number from 0 to {MAX_NUMBER}, got {shown}")
    return Question(tuple(statements), tuple(words(question)), normalize_answer(answer), tuple(supporting), task)


def _whole(value) -> bool:
    """Whether a JSON value is a whole number (not a boolean, which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def read_questions(path: str | os.PathLike) -> list[Question]:
    """Questions from a JSON-lines file (``.jsonl``/``.json``) or a bAbI-format text file."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".json"):
        return parse_jsonl(path)
    questions = parse_file(path)
    if not questions:
        raise DataError(f"{path}: no questions")
    return questions


def load_files(train: str, test: str, valid: str | None = None, memory_size: int = 50, seed: int = 0,
               vocab: Vocab | None = None) -> Dataset:
    """One dataset from your own files; without ``valid``, a seeded 10% of ``train`` is held out."""
    train_q = read_questions(train)
    test_q = read_questions(test)
    if valid:
        valid_q = read_questions(valid)
    else:
        if len(train_q) < 2:
            raise DataError(f"{train}: at least 2 questions are needed to hold out a validation split (or pass --valid-file)")
        train_q, valid_q = holdout(train_q, 0.1, seed)
    return vectorize(f"own data ({Path(train).name})", train_q, valid_q, test_q, memory_size, vocab=vocab)
