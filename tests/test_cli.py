import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from cli_run import MEMJAX, memjax  # noqa: F401 (MEMJAX: the other test files import it from here)


def run(args, env_data=None, **env):
    """``memjax ARGS`` with MEMJAX_DATA=env_data (unset without it) and ``env`` added (cli_run.memjax: in this
    process where that is the same as a new one)."""
    return memjax(args, data=env_data, env=env)


def test_train_end_to_end_writes_results(data_root, tmp_path):
    out = tmp_path / "run"
    r = run(["train", "--model", "memn2n", "--tasks", "1", "--seeds", "2", "--epochs", "3", "--ls-epochs", "1",
             "--out", str(out)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    assert "test err" in r.stdout and "paper" in r.stdout and "results.json" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["model"] == "memn2n" and res["set"] == "en"
    assert res["config"]["model"]["dim"] == 20 and res["config"]["train"]["epochs"] == 3
    task = res["tasks"]["1"]
    assert task["n_train"] + task["n_valid"] == 1000 and task["n_test"] == 1000
    assert [r["seed"] for r in task["runs"]] == [0, 1]
    best = min(task["runs"], key=lambda r: (r["valid_error"], r["train_error"]))
    assert task["test_error"] == best["test_error"] and task["valid_error"] == best["valid_error"]
    assert res["mean_test_error"] == task["test_error"] and res["failed_tasks"] == int(task["test_error"] > 5)
    assert set(res["seconds"]) >= {"compile", "train", "total"}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 4 and {"loss", "train_error", "valid_error", "epoch", "seed"} <= set(rows[0])


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_first_seed_trains_the_same_runs(data_root, tmp_path):
    """--first-seed K trains seeds K, K+1, ...: --seeds 2 --first-seed 2 gives the runs of seeds 2 and 3
    that --seeds 4 trains beside seeds 0 and 1 (a run depends on its seed, not on the runs beside it),
    so runs can be added to a table later."""
    res = {}
    for name, flags in (("four", ["--seeds", "4"]), ("added", ["--seeds", "2", "--first-seed", "2"])):
        r = run(["train", "--model", "memn2n", "--tasks", "1", *flags, "--epochs", "3", "--ls-epochs", "1",
                 "--out", str(tmp_path / name)], env_data=data_root)
        assert r.returncode == 0, r.stderr
        res[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert res["added"]["config"]["first_seed"] == 2 and res["four"]["config"]["first_seed"] == 0
    runs = {n: {x["seed"]: x for x in res[n]["tasks"]["1"]["runs"]} for n in res}
    assert sorted(runs["four"]) == [0, 1, 2, 3] and sorted(runs["added"]) == [2, 3]
    assert runs["added"][2] == runs["four"][2] and runs["added"][3] == runs["four"][3]
    assert res["added"]["tasks"]["1"]["selected_seed"] in (2, 3)
    r = run(["train", "--first-seed", "-1"])
    assert r.returncode == 2 and "must be at least 0" in r.stderr


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_quick_exit_loses_nothing(data_root, tmp_path):
    """The command ends without tearing the interpreter down (memjax.cli.run): its output, results,
    metrics, checkpoints and saved models are the same as with the usual exit (MEMJAX_FAST_EXIT=off),
    and a failing command's status still comes through."""
    outputs, files = {}, {}
    for mode in ("on", "off"):
        out = tmp_path / mode
        r = run(["train", "--model", "memn2n", "--tasks", "1", "--seeds", "1", "--epochs", "2", "--ls-epochs", "1",
                 "--out", str(out)], env_data=data_root, MEMJAX_FAST_EXIT=mode)
        assert r.returncode == 0, r.stderr
        outputs[mode] = [line.replace(str(out), "OUT") for line in r.stdout.splitlines() if not line.startswith("time:")]
        # Orbax's data files (under .../d/) have random names, and their number varies from run to run
        files[mode] = sorted(str(f.relative_to(out)) for f in out.rglob("*") if f.is_file() and "/d/" not in str(f))
        res = json.loads((out / "results.json").read_text())
        files[mode + " test error"] = res["tasks"]["1"]["test_error"]
    assert outputs["on"] == outputs["off"] and "results.json" in outputs["on"][-1]
    assert files["on"] == files["off"] and any(f.startswith("checkpoints/") for f in files["on"])
    assert files["on test error"] == files["off test error"]
    r = run(["eval", "--checkpoint", str(tmp_path / "on")], env_data=data_root)  # the saved model loads
    assert r.returncode == 0, r.stderr
    assert f"task 1: test error {files['on test error']:.1f}%" in r.stderr  # eval reports progress there
    r = run(["train", "--tasks", "99"], env_data=data_root)
    assert r.returncode == 2 and r.stderr.startswith("memjax: error:")


@pytest.mark.slow  # a long training: runs in CI (.ci/run) and with -m slow
def test_compilation_cache_is_written_and_changes_no_result(data_root, tmp_path):
    cache = tmp_path / "cache"
    args = ["train", "--tasks", "1", "--seeds", "2", "--epochs", "2", "--ls-epochs", "1", "--quiet"]
    first = run(args + ["--out", str(tmp_path / "a")], env_data=data_root, MEMJAX_CACHE=str(cache))
    assert first.returncode == 0, first.stderr
    assert len(list(cache.iterdir())) >= 2  # the training and the evaluation programs at least
    again = run(args + ["--out", str(tmp_path / "b")], env_data=data_root, MEMJAX_CACHE=str(cache))
    assert again.returncode == 0, again.stderr
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert a["tasks"] == b["tasks"]
    off = run(args + ["--no-compile-cache"], env_data=data_root, MEMJAX_CACHE=str(tmp_path / "unused"))
    assert off.returncode == 0 and not (tmp_path / "unused").exists()


def test_train_flags_reach_the_config(data_root, tmp_path):
    r = run(["train", "--tasks", "1,4", "--joint", "--epochs", "1", "--ls-epochs", "1", "--hops", "2",
             "--encoding", "bow", "--no-te", "--no-rn", "--tying", "layerwise", "--memory", "20", "--quiet",
             "--out", str(tmp_path)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "results.json").read_text())
    m, t = res["config"]["model"], res["config"]["train"]
    assert (m["dim"], m["hops"], m["encoding"], m["temporal"], m["tying"]) == (50, 2, "bow", False, "layerwise")
    assert (t["epochs"], t["ls_epochs"], t["random_noise"], t["decay_every"]) == (1, 1, False, 15)
    assert res["config"]["memory"] == 20 and res["config"]["joint"] is True
    assert set(res["tasks"]) == {"1", "4"} and res["tasks"]["4"]["n_test"] == 1000


def test_en_10k_counts(data_root, tmp_path):
    r = run(["train", "--set", "en-10k", "--tasks", "1", "--epochs", "1", "--no-ls", "--quiet",
             "--out", str(tmp_path)], env_data=data_root)
    assert r.returncode == 0, r.stderr
    task = json.loads((tmp_path / "results.json").read_text())["tasks"]["1"]
    assert task["n_train"] + task["n_valid"] == 10000 and task["n_test"] == 1000


def broken_root(tmp_path, data_root):
    root = tmp_path / "babi"
    (root / "en").mkdir(parents=True)
    src = data_root / "en" / "qa1_single-supporting-fact_train.txt"
    lines = src.read_text().splitlines(keepends=True)
    lines[2] = "3 Where is Mary? bathroom 1\n"  # the tabs are gone
    (root / "en" / src.name).write_text("".join(lines))
    shutil.copy(data_root / "en" / "qa1_single-supporting-fact_test.txt", root / "en")
    lines[2] = "three Mary went home.\n"
    (root / "en" / "qa2_two-supporting-facts_train.txt").write_text("".join(lines))
    shutil.copy(data_root / "en" / "qa2_two-supporting-facts_test.txt", root / "en")
    return root


@pytest.mark.parametrize("args, expected", [
    (["--data", "/nonexistent/babi"], "/nonexistent/babi: data folder not found"),
    (["--tasks", "21"], "unknown task 21"),
    (["--tasks", "x"], "bad task list"),
    (["--set", "fr"], "data set folder not found"),
    (["--set", "en-10k", "--tasks", "3"], "en-10k task 3's training file is missing from this copy"),
    (["--data", "BROKEN", "--valid", "holdout"], "qa1_single-supporting-fact_train.txt:3: a question needs a tab-separated answer"),
    (["--data", "BROKEN", "--valid", "holdout", "--tasks", "2"], "qa2_two-supporting-facts_train.txt:3: malformed"),
    (["--data", "BROKEN"], "en-valid: validation split folder not found"),
])
def test_bad_input_one_line_exit_2(data_root, tmp_path, args, expected):
    args = [str(broken_root(tmp_path, data_root)) if a == "BROKEN" else a for a in args]
    r = run(["train", *args], env_data=data_root)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memjax: error: ") and expected in lines[0], r.stderr


def test_missing_data_setting(tmp_path):
    # no --data, no MEMJAX_DATA: the first-use download into an empty MEMJAX_HOME, from a closed local port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/tasks_1-20_v1-2.tar.gz"
    r = run(["train", "--tasks", "1"], MEMJAX_HOME=str(tmp_path), MEMJAX_BABI_URL=url)
    assert r.returncode == 2 and "pass --data DIR or set MEMJAX_DATA" in r.stderr and "Traceback" not in r.stderr


def test_bad_flag_values_are_rejected():
    r = run(["train", "--seeds", "0"])
    assert r.returncode == 2 and "must be positive" in r.stderr
    r = run(["train", "--encoding", "lstm"])
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_help_and_argument_mistakes_answer_without_importing_jax():
    """The command line imports JAX only in the commands that need it; its model names are FAMILIES'."""
    from memjax import MODEL_NAMES
    from memjax.models import FAMILIES

    assert list(MODEL_NAMES) == list(FAMILIES)
    program = ("import sys, memjax.cli as c\n"
            "try:\n    c.main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "print(code, 'jax' in sys.modules)")
    for args, status in ((["--help"], "0"), (["train", "--model", "nope"], "2"), (["train", "--help"], "0")):
        r = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=120)
        assert r.stdout.split()[-2:] == [status, "False"], (args, r.stdout, r.stderr)
    r = run(["train", "--model", "nope"])
    assert r.returncode == 2 and "invalid choice: 'nope'" in r.stderr and "memn2n" in r.stderr


def one_record(folder, name="good.jsonl"):
    path = folder / name
    path.write_text(json.dumps({"story": ["Mary went home."], "question": "Where is Mary?", "answer": "home"}) + "\n")
    return path


@pytest.mark.parametrize("command, flag", [
    (["train", "--test-file", "GOOD", "--train-file"], "--train-file"),
    (["train", "--train-file", "GOOD", "--test-file"], "--test-file"),
    (["train", "--train-file", "GOOD", "--test-file", "GOOD", "--valid-file"], "--valid-file"),
    (["train", "--glove"], "--glove"),
    (["eval", "--checkpoint", "NOWHERE", "--test-file"], "--test-file"),
    (["plot", "--run", "NOWHERE", "--story"], "--story"),
    (["data", "import"], ""),
])
def test_every_file_argument_must_be_a_readable_file(tmp_path, command, flag):
    """A folder given for a file: one line and exit 2 (before: an IsADirectoryError traceback, exit 1)."""
    good = one_record(tmp_path)
    args = [str(good) if a == "GOOD" else str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in command]
    named = f" ({flag})" if flag else ""
    r = run([*args, str(tmp_path)])
    assert r.returncode == 2 and r.stderr == f"memjax: error: {tmp_path}: is a folder, not a file{named}\n", r.stderr


def test_pipes_devices_and_unreadable_files_are_refused(tmp_path):
    from memjax.cli import main

    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)  # read as data, a pipe with no writer would wait forever
    cases = [(fifo, "not a regular file: a device, pipe or socket (--train-file)"),
             ("/dev/zero", "not a regular file: a device, pipe or socket (--train-file)"),  # endless
             (tmp_path / "missing.jsonl", "file not found (--train-file)")]
    if os.geteuid() != 0:  # root reads anything
        locked = one_record(tmp_path, "locked.jsonl")
        locked.chmod(0)
        cases.append((locked, "cannot read it (Permission denied) (--train-file)"))
    good = one_record(tmp_path)
    for path, message in cases:
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            assert main(["train", "--train-file", str(path), "--test-file", str(good)]) == 2
        assert errors.getvalue() == f"memjax: error: {path}: {message}\n"
