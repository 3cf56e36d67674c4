"""Hashing the memory for very large memories (Weston et al. 2014, section 3.3), on the host.

Instead of scoring every memory, the O module scores only the *candidates* that fall in the same
bucket as the input:

- :class:`WordHash`: one bucket per word; a memory goes into the bucket of each of its words, and
  the candidates of an input are the memories sharing at least one word with it.
- :class:`ClusterHash`: the words are clustered (k-means) by their embeddings in the O module;
  a memory goes into the bucket of each of its words' clusters, and the candidates of an input are
  the memories sharing a cluster with one of its words: words of similar meaning (two names) can
  still meet, at the price of bigger buckets.

Words (or clusters) whose buckets hold more than ``max_share`` of all memories ("the", "to",
"went") carry no information about which memory is meant and would make every memory a candidate;
they are not hashed (``max_share=1`` keeps them all). The buckets are built once, when the
memories are written (the G module), as a compressed inverted index: a lookup costs the size of
the buckets it returns, never the size of the memory.
"""

from __future__ import annotations

import numpy as np


class _Buckets:
    """An inverted index: bucket -> the sorted memory indices in it (CSR layout)."""

    def __init__(self, keys: np.ndarray, n_buckets: int, n_memories: int, max_share: float):
        """``keys`` (N, P): each memory's bucket ids (-1 for none; repeats allowed)."""
        rows = np.repeat(np.arange(keys.shape[0]), keys.shape[1])
        cols = keys.ravel()
        ok = cols >= 0
        pairs = np.unique(np.stack([cols[ok], rows[ok]], axis=1), axis=0)  # (bucket, memory), sorted
        self.members = pairs[:, 1].astype(np.int64)
        counts = np.bincount(pairs[:, 0], minlength=n_buckets)
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.skipped = counts > max_share * max(n_memories, 1)  # too common to tell memories apart
        self.usable = (counts > 0) & ~self.skipped

    def lookup(self, buckets) -> np.ndarray:
        """The sorted, distinct memories in the given buckets (skipped buckets left out)."""
        buckets = np.unique(np.asarray(buckets, np.int64))
        buckets = buckets[(buckets >= 0) & (buckets < len(self.usable))]
        buckets = buckets[self.usable[buckets]]
        parts = [self.members[self.starts[b]:self.starts[b + 1]] for b in buckets]
        if not parts:
            return np.zeros((0,), np.int64)
        if len(parts) == 1:  # one bucket: already sorted and distinct
            return parts[0]
        return np.unique(np.concatenate(parts))


class WordHash:
    """Buckets by word.

    Args:
        words: (N, L) word ids of the memories (0 = padding; ids >= ``vocab_size``, e.g. n-gram
            features, are ignored).
        vocab_size: the number of word ids.
        max_share: words in more than this share of the memories are not hashed.
        ignore: word ids never hashed (default: padding 0 and the unknown word 1).
    """

    def __init__(self, words: np.ndarray, vocab_size: int, max_share: float = 0.1, ignore=(0, 1)):
        words = np.asarray(words)
        keys = np.where((words < vocab_size) & ~np.isin(words, ignore), words, -1)
        self.index = _Buckets(keys, vocab_size, words.shape[0], max_share)

    def candidates(self, query_words) -> np.ndarray:
        """The memories sharing at least one (hashed) word with the input."""
        return self.index.lookup(np.asarray(query_words).ravel())


def kmeans(x: np.ndarray, k: int, iterations: int = 50, seed: int = 0) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding: the cluster of each row of ``x`` (n,)."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    k = min(k, n)
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        centres.append(x[rng.choice(n, p=d2 / total)] if total > 0 else x[rng.integers(n)])
    centres = np.array(centres)
    labels = np.zeros(n, np.int64)
    for it in range(iterations):
        new = np.argmin(((x[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        if it and np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            if np.any(labels == c):
                centres[c] = x[labels == c].mean(0)
    return labels


class ClusterHash:
    """Buckets by clusters of word embeddings.

    Args:
        words: (N, L) word ids of the memories (as :class:`WordHash`).
        vectors: (V, d) word embeddings (MemNN: the O module's memory table ``params["O"]["y"]``,
            its first ``vocab_size`` rows).
        clusters: k of k-means.
        max_share: clusters holding more than this share of the memories are not hashed.
        ignore: word ids never hashed.
    """

    def __init__(self, words: np.ndarray, vectors: np.ndarray, clusters: int, max_share: float = 0.1,
                 ignore=(0, 1), seed: int = 0):
        words = np.asarray(words)
        vectors = np.asarray(vectors)
        self.vocab_size = vectors.shape[0]
        keep = np.setdiff1d(np.arange(self.vocab_size), ignore)
        self.cluster = np.full(self.vocab_size, -1, np.int64)
        self.cluster[keep] = kmeans(vectors[keep], clusters, seed=seed)
        ok = words < self.vocab_size
        keys = np.where(ok, self.cluster[np.where(ok, words, 0)], -1)
        self.index = _Buckets(keys, clusters, words.shape[0], max_share)

    def candidates(self, query_words) -> np.ndarray:
        q = np.asarray(query_words).ravel()
        q = q[(q >= 0) & (q < self.vocab_size)]
        return self.index.lookup(self.cluster[q][self.cluster[q] >= 0])
