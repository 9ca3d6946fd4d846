"""What the soak runs with: the faults, the outage rhythm, the worker's settings and the verdict's tolerances.

Fixed here (not drawn per run) so that two soaks on the same machine are comparable.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATAMART = "1509"
OUTCOMES = "mics_worker_messages_outcome_total"
# The faults of the soak: at most one per request, a fixed seed so runs are comparable. Throttling is not a random
# fault: a 429 slows the whole route (issue 13), so it comes from the sink's token bucket, set a share above the
# stream's rate, which the worker meets when it catches up after an outage.
SOAK_FAULTS = {"latency_ms": 2.0, "p503": 0.02, "p_reset": 0.005, "p_hang": 0.001, "hang_s": 4.0}
RATE_LIMIT_SHARE = 1.5
OUTAGE_EVERY_S = 240.0
OUTAGE_S = 8.0
WORKER_SETTINGS = {"HTTP_READ_TIMEOUT_S": "2", "LOG_LEVEL": "WARNING"}
WARM_UP_S = 60.0
RSS_TOLERANCE = 0.10
