import re

import numpy as np
import pytest

from memjax.data.babi import DataError, parse_file, parse_lines, parse_tasks, task_files, tokenize, words
from memjax.data.dataset import PAD, UNK, Vocab, holdout, load_babi, vectorize

STORY = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Where is Daniel? \thallway\t4
1 Sandra got the apple there.
2 Sandra took the football.
3 What is Sandra carrying? \tapple,football\t1 2
""".splitlines()


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("Where is Mary?") == ["where", "is", "mary", "?"]
    assert tokenize("John went to the hallway.") == ["john", "went", "to", "the", "hallway", "."]
    assert words("Where is Mary?") == ["where", "is", "mary"]


def test_parse_keeps_supporting_facts_and_resets_stories():
    qs = parse_lines(STORY)
    assert len(qs) == 3
    assert qs[0].story == (("mary", "moved", "to", "the", "bathroom"), ("john", "went", "to", "the", "hallway"))
    assert qs[0].query == ("where", "is", "mary") and qs[0].answer == "bathroom" and qs[0].supporting == (0,)
    # the question line does not become a memory: fact 4 is the third statement
    assert len(qs[1].story) == 3 and qs[1].supporting == (2,)
    # a new story starts at line number 1; a multi-word answer keeps its text and its words
    assert len(qs[2].story) == 2 and qs[2].answer == "apple,football" and qs[2].supporting == (0, 1)
    assert qs[2].answer_words == ("apple", "football") and qs[0].answer_words == ("bathroom",)


@pytest.mark.parametrize("bad, message", [
    ("1 Mary went home.\nx Where is Mary?\thome\t1\n", "f.txt:2: malformed line"),
    ("1 Mary went home.\n2 Where is Mary?\t\t1\n", "f.txt:2: question line without an answer"),
    ("1 Mary went home.\n2 Where is Mary?\thome\t7\n", "f.txt:2: supporting fact '7'"),
    ("1 Mary went home.\n3 John left.\n2 Where?\thome\t1\n", "f.txt:3: line number 2"),
    ("1 Mary went home.\n2 Where is Mary?\t , \t1\n", "f.txt:2: the answer has no words"),
    ("1 Mary went home.\n2 Where is Mary? home 1\n", "f.txt:2: a question needs a tab-separated answer"),
])
def test_malformed_lines_name_file_and_line(bad, message):
    with pytest.raises(DataError, match=message.replace("?", r"\?")):
        parse_lines(bad.splitlines(), source="f.txt")


def test_parse_tasks():
    assert parse_tasks("1") == [1]
    assert parse_tasks("1,2,5-7") == [1, 2, 5, 6, 7]
    assert parse_tasks("all") == list(range(1, 21))
    for bad in ("0", "21", "a", "3-1", "1-30"):
        with pytest.raises(DataError):
            parse_tasks(bad)


def test_vocab_padding_and_unknown_ids():
    v = Vocab(["mary", "john", "mary"])
    assert v.words[:2] == ["<pad>", "<unk>"] and len(v) == 4
    assert v.id("mary") == v.words.index("mary") and v.id("zebra") == UNK and PAD == 0


def test_vectorize_memory_window_and_supporting_remap():
    lines = [f"{i} Mary went to room{i}." for i in range(1, 61)]
    lines += ["61 Where is Mary?\troom60\t60 5", "62 Where was Mary first?\troom1\t1"]
    qs = parse_lines(lines)
    ds = vectorize("t", qs, [], qs, memory_size=50)
    story = ds.train.story
    assert story.shape == (2, 50) and (story > 0).all()  # 60 statements, 50 most recent kept
    # slot 0 holds the most recent statement
    first = ds.sentences[story[0, 0]]
    assert ds.vocab.words[first[first > 0][-1]] == "room60"
    last = ds.sentences[story[0, 49]]
    assert ds.vocab.words[last[last > 0][-1]] == "room11"
    # supporting facts remapped into the window: fact 60 -> slot 0, fact 5 -> outside (-1)
    assert ds.train.supporting[0].tolist() == [0, -1]
    assert ds.train.supporting[1].tolist() == [-1, -1]
    # padded arrays with masks: the dense form agrees with the table form
    dense = ds.story_words(ds.train)
    assert dense.shape == (2, 50, ds.sentences.shape[1])
    assert ((dense != 0).any(-1) == (story != 0)).all()


def test_holdout_is_seeded_and_ten_percent():
    qs = parse_lines(STORY) * 10  # 30 questions
    a_train, a_valid = holdout(qs, 0.1, seed=3)
    b_train, b_valid = holdout(qs, 0.1, seed=3)
    assert len(a_valid) == 3 and len(a_train) == 27 and a_valid == b_valid


def test_real_files_counts_and_supporting_facts(data_root):
    for task in (1, 8, 19):
        files = task_files(data_root, "en", task, "holdout")
        train, test = parse_file(files["train"], task), parse_file(files["test"], task)
        assert len(train) == 1000 and len(test) == 1000
    q = parse_file(task_files(data_root, "en", 1, "holdout")["train"], 1)[0]
    assert q.answer == "bathroom" and q.story[q.supporting[0]] == ("mary", "moved", "to", "the", "bathroom")
    answers19 = {q.answer for q in parse_file(task_files(data_root, "en", 19, "holdout")["test"], 19)}
    assert "n,w" in answers19 or any("," in a for a in answers19)
    # every supporting fact of task 2 points to a statement that mentions a word of the answer or query
    for q in parse_file(task_files(data_root, "en", 2, "holdout")["train"], 2)[:50]:
        assert len(q.supporting) == 2 and all(0 <= s < len(q.story) for s in q.supporting)


def test_release_split_sums_to_the_training_file(data_root):
    for ds in load_babi([1, 17, 20], "en", str(data_root)):
        assert len(ds.train) + len(ds.valid) == 1000 and len(ds.test) == 1000
    ds = load_babi([4], "en", str(data_root), valid="holdout")[0]
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (900, 100, 1000)


def test_joint_dataset_has_one_vocabulary(data_root):
    ds = load_babi([1, 2, 19], "en", str(data_root), joint=True)[0]
    assert ds.tasks == (1, 2, 19) and len(ds.train) + len(ds.valid) == 3000
    assert set(np.unique(ds.test.task)) == {1, 2, 19}
    assert "n,w" in ds.vocab and "bathroom" in ds.vocab


def test_missing_files_have_clear_messages(data_root, tmp_path):
    with pytest.raises(DataError, match="en-10k task 3's training file is missing"):
        task_files(data_root, "en-10k", 3, "release")
    with pytest.raises(DataError, match="en-10k task 3's training file is missing"):
        task_files(data_root, "en-10k", 3, "holdout")
    with pytest.raises(DataError, match="data set folder not found"):
        task_files(data_root, "fr", 1)
    with pytest.raises(DataError, match="file not found"):
        parse_file(tmp_path / "nothing.txt")


@pytest.mark.parametrize("bad, message", [
    # numbers are written in ASCII digits and fit the int32 arrays (int() refuses "²" and over 4300 digits,
    # and reads "٢" as 2)
    ("1 Mary went home.\n2147483648 John left.\n", "f.txt:2: line number 2147483648 is out of range (at most 2147483647)"),
    ("1 Mary went home.\n" + "9" * 5000 + " John left.\n", "f.txt:2: line number 99999999999999999999... is out of range"),
    ("² Mary went home.\n", "f.txt:1: malformed line"),
    ("1 Mary went home.\n٢ Where is Mary?\thome\t1\n", "f.txt:2: malformed line"),
    ("1 Mary went home.\n2 Where is Mary?\thome\t²\n", "f.txt:2: supporting fact '²' is not an earlier statement"),
    ("1 Mary went home.\n2 Where is Mary?\thome\t" + "9" * 5000 + "\n",
     "f.txt:2: supporting fact '99999999999999999999...' is not an earlier statement"),
    ("1 Mary went home.\n2 Where is Mary?\thome\t4294967297\n", "f.txt:2: supporting fact '4294967297' is not"),
])
def test_numbers_in_babi_text_are_checked(bad, message):
    with pytest.raises(DataError) as e:
        parse_lines(bad.splitlines(), source="f.txt")
    assert str(e.value).startswith(message)


def test_leading_zeros_and_a_byte_order_mark_are_read(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_bytes(("\ufeff1 Mary went home.\n02 Where is Mary?\thome\t" + "0" * 5000 + "1\n").encode())
    (q,) = parse_file(f)
    assert q.story == (("mary", "went", "home"),) and q.supporting == (0,)
    with pytest.raises(DataError, match="^" + re.escape(f"{tmp_path}: is a folder, not a file") + "$"):
        parse_file(tmp_path)


def test_task_numbers_beyond_int32_are_refused():
    (q,) = parse_lines(["1 Mary went home.", "2 Where is Mary?\thome\t1"], task=2**31)
    with pytest.raises(DataError, match="task number 2147483648 is out of range"):
        vectorize("t", [q], [], [q])
