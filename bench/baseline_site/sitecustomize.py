"""Python imports this at start-up when the directory is on PYTHONPATH. bench/tracing.py puts it there to measure
the worker of another source tree (BENCH_WORKER_TREE, e.g. `git archive main` unpacked) with this checkout's
harness: the tree's `worker` package is imported first, so `python -m worker run` runs that code, not this one's.
"""

import os
import sys
from pathlib import Path

_TREE = os.environ.get("BENCH_WORKER_TREE", "")
if _TREE:
    sys.path.insert(0, _TREE)
    import worker

    if not Path(worker.__file__).resolve().is_relative_to(Path(_TREE).resolve()):
        raise ImportError(f"BENCH_WORKER_TREE={_TREE}: the worker package came from {worker.__file__}")
