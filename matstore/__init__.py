"""matstore: materials discovery in one DuckDB file."""

import os

# torch's OpenMP threads (libgomp) spin while they wait for work by default; on a machine busy
# with other processes a spinning thread holds the core its partner needs: transformer sampling
# took 3.6x the wall time and 3.5x the CPU of waiting threads that sleep, with the same 2 threads
# (docs/benchmarks/hotpaths.md). libgomp reads this when torch loads, so it is set before any
# matstore module imports torch; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
