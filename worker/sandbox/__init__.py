"""A faithful local stand-in for the mediarithmics Tracking API: real HTTP, the same schemas, fault injection.

Run it with `python -m worker.sandbox`. The Tracking API lives under `/v1` (api.py), the sandbox's own
control API under `/_sandbox` (admin.py). Modelling decisions where the real API is not documented:

- every distinct user point selector is its own user point (no identifier resolution);
- a profile PUT replaces the profile; `$creation_ts` / `$last_modified_ts` are set by the sandbox;
- a choice's `change_log` lists the states it had before the current one, oldest first, in the list envelope;
- `POST user_activities` answers `{"status":"ok","data":{"id":…,"activity":…}}`;
- ids in paths are text: the datamart id `"1"` and the integer `1` name the same datamart.
"""

from worker.sandbox.faults import FaultSettings
from worker.sandbox.server import SandboxServer
from worker.sandbox.state import SandboxSettings

__all__ = ["FaultSettings", "SandboxServer", "SandboxSettings"]
