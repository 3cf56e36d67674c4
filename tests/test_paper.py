"""The published rows printed beside ours agree with the papers' own summary numbers."""

import numpy as np
import pytest

from memjax import paper
from memjax.train.protocol import FAIL_THRESHOLD


PARTIAL = {("qrn", "en", False), ("qrn", "en-10k", False)}  # per-task numbers published for some tasks only


@pytest.mark.parametrize("key", sorted(set(paper.ROWS) - PARTIAL))
def test_published_rows_match_their_mean_and_failed_tasks(key):
    label, row, mean, failed = paper.ROWS[key]
    assert sorted(row) == list(range(1, 21)), label
    # the papers print the mean to one decimal: each per-task row must round to it
    assert abs(np.mean(list(row.values())) - mean) <= 0.05 + 1e-9, label
    assert sum(e > FAIL_THRESHOLD for e in row.values()) == failed, label


@pytest.mark.parametrize("key", sorted(PARTIAL))
def test_partial_rows_hold_only_published_tasks(key):
    """QRN's rows: the authors' README gives some tasks and the mean; a row never fills in the others."""
    label, row, mean, failed = paper.ROWS[key]
    assert set(row) < set(range(1, 21)) and all(0.0 <= e <= 100.0 for e in row.values()), label
    assert (key[1], tuple(sorted(row)), mean) in {("en", (2, 3, 4, 5), 9.9), ("en-10k", (), 0.3)}, label
    assert failed in (None, 0)


def test_reference_is_none_for_settings_without_a_published_row():
    assert paper.reference("lstm", "en", False)[0] == "LSTM (paper)"
    assert paper.reference("lstm", "en-10k", False) is None
    assert paper.reference("attn-lstm", "en", False) is None
