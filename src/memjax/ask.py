"""``memjax ask``'s reader: a story's lines in, answers out.

Each input line is a statement, a question (ending in ``?``), a bAbI-format line (``1 Mary went
home.``; a question with ``<TAB>answer<TAB>ids``), a JSON-lines record (its own story, question and
answer) or an empty line (a new story). A line that cannot be used, whatever its bytes, is one
message naming the line (``memjax: <stdin>:7: ...``) and the reading goes on with the next; nothing
else stops it. What the reader holds is bounded by the answerer's :class:`~memjax.infer.Limits`: a
line is read in pieces of at most ``max_line`` bytes, a story keeps at most ``max_story`` statements,
and a story that lost a statement (refused, too long) answers no question until a new story starts,
rather than answer without it.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator, TextIO

from memjax.data.babi import DataError, line_number, normalize_answer, words
from memjax.data.own import parse_record

BOM = b"\xef\xbb\xbf"
UNANSWERED = "the story's questions go unanswered until a new story (an empty line)"


def read_lines(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    """The lines of ``stream``, numbered from 1, without their ``\\n`` or ``\\r\\n``: ``(number, line,
    whole)``. A line of more than ``max_bytes`` bytes comes with ``whole`` False and only its first
    bytes; the rest is read past in pieces, never held (a 2 GB line costs no more than a short one)."""
    number = 0
    while True:
        data = stream.readline(max_bytes + 2)  # room for the line's "\r\n"
        if not data:
            return
        number += 1
        if data.endswith(b"\n"):  # the line without its "\n" or "\r\n"
            line = data[:-2] if data.endswith(b"\r\n") else data[:-1]
        else:  # the last line, without an end, or a line longer than that read
            line = data
        if len(line) <= max_bytes:
            yield number, line, True
            continue
        while data and not data.endswith(b"\n"):
            data = stream.readline(max_bytes + 2)
        yield number, line[:max_bytes], False


class Asker:
    """The state of one ``memjax ask`` session: the story so far, and why it answers no more questions.

    Args:
        qa: a :class:`~memjax.infer.Answerer` (or anything with its ``answer``, ``limits`` and
            ``keeps_unknown``).
        show: the statements shown per hop.
        source: the input's name in messages.
    """

    def __init__(self, qa, show: int = 3, source: str = "<stdin>"):
        self.qa, self.show, self.source = qa, show, source
        self.limits = qa.limits
        self.story: list[str] = []
        self.lost: str | None = None  # why this story's questions go unanswered, until a new story starts

    def new_story(self, story: list[str] | None = None) -> None:
        self.story, self.lost = story or [], None

    def run(self, stream: BinaryIO, out: TextIO, err: TextIO) -> int:
        """Reads ``stream`` to its end: answers on ``out`` (flushed after each), one line per refused input
        line on ``err``. Returns 0."""
        for number, data, whole in read_lines(stream, self.limits.max_line):
            where = f"{self.source}:{number}"
            if number == 1 and data.startswith(BOM):  # a byte-order mark, as Windows editors write
                data = data[len(BOM):]
            try:
                if not whole:
                    too_long = f"the line is longer than {self.limits.max_line} bytes (--max-line)"
                    raise self.refused(data, where, too_long)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise self.refused(data, where, f"not UTF-8 text ({e.reason} at byte {e.start})")
                shown = self.line(text, where)
            except DataError as e:
                print(f"memjax: {e}", file=err, flush=True)
                continue
            if shown:
                print("\n".join(shown), file=out, flush=True)
        return 0

    def refused(self, data: bytes, where: str, why: str) -> DataError:
        """The error for the line at ``where`` that cannot be read (``data``: its first bytes). Unless it was a
        JSON record (which brings its own story), the story has lost a statement (or a question): from now
        on it answers no question."""
        if data.lstrip().startswith(b"{"):
            return DataError(f"{where}: {why}")
        self.lost = f"this story lost line {where}"
        return DataError(f"{where}: {why}; {UNANSWERED}")

    def line(self, line: str, where: str) -> list[str]:
        """One input line (without its newline): the lines to print (an answer), or [] for a statement or
        an empty line.

        Raises:
            DataError: one line starting with ``where``, for a line that is refused.
        """
        line = line.strip()
        if not line:
            self.new_story()
            return []
        if line.startswith("{"):  # a JSON-lines record: its own story, question and answer
            record = parse_record(line, where)
            if len(record.story) > self.limits.max_story:
                raise DataError(f"{where}: the record's story has {len(record.story)} statements: at most "
                                f"{self.limits.max_story} are accepted (--max-story)")
            self.new_story([" ".join(s) for s in record.story])
            return self.answer(" ".join(record.query) + "?", record.answer, where)
        number, line = line_number(line)  # a bAbI-format line: "1 Mary went to the kitchen."
        if number == 1:
            self.new_story()
        text, _, expected = line.partition("\t")  # bAbI questions carry "<TAB>answer<TAB>support"
        text = text.strip()
        if text.endswith("?"):
            return self.answer(text, normalize_answer(expected.split("\t")[0]), where)
        limits = self.limits
        if len(self.story) >= limits.max_story:
            self.lost = f"this story has more than {limits.max_story} statements (--max-story)"
            raise DataError(f"{where}: {self.lost}: this one is not kept; {UNANSWERED}")
        count = len(words(text))  # text is at most max_line bytes long
        if count > limits.max_statement_words:
            self.lost = f"this story lost line {where}"
            raise DataError(f"{where}: the statement has {count} words: at most {limits.max_statement_words} are "
                            f"accepted (--max-statement-words); {UNANSWERED}")
        self.story.append(text)
        return []

    def answer(self, question: str, expected: str, where: str) -> list[str]:
        """The printed answer to ``question`` about the story so far (``expected``: the right answer, or "")."""
        if self.lost:
            raise DataError(f"{where}: not answered: {self.lost}; an empty line starts a new story")
        try:
            a = self.qa.answer(self.story, question)
        except ValueError as e:  # no words, or over a limit (LimitError)
            raise DataError(f"{where}: {e}") from None
        note = ""
        if expected:
            note = f"  (expected {expected}: {'right' if expected == a.answer else 'wrong'})"
        shown = [f"{question} -> {a.answer} (p={a.probability:.2f}){note}"]
        if a.unknown:
            how = "read by their context" if self.qa.keeps_unknown else "ignored"
            shown.append(f"  unknown words, {how}: {', '.join(a.unknown)}")
        for k, hop in enumerate(a.hops, 1):
            rows = "; ".join(f"[{i + 1}] {s} ({w:.2f})" for i, s, w in hop[: self.show])
            shown.append(f"  {a.row_name} {k}: {rows or '(empty memory)'}")
        return shown
