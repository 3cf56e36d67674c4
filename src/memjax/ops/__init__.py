"""Pure single-example operations; batch them with ``jax.vmap``."""

from memjax.ops.addressing import address, hop, masked_softmax, read
from memjax.ops.encoding import encode_sentence, position_weights, temporal_encoding

__all__ = ["address", "hop", "masked_softmax", "read", "encode_sentence", "position_weights",
           "temporal_encoding"]
