"""A plain PyTorch DMN+, written here as the baseline of the throughput benchmark.

The same architecture and recipe as ``memjax.models.DMNPlus`` (position-encoded sentence reader,
bidirectional-GRU fusion summed, question GRU, attention gates on [f*q, f*m, |f-q|, |f-m|], an
attention GRU per pass, untied ReLU memory updates, answer from [m; q], dropout on facts and the
final memory, Adam with L2), written the way PyTorch ports of DMN+ usually are: ``nn.GRU`` for
the fusion and question modules and a Python loop over the facts for the attention GRU. It trains
on the same padded arrays as memjax and is used only to time training steps side by side
(``benchmarks/throughput.py --dmn``); it needs ``pip install torch``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


class AttentionGRUCell(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.W = nn.Linear(d, 2 * d)
        self.U = nn.Linear(d, 2 * d, bias=False)

    def forward(self, x, h, g):
        d = h.shape[1]
        wx, uh = self.W(x), self.U(h)
        r = torch.sigmoid(wx[:, :d] + uh[:, :d])
        cand = torch.tanh(wx[:, d:] + r * uh[:, d:])
        return g[:, None] * cand + (1 - g[:, None]) * h


class TorchDMNPlus(nn.Module):
    def __init__(self, vocab: int, d: int = 80, hops: int = 3, dropout: float = 0.1):
        super().__init__()
        self.d, self.hops, self.dropout = d, hops, dropout
        self.embed = nn.Embedding(vocab, d, padding_idx=0)
        self.fusion = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.question = nn.GRU(d, d, batch_first=True)
        self.gate1 = nn.Linear(4 * d, d)
        self.gate2 = nn.Linear(d, 1)
        self.attention = AttentionGRUCell(d)
        self.memory = nn.ModuleList([nn.Linear(3 * d, d) for _ in range(hops)])
        self.answer = nn.Linear(2 * d, vocab)

    def forward(self, words, mask, query, pe):
        """words (B, M, L) in story order, mask (B, M), query (B, Q), pe (B, M, L, d) weights."""
        b, m, _ = words.shape
        x = (self.embed(words) * pe).sum(2)  # (B, M, d)
        out, _ = self.fusion(x)
        facts = (out[..., : self.d] + out[..., self.d:]) * mask[..., None]
        facts = nn.functional.dropout(facts, self.dropout, self.training)
        qlen = (query != 0).sum(1)
        qs, _ = self.question(self.embed(query))
        q = qs[torch.arange(b), (qlen - 1).clamp(min=0)]
        mem = q
        for t in range(self.hops):
            z = torch.cat([facts * q[:, None], facts * mem[:, None], (facts - q[:, None]).abs(),
                           (facts - mem[:, None]).abs()], dim=2)
            scores = self.gate2(torch.tanh(self.gate1(z)))[..., 0].masked_fill(~mask, -1e30)
            gates = torch.softmax(scores, dim=1) * mask
            h = torch.zeros_like(q)
            for i in range(m):
                h = self.attention(facts[:, i], h, gates[:, i])
            mem = torch.relu(self.memory[t](torch.cat([mem, h, q], dim=1)))
        mem = nn.functional.dropout(mem, self.dropout, self.training)
        return self.answer(torch.cat([mem, q], dim=1))


def _pe_weights(words: np.ndarray, d: int) -> np.ndarray:
    """Position-encoding weights l_kj = (1 - j/J) - (k/d)(1 - 2j/J) per word (0 at padding)."""
    lengths = np.maximum((words != 0).sum(-1, keepdims=True), 1)
    j = np.arange(1, words.shape[-1] + 1)
    k = np.arange(1, d + 1)
    ratio = (j / lengths)[..., None]
    return ((1 - ratio) - (k / d) * (1 - 2 * ratio)) * (words != 0)[..., None]


def train_throughput(sentences: np.ndarray, story: np.ndarray, query: np.ndarray, answer: np.ndarray,
                     vocab: int, batch: int = 100, steps: int = 30, d: int = 80, threads: int | None = None) -> dict:
    """Training examples/s of the PyTorch DMN+ over ``steps`` minibatches (after 3 warm-up steps).

    Args:
        sentences: (U, L) word ids; story: (N, M) rows of sentences, slot 0 the most recent.
        query: (N, Q); answer: (N,).
    """
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TorchDMNPlus(vocab, d)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    words_all = sentences[story[:, ::-1]]  # story order
    mask_all = story[:, ::-1] != 0
    pe_all = _pe_weights(words_all, d).astype(np.float32)
    rng = np.random.default_rng(0)
    model.train()
    times = []
    for step in range(steps + 3):
        idx = rng.choice(len(answer), batch, replace=False)
        t = time.perf_counter()
        logits = model(torch.from_numpy(words_all[idx].astype(np.int64)), torch.from_numpy(mask_all[idx]),
                       torch.from_numpy(query[idx].astype(np.int64)), torch.from_numpy(pe_all[idx]))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(answer[idx].astype(np.int64)), reduction="sum")
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 3:
            times.append(time.perf_counter() - t)
    return {"train_ex_s": batch / float(np.median(times)), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "step_ms": 1000 * float(np.median(times))}


def main(argv=None) -> None:
    """``python torch_dmn_plus.py ARRAYS.npz STEPS``: prints the JSON of :func:`train_throughput`.

    The throughput benchmark runs this in a fresh process, so that JAX's threads in its own process
    do not compete with PyTorch's (measured: 30 examples/s in the same process, 1,200 alone).
    """
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    arrays = np.load(args[0])
    print(json.dumps(train_throughput(arrays["sentences"], arrays["story"], arrays["query"], arrays["answer"],
                                      int(arrays["vocab"]), steps=int(args[1]))))


if __name__ == "__main__":
    main()
