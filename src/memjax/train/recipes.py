"""Each family's published training recipes, as named configs with the papers' settings.

``memjax train --model NAME`` starts from :func:`recipe_for` (the per-task recipe, or the joint one
with ``--joint``); the user's flags replace single fields. Where a recipe was set here rather than
taken from a paper, its comment says how (docs/reproduction.md has the details).
"""

from __future__ import annotations

import dataclasses

from memjax.models.memn2n import MemN2NRecipe
from memjax.train.config import TrainConfig

# MemN2N (Sukhbaatar et al. 2015) per task: 100 epochs after 20 of linear start, SGD 0.01 halved every
# 25 epochs, clipping at 40, random noise 0.1 (the class's defaults).
MEMN2N_PER_TASK = MemN2NRecipe()
# MemN2N joint (all 20 tasks, one model): 60 epochs after 30 of linear start, halved every 15; with d = 50.
MEMN2N_JOINT = MemN2NRecipe(epochs=60, decay_every=15, ls_epochs=30)
MEMN2N_JOINT_MODEL = {"dim": 50}

# DMN+ (Xiong et al. 2016) on bAbI-10k: Adam 0.001, batch 100, up to 256 epochs with early stopping
# (patience 20), dropout 0.1 (keep 0.9), L2 0.001; no clipping.
DMN_PLUS_10K = TrainConfig(epochs=256, batch_size=100, lr=0.001, optimizer="adam", weight_decay=0.001,
                           dropout=0.1, patience=20)
# DMN (Kumar et al. 2016) on bAbI-1k, strongly supervised: the DMN+ optimisation with batches of 32
# (1k tasks have 900 training questions).
DMN_1K = dataclasses.replace(DMN_PLUS_10K, batch_size=32)
# MemNN (Weston et al. 2014), strongly supervised, bAbI-1k: margin ranking losses with Adam (the paper
# used SGD); set once, not tuned.
MEMNN_1K = TrainConfig(epochs=60, batch_size=32, lr=0.005, optimizer="adam", patience=15)
# The LSTM baseline of the bAbI tables (weakly supervised), bAbI-1k: Adam 0.001, batch 32, mean loss,
# clipping at 5, up to 100 epochs with early stopping; chosen on validation.
LSTM_1K = TrainConfig(epochs=100, batch_size=32, lr=0.001, optimizer="adam", loss="mean", max_grad_norm=5.0,
                      patience=20)
# Keras's bAbI memory-network example (attention + LSTM): RMSprop 0.001, batch 32, 120 epochs, dropout 0.3;
# the epoch with the lowest validation error is kept (patience = every epoch).
ATTN_LSTM_1K = TrainConfig(epochs=120, batch_size=32, lr=0.001, optimizer="rmsprop", loss="mean", dropout=0.3,
                           patience=120)
# QRN (Seo et al. 2017) on bAbI-1k: the authors' code's (seominjoon/qrn, babi/main.py) batch 32, 150
# epochs, rate halved every 100 epochs, L2 0.001, mean loss over the batch, with Adam 0.005 instead of
# their AdaGrad 0.5 (``QRN_1K_AUTHORS``): chosen on the 20 tasks' validation errors (docs/models/qrn.md).
# The epoch with the lowest validation error is kept (the authors keep the trial of lowest dev loss).
QRN_1K = TrainConfig(epochs=150, batch_size=32, lr=0.005, optimizer="adam", decay_every=100, decay=0.5,
                     weight_decay=0.001, loss="mean", patience=150)
QRN_1K_AUTHORS = dataclasses.replace(QRN_1K, optimizer="adagrad", lr=0.5)

# QRN on bAbI-10k: the authors' README's (seominjoon/qrn) batch 128 and d = 200, with the 1k choice of Adam
# 0.005; 3 layers (their configs.json's 10k runs: 3 and 6) and no L2 (README: 0.0005), both chosen on 10k
# validation (tasks 16 and 17 stay near chance with 2 layers or with L2: docs/models/qrn.md); runs stop 50
# epochs after their best validation error (the authors' code: checks every 10 epochs, stops after 5 without).
# No one recipe serves every task on validation (two layers fail task 16, three fail 18): the 10k table trains
# this and two 2-layer recipes (L2 0.0005 and 0.0001, no early stop) and keeps per task the run of lowest
# validation error (experiments/qrn_babi.py --select).
QRN_10K = dataclasses.replace(QRN_1K, batch_size=128, weight_decay=0.0, patience=50)
QRN_10K_MODEL = {"dim": 200, "layers": 3}

# EntNet (Henaff et al. 2017) per task, bAbI-10k (docs/anchors.md): Adam 0.01 halved every 25 epochs,
# 200 epochs, gradient clipping at 40 (the whole gradient's norm); batch 32.
ENTNET_10K = TrainConfig(epochs=200, batch_size=32, lr=0.01, optimizer="adam", decay_every=25, max_grad_norm=40.0)

# MemN2N on dialog bAbI (Bordes et al. 2017): the paper trains with SGD and picks the rate, the embedding size
# and the hops on the dev set; here Adam 0.01, batch 32, mean loss, clipping at 40, 100 epochs keeping the epoch
# of lowest dev error, d = 32 (DialogConfig), set once and not tuned (docs/models/dialog.md gives the dev numbers).
DIALOG_MEMN2N = TrainConfig(epochs=100, batch_size=32, lr=0.01, optimizer="adam", loss="mean", max_grad_norm=40.0,
                            patience=100)

# --model name -> its per-task recipe
RECIPES: dict[str, TrainConfig] = {"memn2n": MEMN2N_PER_TASK, "dmn+": DMN_PLUS_10K, "dmn": DMN_1K,
                                   "memnn": MEMNN_1K, "lstm": LSTM_1K, "attn-lstm": ATTN_LSTM_1K,
                                   "qrn": QRN_1K, "entnet": ENTNET_10K, "memn2n-dialog": DIALOG_MEMN2N,
                                   "embeddings-dialog": DIALOG_MEMN2N}
# --model name -> (recipe, model settings) of joint training where the paper has one; else the per-task recipe
JOINT: dict[str, tuple[TrainConfig, dict]] = {"memn2n": (MEMN2N_JOINT, MEMN2N_JOINT_MODEL)}
# --model name -> (recipe, model settings) per task on the 10k sets where the paper has its own
LARGE: dict[str, tuple[TrainConfig, dict]] = {"qrn": (QRN_10K, QRN_10K_MODEL)}


def recipe_for(model: str, joint: bool = False, set_name: str = "en") -> tuple[TrainConfig, dict]:
    """(the training recipe, model settings it comes with) of ``--model model``, per task or joint,
    on the bAbI set ``set_name`` (the 10k sets, ``en-10k`` and ``hn-10k``, have recipes of their own
    for some families)."""
    if joint and model in JOINT:
        return JOINT[model]
    if not joint and set_name.endswith("-10k") and model in LARGE:
        return LARGE[model]
    return RECIPES[model], {}


def with_overrides(recipe: TrainConfig, model: str, overrides: dict) -> TrainConfig:
    """``recipe`` with the given fields replaced (None values are left out).

    Raises:
        ValueError: a field the recipe does not have (e.g. ``linear_start`` for a DMN), in one line.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(recipe)})
    if unknown:
        flags = {"linear_start": "--ls", "random_noise": "--rn"}
        names = ", ".join(f"{o} ({flags.get(o, '--' + o.replace('_', '-'))})" for o in unknown)
        raise ValueError(f"--model {model} has no training option {names}: its recipe has none")
    if given.get("cycle_epochs") and "decay_every" not in given:  # the cyclic rate replaces the recipe's steps
        given["decay_every"] = None
    if "lr_min" in given and not given.get("cycle_epochs", getattr(recipe, "cycle_epochs", None)):
        raise ValueError("lr_min (--lr-min) is the cyclic rate's low point: give cycle_epochs (--cycle-epochs) too")
    return dataclasses.replace(recipe, **given)


def from_record(model: str, record: dict) -> TrainConfig:
    """The recipe a ``results.json`` recorded (``config.train``), of this version or an older one.

    Before 0.4.1 every family's record held MemN2N's settings, switched off for the others
    (``linear_start`` false, ``decay_every`` 1,000,000): those mean the same as their absence now.
    """
    recipe = RECIPES.get(model, TrainConfig())
    fields = {f.name for f in dataclasses.fields(recipe)}
    kept = {k: v for k, v in record.items() if k in fields}
    if not isinstance(recipe, MemN2NRecipe) and kept.get("decay_every") == 1_000_000:
        kept["decay_every"] = None
    return dataclasses.replace(recipe, **kept)
