"""The training recipe the engine runs: a frozen config whose defaults are the MemN2N per-task recipe."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters; defaults are the MemN2N per-task bAbI recipe.

    ``epochs`` counts the main schedule; with linear start, ``ls_epochs`` more epochs come first.
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.01
    decay_every: int = 25
    decay: float = 0.5
    max_grad_norm: float = 40.0
    linear_start: bool = True
    ls_epochs: int = 20
    ls_lr: float = 0.005
    random_noise: bool = True
    noise: float = 0.1
    loss: str = "sum"  # "sum" over the batch, as the authors' code; or "mean"
    optimizer: str = "sgd"  # "sgd": the MemN2N recipe above; "adam" or "rmsprop": at ``lr``, no schedule
    weight_decay: float = 0.0  # L2: adds weight_decay * sum(w^2) / 2 over the model's decay_mask weights
    dropout: float = 0.0  # dropout rate where the model applies it (DMN+: facts and final memory)
    patience: int | None = None  # early stopping: a run stops after this many epochs without a lower
    # validation error; it keeps the parameters of its best epoch (lowest validation error, then loss)
    buckets: int = 0  # length buckets (models with ``length_buckets``, one dataset per family): 0 = off;
    # K > 0: every training batch holds stories of at most one of K story lengths and is computed at that
    # length instead of the whole memory's (see :func:`length_plan`)

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam", "rmsprop"):
            raise ValueError(f"optimizer must be 'sgd', 'adam' or 'rmsprop', got {self.optimizer!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")
        if self.buckets < 0:
            raise ValueError(f"buckets must be at least 0, got {self.buckets}")

    @property
    def total_epochs(self) -> int:
        return self.epochs + (self.ls_epochs if self.linear_start else 0)
