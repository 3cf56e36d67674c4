"""Several processes (and hosts) training together through ``jax.distributed``.

Every process runs the same command with its own process id; JAX's coordinator (process 0's
address) connects them, and the devices of all processes form one mesh: each training step's
batch is split over all of them and the gradients are summed across processes (on CPUs through
JAX's gloo collectives). See the README's "Several processes" section for commands.
"""

from __future__ import annotations

import os

ENV = {"coordinator": "MEMJAX_COORDINATOR", "num_processes": "MEMJAX_NUM_PROCESSES", "process_id": "MEMJAX_PROCESS_ID"}


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Joins the processes of one training; returns False when there is only this one.

    Arguments not given come from ``$MEMJAX_COORDINATOR`` (``host:port`` of process 0),
    ``$MEMJAX_NUM_PROCESSES`` and ``$MEMJAX_PROCESS_ID``. With none of them set, nothing happens.
    Must run before JAX computes anything.
    """
    coordinator = coordinator or os.environ.get(ENV["coordinator"])
    num_processes = num_processes or _int_env(ENV["num_processes"])
    process_id = process_id if process_id is not None else _int_env(ENV["process_id"])
    if coordinator is None and num_processes is None and process_id is None:
        return False
    if coordinator is None or num_processes is None or process_id is None:
        raise ValueError("several processes need a coordinator address, the number of processes and this "
                         "process's id (--coordinator, --num-processes, --process-id or $MEMJAX_COORDINATOR, "
                         "$MEMJAX_NUM_PROCESSES, $MEMJAX_PROCESS_ID)")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process id {process_id} is not in 0..{num_processes - 1}")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    return True


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${name} must be a whole number, got {value!r}") from None
