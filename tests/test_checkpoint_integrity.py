"""A damaged or edited checkpoint never answers: every command that loads one says what is wrong in one
line naming the folder, exits with status 2, and prints no traceback (issue 31, part 1)."""

import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from memjax.cli import main
from memjax.infer import Answerer, load_models
from memjax.train.checkpoint import INTEGRITY_FILE, CheckpointError
from test_cli import MEMJAX

STORY = "Mary went to the kitchen.\nJohn moved to the garden.\nWhere is Mary?\n"


def copy_run(trained, tmp_path, name="run", record=True):
    """A copy of the trained run to damage; without ``record``, as memjax 0.4.0 saved it (no digests)."""
    out = tmp_path / name
    shutil.copytree(trained, out)
    if not record:
        (out / "model" / INTEGRITY_FILE).unlink(missing_ok=True)
    return out


def edit_model(run, change) -> None:
    """Applies ``change`` to the saved metadata of the run's task-1 model."""
    path = run / "model" / "0" / "meta" / "metadata"
    meta = json.loads(path.read_text())
    change(meta["1"])
    path.write_text(json.dumps(meta))


def array_files(folder):
    """The orbax array data files under ``folder`` (its ``.../d/<hash>`` files)."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.parent.name == "d")


def damage(files, how: str) -> None:
    for f in files:
        data = f.read_bytes()
        if how == "truncated":
            f.write_bytes(data[: len(data) // 2])
        elif how == "emptied":
            f.write_bytes(b"")
        elif how == "garbled":
            f.write_bytes(bytes(b ^ 0x5A for b in data))
        else:
            f.unlink()


def one_line(err: str, *parts: str) -> None:
    assert err.startswith("memjax: error:") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err, err
    for part in parts:
        assert part in err, err


def cli(capsys, *args) -> tuple[int, str]:
    """``memjax ARGS`` in this process (the model loads in milliseconds once JAX is up): status and stderr."""
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def subprocess_env():
    return {**os.environ, "MEMJAX_CACHE": "off"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cut(m):
    m["vocab"] = m["vocab"][:10]


# damaged metadata -> what the one line says (every case loaded, or failed later, before memjax checked)
METADATA_CASES = {
    "vocabulary cut to 10 words": (_cut, "its vocabulary has 10 words where its config says vocab_size 21"),
    "vocabulary null": (lambda m: m.update(vocab=None), "its vocabulary is not a list of words"),
    "vocabulary of numbers": (lambda m: m.update(vocab=list(range(len(m["vocab"])))), "not a list of words"),
    "vocabulary out of order": (lambda m: m.update(vocab=m["vocab"][:2] + m["vocab"][:1:-1]), "not in memjax's order"),
    "memory size 0": (lambda m: m.update(memory_size=0), "its memory size is 0, not a whole number of at least 1"),
    "memory size as text": (lambda m: m.update(memory_size="50"), 'its memory size is "50"'),
    "memory size not the config's": (lambda m: m.update(memory_size=20), "its memory size 20 is not its config's"),
    "memory size 0 in both": (lambda m: (m.update(memory_size=0), m["model"].update(memory_size=0)),
                              "memory size is 0"),
    "no vocabulary": (lambda m: m.pop("vocab"), "no vocab recorded"),
    "no config": (lambda m: m.pop("model"), "no model recorded"),
    "config not an object": (lambda m: m.update(model=[1]), "its config (model) is not a JSON object"),
    "tasks not numbers": (lambda m: m.update(tasks="1"), "its tasks are not a list of task numbers"),
    "config refused by the model": (lambda m: m["model"].update(hops=0), "its config does not make a memn2n model"),
    "unknown family": (lambda m: m.update(family="gpt"), "does not make a gpt model"),
}


@pytest.fixture(scope="module")
def old_copy(task1_run, tmp_path_factory):
    """One copy of the trained run without its integrity record, re-damaged by each metadata case."""
    return copy_run(task1_run, tmp_path_factory.mktemp("old"), record=False)


@pytest.mark.parametrize("case", list(METADATA_CASES))
def test_damaged_metadata_is_refused_by_name(task1_run, old_copy, case):
    """Without digests (a model saved by memjax 0.4.0), the metadata itself is checked against the config."""
    meta = old_copy / "model" / "0" / "meta" / "metadata"
    shutil.copy(task1_run / "model" / "0" / "meta" / "metadata", meta)
    change, message = METADATA_CASES[case]
    edit_model(old_copy, change)
    with pytest.raises(CheckpointError) as e:
        load_models(old_copy)
    assert message in str(e.value) and str(old_copy / "model") in str(e.value) and "\n" not in str(e.value)


def test_a_model_saved_without_digests_still_loads_and_answers(task1_run, tmp_path):
    run = copy_run(task1_run, tmp_path, record=False)
    assert not (run / "model" / INTEGRITY_FILE).exists()
    qa = Answerer.load(run)
    answer = qa.answer(["Mary went to the kitchen.", "Mary travelled to the office."], "Where is Mary?")
    assert answer.answer == "office"


def test_the_digests_catch_an_edit_that_fits_every_other_check(task1_run, tmp_path):
    """A word of the vocabulary renamed (still sorted, still 21 words) would answer wrongly without a
    word of warning; the metadata's sha256 refuses it."""
    record = json.loads((task1_run / "model" / INTEGRITY_FILE).read_text())
    assert record["models"]["1"]["vocab_size"] == 21 and "0/meta/metadata" in record["sha256"]
    assert any(name.startswith("0/params/") for name in record["sha256"])
    run = copy_run(task1_run, tmp_path)
    edit_model(run, lambda m: m["vocab"].__setitem__(m["vocab"].index("office"), "officf"))
    with pytest.raises(CheckpointError, match=r"its file 0/meta/metadata is not the file that was written"):
        load_models(run)


def test_a_damaged_integrity_record_is_refused_by_name(task1_run, tmp_path):
    run = copy_run(task1_run, tmp_path)
    path = run / "model" / INTEGRITY_FILE
    record = json.loads(path.read_text())
    for text, message in (("{", "unreadable integrity record"), ("[]", "damaged integrity record"),
                          (json.dumps({**record, "sha256": None}), "damaged integrity record"),
                          (json.dumps({**record, "format": 99}), "written by a newer memjax"),
                          (json.dumps({**record, "step": 3}), "its integrity record is for step 3")):
        path.write_text(text)
        with pytest.raises(CheckpointError, match=message) as e:
            load_models(run)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("how", ["truncated", "emptied", "garbled", "deleted"])
def test_a_damaged_array_file_is_caught_by_its_digest(task1_run, tmp_path, how):
    run = copy_run(task1_run, tmp_path)
    files = array_files(run / "model" / "0" / "params")
    damage(files[:1], how)
    name = files[0].relative_to(run / "model").as_posix()
    with pytest.raises(CheckpointError, match="missing" if how == "deleted" else "sha256 differs") as e:
        load_models(run)
    assert name in str(e.value)


def test_every_command_refuses_a_vocabulary_that_does_not_fit_the_config(task1_run, tmp_path, capsys, monkeypatch):
    """The issue's case: eval exited 0 with 48.1% test error, ask ended in an IndexError traceback."""
    run = copy_run(task1_run, tmp_path, record=False)
    edit_model(run, _cut)
    story = tmp_path / "story.txt"
    story.write_text(STORY)
    monkeypatch.setattr(sys, "stdin", io.StringIO(STORY))
    commands = [["eval", "--checkpoint", run], ["ask", "--checkpoint", run]]
    if importlib.util.find_spec("matplotlib") is not None:
        commands.append(["plot", "--run", run, "--story", story, "--out", tmp_path / "plots"])
    for args in commands:
        rc, err = cli(capsys, *args)
        assert rc == 2, (args, err)
        one_line(err, str(run / "model"), "vocabulary has 10 words where its config says vocab_size 21")


def test_serve_refuses_a_damaged_model_instead_of_answering_500(task1_run, tmp_path):
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    run = copy_run(task1_run, tmp_path, record=False)
    edit_model(run, lambda m: m.update(vocab=None))
    try:
        r = subprocess.run(MEMJAX + ["serve", "--checkpoint", str(run), "--port", str(free_port())],
                           capture_output=True, text=True, env=subprocess_env(), timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("memjax serve started serving a damaged model")
    assert r.returncode == 2, r.stderr
    one_line(r.stderr, str(run / "model"), "its vocabulary is not a list of words")


def test_memory_size_zero_is_refused_by_ask_as_by_eval(task1_run, tmp_path, capsys, monkeypatch):
    """ask and serve used to accept it and then ignore the story; eval refused it without naming the file."""
    run = copy_run(task1_run, tmp_path, record=False)
    edit_model(run, lambda m: m.update(memory_size=0))
    monkeypatch.setattr(sys, "stdin", io.StringIO(STORY))
    for command in ("eval", "ask"):
        rc, err = cli(capsys, command, "--checkpoint", run)
        assert rc == 2, err
        one_line(err, str(run / "model"), "memory size is 0")


def test_a_run_json_that_is_not_the_runs_arguments_is_one_line_naming_it(task1_run, tmp_path, capsys):
    run = copy_run(task1_run, tmp_path)
    arguments = json.loads((run / "run.json").read_text())
    path = run / "run.json"
    for text, message in (("[1, 2]", "holds an array, not the JSON object"), ("{", "not JSON"),
                          (json.dumps({**arguments, "tasks": "1"}), 'tasks is "1", expected a list of task numbers'),
                          (json.dumps({**arguments, "files": {"train": 3}}), "files is")):
        path.write_text(text)
        for args in (["eval", "--checkpoint", run], ["train", "--resume", run, "--quiet", "--no-compile-cache"]):
            rc, err = cli(capsys, *args)
            assert rc == 2, (text, args, err)
            one_line(err, str(path), message)
    path.write_text(json.dumps({**arguments, "colour": "red"}))
    rc, err = cli(capsys, "train", "--resume", run, "--no-compile-cache")
    assert rc == 2
    one_line(err, str(path), "unknown field colour")


def test_a_damaged_training_checkpoint_stops_resume_with_one_line(task1_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEMJAX_CACHE", "off")
    run = copy_run(task1_run, tmp_path)
    family = run / "checkpoints" / "tasks_1"
    latest = max((p for p in family.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    (latest / "meta" / "metadata").write_text("[]")  # used to end in an AttributeError traceback
    rc, err = cli(capsys, "train", "--resume", run, "--quiet", "--no-compile-cache")
    assert rc == 2, err
    one_line(err, str(latest), "its metadata is not a JSON object")


def _loading_commands(run, tmp_path) -> list[list]:
    """The commands that load the run's model (serve and plot where their packages are installed)."""
    story = tmp_path / "story.txt"
    story.write_text(STORY)
    commands = [["ask", "--checkpoint", run], ["eval", "--checkpoint", run]]
    if importlib.util.find_spec("uvicorn") is not None and importlib.util.find_spec("starlette") is not None:
        commands.append(["serve", "--checkpoint", run, "--port", free_port()])
    if importlib.util.find_spec("matplotlib") is not None:
        commands.append(["plot", "--run", run, "--story", story, "--out", tmp_path / "plots"])
    return commands


def _fail_cleanly(commands, expected: str, times: int) -> None:
    """``times`` fresh processes, each running the next of ``commands`` in turn: each ends with status 2
    and one line naming ``expected``, and no traceback."""
    for i in range(times):
        args = [str(a) for a in commands[i % len(commands)]]
        try:
            r = subprocess.run(MEMJAX + args, capture_output=True, text=True, env=subprocess_env(), timeout=300,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"memjax {' '.join(args)} did not stop")
        assert r.returncode == 2, (i, args, r.stderr)
        one_line(r.stderr, expected)


def test_damaged_arrays_print_no_traceback_after_the_line(task1_run, tmp_path):
    """Orbax closed its event loop with reads in flight: 1 to 3 runs in 5 printed ``RuntimeError: Event
    loop is closed`` tracebacks after the line. A model without digests reaches orbax's reads."""
    run = copy_run(task1_run, tmp_path, record=False)
    damage(array_files(run / "model" / "0" / "params"), "garbled")
    _fail_cleanly(_loading_commands(run, tmp_path)[:3], str(run / "model"), times=3)


@pytest.mark.slow  # 20 fresh processes per case
@pytest.mark.parametrize("how", ["truncated", "emptied", "garbled", "deleted"])
def test_damaged_arrays_never_print_a_traceback_in_twenty_runs(task1_run, tmp_path, how):
    run = copy_run(task1_run, tmp_path, record=False)
    damage(array_files(run / "model" / "0" / "params"), how)
    _fail_cleanly(_loading_commands(run, tmp_path), str(run / "model"), times=20)
    digests = copy_run(task1_run, tmp_path, "digests")  # with digests orbax reads nothing damaged
    damage(array_files(digests / "model" / "0" / "params"), how)
    _fail_cleanly(_loading_commands(digests, tmp_path), str(digests / "model"), times=4)


@pytest.mark.slow  # fresh processes, each setting up the training before it reads the checkpoint
@pytest.mark.parametrize("how", ["truncated", "emptied", "garbled", "deleted"])
def test_damaged_training_arrays_never_print_a_traceback(task1_run, tmp_path, how):
    run = copy_run(task1_run, tmp_path)
    family = run / "checkpoints" / "tasks_1"
    latest = max((p for p in family.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    damage(array_files(latest / "state"), how)
    _fail_cleanly([["train", "--resume", run, "--quiet"]], str(latest), times=20 if how == "garbled" else 5)
