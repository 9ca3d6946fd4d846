"""`mics-worker dlq inspect` and `dlq replay`: look at the dead-letter topic without disturbing it, put records back.

One job per module: `settings` (what the tools read from the environment; their Kafka clients come from
`worker.kafka` like the worker's), `records` (a DLQ record as the tools read it: only the worker's own headers are
context), `inspection`, `replayer`, and `commands` (the command lines). Both tools read a snapshot
(`worker.snapshot`): records dead-lettered meanwhile (a replayed message that fails again) wait for the next run.
"""

from worker.dlq.commands import inspect_command, replay_command
from worker.dlq.inspection import InspectReport, format_inspect, inspect, printable
from worker.dlq.records import (
    ESCAPED_REPLAY_COUNT_HEADER,
    REPLAY_COUNT_HEADER,
    DeadLetterRecord,
    Selection,
    parse_time_ms,
)
from worker.dlq.replayer import ReplayOptions, ReplayReport, format_replay, replay
from worker.dlq.settings import DlqError, DlqSettings

__all__ = [
    "ESCAPED_REPLAY_COUNT_HEADER",
    "REPLAY_COUNT_HEADER",
    "DeadLetterRecord",
    "DlqError",
    "DlqSettings",
    "InspectReport",
    "ReplayOptions",
    "ReplayReport",
    "Selection",
    "format_inspect",
    "format_replay",
    "inspect",
    "inspect_command",
    "parse_time_ms",
    "printable",
    "replay",
    "replay_command",
]
