"""`mics-worker backfill`: the sub-command's options and how they become a run (the rest lives in `runner`).

Only `argparse` is imported at module level: `mics-worker check` builds the same parser and must stay light.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.backfill.source import FileSource, TopicSource
    from worker.config import WorkerConfig

__all__ = ["add_backfill_command", "backfill_command"]

_MODES = ("envelope", "activity", "profile", "choice")


def add_backfill_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `backfill` (the one hook `worker.cli` calls)."""
    parser = commands.add_parser(
        "backfill",
        help="replay a topic range or NDJSON files into mediarithmics through document imports (docs/backfill.md)",
    )
    source = parser.add_argument_group("source (default: every partition of $MICS_WORKER_TOPICS, all retained)")
    source.add_argument("--topic", action="append", metavar="TOPIC", help="read this topic (repeatable)")
    source.add_argument("--partition", action="append", type=int, metavar="N", help="only partition N (repeatable)")
    source.add_argument("--from-offset", type=int, metavar="OFFSET", help="start at OFFSET in each partition")
    source.add_argument("--to-offset", type=int, metavar="OFFSET", help="stop before OFFSET in each partition")
    source.add_argument("--from-time", metavar="TIME", help="start at the first record at or after TIME (ISO/ms)")
    source.add_argument("--to-time", metavar="TIME", help="stop before the first record at or after TIME")
    source.add_argument("--file", action="append", metavar="PATH", help="read an NDJSON file instead (repeatable)")
    source.add_argument("--mode", choices=_MODES, default="envelope", help="how --file lines are read (a route mode)")
    parser.add_argument("--checkpoint", metavar="FILE", help="resume file (required unless --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="plan, count and size the executions; send nothing")
    parser.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--progress", choices=("auto", "on", "off"), default="auto", help="auto: on a terminal")
    parser.set_defaults(handler=backfill_command)


def backfill_command(args: argparse.Namespace) -> int:
    """Run the sub-command; the exit status: 0 done, 1 stopped (rerun to resume), 2 usage, 130 interrupted."""
    from worker.backfill.checkpoint import CheckpointError  # noqa: PLC0415 - keep `check` light
    from worker.backfill.runner import BackfillError  # noqa: PLC0415
    from worker.backfill.source import SourceError  # noqa: PLC0415
    from worker.config import ConfigError  # noqa: PLC0415

    try:
        return _run(args)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"mics-worker backfill: {exc}\n")
        return 2
    except (BackfillError, CheckpointError, SourceError) as exc:
        sys.stderr.write(f"mics-worker backfill: stopped: {exc}\nThe checkpoint holds what is done: rerun to resume.\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("mics-worker backfill: interrupted; rerun the same command to resume\n")
        return 130


def _run(args: argparse.Namespace) -> int:
    from worker.backfill.checkpoint import Checkpoint  # noqa: PLC0415
    from worker.backfill.client import ImportClient  # noqa: PLC0415
    from worker.backfill.deadletters import DeadLetters  # noqa: PLC0415
    from worker.backfill.runner import Runner, run_name  # noqa: PLC0415
    from worker.dryrun import config_for_dry_run  # noqa: PLC0415
    from worker.kafka import make_reader  # noqa: PLC0415
    from worker.logs import configure_logging  # noqa: PLC0415
    from worker.routing import TopicRouter  # noqa: PLC0415
    from worker.validation import Validators  # noqa: PLC0415

    if not args.dry_run and not args.checkpoint:
        raise ValueError("--checkpoint FILE is required (it is what makes a crash resumable); or use --dry-run")
    config = config_for_dry_run(os.environ) if args.dry_run else _config()
    configure_logging(config.log_format, config.log_level, secrets=[config.api_token.header_value()])
    spec = _source_spec(args, config)
    consumer = None
    if spec["files"]:
        from worker.backfill.source import FileSource  # noqa: PLC0415

        source: TopicSource | FileSource = FileSource(spec["files"])
        mode = args.mode

        def mode_for(_: str) -> Any:
            return mode
    else:
        from worker.backfill.source import TopicSource  # noqa: PLC0415

        consumer = make_reader(
            config.bootstrap_servers,
            config.kafka_properties,
            group_id=f"mics-worker-backfill-{os.getpid()}",  # never commits: offsets live in the checkpoint
            client_id="mics-worker-backfill",
        )
        source = TopicSource(
            consumer,
            spec["topics"],
            partitions=spec["partitions"],
            from_offset=spec["from_offset"],
            to_offset=spec["to_offset"],
            from_ms=spec["from_ms"],
            to_ms=spec["to_ms"],
        )
        mode_for = TopicRouter(config.routes).mode_for
    client = dead_letters = checkpoint = None
    try:
        if not args.dry_run:
            path = Path(args.checkpoint)
            checkpoint = Checkpoint.load(path, spec) or Checkpoint(path, spec, source.ranges(), run_name())
            client = ImportClient(
                config.api_base_url,
                config.api_token,
                retry=config.retry,
                timeout_s=config.backfill.http_timeout_s,
            )
            dead_letters = DeadLetters(config)
        progress = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
        runner = Runner(
            config,
            source=source,
            mode_for=mode_for,
            validators=Validators.load(config.schemas_dir),
            checkpoint=checkpoint,
            client=client,
            dead_letters=dead_letters,
            progress=progress,
        )
        try:
            report = runner.run()
        finally:
            if args.report:
                runner.report.write_json(Path(args.report))
    finally:
        if client is not None:
            client.close()
        if consumer is not None:
            consumer.close()
    sys.stdout.write(report.text() + "\n")
    return 0


def _config() -> WorkerConfig:
    from worker.config import WorkerConfig  # noqa: PLC0415

    return WorkerConfig.from_env(os.environ)


def _source_spec(args: argparse.Namespace, config: WorkerConfig) -> dict[str, Any]:
    """The source options as the checkpoint records them: a resumed run must name the same source."""
    from worker.dlq.selection import parse_time_ms  # noqa: PLC0415

    files = [str(Path(f).resolve()) for f in args.file or ()]
    topics = list(args.topic or ())
    if files and (topics or args.partition or args.from_offset is not None or args.to_offset is not None):
        raise ValueError("--file reads files; --topic, --partition and the offsets read topics: not both")
    if files and (args.from_time or args.to_time):
        raise ValueError("--from-time / --to-time select Kafka records; a file has no timestamps")
    if not files and not topics:
        if config.topic_pattern:
            raise ValueError("the worker reads a topic pattern: name the topics with --topic")
        topics = list(config.topics)
    return {
        "files": files,
        "mode": args.mode if files else None,
        "topics": topics,
        "partitions": sorted(set(args.partition or ())),
        "from_offset": args.from_offset,
        "to_offset": args.to_offset,
        "from_ms": parse_time_ms(args.from_time) if args.from_time else None,
        "to_ms": parse_time_ms(args.to_time) if args.to_time else None,
    }
