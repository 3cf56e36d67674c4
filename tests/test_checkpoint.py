"""Checkpoints, resume after a kill, eval and ask (the command line end to end)."""

import json
import shutil
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from memjax.infer import Answerer, load_models
from memjax.train.checkpoint import CheckpointError
from cli_run import memjax
from test_cli import MEMJAX, run

RESUME_ARGS = ["train", "--tasks", "1", "--seeds", "2", "--epochs", "90", "--ls-epochs", "10", "--quiet"]
RESUME_EPOCHS = 100  # 10 chunks of 10 epochs, a checkpoint after each


@pytest.fixture(scope="module")
def trained(task1_run):
    """bAbI-1k task 1, one run of the default recipe, with --out (shared by the session: see conftest)."""
    return task1_run


def test_ask_answers_a_new_story_with_the_attended_sentences(trained):
    story = ("Mary went to the kitchen.\nJohn moved to the garden.\nMary travelled to the office.\n"
             "Where is Mary?\n")
    r = memjax(["ask", "--checkpoint", str(trained)], story)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Where is Mary? -> office (p=")
    hops = [line for line in lines if line.strip().startswith("hop ")]
    assert len(hops) == 3 and all("[3] Mary travelled to the office." in h.split(";")[0] for h in hops)


def test_ask_reports_unknown_words_and_reads_babi_lines(trained):
    text = "1 Zorro went to the kitchen.\n2 Mary went to the garden.\n3 Where is Mary?\tgarden\t2\n"
    r = memjax(["ask", "--checkpoint", str(trained)], text)
    assert r.returncode == 0, r.stderr
    assert "-> garden" in r.stdout and "(expected garden: right)" in r.stdout
    assert "unknown words, ignored: zorro" in r.stdout


def test_answerer_matches_the_training_evaluation(trained, data_root):
    """The saved model answers the test stories as the training run's evaluation did."""
    from memjax.data.dataset import load_questions

    qa = Answerer.load(trained)
    _, _, test = load_questions(data_root, "en", 1)
    results = json.loads((trained / "results.json").read_text())
    wrong = sum(qa.answer([" ".join(s) for s in q.story], " ".join(q.query) + "?").answer != q.answer
                for q in test[:200])
    assert wrong / 200 * 100 <= results["tasks"]["1"]["test_error"] + 2.0


def test_eval_reproduces_the_training_table(trained, tmp_path):
    r = run(["eval", "--checkpoint", str(trained), "--out", str(tmp_path / "eval")])
    assert r.returncode == 0, r.stderr
    ours = json.loads((tmp_path / "eval" / "results.json").read_text())["tasks"]["1"]
    theirs = json.loads((trained / "results.json").read_text())["tasks"]["1"]
    for key in ("test_error", "valid_error", "train_error", "n_test"):
        assert ours[key] == theirs[key]
    assert "test err" in r.stdout and "paper" in r.stdout


def test_missing_corrupt_or_incompatible_checkpoints_give_one_line(trained, tmp_path):
    for args in (["ask", "--checkpoint", str(tmp_path / "nowhere")], ["eval", "--checkpoint", str(tmp_path)],
                 ["train", "--resume", str(tmp_path)]):
        r = run(args)
        assert r.returncode == 2 and r.stderr.startswith("memjax: error:") and len(r.stderr.splitlines()) == 1, r.stderr
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    # as memjax 0.4.0 saved it (no digests, which would refuse the edit first): the config meets the arrays
    (broken / "model" / "integrity.json").unlink()
    meta = next((broken / "model" / "0" / "meta").glob("*"))
    saved = json.loads(meta.read_text())
    saved["1"]["model"]["dim"] = 7  # parameters no longer fit the config
    meta.write_text(json.dumps(saved))
    r = run(["eval", "--checkpoint", str(broken)])
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "incompatible" in r.stderr, r.stderr
    for f in (broken / "model" / "0" / "params").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    r = run(["ask", "--checkpoint", str(broken)])
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr


def _latest(folder):
    steps = [int(p.name) for p in folder.glob("*") if p.name.isdigit() and (p / "commit_success.txt").exists()]
    return max(steps, default=None)


def test_resume_after_a_kill_ends_like_an_uninterrupted_run(data_root, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    r = run(RESUME_ARGS + ["--out", str(whole)], env_data=data_root)
    assert r.returncode == 0, r.stderr

    env = {k: v for k, v in __import__("os").environ.items()}
    env.update(MEMJAX_DATA=str(data_root), MEMJAX_CACHE="off")  # no cache: a kill may cut an entry it writes
    proc = subprocess.Popen(MEMJAX + RESUME_ARGS + ["--out", str(cut)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    folder = cut / "checkpoints" / "tasks_1"
    deadline = time.time() + 240
    while time.time() < deadline and _latest(folder) is None and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _latest(folder)
    assert killed_at is not None and killed_at < RESUME_EPOCHS, f"killed after epoch {killed_at}: not mid-training"
    assert not (cut / "results.json").exists()
    # a step that was being written when the process died: an incomplete temporary folder
    (folder / f"{killed_at + 10}.orbax-checkpoint-tmp-1").mkdir()

    r = run(["train", "--resume", str(cut)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    a, b = (json.loads((d / "results.json").read_text()) for d in (whole, cut))
    assert a["tasks"] == b["tasks"]  # every run's train, valid and test error, and the selection
    assert (whole / "metrics.jsonl").read_text() == (cut / "metrics.jsonl").read_text()
    pa, pb = load_models(whole)["1"]["params"], load_models(cut)["1"]["params"]
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_array_equal(x, y)  # bit for bit


def test_answerer_load_errors(trained, tmp_path):
    with pytest.raises(CheckpointError, match="no model for task 5"):
        Answerer.load(trained, task=5)
    with pytest.raises(CheckpointError):
        Answerer.load(tmp_path)
