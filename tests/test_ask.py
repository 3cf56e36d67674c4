"""memjax ask's reader and the answerer's limits: a line, a statement and a story are bounded; what is
over a limit is one message, and the reading goes on. (No training: an untrained MemN2N answers.)"""

import io
import json
import subprocess
import sys

import jax
import pytest

from memjax.ask import Asker, read_lines
from memjax.data.generate import single_fact
from memjax.infer import Answerer, LimitError, Limits
from memjax.models import MemN2N
from memjax.train.protocol import build_configs
from cli_run import memjax
from test_cli import MEMJAX, run

STORY = "Mary went to the kitchen.\nJohn moved to the garden.\nMary travelled to the office.\n"


def tiny_answerer(limits: Limits | None = None) -> Answerer:
    """An untrained MemN2N (d=8, 2 hops, memory 6) over the generated single-fact vocabulary: what it
    answers is arbitrary, but it answers through the real prediction path."""
    ds = single_fact(8, 4, 4, story_length=6, people=4, places=4, seed=0)
    mcfg, _ = build_configs("memn2n", ds, False, {"dim": 8, "hops": 2}, {"epochs": 1})
    model = MemN2N(mcfg)
    return Answerer("1", model, model.init(jax.random.key(0)), ds.vocab, ds.memory_size, [1], limits)


@pytest.fixture(scope="module")
def qa() -> Answerer:
    return tiny_answerer(Limits(max_line=100, max_statement_words=6, max_story=4))


def ask(qa, text: bytes | str) -> tuple[list[str], list[str], Asker]:
    """Runs the reader over ``text``: (stdout lines, stderr lines, the reader)."""
    out, err = io.StringIO(), io.StringIO()
    asker = Asker(qa)
    assert asker.run(io.BytesIO(text.encode() if isinstance(text, str) else text), out, err) == 0
    return out.getvalue().splitlines(), err.getvalue().splitlines(), asker


def answers(out: list[str]) -> list[str]:
    return [line.split(" -> ")[0] for line in out if " -> " in line]


def test_the_limits_default_as_documented_and_refuse_nonsense():
    from memjax.cli import _parser

    d = Limits()
    assert (d.max_line, d.max_statement_words, d.max_story) == (65536, 1000, 1000)
    ask_help = next(a for a in _parser()._actions if a.dest == "command").choices["ask"].format_help()
    for text in (f"default {d.max_line} bytes", f"(default {d.max_statement_words})", f"(default {d.max_story})"):
        assert text in " ".join(ask_help.split()), ask_help
    for bad in ({"max_line": 0}, {"max_story": -1}, {"max_statement_words": 2.5}, {"max_line": True}):
        with pytest.raises(ValueError, match="must be a positive whole number"):
            Limits(**bad)


def test_the_answerer_refuses_what_is_over_its_limits(qa):
    ok = qa.answer(["Mary went to the kitchen.", "John went to the office."], "Where is Mary?")
    assert ok.answer and len(ok.hops) == 2
    cases = [
        (["Mary went home."] * 5, "Where is Mary?", "story", "the story has 5 statements: at most 4"),
        (["x" * 101], "Where is Mary?", "story", "statement 1 has 101 characters: at most 100"),
        (["a b c d e f g"], "Where is Mary?", "story", "statement 1 has 7 words: at most 6"),
        ([], "Where is Mary, Mary, Mary, Mary, Mary?", "question", "the question has 7 words: at most 6"),
        ([], "Where is " + "x" * 100 + "?", "question", "the question has 110 characters: at most 100"),
    ]
    for story, question, field, message in cases:
        with pytest.raises(LimitError, match=message) as e:
            qa.answer(story, question)
        assert e.value.field == field and isinstance(e.value, ValueError)  # the server's 422 path still holds
    with pytest.raises(ValueError, match="not Unicode text"):
        qa.answer(["Mary went to the \ud800 kitchen."], "Where is Mary?")


def test_read_lines_bounds_what_it_holds():
    stream = io.BytesIO(b"short\r\n" + b"y" * 25 + b"\nexactly ten\n" + b"z" * 11 + b"\r\nlast")
    got = list(read_lines(stream, 11))
    assert got == [(1, b"short", True), (2, b"y" * 11, False), (3, b"exactly ten", True), (4, b"z" * 11, True),
                   (5, b"last", True)]


def test_ask_skips_long_lines_and_refuses_questions_about_a_story_that_lost_a_statement(qa):
    text = (STORY + "x" * 500 + "\nWhere is Mary?\n\n"  # a long line: its story answers nothing more
            + STORY + "Where is Mary?\n"  # a new story: answered
            + "Mary went to the kitchen and then to the garden.\nWhere is John?\n\n"  # 10 words: lost
            + "Where is Mary, Mary, Mary, Mary, Mary?\nWhere is John?\n")  # a long question loses nothing
    out, err, asker = ask(qa, text)
    assert answers(out) == ["Where is Mary?", "Where is John?"], out
    assert err == [
        "memjax: <stdin>:4: the line is longer than 100 bytes (--max-line); the story's questions go unanswered "
        "until a new story (an empty line)",
        "memjax: <stdin>:5: not answered: this story lost line <stdin>:4; an empty line starts a new story",
        "memjax: <stdin>:11: the statement has 10 words: at most 6 are accepted (--max-statement-words); the "
        "story's questions go unanswered until a new story (an empty line)",
        "memjax: <stdin>:12: not answered: this story lost line <stdin>:11; an empty line starts a new story",
        "memjax: <stdin>:14: the question has 7 words: at most 6 are accepted"]
    assert asker.story == [] and asker.lost is None


def test_ask_keeps_a_story_within_max_story(qa):
    statements = "".join(f"Mary went to the kitchen {i}.\n" for i in range(6))
    out, err, asker = ask(qa, statements + "Where is Mary?\n1 John went to the office.\n2 Where is John?\tgarden\n")
    assert len(err) == 3 and err[0].startswith("memjax: <stdin>:5: this story has more than 4 statements (--max-story)")
    assert err[1].startswith("memjax: <stdin>:6: this story has more than 4")
    assert err[2].startswith("memjax: <stdin>:7: not answered: this story has more than 4 statements")
    assert len(out) > 1 and out[0].startswith("Where is John? -> ") and "(expected garden: " in out[0]
    assert asker.story == ["John went to the office."]


def test_ask_reads_a_byte_order_mark_bad_bytes_and_records(qa):
    record = json.dumps({"story": ["Mary went to the kitchen."], "question": "Where is Mary?", "answer": "kitchen"})
    text = ("\ufeff1 Mary went to the office.\n2 Where is Mary?\toffice\t1\n").encode() + \
        b"3 Mary went to the \xff\xfe garden.\n4 Where is Mary?\toffice\t1\n" + (record + "\n{oops\n").encode()
    out, err, asker = ask(qa, text)
    # the byte-order mark is not a word, and the bAbI line 1 numbering is read: 1 statement, then asked
    assert answers(out) == ["Where is Mary?", "where is mary?"] and "(expected office: " in out[0]
    assert err[0] == ("memjax: <stdin>:3: not UTF-8 text (invalid start byte at byte 19); the story's questions "
                      "go unanswered until a new story (an empty line)")
    assert err[1].startswith("memjax: <stdin>:4: not answered: this story lost line <stdin>:3")
    assert err[2].startswith("memjax: <stdin>:6: not JSON (") and len(err) == 3
    assert asker.story == ["mary went to the kitchen"]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run folder holding the untrained model, as memjax train --out saves one."""
    import dataclasses

    from memjax.train.checkpoint import save_model

    qa = tiny_answerer()
    out = tmp_path_factory.mktemp("ask") / "run"
    save_model(out / "model", {"1": {"params": qa.params, "family": "memn2n", "model": dataclasses.asdict(qa.cfg),
                                     "vocab": list(qa.vocab.words), "memory_size": qa.memory_size, "tasks": [1]}})
    return out


PEAK = ("import resource, sys\nfrom memjax.cli import main\nrc = main(sys.argv[1:])\n"
        "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(rc)")


def test_a_2_mb_line_costs_no_memory_and_the_reading_goes_on(saved_run):
    """Before the limits, a 1 MB line peaked at 1.6 GB and 2 MB at 2.9 GB; now it is skipped, read in pieces."""
    huge = "Mary went to the kitchen " * 80_000  # 2 MB, 400,000 words
    text = STORY + huge + "\nWhere is Mary?\n\n" + STORY + "Where is Mary?\n"
    r = subprocess.run([sys.executable, "-c", PEAK, "ask", "--checkpoint", str(saved_run)], input=text, text=True,
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("memjax:")] == [
        "memjax: <stdin>:4: the line is longer than 65536 bytes (--max-line); the story's questions go unanswered "
        "until a new story (an empty line)",
        "memjax: <stdin>:5: not answered: this story lost line <stdin>:4; an empty line starts a new story"], r.stderr
    assert answers(r.stdout.splitlines()) == ["Where is Mary?"] and "hop 2:" in r.stdout
    peak = int(r.stderr.splitlines()[-1].removeprefix("peak "))
    assert peak < 1_000_000, r.stderr  # KiB: under 1 GB (JAX and the model take about 0.4)


def test_ask_flags_set_the_limits(saved_run):
    flags = ["--max-line", "30", "--max-statement-words", "4", "--max-story", "2"]
    text = ("Mary went to the kitchen.\n\nMary went home.\nJohn went home.\nMary went home.\nWhere is Mary?\n\n"
            "Mary went home.\nWhere is Mary?\n" + "x" * 31 + "\n")
    a = memjax(["ask", "--checkpoint", str(saved_run), *flags], text)
    assert a.returncode == 0, a.stderr
    err = [line for line in a.stderr.splitlines() if line.startswith("memjax:")]
    assert err[0].startswith("memjax: <stdin>:1: the statement has 5 words: at most 4 are accepted")
    assert err[1].startswith("memjax: <stdin>:5: this story has more than 2 statements (--max-story)")
    assert err[2].startswith("memjax: <stdin>:6: not answered:")
    assert err[3].startswith("memjax: <stdin>:10: the line is longer than 30 bytes (--max-line)") and len(err) == 4
    assert answers(a.stdout.splitlines()) == ["Where is Mary?"]
    bad = run(["ask", "--checkpoint", str(saved_run), "--max-story", "0"])
    assert bad.returncode == 2 and "must be positive" in bad.stderr


def test_ask_into_a_closed_pipe_stops_quietly(saved_run):
    """``memjax ask ... | head -1``: the reader of stdout goes away after one line; the next answer finds the
    pipe closed, and memjax stops with status 141 (as cat or grep would, killed by SIGPIPE), no traceback."""
    p = subprocess.Popen(MEMJAX + ["ask", "--checkpoint", str(saved_run)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write((STORY + "Where is Mary?\n").encode())
        p.stdin.flush()
        first = p.stdout.readline()  # the first answer has come: memjax now waits for more input
        p.stdout.close()
        p.stdin.write(("\n" + STORY + "Where is Mary?\n").encode() * 20)  # answers into the closed pipe
        p.stdin.close()
        err = p.stderr.read().decode()
        rc = p.wait(timeout=300)
    finally:
        p.kill()
    assert first.startswith(b"Where is Mary? -> "), (first, err)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert rc == 141, err
