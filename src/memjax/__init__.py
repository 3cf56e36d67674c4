"""memjax: memory networks for question answering in JAX.

On import, unless ``XLA_FLAGS`` already sets it, the CPU is split into one JAX device per core
(``--xla_force_host_platform_device_count``; set ``MEMJAX_CPU_DEVICES`` to choose the number, 1 to
keep one device). Independent training runs are then spread over the cores, which is faster for
the small per-step work of memory networks than one device with intra-op threads. It only takes
effect if JAX's backends are not yet initialised, and does not affect GPU or TPU devices.
"""

import os as _os

__version__ = "0.2.0"


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


_split_cpu_into_devices()
