"""Pretrained word vectors in the GloVe text format: one word per line, then its values.

    the 0.418 0.24968 -0.41242 ...

DMN's "semantic memory" (Kumar et al. 2016) initialises the word embeddings from GloVe. Only the
words of the model's vocabulary are kept while reading, so a large file costs one pass and little
memory. Words are matched as they are (bAbI and GloVe are both lower case).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from memjax.data.babi import DataError


def glove_dimension(path: str | Path) -> int:
    """The number of values per word in a GloVe file (read from its first line)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\n").split(" ")
    except OSError as e:
        raise DataError(f"{path}: cannot read the GloVe file ({e.strerror or e})") from None
    if len(first) < 2:
        raise DataError(f"{path}:1: expected a word and its values")
    return len(first) - 1


def load_glove(path: str | Path, words: Sequence[str], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectors for ``words`` from a GloVe file.

    Args:
        path: the GloVe text file.
        words: the vocabulary, in id order (id 0 is padding and never looked up).
        dim: the expected number of values per word (the model's embedding size).

    Returns:
        (rows (V, dim) float32, zero where not covered; covered (V,) bool).

    Raises:
        DataError: the file is unreadable, a line is malformed, or its vectors are not ``dim`` long.
    """
    path = Path(path)
    index = {w: i for i, w in enumerate(words) if i > 0}
    rows = np.zeros((len(words), dim), np.float32)
    covered = np.zeros((len(words),), bool)
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if len(parts) != dim + 1:
                    if n == 1:
                        raise DataError(f"{path}: its vectors have {len(parts) - 1} values but the model's embeddings "
                                        f"have {dim} (use --dim {len(parts) - 1})")
                    raise DataError(f"{path}:{n}: expected a word and {dim} values, found {len(parts) - 1} values")
                i = index.get(parts[0])
                if i is None:
                    continue
                try:
                    rows[i] = np.asarray(parts[1:], np.float32)
                except ValueError:
                    raise DataError(f"{path}:{n}: the values of {parts[0]!r} are not all numbers") from None
                covered[i] = True
    except OSError as e:
        raise DataError(f"{path}: cannot read the GloVe file ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    return rows, covered
