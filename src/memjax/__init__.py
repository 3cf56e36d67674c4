"""memjax: memory networks for question answering in JAX.

On import, unless ``XLA_FLAGS`` already sets it, the CPU is split into one JAX device per core
(``--xla_force_host_platform_device_count``; set ``MEMJAX_CPU_DEVICES`` to choose the number, 1 to
keep one device). Independent training runs are then spread over the cores, which is faster for
the small per-step work of memory networks than one device with intra-op threads. It only takes
effect if JAX's backends are not yet initialised, and does not affect GPU or TPU devices.

Also unless ``XLA_FLAGS`` sets it, XLA's CPU backend is told not to hand fusions to YNNPACK
(``--xla_cpu_experimental_ynn_fusion_type=``): for the small recurrent steps of DMN+ its fusions
cost more than they save (measured: one DMN+ training step, batch 100, 13.2 ms with them, 11.5 ms
without; MemN2N unchanged). ``MEMJAX_YNN=on`` keeps XLA's default.

:func:`enable_compilation_cache` keeps compiled programs on disk between processes (the command
line turns it on): a repeated command skips most of XLA's compilation.
"""

import os as _os

__version__ = "0.4.0"

# the model families, as ``memjax train --model`` names them (``memjax.models.FAMILIES`` has their classes;
# named here so that the command line can list them without importing JAX)
MODEL_NAMES = ("memn2n", "dmn", "dmn+", "memnn", "lstm", "attn-lstm")


def _split_cpu_into_devices() -> None:
    flag = "--xla_force_host_platform_device_count"
    flags = _os.environ.get("XLA_FLAGS", "")
    if flag in flags:
        return
    wanted = _os.environ.get("MEMJAX_CPU_DEVICES")
    try:
        n = int(wanted) if wanted else len(_os.sched_getaffinity(0))
    except (AttributeError, ValueError):
        n = _os.cpu_count() or 1
    if n > 1:
        _os.environ["XLA_FLAGS"] = f"{flags} {flag}={min(n, 64)}".strip()


def _no_ynn_fusions() -> None:
    flag = "--xla_cpu_experimental_ynn_fusion_type"
    flags = _os.environ.get("XLA_FLAGS", "")
    if flag in flags or _os.environ.get("MEMJAX_YNN", "").lower() in ("on", "1", "true"):
        return
    _os.environ["XLA_FLAGS"] = f"{flags} {flag}=".strip()


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turns on JAX's persistent compilation cache; returns its folder, or None when turned off.

    The folder is ``path``, else ``$MEMJAX_CACHE``, else ``$XDG_CACHE_HOME/memjax/xla`` (by default
    ``~/.cache/memjax/xla``). ``MEMJAX_CACHE=off`` turns it off. A cached program is the one XLA
    would compile (same computation, flags and devices), so results do not change.
    """
    path = path or _os.environ.get("MEMJAX_CACHE")
    if path is None:
        base = _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache")
        path = _os.path.join(base, "memjax", "xla")
    if path.lower() in ("off", "0", "none", "false", ""):
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


_split_cpu_into_devices()
_no_ynn_fusions()
