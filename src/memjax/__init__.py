"""memjax: memory networks for question answering in JAX.

Importing memjax (or any of its modules) changes no environment variable and no JAX setting. The
command line configures the process at start-up; a program of your own can do the same with
:func:`configure_xla` (one JAX device per CPU core, before the first JAX computation) and
:func:`enable_compilation_cache` (see :mod:`memjax.runtime`).

The public API is importable from here; JAX is imported only when one of its names is first used::

    import memjax
    ds = memjax.load_babi(...)
    trainer = memjax.Trainer(model, memjax.MemN2NRecipe(), ds)   # MemN2N's per-task recipe
"""

from __future__ import annotations

import importlib

from memjax.runtime import configure_xla, enable_compilation_cache, xla_flags

__version__ = "0.4.0"

# the model families, as ``memjax train --model`` names them (``memjax.models.FAMILIES`` has their classes;
# named here so that the command line can list them without importing JAX)
MODEL_NAMES = ("memn2n", "dmn", "dmn+", "memnn", "lstm", "attn-lstm", "qrn", "entnet", "memn2n-dialog",
               "embeddings-dialog")

# name -> module that defines it, imported on first use (PEP 562), so that ``import memjax`` stays light
_LAZY = {
    "Dataset": "memjax.data", "Split": "memjax.data", "Vocab": "memjax.data", "DataError": "memjax.data",
    "load_babi": "memjax.data", "parse_file": "memjax.data", "vectorize": "memjax.data",
    "FAMILIES": "memjax.models", "model_for": "memjax.models",
    "MemN2N": "memjax.models", "MemN2NConfig": "memjax.models", "MemN2NRecipe": "memjax.models", "DMN": "memjax.models", "DMNConfig": "memjax.models",
    "DMNPlus": "memjax.models", "DMNPlusConfig": "memjax.models", "MemNN": "memjax.models",
    "MemNNConfig": "memjax.models", "LSTMReader": "memjax.models", "LSTMConfig": "memjax.models",
    "AttnLSTM": "memjax.models", "AttnLSTMConfig": "memjax.models",
    "Trainer": "memjax.train.engine", "TrainConfig": "memjax.train.engine", "Fit": "memjax.train.engine",
    "recipe_for": "memjax.train.recipes",
    "run_babi": "memjax.train.protocol",
    "Answerer": "memjax.infer", "Answer": "memjax.infer", "Limits": "memjax.infer",
}
_SUBMODULES = ("data", "models", "nn", "ops", "train", "infer", "paper", "runtime")

__all__ = ["__version__", "MODEL_NAMES", "configure_xla", "enable_compilation_cache", "xla_flags",
           *sorted(_LAZY), *_SUBMODULES]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"memjax.{name}")
    raise AttributeError(f"module 'memjax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
