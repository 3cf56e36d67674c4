"""Flax NNX modules over the pure single-example ops in :mod:`memjax.ops`, with no second copy of their math.

Each ``__call__`` calls its op with the module's ``nnx.Param`` values, vmapped over leading batch axes.

MemN2N (Sukhbaatar et al. 2015): :class:`PositionEncoding`, :class:`TemporalEncoding`,
:class:`MemoryHop`, :class:`MultiHopRead`. DMN+ (Xiong et al. 2016): :class:`GRU`,
:class:`AttentionGRU`, :class:`InputFusion`, :class:`AttentionGate`, :class:`MemoryUpdate`,
:class:`EpisodicMemory`, :class:`AnswerModule`. QRN (Seo et al. 2017): :class:`QRNLayer`, :class:`QRNStack`.
EntNet (Henaff et al. 2017): :class:`EntityMemory`.

Every module takes sizes and ``rngs: nnx.Rngs`` (a ``params`` stream), initialises as the memjax
models do (see each class), accepts any leading batch axes, and has ``params()`` (its parameters as
the dict the op takes, in the models' layout) and ``from_params(dict)`` (a module holding given
parameters). :class:`NNXModel` trains a module of yours through memjax's engine
(:mod:`memjax.nn.adapter`). Importing this package changes no environment variable and no JAX configuration.
"""

from memjax.nn.adapter import NNXConfig, NNXModel
from memjax.nn.entity import EntityMemory
from memjax.nn.memory import MemoryHop, MultiHopRead, PositionEncoding, TemporalEncoding
from memjax.nn.qrn import QRNLayer, QRNStack
from memjax.nn.recurrent import (GRU, AnswerModule, AttentionGate, AttentionGRU, EpisodicMemory, InputFusion,
                                 MemoryUpdate)

__all__ = ["PositionEncoding", "TemporalEncoding", "MemoryHop", "MultiHopRead", "GRU", "AttentionGRU", "InputFusion",
           "AttentionGate", "MemoryUpdate", "EpisodicMemory", "AnswerModule", "QRNLayer", "QRNStack", "EntityMemory",
           "NNXConfig", "NNXModel"]
