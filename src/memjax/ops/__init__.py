"""Pure single-example operations; batch them with ``jax.vmap``."""

from memjax.ops.addressing import address, hop, masked_softmax, read, softmax_with_empty, streaming_read
from memjax.ops.encoding import bags_of_words, encode_sentence, position_factors, position_weights, temporal_encoding

__all__ = ["address", "hop", "masked_softmax", "read", "softmax_with_empty", "streaming_read", "bags_of_words", "encode_sentence", "position_factors", "position_weights",
           "temporal_encoding"]
