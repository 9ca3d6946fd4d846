"""`mics-worker dlq inspect` and `dlq replay`: look at the dead-letter topic without disturbing it, put records back.

One job per module: `settings` (what the tools read from the environment; their Kafka clients come from
`worker.kafka` like the worker's), `selection` (which records an operator asks for; a record itself is read by
`worker.dlq_format.reader`: only the worker's own headers are context), `inspection`, `replayer`, and `commands`
(the command lines). Both tools read a snapshot (`worker.snapshot`): records dead-lettered meanwhile (a replayed
message that fails again) wait for the next run.
"""

from worker.dlq.commands import inspect_command, replay_command
from worker.dlq.inspection import InspectReport, format_inspect, inspect, printable
from worker.dlq.replayer import ReplayOptions, ReplayReport, format_replay, replay
from worker.dlq.selection import Selection, parse_time_ms
from worker.dlq.settings import DlqError, DlqSettings
from worker.dlq_format.headers import ESCAPED_REPLAY_COUNT_HEADER, REPLAY_COUNT_HEADER
from worker.dlq_format.reader import DeadLetterRecord

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
