"""Process-wide settings that memjax's command line applies at start-up and a library user may opt into.

Importing memjax changes nothing global: no environment variable, no JAX setting. The command line
calls :func:`configure_xla` before JAX starts its backends, and :func:`enable_compilation_cache`;
a program of your own that wants the same behaviour calls them itself::

    import memjax
    memjax.configure_xla()            # before the first JAX computation
    memjax.enable_compilation_cache()
"""

from __future__ import annotations

import os
import sys

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def stdout_to_devnull() -> None:
    """Points stdout (file descriptor 1) at /dev/null: its reader has gone (``memjax ... | head -1``), so
    what is still buffered for it, or written later, is dropped instead of failing again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _backends_started() -> bool:
    """Whether JAX has already started its backends (then XLA_FLAGS is read and changing it does nothing)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - JAX moved its internals: assume not started
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started is not None else False


def xla_flags(flags: str = "", cpu_devices: int | None = None, ynn_fusions: bool | None = None) -> str:
    """``flags`` (an ``XLA_FLAGS`` value) with memjax's CPU settings added where ``flags`` does not set them.

    Args:
        flags: the flags given (they win over memjax's).
        cpu_devices: JAX devices to split the host CPU into. Default: ``$MEMJAX_CPU_DEVICES``, else the
            cores this process may run on (at most 64). 1 leaves a single device.
        ynn_fusions: let XLA's CPU backend hand fusions to YNNPACK. Default: off unless
            ``MEMJAX_YNN=on``; for the small recurrent steps of DMN+ its fusions cost more than they
            save (the docs' speed page).
    """
    if cpu_devices is None:
        wanted = os.environ.get("MEMJAX_CPU_DEVICES")
        try:
            cpu_devices = int(wanted) if wanted else len(os.sched_getaffinity(0))
        except (AttributeError, ValueError):
            cpu_devices = os.cpu_count() or 1
    if ynn_fusions is None:
        ynn_fusions = os.environ.get("MEMJAX_YNN", "").strip().lower() in ("on", "1", "true")
    out = flags.strip()
    if DEVICE_COUNT_FLAG not in out and cpu_devices > 1:
        out = f"{out} {DEVICE_COUNT_FLAG}={min(cpu_devices, 64)}".strip()
    if YNN_FLAG not in out and not ynn_fusions:
        out = f"{out} {YNN_FLAG}=".strip()
    return out


def configure_xla(cpu_devices: int | None = None, ynn_fusions: bool | None = None) -> bool:
    """Sets ``XLA_FLAGS`` for memjax's training on a CPU; returns False (and changes nothing) when JAX's
    backends have already started, since XLA reads the flags only then.

    One JAX device per core (``--xla_force_host_platform_device_count``): independent runs are spread
    over the cores, faster for the small steps of memory networks than one device with intra-op
    threads. YNNPACK fusions off. Flags already in ``XLA_FLAGS`` are kept (see :func:`xla_flags`).
    GPU and TPU devices are not affected. The command line calls this at start-up.
    """
    if _backends_started():
        return False
    flags = xla_flags(os.environ.get("XLA_FLAGS", ""), cpu_devices, ynn_fusions)
    if flags:
        os.environ["XLA_FLAGS"] = flags
    return True


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turns on JAX's persistent compilation cache; returns its folder, or None when turned off.

    The folder is ``path``, else ``$MEMJAX_CACHE``, else ``$XDG_CACHE_HOME/memjax/xla`` (by default
    ``~/.cache/memjax/xla``). ``MEMJAX_CACHE=off`` turns it off. A cached program is the one XLA
    would compile (same computation, flags and devices), so results do not change.
    """
    path = path or os.environ.get("MEMJAX_CACHE")
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "memjax", "xla")
    if path.lower() in ("off", "0", "none", "false", ""):
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
