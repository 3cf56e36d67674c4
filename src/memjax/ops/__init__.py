"""Pure single-example operations; batch them with ``jax.vmap``."""

from memjax.ops.addressing import address, hop, masked_softmax, read, softmax_with_empty, streaming_read
from memjax.ops.entity import entity_read, entity_scan, masked_encoding, slot_update
from memjax.ops.encoding import bags_of_words, encode_sentence, position_factors, position_weights, temporal_encoding
from memjax.ops.qrn import (linear_recurrence, linear_recurrence_loop, qrn_gates, qrn_init, qrn_layer, qrn_stack,
                            without_reset)
from memjax.ops.recurrent import (answer_init, answer_logits, attention_gru_cell, attention_gru_init, attention_gru_scan, bigru,
                                  episode, fact_attention, gate_features, gate_blocks, gate_init, gate_question_part, gate_scores, gate_scores_given, gru_cell, gru_init,
                                  gru_memory_update, gru_scan, memory_update, memory_update_init)

__all__ = ["address", "hop", "masked_softmax", "read", "softmax_with_empty", "streaming_read", "bags_of_words", "encode_sentence", "position_factors", "position_weights",
           "temporal_encoding",
           "answer_init", "answer_logits", "attention_gru_cell", "attention_gru_init", "attention_gru_scan", "bigru", "episode",
           "fact_attention", "gate_features", "gate_init", "gate_blocks", "gate_question_part", "gate_scores", "gate_scores_given", "gru_cell", "gru_init", "gru_memory_update", "gru_scan",
           "memory_update", "memory_update_init",
           "linear_recurrence", "linear_recurrence_loop", "qrn_gates", "qrn_init", "qrn_layer", "qrn_stack",
           "without_reset",
           "entity_read", "entity_scan", "masked_encoding", "slot_update"]
