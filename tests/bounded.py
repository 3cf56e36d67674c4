"""The fuzz suites' memory bound: whatever its input, the code under test allocates at most BOUND_MIB at
once (Python objects and NumPy arrays, as tracemalloc sees them), so that no input (a huge number in the
data, a deeply nested record, a long line) makes a parser, ask's reader or the server hold memory
beyond it. Measured per call, apart from Hypothesis's own bookkeeping, which grows with the examples."""

import contextlib
import tracemalloc

BOUND_MIB = 64


@contextlib.contextmanager
def bounded(mib: int = BOUND_MIB):
    """Runs the block with tracemalloc on; fails when its peak allocation passed ``mib`` MiB."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= mib * 2**20, f"the call allocated {peak / 2**20:.0f} MiB at its peak (bound {mib} MiB)"
