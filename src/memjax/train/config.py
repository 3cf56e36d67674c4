"""The training recipe the engine runs: a frozen, model-agnostic config.

A family's published recipes are named instances (:mod:`memjax.train.recipes`); a family whose recipe
has settings of its own subclasses :class:`TrainConfig` (MemN2N's linear start and random noise:
:class:`memjax.models.memn2n.MemN2NRecipe`) and reads them itself.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters of any family.

    ``epochs`` counts the main schedule; a recipe with a warm-up phase (:attr:`warmup_epochs`) trains
    that many epochs more before it.
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.01
    decay_every: int | None = None  # sgd, adagrad, adam: ``lr`` multiplied by ``decay`` every this many epochs (None: constant)
    decay: float = 0.5
    cycle_epochs: int | None = None  # adam: a triangular cyclic rate (Smith 2017) in place of decay_every's steps:
    # from lr_min up to lr over this many epochs and back down over as many, repeated (None: off)
    lr_min: float = 0.0002  # the cyclic rate's low point
    max_grad_norm: float | None = None  # sgd: each matrix's gradient clipped to this norm; adam, rmsprop:
    # the whole gradient's (None: no clipping)
    loss: str = "sum"  # "sum" over the batch, as the MemN2N authors' code; or "mean"
    optimizer: str = "sgd"  # "sgd" or "adagrad" (scheduled as above), "adam" (scheduled with decay_every) or "rmsprop" (at ``lr``)
    weight_decay: float = 0.0  # L2: adds weight_decay * sum(w^2) / 2 over the model's decay_mask weights
    dropout: float = 0.0  # dropout rate where the model applies it (DMN+: facts and final memory)
    patience: int | None = None  # early stopping: a run stops after this many epochs without a lower
    # validation error; it keeps the parameters of its best epoch (lowest validation error, then loss)
    buckets: int = 0  # length buckets (models with ``length_buckets``, one dataset per family): 0 = off;
    # K > 0: every training batch holds stories of at most one of K story lengths and is computed at that
    # length instead of the whole memory's (see :func:`memjax.train.buckets.length_plan`)

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adagrad", "adam", "rmsprop"):
            raise ValueError(f"optimizer must be 'sgd', 'adagrad', 'adam' or 'rmsprop', got {self.optimizer!r}")
        if self.loss not in ("sum", "mean"):
            raise ValueError(f"loss must be 'sum' or 'mean', got {self.loss!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}")
        if self.decay_every is not None and self.decay_every < 1:
            raise ValueError(f"decay_every must be at least 1 (or None: no decay), got {self.decay_every}")
        if self.cycle_epochs is not None:
            if self.cycle_epochs < 1:
                raise ValueError(f"cycle_epochs must be at least 1 (or None: no cycle), got {self.cycle_epochs}")
            if self.optimizer != "adam":
                raise ValueError(f"cycle_epochs is for adam, not {self.optimizer}")
            if self.decay_every is not None:
                raise ValueError("cycle_epochs replaces decay_every's steps: give one of them")
            if not 0.0 <= self.lr_min <= self.lr:
                raise ValueError(f"lr_min must be in [0, lr = {self.lr:g}], got {self.lr_min:g}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")
        if self.buckets < 0:
            raise ValueError(f"buckets must be at least 0, got {self.buckets}")

    @property
    def warmup_epochs(self) -> int:
        """Epochs before the main schedule in which the model trains in its warm-up phase
        (:attr:`memjax.models.base.Phase.linear`, at :attr:`warmup_lr`): none here."""
        return 0

    @property
    def warmup_lr(self) -> float | None:
        """The learning rate of the warm-up epochs (None: ``lr``)."""
        return None

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.warmup_epochs

    def record(self) -> dict:
        """The fields as ``results.json`` and checkpoints record them (``config.train``); with
        ``linear_start`` and ``random_noise`` false where the recipe has neither, as every
        ``results.json`` has recorded them."""
        return {"linear_start": False, "random_noise": False, **dataclasses.asdict(self)}
