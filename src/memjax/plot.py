"""Pictures of a training run: training curves and attention heat maps, as PNG files.

``memjax plot --run DIR`` draws the curves of the run that ``memjax train --out DIR`` wrote
(``DIR/metrics.jsonl``, ``DIR/results.json``): ``curves.png`` when the run has one task (or is
joint), else one ``curves_task<N>.png`` per task. With ``--story FILE`` it also draws
``attention.png``: the attention of the run's model over the story's statements, hop by hop.

The same pictures from Python::

    rows = read_metrics("runs/task1")                                    # doctest: +SKIP
    plot_curves(rows, selected_seeds(read_results("runs/task1")), "curves.png")
    statements, question = read_story("story.txt")
    qa = Answerer.load("runs/task1")
    plot_attention(qa.answer(statements, question), statements, question, "attention.png")

matplotlib is an optional dependency (``pip install 'memjax[plot]'``), imported only here. The
figures are drawn with matplotlib's ``Figure`` and its Agg renderer, without pyplot, so that
calling these functions leaves an interactive session's backend alone.
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from memjax.data.babi import line_number

if TYPE_CHECKING:  # pragma: no cover
    from memjax.infer import Answer

MISSING_MATPLOTLIB = "memjax plot needs matplotlib: pip install 'memjax[plot]'"
DPI = 100
LABEL_CHARS = 60  # statements longer than this are cut in the heat map's labels
COLOURS = {"loss": "tab:blue", "train_error": "tab:orange", "valid_error": "tab:green"}


def _figure(width: float, height: float):
    """A new matplotlib Figure (``width`` x ``height`` inches), or a one-line error without matplotlib."""
    try:
        import matplotlib  # noqa: F401  (first, so that a missing package fails here)
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError(MISSING_MATPLOTLIB) from None
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _plain(text: str) -> str:
    """``text`` as matplotlib should show it: a ``$`` would otherwise start mathematics."""
    return text.replace("$", r"\$")


# ---------------------------------------------------------------------------------------------
# reading a run


def read_metrics(run: str | Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``: one per task, run (seed) and epoch.

    Args:
        run: the ``--out`` folder of ``memjax train``.

    Returns:
        The rows as dictionaries, ``task`` as text ("1", or "joint").

    Raises:
        ValueError: the folder or the file is missing, or a line is not a JSON object with the
            expected fields (an unfinished last line, which a run still training may be writing, is
            skipped).
    """
    run = Path(run)
    path = run / "metrics.jsonl"
    if not run.is_dir():
        raise ValueError(f"{run}: no such folder")
    if not path.is_file():
        raise ValueError(f"{path}: no such file (is {run} the --out folder of memjax train?)")
    rows = []
    needed = {"task", "seed", "epoch", "loss", "train_error", "valid_error"}
    text = path.read_text()
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) and not text.endswith("\n"):
                break  # a run still training is writing this line: plot the rows before it
            raise ValueError(f"{path}, line {n}: not JSON") from None
        if not isinstance(row, dict) or not needed <= set(row):
            raise ValueError(f"{path}, line {n}: expected the fields {', '.join(sorted(needed))}")
        rows.append({**row, "task": str(row["task"])})
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def read_results(run: str | Path) -> dict:
    """A run's ``results.json``, or an empty dictionary when there is none (curves without titles' numbers)."""
    path = Path(run) / "results.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ValueError(f"{path}: not JSON") from None


def selected_seeds(results: dict) -> dict[str, int]:
    """The selected run of each curve label: ``{"1": seed, ...}``, or ``{"joint": seed}``."""
    selected = {t: int(e["selected_seed"]) for t, e in results.get("tasks", {}).items() if "selected_seed" in e}
    if "joint_selected_seed" in results:
        selected["joint"] = int(results["joint_selected_seed"])
    elif len(set(selected.values())) == 1:  # one model over several tasks (own data): one selected run
        selected["joint"] = next(iter(selected.values()))
    return selected


def linear_start_epochs(results: dict) -> int | None:
    """How many epochs of linear start the run began with (None without linear start or a config)."""
    train = results.get("config", {}).get("train", {})
    if train.get("linear_start") and train.get("ls_epochs"):
        return int(train["ls_epochs"])
    return None


def _labels(rows: list[dict]) -> list[str]:
    """The distinct task labels of ``rows``: numbers in order, then "joint"."""
    found = {r["task"] for r in rows}
    return sorted(found, key=lambda t: (0, int(t)) if t.isdigit() else (1, 0))


def _curve_label(rows: list[dict], task: str | None) -> list[str]:
    """The labels to draw: all, or the one ``--task`` names (a joint run's curves serve all its tasks)."""
    labels = _labels(rows)
    if task is None:
        return labels
    task = str(task).strip()
    if task in labels:
        return [task]
    if labels == ["joint"]:
        return labels
    raise ValueError(f"metrics.jsonl has no task {task} (it holds {', '.join(labels)})")


def _title(label: str, results: dict, selected: dict[str, int], runs: int) -> str:
    """``task 1: test error 0.1%, selected run seed 3 of 5`` (the parts results.json tells)."""
    name = "joint model" if label == "joint" else f"task {label}"
    if label == "joint" and results.get("tasks"):
        name += f" ({len(results['tasks'])} tasks)"
    parts = [name]
    if label == "joint" and "mean_test_error" in results:
        parts.append(f"mean test error {results['mean_test_error']:.1f}%")
    elif label in results.get("tasks", {}):
        parts.append(f"test error {results['tasks'][label]['test_error']:.1f}%")
    if label in selected:
        parts.append(f"selected run: seed {selected[label]} of {runs}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# curves


def _by_seed(rows: list[dict]) -> dict[int, dict[str, list[float]]]:
    """Rows grouped per seed, ordered by epoch: ``{seed: {"epoch": [...], "loss": [...], ...}}``."""
    runs: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(rows, key=lambda r: (int(r["seed"]), int(r["epoch"]))):
        for key in ("epoch", "loss", "train_error", "valid_error"):
            runs[int(r["seed"])][key].append(float(r[key]))
    return dict(runs)


def _draw_runs(ax_loss, ax_error, runs: dict, chosen: int | None) -> None:
    """Every run thin and faint, the selected one bold and on top."""
    for seed in sorted(runs, key=lambda s: s == chosen):
        r, bold = runs[seed], seed == chosen
        style = {"linewidth": 2.0 if bold else 0.8, "alpha": 1.0 if bold else 0.35, "zorder": 3 if bold else 2}
        ax_loss.plot(r["epoch"], r["loss"], color=COLOURS["loss"], **style)
        ax_error.plot(r["epoch"], r["train_error"], color=COLOURS["train_error"], linestyle="--", **style)
        ax_error.plot(r["epoch"], r["valid_error"], color=COLOURS["valid_error"], **style)


def _mark_linear_start(ax, epochs: int | None, last_epoch: float) -> None:
    """A dotted line after the last epoch of linear start."""
    if not epochs or epochs >= last_epoch:
        return
    ax.axvline(epochs + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.text(epochs + 0.5, 0.98, " end of linear start", transform=ax.get_xaxis_transform(),
            fontsize=8, color="grey", va="top", ha="left")


def _legends(ax_loss, ax_error, runs: dict, chosen: int | None) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=COLOURS["train_error"], linestyle="--", label="train error"),
               Line2D([], [], color=COLOURS["valid_error"], label="validation error")]
    ax_error.legend(handles=handles, loc="upper right", fontsize=8)
    if len(runs) > 1 or chosen is not None:
        others = len(runs) - (chosen in runs)
        handles = [Line2D([], [], color="black", linewidth=2.0, label=f"selected run (seed {chosen})")]
        if others:
            handles.append(Line2D([], [], color="black", linewidth=0.8, alpha=0.35, label=f"other runs ({others})"))
        ax_loss.legend(handles=handles, loc="upper right", fontsize=8)


def plot_curves(rows: list[dict], selected: dict[str, int] | None, path: str | Path, *, title: str | None = None,
                ls_epochs: int | None = None) -> Path:
    """Draws one task's training curves: loss, and train and validation error, per epoch.

    Args:
        rows: the task's rows of ``metrics.jsonl`` (see :func:`read_metrics`), every run (seed).
        selected: the selected seed per task label (see :func:`selected_seeds`): that run is drawn
            bold, the others thin. None or no entry: all runs thin.
        path: the PNG file to write (its folder is made).
        title: the figure's title (default: the task).
        ls_epochs: epochs of linear start, marked by a dotted line (None: no mark).

    Returns:
        ``path``.

    Raises:
        ValueError: no rows, rows of several tasks, or matplotlib missing.
    """
    labels = _labels(rows) if rows else []
    if len(labels) != 1:
        raise ValueError(f"plot_curves draws one task; got rows of {len(labels) or 'no'} tasks")
    label = labels[0]
    runs = _by_seed(rows)
    chosen = (selected or {}).get(label)
    fig = _figure(10, 4)
    ax_loss, ax_error = fig.subplots(1, 2)
    _draw_runs(ax_loss, ax_error, runs, chosen)
    last = max(max(r["epoch"]) for r in runs.values())
    for ax in (ax_loss, ax_error):
        _mark_linear_start(ax, ls_epochs, last)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if all(v > 0 for r in runs.values() for v in r["loss"]):
        ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss")
    ax_error.set_ylabel("error (%)")
    ax_error.set_ylim(bottom=0)
    _legends(ax_loss, ax_error, runs, chosen)
    fig.suptitle(_plain(title or ("joint model" if label == "joint" else f"task {label}")))
    return _save(fig, path)


def _save(fig, path: str | Path, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, **kwargs)
    return path


def plot_run_curves(run: str | Path, out: str | Path, task: str | int | None = None) -> list[Path]:
    """Draws the curves of a training run: ``curves.png``, or ``curves_task<N>.png`` per task.

    A run with one task, or a joint run, gets ``curves.png``; a run with several tasks one file
    per task (``task`` picks one of them, keeping its name).

    Args:
        run: the ``--out`` folder of ``memjax train``.
        out: the folder for the PNG files.
        task: draw only this task ("1", or "joint"); a joint run's curves serve every task.

    Returns:
        The paths written.
    """
    rows = read_metrics(run)
    results = read_results(run)
    selected, ls_epochs = selected_seeds(results), linear_start_epochs(results)
    several = len(_labels(rows)) > 1
    written = []
    for label in _curve_label(rows, task):
        mine = [r for r in rows if r["task"] == label]
        runs = len({int(r["seed"]) for r in mine})
        name = f"curves_task{label}.png" if several else "curves.png"
        written.append(plot_curves(mine, selected, Path(out) / name, title=_title(label, results, selected, runs),
                                   ls_epochs=ls_epochs))
    return written


# ---------------------------------------------------------------------------------------------
# attention


def parse_story(lines: Sequence[str], source: str = "<story>") -> tuple[list[str], str]:
    """Statements and question of a story given line by line.

    Empty lines are skipped; a bAbI line number ("1 Mary went to the kitchen.") is dropped, and a
    line numbered 1 starts a new story (only the last story is kept); the last line is the
    question (ending in "?"; a bAbI question's tab-separated answer is cut off); earlier
    questions are not statements and are left out.

    Args:
        lines: the story's lines.
        source: the file's name, for error messages.

    Returns:
        ``(statements oldest first, question)``.

    Raises:
        ValueError: an empty story, or a last line that is not a question.
    """
    kept: list[str] = []
    for raw in lines:
        number, line = line_number(raw.split("\t")[0])
        if number == 1:
            kept = []
        if line:
            kept.append(line)
    if not kept:
        raise ValueError(f"{source}: the story is empty")
    question = kept[-1]
    if not question.endswith("?"):
        raise ValueError(f"{source}: the last line must be the question, ending in '?' (got {question[:40]!r})")
    statements = [s for s in kept[:-1] if not s.endswith("?")]
    if not statements:
        raise ValueError(f"{source}: the story has no statements before its question")
    return statements, question


def read_story(path: str | Path) -> tuple[list[str], str]:
    """Reads a story file (see :func:`parse_story`): ``(statements, question)``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading byte-order mark is not part of line 1
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read it ({e.__class__.__name__})") from None
    return parse_story(text.splitlines(), str(path))


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "\u2026"


def attention_matrix(answer: "Answer") -> tuple[list[int], list[list[float]]]:
    """The statements in the model's memory (story indices, oldest first) and their weight per hop.

    Returns:
        ``(indices, weights)`` with ``weights[row][hop]``.
    """
    indices = sorted({i for hop in answer.hops for i, _, _ in hop})
    per_hop = [{i: w for i, _, w in hop} for hop in answer.hops]
    return indices, [[hop.get(i, 0.0) for hop in per_hop] for i in indices]


def _caption(answer: "Answer", weights: list[list[float]], hidden: int, memory: int | None) -> str:
    """Notes under the heat map: unknown words, statements outside the memory, empty slots' share."""
    notes = []
    if answer.unknown:
        how = "read by their context" if answer.reads_unknown else "ignored by the model"
        notes.append(f"unknown words, {how}: {', '.join(answer.unknown)}")
    if hidden:
        size = f" ({memory} sentences)" if memory else ""
        notes.append(f"the first {hidden} statement(s) lie outside the model's memory{size} and are not shown")
    sums = [sum(col) for col in zip(*weights)] if weights else []
    if sums and min(sums) < 0.99 and answer.attention not in ("gate", "slots"):  # gates (QRN, EntNet) are no distribution
        rest = ", ".join(f"{100 * (1 - s):.0f}%" for s in sums)
        notes.append(f"the rest of each {answer.row_name}'s attention goes to empty memory slots ({rest})")
    return "\n".join(textwrap.fill(_plain(n), 100) for n in notes)


def plot_attention(answer: "Answer", statements: Sequence[str], question: str, path: str | Path, *,
                   memory: int | None = None) -> Path:
    """Draws the model's attention over a story as a heat map: statements x hops.

    Args:
        answer: what :meth:`memjax.infer.Answerer.answer` returned for ``statements`` and ``question``.
        statements: the story's statements, oldest first, as given to the model.
        question: the question.
        path: the PNG file to write (its folder is made).
        memory: the model's memory size, named in the caption when a long story did not fit.

    Returns:
        ``path``.

    Raises:
        ValueError: no statement in the answer's hops, or matplotlib missing.
    """
    if answer.attention is None:
        raise ValueError("this model attends to nothing (the LSTM reader): there is no attention to draw")
    indices, weights = attention_matrix(answer)
    if not indices:
        raise ValueError("the answer attends to no statement (empty story?)")
    hops = len(answer.hops)
    labels = [f"{i + 1}. {_plain(_short(statements[i]))}" for i in indices]
    fig = _figure(2.5 + 0.065 * max(len(s) for s in labels) + 0.8 * hops, 1.8 + 0.38 * len(indices))
    ax = fig.subplots()
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for r, row in enumerate(weights):
        for h, w in enumerate(row):
            ax.text(h, r, f"{w:.2f}", ha="center", va="center", fontsize=9, color="white" if w > 0.6 else "black")
    ax.set_xticks(range(hops), [f"{answer.row_name} {h + 1}" for h in range(hops)])
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(indices)), labels)
    ax.tick_params(length=0)
    fig.colorbar(image, ax=ax, label={"gate": "update gate", "slots": "slot gate"}.get(answer.attention, "attention weight"), shrink=0.9)
    head = textwrap.fill(f"{question.strip()}  \u2192  {answer.answer} (p = {answer.probability:.2f})", 80)
    ax.set_title(_plain(head), pad=10)
    caption = _caption(answer, weights, indices[0], memory)  # the memory keeps the last statements
    if caption:
        ax.set_xlabel(caption, fontsize=8, color="dimgrey", loc="left")
    return _save(fig, path, bbox_inches="tight", pad_inches=0.15)


def plot_story(run: str | Path, story: str | Path, out: str | Path, task: str | int | None = None) -> Path:
    """Answers the question of a story file with a run's model and draws ``attention.png`` in ``out``."""
    statements, question = read_story(story)
    from memjax.infer import Answerer

    qa = Answerer.load(run, task)
    answer = qa.answer(statements, question)
    return plot_attention(answer, statements, question, Path(out) / "attention.png", memory=qa.memory_size)


# ---------------------------------------------------------------------------------------------
# the command line


def plot(args) -> int:
    """``memjax plot``: the run's curves, and with ``--story`` the attention heat map; prints the paths.

    Args:
        args: the parsed command line (``run``, ``story``, ``task``, ``out``).

    Returns:
        The exit code (0). Errors are raised as one-line ``ValueError`` or ``CheckpointError``.
    """
    try:
        import matplotlib
    except ImportError:
        raise ValueError(MISSING_MATPLOTLIB) from None
    matplotlib.use("Agg")  # a command line process: no window, whatever the user's default
    out = Path(args.out) if args.out else Path(args.run) / "plots"
    read_metrics(args.run)  # a missing run or metrics file fails before anything is drawn
    qa = story = None
    if args.story:  # so do a bad story file and a missing model
        story = read_story(args.story)
        from memjax.infer import Answerer

        qa = Answerer.load(args.run, args.task)
        if qa.model.traits.attention is None:
            raise ValueError(f"--story: the {qa.model.traits.name} model attends to nothing, so there is no "
                             "attention to draw (memjax ask answers with it)")
    written = plot_run_curves(args.run, out, args.task)
    if qa is not None:
        statements, question = story
        answer = qa.answer(statements, question)
        written.append(plot_attention(answer, statements, question, out / "attention.png", memory=qa.memory_size))
    for path in written:
        print(f"wrote {path}")
    return 0
