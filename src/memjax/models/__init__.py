"""Model families: ``init(key) -> params`` and pure ``apply``/``logits`` functions."""

from memjax.models.memn2n import MemN2N, MemN2NConfig

__all__ = ["MemN2N", "MemN2NConfig"]
