"""Example stories for the page: a bAbI task's test stories, with their questions and answers.

bAbI asks several questions about one growing story, so consecutive questions whose stories extend
one another are grouped into one example: its statements are the longest story, and each question
records how many of them precede it.
"""

from __future__ import annotations

from pathlib import Path

from memjax.data.babi import DataError, Question, parse_file, task_files


def sentence(tokens: tuple[str, ...], names: frozenset[str] = frozenset(), end: str = ".") -> str:
    """Words as a sentence: ``("mary", "went", "home")`` -> ``"Mary went home."`` when ``"mary"`` is a name."""
    shown = [w.capitalize() if w in names else w for w in tokens]
    text = " ".join(shown)
    return text[:1].upper() + text[1:] + end


def proper_names(path: Path) -> frozenset[str]:
    """The words a bAbI file writes capitalised and never in lower case (Mary, Emily, ...), lower-cased.

    The parsed questions are lower-cased; this only restores the names' capitals for display.
    """
    capitalised, lower = set(), set()
    with open(path, encoding="utf-8-sig") as f:  # as the bAbI reader: a leading byte-order mark is not text
        for line in f:
            for w in line.split("\t")[0].split()[1:]:  # the text after the line number
                w = w.strip(".?!,;:")
                (capitalised if w[:1].isupper() else lower).add(w.lower())
    return frozenset(capitalised - lower)


def stories_file(root: Path, set_name: str, task: int) -> Path:
    """The test file of ``task`` in ``root/set_name``, from the release's validation layout if it has one.

    Raises:
        DataError: when the set or the file is missing (one-line message).
    """
    try:
        return task_files(root, set_name, task)["test"]
    except DataError:  # no release validation split for this set: the set's own test file
        return task_files(root, set_name, task, valid="holdout")["test"]


def group_stories(questions: list[Question], limit: int, names: frozenset[str] = frozenset()) -> list[dict]:
    """Groups questions that share a growing story; at most ``limit`` stories.

    Args:
        questions: parsed bAbI questions, in the file's order.
        limit: the most stories returned.
        names: words to capitalise wherever they are shown (see :func:`proper_names`).

    Returns:
        ``[{"statements": [text], "questions": [{"question", "answer", "statements", "supporting"}]}]``,
        where a question's ``statements`` is the number of statements before it and ``supporting``
        holds the indices of its supporting facts.
    """
    stories: list[dict] = []
    current: tuple[tuple[str, ...], ...] | None = None
    for q in questions:
        if current is None or q.story[: len(current)] != current:
            if len(stories) == limit:
                break
            stories.append({"statements": [], "questions": []})
        story = stories[-1]
        story["statements"].extend(sentence(s, names) for s in q.story[len(story["statements"]):])
        story["questions"].append({"question": sentence(q.query, names, "?"), "answer": q.answer,
                                   "statements": len(q.story), "supporting": list(q.supporting)})
        current = q.story
    return stories


def example_stories(root: Path, set_name: str, task: int, limit: int) -> list[dict]:
    """The first ``limit`` test stories of ``task`` (see :func:`group_stories`).

    Raises:
        DataError: when the file is missing or malformed (one-line message).
    """
    path = stories_file(root, set_name, task)
    questions = parse_file(path, task)
    return group_stories(questions, limit, proper_names(path))
