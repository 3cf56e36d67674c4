"""NumPy references shared by the tests, written from the papers' formulas."""

import numpy as np


def np_position_weights(n_words: int, L: int, d: int, formula: str, J: int | None = None) -> np.ndarray:
    """l_kj for the first ``n_words`` of L positions (zero after), with J = ``J`` or ``n_words``."""
    J = J or n_words
    out = np.zeros((L, d))
    for j in range(1, n_words + 1):
        for k in range(1, d + 1):
            if formula == "paper":
                out[j - 1, k - 1] = (1 - j / J) - (k / d) * (1 - 2 * j / J)
            else:
                out[j - 1, k - 1] = 1 + 4 * (k - (d + 1) / 2) * (j - (J + 1) / 2) / (d * J)
    return out
