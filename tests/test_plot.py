"""memjax plot: training curves from metrics.jsonl, attention heat maps from a trained model."""

import json
import sys

import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from memjax.cli import main  # noqa: E402
from memjax.plot import (MISSING_MATPLOTLIB, attention_matrix, parse_story, plot_attention,  # noqa: E402
                         plot_curves, plot_run_curves, read_metrics, read_story)
from test_cli import run  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
STORY = "Mary went to the kitchen.\nJohn moved to the garden.\nMary travelled to the office.\nWhere is Mary?\n"


def _write_run(folder, tasks=("1",), seeds=3, epochs=6, ls_epochs=2, joint=False):
    """A run folder as memjax train --out writes it, without the models: metrics.jsonl and results.json."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = ["joint"] if joint else list(tasks)
    with open(folder / "metrics.jsonl", "w") as f:
        for label in labels:
            for seed in range(seeds):
                for e in range(1, epochs + 1):
                    f.write(json.dumps({"task": label, "seed": seed, "epoch": e, "loss": 3.0 / (e + seed),
                                        "train_error": 80.0 / e, "valid_error": 85.0 / e + seed}) + "\n")
    results = {"tasks": {t: {"selected_seed": seeds - 1, "test_error": 1.5} for t in tasks},
               "config": {"joint": joint, "train": {"linear_start": True, "ls_epochs": ls_epochs}},
               "mean_test_error": 1.5}
    if joint:
        results["joint_selected_seed"] = 0
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def _assert_png(path, shape=None):
    assert path.is_file() and path.read_bytes()[:8] == PNG
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    if shape:
        assert image.shape[:2] == shape
    else:
        assert image.shape[0] > 100 and image.shape[1] > 200
    return image


def _one_line_error(r, *words):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("memjax: error:") and len(r.stderr.splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_curves_of_a_one_task_run(tmp_path):
    folder = _write_run(tmp_path / "run")
    r = run(["plot", "--run", str(folder)])
    assert r.returncode == 0, r.stderr
    path = folder / "plots" / "curves.png"
    assert str(path) in r.stdout
    image = _assert_png(path, shape=(400, 1000))  # 10 x 4 inches at 100 dpi
    assert image[..., :3].std() > 0.05  # something is drawn


def test_curves_per_task_and_task_selects_one(tmp_path):
    folder = _write_run(tmp_path / "run", tasks=("1", "2"))
    assert main(["plot", "--run", str(folder), "--out", str(tmp_path / "all")]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["curves_task1.png", "curves_task2.png"]
    assert main(["plot", "--run", str(folder), "--task", "2", "--out", str(tmp_path / "two")]) == 0
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["curves_task2.png"]
    _assert_png(tmp_path / "two" / "curves_task2.png", shape=(400, 1000))
    _one_line_error(run(["plot", "--run", str(folder), "--task", "7"]), "no task 7")


def test_a_joint_run_has_one_curve_for_every_task(tmp_path):
    folder = _write_run(tmp_path / "run", tasks=("1", "2", "3"), joint=True)
    written = plot_run_curves(folder, tmp_path / "out", task="2")
    assert [p.name for p in written] == ["curves.png"]
    _assert_png(written[0], shape=(400, 1000))


def test_plot_curves_from_python_without_results(tmp_path):
    rows = read_metrics(_write_run(tmp_path / "run", seeds=1))
    _assert_png(plot_curves(rows, None, tmp_path / "a" / "c.png"), shape=(400, 1000))
    rows.append({**rows[0], "task": "2"})
    with pytest.raises(ValueError, match="one task"):
        plot_curves(rows, {"1": 0}, tmp_path / "b.png")


def test_missing_or_broken_metrics_give_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    _one_line_error(run(["plot", "--run", str(tmp_path / "empty")]), "metrics.jsonl", "no such file")
    _one_line_error(run(["plot", "--run", str(tmp_path / "nowhere")]), "no such folder")
    folder = _write_run(tmp_path / "broken")
    with open(folder / "metrics.jsonl", "a") as f:
        f.write("{not json\n")
    _one_line_error(run(["plot", "--run", str(folder)]), "not JSON")
    assert not (folder / "plots").exists()


def test_a_half_written_last_line_of_a_run_in_progress_is_skipped(tmp_path):
    folder = _write_run(tmp_path / "running")
    whole = read_metrics(folder)
    with open(folder / "metrics.jsonl", "a") as f:
        f.write('{"task": 1, "seed": 0, "epo')  # the writer is mid-line
    assert read_metrics(folder) == whole
    with open(folder / "metrics.jsonl", "a") as f:
        f.write("\n")  # a finished line that is not JSON is an error
    with pytest.raises(ValueError, match="not JSON"):
        read_metrics(folder)


def test_parse_story_reads_plain_and_babi_lines():
    assert parse_story(STORY.splitlines()) == (STORY.splitlines()[:3], "Where is Mary?")
    babi = ["1 Bill went home.", "2 Where is Bill? \thome\t1", "1 Mary went to the kitchen.", "",
            "2 John moved to the garden.", "3 Where is Mary? \tkitchen\t1", "4 Mary moved to the office.",
            "5 Where is Mary? \toffice\t4"]
    assert parse_story(babi) == (["Mary went to the kitchen.", "John moved to the garden.",
                                  "Mary moved to the office."], "Where is Mary?")
    for lines, message in (([], "empty"), (["", "  "], "empty"), (["Mary went home."], "ending in '?'"),
                           (["Where is Mary?"], "no statements")):
        with pytest.raises(ValueError, match=message):
            parse_story(lines, "story.txt")


def test_a_story_file_may_start_with_a_byte_order_mark(tmp_path):
    """Windows editors start UTF-8 files with a byte-order mark: it is not part of the first statement, nor
    of a bAbI line number 1 (which starts the story)."""
    plain = tmp_path / "plain.txt"
    plain.write_bytes(("\ufeff" + STORY).encode())
    assert read_story(plain) == (STORY.splitlines()[:3], "Where is Mary?")
    babi = tmp_path / "babi.txt"
    babi.write_bytes("\ufeff1 Bill went home.\r\n2 Where is Bill?\thome\t1\r\n".encode())
    assert read_story(babi) == (["Bill went home."], "Where is Bill?")


def test_missing_matplotlib_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    rows = [{"task": "1", "seed": 0, "epoch": 1, "loss": 1.0, "train_error": 50.0, "valid_error": 50.0}]
    with pytest.raises(ValueError) as caught:
        plot_curves(rows, None, tmp_path / "c.png")
    assert str(caught.value) == MISSING_MATPLOTLIB and "pip install 'memjax[plot]'" in MISSING_MATPLOTLIB
    assert main(["plot", "--run", str(_write_run(tmp_path / "run"))]) == 2
    err = capsys.readouterr().err
    assert err == f"memjax: error: {MISSING_MATPLOTLIB}\n"
    assert not (tmp_path / "c.png").exists()


@pytest.fixture(scope="module")
def trained(task1_run):
    """bAbI-1k task 1, one run of the default recipe, with --out (shared by the session: see conftest)."""
    return task1_run


def test_attention_heat_map_of_a_story(trained, tmp_path):
    story = tmp_path / "story.txt"
    story.write_text(STORY)
    r = run(["plot", "--run", str(trained), "--story", str(story), "--out", str(tmp_path / "out")])
    assert r.returncode == 0, r.stderr
    for name in ("curves.png", "attention.png"):
        assert str(tmp_path / "out" / name) in r.stdout
        _assert_png(tmp_path / "out" / name)


def test_plot_attention_from_python_notes_unknown_words(trained, tmp_path):
    from memjax.infer import Answerer

    statements, question = parse_story(STORY.replace("garden", "zanzibar").splitlines())
    answer = Answerer.load(trained).answer(statements, question)
    assert answer.unknown == ["zanzibar"]
    indices, weights = attention_matrix(answer)
    assert indices == [0, 1, 2] and all(len(row) == len(answer.hops) for row in weights)
    assert all(0.0 <= sum(col) <= 1.0 + 1e-5 for col in zip(*weights))
    _assert_png(plot_attention(answer, statements, question, tmp_path / "a.png", memory=50))


def test_a_story_without_a_question_gives_one_line(trained, tmp_path):
    story = tmp_path / "story.txt"
    story.write_text(STORY.replace("Where is Mary?", ""))
    _one_line_error(run(["plot", "--run", str(trained), "--story", str(story)]), "ending in '?'")
    story.write_text("\n\n")
    _one_line_error(run(["plot", "--run", str(trained), "--story", str(story)]), "empty")
    assert not (trained / "plots").exists()  # nothing drawn before the story was read


def test_attention_is_named_by_the_kind_the_model_reports(tmp_path):
    from memjax.infer import Answer
    from memjax.plot import _caption

    statements = ["mary went to the kitchen", "mary travelled to the office"]
    hops = [[(1, statements[1], 0.6), (0, statements[0], 0.2)]] * 2  # 0.2 of each row to empty slots
    passes = Answer("office", 0.9, hops, ["zanzibar"], [("office", 0.9)], attention="pass", reads_unknown=True)
    caption = _caption(passes, attention_matrix(passes)[1], 0, 50)
    assert "each pass's attention goes to empty memory slots" in caption and "read by their context" in caption
    _assert_png(plot_attention(passes, statements, "where is mary?", tmp_path / "p.png"))
    reader = Answer("office", 0.9, [], [], [("office", 0.9)], attention=None)
    with pytest.raises(ValueError, match="attends to nothing"):
        plot_attention(reader, statements, "where is mary?", tmp_path / "r.png")
