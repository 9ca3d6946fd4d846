"""Python imports this at start-up when the directory is on PYTHONPATH. bench/run.py puts it there for a worker
process measured with the experimental backends `lean` and `null` (named in BENCH_TRANSPORT): the real worker,
with the transport it builds swapped for
- `lean`: the probe of bench/lean_http.py (what a lean HTTP client would gain end to end; no TLS, no timeouts);
- `null`: an instant canned 200 without I/O (bench/http_backends.NullTransport), so the worker's CPU per event is
  its own work alone: consume, decode, validate, route, tasks, metrics, offsets, commits.
"""

import os

import worker.app
from bench.http_backends import NullTransport
from bench.lean_http import LeanTransport
from worker.mics.transport import Timeouts, Transport

_CHOICE = os.environ.get("BENCH_TRANSPORT", "")


def _swapped_transport(backend: str, timeouts: Timeouts, max_connections: int) -> Transport:
    del backend, timeouts  # neither experiment has a choice of library or deadlines
    if _CHOICE == "null":
        return NullTransport()
    return LeanTransport(max_connections)


if _CHOICE in ("lean", "null"):
    vars(worker.app)["make_transport"] = _swapped_transport  # the name worker.app calls when it builds the client
