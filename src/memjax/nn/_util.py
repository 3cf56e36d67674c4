"""Helpers of :mod:`memjax.nn`: batching single-example ops, loading op parameter dicts into ``nnx.Param``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def over_batch(fn: Callable, example_ndims: Sequence[int], *args: jax.Array) -> Any:
    """``fn(*args)`` for ``fn`` written for one example, vmapped over the arguments' leading batch axes.

    Args:
        fn: a function of single examples (parameters closed over, not passed).
        example_ndims: for each argument, its number of axes in ONE example; the axes before them are
            batch axes, which must be the same for every argument (no broadcasting).
        *args: the arrays.

    Returns:
        ``fn``'s outputs with the batch axes leading.
    """
    lead = args[0].ndim - example_ndims[0]
    if lead < 0:
        raise ValueError(f"expected at least {example_ndims[0]} axes, got shape {args[0].shape}")
    batch = args[0].shape[:lead]
    for a, n in zip(args, example_ndims):
        if a.ndim != n + lead or a.shape[:lead] != batch:
            raise ValueError(f"batch axes disagree: shape {a.shape} for {n} example axes after batch {batch}")
    for _ in range(lead):
        fn = jax.vmap(fn)
    return fn(*args)


def values(module: nnx.Module, names: Sequence[str]) -> dict[str, jax.Array]:
    """``{name: module.name[...]}`` for the named ``nnx.Param`` attributes: an op's parameter dict."""
    return {name: getattr(module, name)[...] for name in names}


def load(module: nnx.Module, params: dict, names: Sequence[str]) -> None:
    """Sets the named ``nnx.Param`` attributes of ``module`` to ``params``'s arrays (same shapes)."""
    for name in names:
        var, value = getattr(module, name), jnp.asarray(params[name])
        if var[...].shape != value.shape:
            raise ValueError(f"{type(module).__name__}.{name}: expected shape {var[...].shape}, got {value.shape}")
        var.set_value(value)


def symmetric_uniform(limit: float) -> Callable:
    """An initializer drawing from U(-limit, limit)."""
    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)
    return init
