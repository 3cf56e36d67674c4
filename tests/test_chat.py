"""memjax chat: the knowledge base's API, a conversation with a trained dialog model (its API call run,
the results in the memory, the bot going on), and turns that cannot be used."""

import subprocess
import sys
from pathlib import Path

import pytest

from cli_run import memjax
from dialog_samples import KB
from memjax.chat import Chatbot, KnowledgeBase
from memjax.data.babi import DataError
from memjax.train.checkpoint import CheckpointError


def test_the_knowledge_base_answers_an_api_call_with_the_matching_restaurants_facts(tmp_path):
    (tmp_path / "kb.txt").write_text(KB)
    kb = KnowledgeBase.read(tmp_path / "kb.txt")
    assert kb.call(["thai", "rome"]) == ["resto_c R_cuisine thai", "resto_c R_location rome", "resto_c R_phone resto_c_phone"]
    assert [line.split()[0] for line in kb.call(["thai"])] == ["resto_a"] * 3 + ["resto_c"] * 3 + ["resto_f"] * 3
    assert kb.call(["korean", "paris"]) == []
    (tmp_path / "bad.txt").write_text("1 resto_a cuisine\n")
    with pytest.raises(DataError, match=r"bad.txt, line 1: expected 'ID restaurant R_relation value'"):
        KnowledgeBase.read(tmp_path / "bad.txt")


@pytest.fixture(scope="module")
def small_run(small_dialog_run) -> Path:
    """The small dialog run (conftest.small_dialog_run: FOLDER/run, FOLDER/release)."""
    return small_dialog_run


def test_a_conversation_books_a_table_never_seen_in_training(small_run):
    """(thai, rome) is no training dialog's pair, resto_c no training dialog's restaurant: the bot issues the
    call, reads the results memjax writes into its memory, proposes resto_c and gives its phone number."""
    kb = small_run / "release" / "dialog-babi-kb-all.txt"
    turns = "hello\ni'd like thai food in rome\nthe phone number please\n"
    r = memjax(["chat", "--checkpoint", str(small_run / "run"), "--kb", str(kb)], turns, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    bot = [line for line in r.stdout.splitlines() if line.startswith("bot: ")]
    assert bot == ["bot: hello what can i help you with today", "bot: ok let me look into some options for you",
                   "bot: api_call thai rome", "bot: what do you think of this option: resto_c",
                   "bot: here it is resto_c_phone"], r.stdout
    assert "(knowledge base: 1 restaurants: resto_c)" in r.stdout


def test_turns_that_cannot_be_used_are_one_line_and_the_conversation_goes_on(small_run):
    kb = small_run / "release" / "dialog-babi-kb-all.txt"
    turns = b"hello\n\n" + b"x" * 100_000 + b"\n\xff\xfe\nhi zanzibar\n/reset\nhello\n"
    r = subprocess.run([sys.executable, "-m", "memjax", "chat", "--checkpoint", str(small_run / "run"), "--kb", str(kb)],
                       input=turns, capture_output=True, timeout=120)
    err = r.stderr.decode().splitlines()
    assert r.returncode == 0 and "Traceback" not in r.stderr.decode()
    assert err == ["memjax: <stdin>:2: an empty turn: say something, or <SILENCE> to let the bot go on",
                   "memjax: <stdin>:3: the turn is longer than 65536 bytes (--max-line)",
                   "memjax: <stdin>:4: not UTF-8 text (invalid start byte at byte 0)",
                   "memjax: <stdin>:5: words the model never saw: hi, zanzibar"], err
    out = r.stdout.decode().splitlines()
    assert out[0] == "bot: hello what can i help you with today" and "(a new conversation)" in out
    assert out[-1] == "bot: hello what can i help you with today"


def test_a_checkpoint_of_another_family_is_one_line(task1_run):
    r = memjax(["chat", "--checkpoint", str(task1_run)], "hello\n", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"memjax: error: {task1_run} holds a memn2n model: memjax chat talks "
                                                 "with dialog models (memjax train --set dialog)")
    with pytest.raises(CheckpointError, match="memjax chat talks with dialog models"):
        Chatbot.load(task1_run)


def test_ask_refuses_a_dialog_model_in_one_line(small_run):
    r = memjax(["ask", "--checkpoint", str(small_run / "run")], "where is it?\n", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "a dialog model: talk with it through memjax chat" in r.stderr.strip().splitlines()[-1]


def test_eval_of_a_dialog_run_gives_its_training_measures(small_run, tmp_path):
    import json

    r = memjax(["eval", "--checkpoint", str(small_run / "run"), "--out", str(tmp_path)], timeout=120)
    assert r.returncode == 0, r.stderr
    trained = json.loads((small_run / "run" / "results.json").read_text())["tasks"]["1"]
    again = json.loads((tmp_path / "results.json").read_text())["tasks"]["1"]
    for key in ("test_accuracy", "test_dialog_accuracy", "oov_accuracy", "oov_dialog_accuracy", "valid_error"):
        assert again[key] == trained[key], key
    assert "T1 issuing API calls" in r.stdout and "paper OOV" in r.stdout


def test_an_api_call_matches_the_party_size_too(tmp_path):
    (tmp_path / "kb.txt").write_text("1 resto_x R_cuisine japanese\n2 resto_x R_location bangkok\n"
                                     "3 resto_x R_number\teight\n4 resto_x R_price expensive\n"
                                     "5 resto_y R_cuisine japanese\n6 resto_y R_location bangkok\n"
                                     "7 resto_y R_number four\n8 resto_y R_price expensive\n")
    kb = KnowledgeBase.read(tmp_path / "kb.txt")  # a tab between relation and value, as the release's file
    assert kb.call(["japanese", "bangkok", "eight", "expensive"]) == [
        "resto_x R_cuisine japanese", "resto_x R_location bangkok", "resto_x R_number eight", "resto_x R_price expensive"]


@pytest.fixture(scope="module")
def task5_run(dialog_data, tmp_path_factory) -> Path:
    """MemN2N with match type and type words trained on dialog bAbI task 5, whole dialogs in memory (about 10
    minutes on 2 cores). Type words: without them, a city of no training dialog reads as nothing, and the bot
    asks where again (measured 2026-12-06 with the paper's model)."""
    out = tmp_path_factory.mktemp("task5") / "run"
    r = memjax(["train", "--set", "dialog", "--tasks", "5", "--memory", "1000", "--type-words", "--data",
                str(dialog_data), "--out", str(out), "--quiet"], timeout=3600)
    assert r.returncode == 0, r.stderr
    return out


def _book(run: Path, kb: Path, city: str, cuisine: str, size: str, price: str) -> list[str]:
    """The bot's turns of a booking scripted as the task-5 users speak."""
    turns = ["hello", f"i'd like to book a table in {city} for {size} people", f"with {cuisine} cuisine",
             f"i am looking for a {price} restaurant", "let's do it", "what is the phone number of the restaurant"]
    r = memjax(["chat", "--checkpoint", str(run), "--kb", str(kb)], "\n".join(turns) + "\n", timeout=300)
    assert r.returncode == 0, r.stderr
    return [line[5:] for line in r.stdout.splitlines() if line.startswith("bot: ")]


def _booked(bot: list[str], kb: Path, call: list[str]) -> None:
    """The bot asked for the cuisine and the price range, issued ``call``, proposed one of its results and gave
    that restaurant's phone number."""
    assert bot[:6] == ["hello what can i help you with today", "i'm on it", "any preference on a type of cuisine",
                       "which price range are looking for", "ok let me look into some options for you",
                       "api_call " + " ".join(call)], bot
    offered = {f"what do you think of this option: {line.split()[0]}" for line in KnowledgeBase.read(kb).call(call)}
    assert bot[6] in offered and bot[7] == "great let me do the reservation", bot
    assert bot[8] == f"here it is {bot[6].split()[-1]}_phone" and len(bot) == 9, bot


@pytest.mark.slow
def test_a_task_5_model_books_a_table_with_a_call_no_training_dialog_made(task5_run, dialog_data):
    """'api_call british bombay four expensive' is in no training dialog of task 5 (its words are)."""
    kb = dialog_data / "dialog-babi-kb-all.txt"
    _booked(_book(task5_run, kb, "bombay", "british", "four", "expensive"), kb, ["british", "bombay", "four", "expensive"])


@pytest.mark.slow
def test_a_task_5_model_books_a_table_in_a_city_and_cuisine_never_seen_in_training(task5_run, dialog_data):
    """Bangkok and Japanese food are in no training dialog (the OOV test set's)."""
    kb = dialog_data / "dialog-babi-kb-all.txt"
    _booked(_book(task5_run, kb, "bangkok", "japanese", "eight", "expensive"), kb, ["japanese", "bangkok", "eight", "expensive"])
