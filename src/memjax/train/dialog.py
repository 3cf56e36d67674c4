"""Dialog bAbI's measures of a trained run: per-response and per-dialog accuracy on the test and the
test-OOV sets (Bordes, Boureau & Weston 2017, Table 2), and the table beside the paper."""

from __future__ import annotations

import numpy as np

from memjax.data.dialog import TITLES, DialogDataset, per_dialog_accuracy

# The paper's Table 2, per-response test accuracy (%): (supervised embeddings, MemN2N, MemN2N + match type);
# "oov" rows are the test-OOV sets; the cells as later work reports them, not checked against the paper's PDF
PAPER = {
    "1": (100.0, 99.9, 100.0), "2": (68.4, 100.0, 98.3), "3": (64.9, 74.9, 74.9), "4": (57.2, 59.5, 100.0),
    "5": (75.4, 96.1, 93.4), "6": (22.6, 41.1, 41.0),
    "1 oov": (60.0, 72.3, 96.5), "2 oov": (68.3, 78.9, 94.5), "3 oov": (65.0, 74.4, 75.2),
    "4 oov": (57.0, 57.6, 100.0), "5 oov": (58.2, 65.5, 77.7),
}


def paper_column(model: str, match: bool) -> int:
    """The column of :data:`PAPER` for a family and its match-type setting."""
    if model == "embeddings-dialog":
        return 0
    return 2 if match else 1


def accuracies(predicted: np.ndarray, answer: np.ndarray, dialogs: np.ndarray) -> dict[str, float]:
    """Per-response and per-dialog accuracy (%) of predicted candidate indices."""
    correct = np.asarray(predicted) == np.asarray(answer)
    return {"accuracy": 100.0 * float(np.mean(correct)) if len(correct) else 0.0,
            "dialog_accuracy": per_dialog_accuracy(correct, dialogs)}


def entry(ds: DialogDataset, test_predicted: np.ndarray, oov_predicted: np.ndarray | None) -> dict:
    """The dialog measures of a task's selected run, for ``results.json``: ``test_accuracy``,
    ``test_dialog_accuracy`` and, with an OOV set, ``oov_accuracy``, ``oov_dialog_accuracy``, ``oov_error``,
    ``n_oov``."""
    test = accuracies(test_predicted, ds.test.answer, ds.dialogs["test"])
    out = {"test_accuracy": test["accuracy"], "test_dialog_accuracy": test["dialog_accuracy"]}
    if ds.oov is not None and oov_predicted is not None:
        oov = accuracies(oov_predicted, ds.oov.answer, ds.dialogs["oov"])
        out.update(oov_accuracy=oov["accuracy"], oov_dialog_accuracy=oov["dialog_accuracy"],
                   oov_error=100.0 - oov["accuracy"], n_oov=len(ds.oov))
    return out


def format_table(results: dict) -> str:
    """Per task: per-response (and per-dialog) test accuracy, the same on the OOV set, and the paper's cells."""
    column = results.get("paper", {}).get("column")
    head = f"{'task':<24}  {'test acc':>8}  {'dialogs':>7}  {'OOV acc':>7}  {'dialogs':>7}  {'valid acc':>9}"
    if column is not None:
        head += f"  {'paper':>5}  {'paper OOV':>9}"
    lines = [head, "-" * len(head)]
    for t, e in results["tasks"].items():
        name = f"T{t} {TITLES.get(int(t), '')}"
        oov = (f"{e['oov_accuracy']:7.1f}  {e['oov_dialog_accuracy']:7.1f}" if "oov_accuracy" in e
               else f"{'-':>7}  {'-':>7}")
        line = (f"{name:<24}  {e['test_accuracy']:8.1f}  {e['test_dialog_accuracy']:7.1f}  {oov}  "
                f"{100.0 - e['valid_error']:9.1f}")
        if column is not None:
            p, po = PAPER.get(t), PAPER.get(f"{t} oov")
            line += f"  {p[column] if p else '-':>5}  {po[column] if po else '-':>9}"
        lines.append(line)
    return "\n".join(lines)
