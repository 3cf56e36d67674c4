"""Your own stories: bAbI text files or JSON lines, read into the same datasets as bAbI.

JSON lines: one question per line, a JSON object with

- ``"story"``: the statements before the question, oldest first: a list of strings, or one string
  with one statement per line;
- ``"question"``: the question (a string);
- ``"answer"``: the answer, a string of one or more words (``"office"``, ``"living room"``, or
  joined by commas as bAbI's ``"apple,football"``);
- ``"supporting"`` (optional): indices (from 0) into ``story`` of the statements that support the
  answer;
- ``"task"`` (optional): a task number (an integer, default 0) to report errors per task.

A file whose name ends in ``.jsonl`` or ``.json`` is read as JSON lines; anything else as bAbI text
(see :func:`memjax.data.babi.parse_lines`). Every bad record stops with one line naming the file,
the line number and the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from memjax.data.babi import DataError, Question, answer_words, normalize_answer, parse_file, words
from memjax.data.dataset import Dataset, holdout, vectorize, Vocab


def parse_jsonl(path: str | os.PathLike) -> list[Question]:
    """Reads a JSON-lines file of questions (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    questions = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            questions.append(parse_record(line, f"{path}:{lineno}"))
    if not questions:
        raise DataError(f"{path}: no questions")
    return questions


def parse_record(line: str, where: str = "<input>") -> Question:
    """One JSON-lines record as a question; ``where`` names it in error messages."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
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
        statements.append(tuple(w))
    question, answer = record["question"], record["answer"]
    if not isinstance(question, str) or not words(question):
        raise DataError(f"{where}: 'question' must be a string with words")
    if not isinstance(answer, str) or not answer_words(normalize_answer(answer)):
        raise DataError(f"{where}: 'answer' must be a string with words")
    supporting = record.get("supporting", [])
    if not isinstance(supporting, list) or not all(isinstance(i, int) and 0 <= i < len(story) for i in supporting):
        raise DataError(f"{where}: 'supporting' must list indices of the story's statements (0 to {len(story) - 1})")
    task = record.get("task", 0)
    if not isinstance(task, int) or isinstance(task, bool) or task < 0:
        raise DataError(f"{where}: 'task' must be a non-negative integer")
    return Question(tuple(statements), tuple(words(question)), normalize_answer(answer), tuple(supporting), task)


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
