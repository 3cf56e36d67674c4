"""Your own data: JSON lines and bAbI text, through train, eval and ask."""

import json
import random
import re

import pytest

from memjax.data.babi import DataError
from memjax.data.own import load_files, parse_jsonl, read_questions
from cli_run import memjax
from test_cli import run


def write_dataset(folder, n, seed, places=("lab", "cafe", "library", "gym")):
    rng = random.Random(seed)
    people = ["alice", "bob", "carol"]
    lines = []
    for _ in range(n):
        story, where = [], {}
        for _ in range(rng.randint(2, 5)):
            p, l = rng.choice(people), rng.choice(places)
            where[p] = (l, len(story))
            story.append(f"{p.capitalize()} walked to the {l}.")
        who = rng.choice(sorted(where))
        lines.append(json.dumps({"story": story, "question": f"Where is {who.capitalize()}?",
                                 "answer": where[who][0], "supporting": [where[who][1]]}))
    path = folder / f"data{seed}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_records_become_questions(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"story": ["Mary went to the kitchen.", "John went to the garden."], "question": "Where is Mary?",'
                 ' "answer": "Kitchen", "supporting": [0], "task": 3}\n\n'
                 '{"story": "Sam ate.\\nSam slept.", "question": "Who slept?", "answer": "sam"}\n')
    a, b = parse_jsonl(f)
    assert a.story == (("mary", "went", "to", "the", "kitchen"), ("john", "went", "to", "the", "garden"))
    assert (a.query, a.answer, a.supporting, a.task) == (("where", "is", "mary"), "kitchen", (0,), 3)
    assert b.story == (("sam", "ate"), ("sam", "slept")) and b.supporting == () and b.task == 0


@pytest.mark.parametrize("line, message", [
    ("not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"story": [], "question": "Where?"}', "missing field 'answer'"),
    ('{"story": 5, "question": "Where?", "answer": "x"}', "'story' must be a list"),
    ('{"story": ["..."], "question": "Where?", "answer": "x"}', "statement 0 of the story has no words"),
    ('{"story": ["A b."], "question": 7, "answer": "x"}', "'question' must be a string"),
    ('{"story": ["A b."], "question": "Where?", "answer": " , "}', "'answer' must be a string with words"),
    ('{"story": ["A b."], "question": "Where?", "answer": ["x"]}', "'answer' must be a string with words"),
    ('{"story": ["A b."], "question": "Where?", "answer": "x", "supporting": [1]}', "'supporting' must list"),
    ('{"story": ["A b."], "question": "Where?", "answer": "x", "task": -1}', "'task' must be"),
    # numbers: int32 task ids, indices that are not booleans, numbers Python refuses to convert, deep nesting
    ('{"story": ["A b."], "question": "Where?", "answer": "x", "task": 2147483648}',
     "'task' must be a whole number from 0 to 2147483647, got 2147483648"),
    ('{"story": ["A b."], "question": "Where?", "answer": "x", "task": true}', "'task' must be a whole number"),
    ('{"story": ["A b."], "question": "Where?", "answer": "x", "supporting": [false]}', "'supporting' must list"),
    ('{"story": ["A b."], "question": "Where?", "answer": "x", "task": ' + "1" * 5000 + "}",
     "a number in the record has too many digits"),
    ("[" * 100_000, "the record is nested too deeply"),
    ('{"story": ["A \\ud800 b."], "question": "Where?", "answer": "x"}', "statement 0 of the story is not Unicode text"),
    ('{"story": [], "question": "Where \\udfff?", "answer": "x"}', "'question' is not Unicode text"),
])
def test_bad_records_name_the_file_and_line(tmp_path, line, message):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"story": ["A b."], "question": "Where?", "answer": "x"}\n' + line + "\n")
    with pytest.raises(DataError, match=message) as e:
        parse_jsonl(f)
    assert str(e.value).startswith(f"{f}:2: ")


def test_answers_keep_their_words(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"story": ["Mary went to the living room."], "question": "Where is Mary?", "answer": " Living  Room"}\n'
                 '{"story": ["Sam has an apple and a ball."], "question": "What has Sam?", "answer": "Apple, ball"}\n')
    a, b = parse_jsonl(f)
    assert (a.answer, a.answer_words) == ("living room", ("living", "room"))
    assert (b.answer, b.answer_words) == ("apple,ball", ("apple", "ball"))
    txt = tmp_path / "own.txt"
    txt.write_text("1 Mary went to the living room.\n2 Where is Mary?\tliving room\t1\n")
    (q,) = read_questions(txt)
    assert (q.answer, q.answer_words, q.supporting) == ("living room", ("living", "room"), (0,))
    # one symbol per distinct answer: the vocabulary holds "living room" beside its words
    ds = load_files(str(txt), str(txt), valid=str(txt))
    assert ds.vocab.words[ds.train.answer[0]] == "living room" and "living" in ds.vocab and "room" in ds.vocab


def test_text_files_are_read_as_babi_and_validation_is_held_out(tmp_path):
    txt = tmp_path / "own.txt"
    txt.write_text("1 Mary went to the kitchen.\n2 Where is Mary?\tkitchen\t1\n" * 10)
    assert read_questions(txt)[0].answer == "kitchen"
    ds = load_files(str(txt), str(txt))
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (9, 1, 10)
    with pytest.raises(DataError, match="file not found"):
        load_files(str(tmp_path / "missing.jsonl"), str(txt))


def test_train_eval_and_ask_on_your_own_jsonl(tmp_path):
    train, test = write_dataset(tmp_path, 300, 0), write_dataset(tmp_path, 100, 1)
    out = tmp_path / "run"
    r = run(["train", "--train-file", str(train), "--test-file", str(test), "--seeds", "2", "--epochs", "40",
             "--quiet", "--out", str(out)])
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["set"] == "own" and "paper" not in res and set(res["tasks"]) == {"0"}
    assert res["tasks"]["0"]["n_test"] == 100 and res["tasks"]["0"]["n_train"] + res["tasks"]["0"]["n_valid"] == 300
    assert res["tasks"]["0"]["test_error"] < 20.0  # a single-supporting-fact task the model learns quickly

    e = run(["eval", "--checkpoint", str(out), "--out", str(tmp_path / "eval")])
    assert e.returncode == 0, e.stderr
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["tasks"]["0"]["test_error"] == \
        res["tasks"]["0"]["test_error"]

    record = test.read_text().splitlines()[0]
    a = memjax(["ask", "--checkpoint", str(out)], record + "\n{oops\n")
    assert a.returncode == 0 and "(expected " in a.stdout and "hop 3:" in a.stdout
    assert "memjax: <stdin>:2: not JSON" in a.stderr  # the line is named


def test_own_data_flags_are_checked(tmp_path):
    train = write_dataset(tmp_path, 20, 0)
    r = run(["train", "--train-file", str(train)])
    assert r.returncode == 2 and "needs both --train-file and --test-file" in r.stderr
    r = run(["train", "--train-file", str(train), "--test-file", str(train), "--tasks", "2"])
    assert r.returncode == 2 and "--tasks and --joint are for bAbI" in r.stderr


ROOMS = ("living room", "dining room", "back garden", "front hall")


@pytest.mark.parametrize("model, epochs", [("memn2n", "40"), pytest.param("dmn", "30", marks=pytest.mark.slow)])
def test_two_word_answers_train_evaluate_and_answer(tmp_path, model, epochs):
    """Answers of two words: MemN2N answers with one symbol per distinct answer, the DMN decoder
    spells the two words; both answer a new story through ``memjax ask`` with both words."""
    train, test = write_dataset(tmp_path, 300, 0, ROOMS), write_dataset(tmp_path, 100, 1, ROOMS)
    out = tmp_path / "run"
    r = run(["train", "--model", model, "--train-file", str(train), "--test-file", str(test), "--seeds", "2",
             "--epochs", epochs, "--quiet", "--out", str(out)])
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "results.json").read_text())["tasks"]["0"]["test_error"] < 20.0
    story = "Alice walked to the back garden.\nBob walked to the dining room.\nAlice walked to the living room.\n"
    a = memjax(["ask", "--checkpoint", str(out)], story + "Where is Alice?\tliving room\n")
    assert a.returncode == 0, a.stderr
    assert "Where is Alice? -> living room (p=" in a.stdout and "(expected living room: right)" in a.stdout


def test_a_byte_order_mark_and_line_separators_in_strings_are_read(tmp_path):
    """A byte-order mark starts many files written on Windows; JSON allows U+2028 and U+0085 unescaped
    inside strings, so they do not end a record (only "\\n" does)."""
    record = {"story": ["Mary went to the\u2028kitchen.", "John left\x85the hall."], "question": "Where is Mary?",
              "answer": "kitchen", "supporting": [0]}
    f = tmp_path / "bom.jsonl"
    f.write_bytes(("\ufeff" + json.dumps(record, ensure_ascii=False) + "\r\n").encode())
    (q,) = read_questions(f)
    assert q.story == (("mary", "went", "to", "the", "kitchen"), ("john", "left", "the", "hall"))
    txt = tmp_path / "bom.txt"
    txt.write_bytes("\ufeff1 Mary went home.\r\n2 Where is Mary?\thome\t1\r\n".encode())
    assert read_questions(txt)[0].answer == "home"


def test_a_task_beyond_int32_is_refused_naming_the_line(tmp_path):
    f = tmp_path / "big.jsonl"
    f.write_text('{"story": ["A b."], "question": "Where?", "answer": "x", "task": 2147483648}\n')
    with pytest.raises(DataError, match=f"^{re.escape(str(f))}:1: 'task' must be a whole number from 0 to 2147483647"):
        load_files(str(f), str(f), valid=str(f))  # before: an OverflowError traceback from the int32 array


def test_folders_are_refused_as_data_files(tmp_path):
    for name in ("folder.jsonl", "folder.txt"):
        (tmp_path / name).mkdir()
        with pytest.raises(DataError, match=f"^{re.escape(str(tmp_path / name))}: is a folder, not a file$"):
            read_questions(tmp_path / name)
