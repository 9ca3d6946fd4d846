"""`mics-worker dlq inspect` and `dlq replay` as commands: settings from the environment, exit status, output."""

from __future__ import annotations

import argparse
import os
import sys

from worker.config import ConfigError
from worker.dlq.inspection import format_inspect, inspect
from worker.dlq.replayer import ReplayOptions, format_replay, replay
from worker.dlq.selection import Selection, parse_time_ms
from worker.dlq.settings import DlqError, DlqSettings
from worker.kafka import KafkaException
from worker.progress import Progress

__all__ = ["inspect_command", "replay_command"]


def inspect_command(args: argparse.Namespace) -> int:
    """`mics-worker dlq inspect`: 0 on success, 1 when the DLQ cannot be read, 2 on a usage error."""
    try:
        settings = DlqSettings.from_env(os.environ)
        report = inspect(
            settings,
            topic=args.topic,
            selection=Selection(reasons=tuple(args.reason or ())),
            limit=args.limit,
            show=args.show,
        )
    except ConfigError as exc:
        sys.stderr.write(f"mics-worker dlq inspect: configuration error: {exc}\n")
        return 2
    except (DlqError, KafkaException) as exc:
        sys.stderr.write(f"mics-worker dlq inspect: {exc}\n")
        return 1
    sys.stdout.write(format_inspect(report, args.format) + "\n")
    return 0


def replay_command(args: argparse.Namespace) -> int:
    """`mics-worker dlq replay`: 0 on success (refusals included), 1 when it stopped on an error, 2 on a usage error."""
    try:
        settings = DlqSettings.from_env(os.environ)
        options = ReplayOptions(
            selection=Selection(
                reasons=tuple(args.reason or ()),
                source_topics=frozenset(args.source_topic or ()),
                source_partitions=frozenset(args.partition or ()),
                offset_from=args.offset_from,
                offset_to=args.offset_to,
                since_ms=None if args.since is None else parse_time_ms(args.since),
                until_ms=None if args.until is None else parse_time_ms(args.until),
            ),
            to_topic=args.to,
            dlq_topic=args.topic,
            group=args.group,
            limit=args.limit,
            dry_run=args.dry_run,
            max_replays=args.max_replays,
        )
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"mics-worker dlq replay: {exc}\n")
        return 2
    try:
        with Progress(total=0, description="replayed", enabled=sys.stderr.isatty()) as bar:
            report = replay(settings, options, progress=bar)  # the bar's line ends before anything else is written
    except (DlqError, KafkaException) as exc:
        sys.stderr.write(f"mics-worker dlq replay: {exc}\n")
        if isinstance(exc, DlqError) and exc.report is not None:
            sys.stdout.write("before stopping:\n" + format_replay(exc.report) + "\n")
        return 1
    sys.stdout.write(format_replay(report) + "\n")
    return 0
