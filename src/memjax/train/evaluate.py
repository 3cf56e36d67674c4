"""A run's answers and error on a whole split, on the device (inside the training program and after it)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.models.base import Phase


def answers(model, config, params, data, split, chunk: int = 512, linear=False, with_loss=False):
    """Predicted answer ids of every (padded) row of ``split``, ``chunk`` examples at a time; with
    ``with_loss``, also each row's loss (the model's loss in the recipe's phase, ``linear`` in warm-up)."""
    inputs = {"story": split["story"], "query": split["query"]}
    if with_loss:
        inputs.update({k: split[k] for k in ("answer", "supporting") if k in split})
    n = inputs["story"].shape[0]
    chunk = max(1, min(chunk, n))
    padded = -(-n // chunk) * chunk
    chunks = jax.tree.map(lambda a: jnp.pad(a, [(0, padded - n)] + [(0, 0)] * (a.ndim - 1)).reshape(
        (padded // chunk, chunk) + a.shape[1:]), inputs)

    def answer(batch):
        if with_loss:
            loss, predicted = model.loss(params, data, batch, Phase(linear=linear, config=config))
            return predicted, loss
        return model.predict(params, data, batch).answer

    out = jax.lax.map(answer, chunks)
    return jax.tree.map(lambda a: a.reshape(-1)[:n], out)


def error(model, config, params, data, split, linear=False, with_loss=False):
    """Error in percent on ``split`` (its first ``n`` rows); with ``with_loss``, (error, mean loss)."""
    valid = jnp.arange(split["answer"].shape[0]) < split["n"]
    n = jnp.maximum(split["n"], 1)
    out = answers(model, config, params, data, split, linear=linear, with_loss=with_loss)
    predicted, losses = out if with_loss else (out, None)
    wrong = 100.0 * jnp.sum((predicted != split["answer"]) & valid) / n
    return (wrong, jnp.sum(jnp.where(valid, losses, 0.0)) / n) if with_loss else wrong
