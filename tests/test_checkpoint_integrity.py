"""A damaged or edited checkpoint never answers: every command that loads one says what is wrong in one
line naming the folder, exits with status 2, and prints no traceback (issue 31, part 1)."""

import json
import shutil

from memjax.cli import main


def copy_run(trained, tmp_path, name="run"):
    """A copy of the trained run to damage."""
    out = tmp_path / name
    shutil.copytree(trained, out)
    return out


def one_line(err: str, *parts: str) -> None:
    assert err.startswith("memjax: error:") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err, err
    for part in parts:
        assert part in err, err


def cli(capsys, *args) -> tuple[int, str]:
    """``memjax ARGS`` in this process (the model loads in milliseconds once JAX is up): status and stderr."""
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


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
