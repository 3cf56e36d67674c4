"""The published rows printed beside ours agree with the papers' own summary numbers."""

import numpy as np
import pytest

from memjax import paper
from memjax.train.protocol import FAIL_THRESHOLD


@pytest.mark.parametrize("key", sorted(paper.ROWS))
def test_published_rows_match_their_mean_and_failed_tasks(key):
    label, row, mean, failed = paper.ROWS[key]
    assert sorted(row) == list(range(1, 21)), label
    # the papers print the mean to one decimal: each per-task row must round to it
    assert abs(np.mean(list(row.values())) - mean) <= 0.05 + 1e-9, label
    assert sum(e > FAIL_THRESHOLD for e in row.values()) == failed, label


def test_reference_is_none_for_settings_without_a_published_row():
    assert paper.reference("lstm", "en", False)[0] == "LSTM (paper)"
    assert paper.reference("lstm", "en-10k", False) is None
    assert paper.reference("attn-lstm", "en", False) is None
