"""Python imports this at start-up when the directory is on PYTHONPATH: bench/run.py sets it for one worker process
when `--backends` includes `lean`. It swaps the worker's HTTP transport for the probe of bench/lean_http.py, so the
real worker shows end to end what a lean client would gain. An experiment only: the probe has no TLS or timeouts.
"""

import worker.app
from bench.lean_http import LeanTransport
from worker.mics.transport import Timeouts, Transport


def _lean_transport(backend: str, timeouts: Timeouts, max_connections: int) -> Transport:
    del backend, timeouts  # the probe has neither choice nor deadlines
    return LeanTransport(max_connections)


vars(worker.app)["make_transport"] = _lean_transport  # the name worker.app calls when it builds the client
