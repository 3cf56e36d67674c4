"""Fuzz tests (Hypothesis): whatever a user hands the bAbI text parser, the JSON-lines parser or
``memjax ask``'s reader, the outcome is parsed questions or an answer, or a one-line DataError naming
the line; never another exception, never data changed on the way (round trips), and ask holds no
more than its limits.

Examples per test: the profile's (tests/conftest.py): ``memjax`` in the default run,
``MEMJAX_HYPOTHESIS_PROFILE=long`` for 10,000 each (minutes; not in CI's default run).
"""

import io
import json
import re

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz tests need hypothesis: pip install -e '.[dev]'")
from hypothesis import event, example, given, strategies as st  # noqa: E402

from memjax.ask import Asker, read_lines  # noqa: E402
from memjax.data.babi import MAX_NUMBER, DataError, Question, normalize_answer, parse_file, parse_lines, words  # noqa: E402
from memjax.data.own import parse_jsonl, parse_record  # noqa: E402
from memjax.infer import Limits  # noqa: E402

from bounded import bounded  # noqa: E402  (tests/bounded.py: the memory bound of every call fuzzed)

# --- what inputs are made of: the characters and numbers the parsers look for, beside any text; mostly
# near-valid lines (numbered in order, a question's tabs, known words), so that the deep checks are reached

NUMBERS = st.one_of(
    st.integers(0, 12).map(str), st.integers(0, 2**40).map(str),
    st.sampled_from(["2147483647", "2147483648", "0" * 4400 + "1", "9" * 4400, "²", "٣", "１", "Ⅻ", "-1", "1.5", "0x1"]))
PIECES = st.one_of(
    NUMBERS, st.text(max_size=12),
    st.sampled_from(["Mary", "went", "to", "the", "kitchen", "Where", "is", "?", ".", ",", " ", "  ", "\t", "{", "}",
                     '"', "[", "]", ":", "\ufeff", "\u2028", "\x85", "\r", "\x00", "\ud800", "İ", "ß"]))
LINE = st.one_of(
    st.tuples(NUMBERS, st.sampled_from([" ", "", "\t", "  "]), st.lists(PIECES, max_size=8).map("".join)).map("".join),
    st.lists(PIECES, max_size=8).map("".join))
# a word that words() keeps as it is: a round trip's story is known exactly
WORD = st.from_regex(r"[a-z0-9ßéø]{1,7}", fullmatch=True)
KNOWN = st.sampled_from(["mary", "John", "went", "to", "the", "kitchen", "office", "garden", "where", "is"])
# text of a statement, question or answer: words, mostly, and now and then anything
CLEAN = st.lists(st.one_of(KNOWN, WORD), min_size=1, max_size=6).map(" ".join)
TEXT = st.one_of(CLEAN, CLEAN, CLEAN, st.lists(st.one_of(KNOWN, WORD, PIECES), min_size=1, max_size=6).map(" ".join))


@st.composite
def babi_lines(draw):
    """bAbI-like lines: statements and questions numbered in order, new stories, supporting ids of earlier
    lines; in half the examples, noise as well: any number, any id, any text, any line."""
    noisy = draw(st.booleans())
    text = TEXT if noisy else CLEAN
    lines, n, said = [], 0, []  # said: the line numbers of the story's statements
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["statement"] * 4 + ["question"] * 2 + ["new story"] + ["any"] * noisy))
        if kind == "new story":
            n, said = 0, []
            continue
        n += 1
        number = draw(NUMBERS) if noisy and draw(st.integers(0, 9)) == 0 else str(n)
        if kind == "statement":
            lines.append(f"{number} {draw(text)}{draw(st.sampled_from(['.', '', '?'] if noisy else ['.', '']))}")
            said.append(n)
        elif kind == "question":
            earlier = st.sampled_from(said).map(str) if said else st.nothing()
            ids = draw(st.lists(st.one_of(earlier, NUMBERS) if noisy else earlier, max_size=3 if said else 0))
            lines.append(f"{number} {draw(text)}?\t{draw(text)}\t{' '.join(ids)}")
        else:
            lines.append(draw(LINE))
    return lines


def utf8(text: str) -> bytes:
    """``text`` as UTF-8; a lone surrogate as the 3 bytes a careless encoder writes (invalid UTF-8)."""
    return text.encode("utf-8", "surrogatepass")


def assert_one_line_error(e: DataError, where: str, last: int | None = None) -> None:
    """``e`` is one line naming ``where`` (a file, or a file and a line number from 1 to ``last``)."""
    message = str(e)
    event("refused: " + re.sub(r"^\S+: ", "", message).split(" (")[0][:40])  # which checks the examples reach
    assert len(message.splitlines()) == 1 and message == message.strip(), repr(message)
    if last is None:
        assert message.startswith(f"{where}: "), message
    else:
        m = re.match(re.escape(where) + r":(\d+): ", message)
        assert m and 1 <= int(m.group(1)) <= last, message


def assert_well_formed(q: Question) -> None:
    assert q.query and all(q.query) and q.answer and q.answer_words and q.answer == normalize_answer(q.answer)
    assert all(s and all(s) for s in q.story)
    assert all(0 <= i < len(q.story) for i in q.supporting) and 0 <= q.task <= MAX_NUMBER


# --- the bAbI text parser

@given(babi_lines())
@example(["1 Mary went home.", "9" * 5000 + " John left."])  # int() refuses over 4300 digits
@example(["² Mary went home."])  # "²".isdigit(), int("²") fails
@example(["1 Mary went home.", "2 Where is Mary?\thome\t٣"])
def test_babi_parser_parses_or_names_the_line(lines):
    try:
        with bounded():
            questions = parse_lines(lines, source="f.txt", task=3)
    except DataError as e:
        assert_one_line_error(e, "f.txt", len(lines))
        return
    event("parsed: questions" if questions else "parsed: no questions")
    for q in questions:
        assert_well_formed(q)
        assert q.task == 3


@st.composite
def babi_stories(draw):
    """(lines, the questions they hold): stories numbered from 1, line numbers with gaps, statements and
    questions in any order, supporting ids of earlier statements, answers of one or more words."""
    lines, questions = [], []
    for _ in range(draw(st.integers(1, 3))):
        statements, numbers, n = [], [], 0
        for _ in range(draw(st.integers(1, 8))):
            n = n + draw(st.integers(1, 3)) if n else 1
            if not statements or draw(st.booleans()):
                ws = draw(st.lists(WORD, min_size=1, max_size=6))
                lines.append(f"{n} {' '.join(ws)}{draw(st.sampled_from(['.', '', ' !']))}")
                statements.append(tuple(ws))
                numbers.append(n)
            else:
                query, answer = draw(st.lists(WORD, min_size=1, max_size=4)), draw(st.lists(WORD, min_size=1, max_size=3))
                support = draw(st.lists(st.integers(0, len(statements) - 1), max_size=3))
                joined = draw(st.sampled_from([",", " ", ", "])).join(answer)
                lines.append(f"{n} {' '.join(query)}?\t{joined}\t{' '.join(str(numbers[i]) for i in support)}")
                questions.append(Question(tuple(statements), tuple(query), normalize_answer(joined), tuple(support), 5))
            if draw(st.integers(0, 4)) == 0:
                lines.append(draw(st.sampled_from(["", " ", "\t"])))  # blank lines are skipped
    return lines, questions


@given(babi_stories(), st.booleans(), st.sampled_from(["\n", "\r\n"]))
def test_babi_files_round_trip(tmp_path_factory, story, bom, end):
    lines, questions = story
    path = tmp_path_factory.getbasetemp() / "round-trip.txt"
    path.write_bytes((("\ufeff" if bom else "") + "".join(line + end for line in lines)).encode())
    with bounded():
        parsed = parse_file(path, task=5)
    assert parsed == questions


# --- the JSON-lines parser

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                    max_leaves=12)
FIELDS = st.fixed_dictionaries({}, optional={
    "story": st.one_of(JSON, st.lists(LINE, max_size=4), LINE), "question": st.one_of(JSON, LINE),
    "answer": st.one_of(JSON, LINE), "supporting": st.one_of(JSON, st.lists(st.integers(-2, 5), max_size=3)),
    "task": st.one_of(JSON, st.integers(-3, 2**32), st.sampled_from([MAX_NUMBER, MAX_NUMBER + 1]))})
# near-valid records: the three fields there, of about the right types
RECORD = st.fixed_dictionaries(
    {"story": st.one_of(st.lists(TEXT, max_size=5), st.lists(TEXT, max_size=5).map("\n".join), JSON),
     "question": st.one_of(TEXT.map(lambda t: t + "?"), JSON), "answer": st.one_of(TEXT, JSON)},
    optional={"supporting": st.one_of(st.lists(st.integers(-1, 5), max_size=3), st.lists(st.booleans(), max_size=2),
                                      JSON),
              "task": st.one_of(st.integers(0, 30), st.integers(-3, 2**32), st.sampled_from([MAX_NUMBER, MAX_NUMBER + 1]),
                                st.booleans(), JSON)})
# valid records, but for the numbers: the parsed path is reached too
GOOD_RECORD = st.fixed_dictionaries(
    {"story": st.one_of(st.lists(TEXT, max_size=5), st.lists(TEXT, max_size=5).map("\n".join)),
     "question": TEXT.map(lambda t: t + "?"), "answer": TEXT},
    optional={"supporting": st.lists(st.integers(0, 4), max_size=2),
              "task": st.one_of(st.integers(0, 30), st.sampled_from([MAX_NUMBER, MAX_NUMBER + 1]))})
RECORD_LINE = st.one_of(
    st.tuples(st.one_of(GOOD_RECORD, RECORD, FIELDS, JSON), st.booleans()).map(
        lambda r: json.dumps(r[0], ensure_ascii=r[1])),
    LINE, st.text(max_size=40))


@given(RECORD_LINE)
@example('{"story": ["A b."], "question": "Where?", "answer": "x", "task": 2147483648}')  # int32 overflow
@example('{"story": ["A b."], "question": "Where?", "answer": "x", "task": ' + "1" * 5000 + "}")
@example("[" * 100_000)  # nested too deeply for the JSON decoder
@example('{"story": ["A \\ud800 b."], "question": "Where?", "answer": "x"}')  # a lone surrogate
def test_json_records_parse_or_name_the_line(line):
    try:
        with bounded():
            q = parse_record(line, "f.jsonl:7")
    except DataError as e:
        assert_one_line_error(e, "f.jsonl:7")
        return
    event("parsed")
    assert_well_formed(q)
    record = json.loads(line)  # what was read is what the record says
    story = record["story"].splitlines() if isinstance(record["story"], str) else record["story"]
    assert q.story == tuple(tuple(words(s)) for s in story if s.strip())
    assert (q.query, q.answer) == (tuple(words(record["question"])), normalize_answer(record["answer"]))
    assert q.supporting == tuple(record.get("supporting", ())) and q.task == record.get("task", 0)
    for text in (*story, record["question"], record["answer"]):
        text.encode("utf-8")  # no lone surrogate gets through: it could not be printed or saved


@st.composite
def jsonl_records(draw):
    """(file text, the questions it holds): records of known words, written with or without escapes, with
    separators JSON allows unescaped in strings (U+2028, U+0085) and the story as a list or one string."""
    lines, questions = [], []
    for _ in range(draw(st.integers(1, 4))):
        sep = draw(st.sampled_from([" ", "\u2028", "\x85", "\t", " \u00a0"]))
        story = [sep.join(draw(st.lists(WORD, min_size=1, max_size=5))) + "." for _ in range(draw(st.integers(0, 4)))]
        query, answer = draw(st.lists(WORD, min_size=1, max_size=4)), draw(st.lists(WORD, min_size=1, max_size=2))
        support = draw(st.lists(st.integers(0, len(story) - 1), max_size=2)) if story else []
        record = {"story": story if draw(st.booleans()) or sep != " " else "\n".join(story),
                  "question": sep.join(query) + "?", "answer": " ".join(answer), "supporting": support}
        if draw(st.booleans()):
            record["task"] = draw(st.integers(0, MAX_NUMBER))
        lines.append(json.dumps(record, ensure_ascii=draw(st.booleans())))
        questions.append(Question(tuple(tuple(words(s)) for s in story), tuple(words(record["question"])),
                                  " ".join(answer), tuple(support), record.get("task", 0)))
        if draw(st.integers(0, 3)) == 0:
            lines.append("")
    return "".join(line + "\n" for line in lines), questions


@given(jsonl_records(), st.booleans())
def test_jsonl_files_round_trip(tmp_path_factory, records, bom):
    text, questions = records
    path = tmp_path_factory.getbasetemp() / "round-trip.jsonl"
    path.write_bytes((("\ufeff" if bom else "") + text).encode())
    with bounded():
        parsed = parse_jsonl(path)
    assert parsed == questions


@given(st.lists(st.one_of(RECORD_LINE.map(utf8), st.binary(max_size=30)), max_size=6))
def test_jsonl_files_parse_or_name_the_line(tmp_path_factory, lines):
    path = tmp_path_factory.getbasetemp() / "any.jsonl"
    data = b"\n".join(lines)
    path.write_bytes(data)
    try:
        with bounded():
            questions = parse_jsonl(path)
    except DataError as e:
        message = str(e)
        assert len(message.splitlines()) == 1 and message.startswith(f"{path}:"), message
        return
    assert questions and all(isinstance(q, Question) for q in questions)


# --- memjax ask's reader

@given(st.binary(max_size=200), st.integers(1, 20))
@example(b"ab\r\r\ncd\r\n\r\nlong line here\nend\r", 4)
def test_read_lines_gives_each_line_or_its_start(data, max_bytes):
    raw = data.split(b"\n")
    expected = [line[:-1] if line.endswith(b"\r") else line for line in raw[:-1]]
    if raw[-1]:
        expected.append(raw[-1])  # the last line, without an end
    with bounded():
        got = list(read_lines(io.BytesIO(data), max_bytes))
    assert [n for n, _, _ in got] == list(range(1, len(expected) + 1))
    for (_, line, whole), want in zip(got, expected):
        assert whole == (len(want) <= max_bytes) and line == (want if whole else want[:max_bytes])


LIMITS = Limits(max_line=120, max_statement_words=10, max_story=4)


class Checked:
    """An answerer that checks that the reader hands it nothing over the limits."""

    def __init__(self, qa):
        self.qa, self.limits, self.keeps_unknown = qa, qa.limits, qa.keeps_unknown

    def answer(self, story, question):
        assert len(story) <= self.limits.max_story and len(question) <= self.limits.max_line
        assert all(len(s) <= self.limits.max_line for s in story)
        return self.qa.answer(story, question)


@pytest.fixture(scope="module")
def checked():
    from test_ask import tiny_answerer

    return Checked(tiny_answerer(LIMITS))


ASK_LINE = st.one_of(
    st.sampled_from([b"", b"Mary went to the kitchen.", b"Where is Mary?", b"1 John went to the office.",
                     b"2 Where is John?\toffice\t1", b"\xef\xbb\xbfMary went home.", b"\xff\xfe", b"x" * 130,
                     b"{" + b"a" * 130, b"Mary " * 11, b"Where is " + b"Mary " * 10 + b"?"]),
    TEXT.map(utf8), TEXT.map(lambda t: utf8(t + "?")), babi_lines().map(lambda lines: utf8("\n".join(lines))),
    RECORD_LINE.map(utf8), LINE.map(utf8), st.binary(max_size=40))


@given(st.lists(ASK_LINE, max_size=14), st.sampled_from([b"\n", b"\r\n"]))
def test_ask_answers_or_names_the_line_and_holds_no_more_than_its_limits(checked, lines, end):
    data = end.join(lines)
    out, err = io.StringIO(), io.StringIO()
    asker = Asker(checked)
    with bounded():
        status = asker.run(io.BytesIO(data), out, err)
    assert status == 0
    answered, refused = out.getvalue().count(" -> "), len(err.getvalue().splitlines())
    event(f"answers: {'some' if answered else 'none'}; refused lines: {'some' if refused else 'none'}")
    numbers = []
    for message in err.getvalue().splitlines():
        m = re.match(r"memjax: <stdin>:(\d+): \S", message)
        assert m, message
        numbers.append(int(m.group(1)))
    last = data.count(b"\n") + 1
    assert numbers == sorted(set(numbers)) and all(1 <= n <= last for n in numbers)  # at most one per line
    assert len(asker.story) <= LIMITS.max_story and all(len(s) <= LIMITS.max_line for s in asker.story)
    assert "Traceback" not in out.getvalue()
