"""The `mics-worker` command: `run`, `check`, `config`, and the operator tools, each a sub-command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from worker import __version__
from worker.backfill.command import add_backfill_command
from worker.config import ConfigError, WorkerConfig
from worker.env import Env

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen sub-command; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler = args.handler
    return int(handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mics-worker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="consume, validate, route and send until SIGTERM (settings: MICS_WORKER_*)",
        description="Consume, validate, route and send until SIGTERM; SIGTERM drains, commits and leaves the group.",
        epilog=_SETTINGS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="start N members of the same consumer group (one per core); member i serves health on HEALTH_PORT+i",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="read the topics to their current end, plan every message, send and commit nothing; print the counts",
    )
    run.add_argument(
        "--group", help="with --dry-run: start from this group's committed offsets (default: a throwaway group)"
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check", help="exit 0 when the local worker is healthy (an exec probe); otherwise say why and exit 1"
    )
    check.add_argument("--url", help="health URL (default: http://127.0.0.1:$MICS_WORKER_HEALTH_PORT/healthz)")
    check.add_argument("--ready", action="store_true", help="check /readyz instead of /healthz")
    check.add_argument("--timeout", type=float, default=2.0, help="seconds to connect, and to read (default 2)")
    check.set_defaults(handler=_check)

    config = commands.add_parser(
        "config",
        help="print the effective configuration: each MICS_WORKER_* value, secrets masked, and where it came from",
        description="Print every setting `run` reads, its effective value (secrets as ***) and its source (default, "
        "env or file), then every problem `run` would refuse to start with (exit 2 when there is one).",
    )
    config.set_defaults(handler=_config)
    _add_validate(commands)
    _add_dlq(commands)
    add_backfill_command(commands)
    return parser


def _add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser("validate", help="check a file of messages (NDJSON or a JSON array) offline")
    validate.add_argument("file", metavar="FILE", help="the file to check, or - for standard input")
    validate.add_argument(
        "--schema",
        choices=("activity", "profile", "choice", "envelope", "auto"),
        default="auto",
        help="auto (default): envelope when a message has type and body, else activity",
    )
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default): one line per failure; json: one JSON document with every failure, for scripts",
    )
    validate.add_argument("--max-errors", type=int, default=1000, metavar="N", help="list at most N failures")
    validate.set_defaults(handler=_validate)


def _add_dlq(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = commands.add_parser("dlq", help="inspect or replay the dead-letter topic (settings: MICS_WORKER_*)")
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    inspect = actions.add_parser(
        "inspect", help="summarise the dead-letter topic; reads from the start, commits nothing"
    )
    inspect.add_argument("--topic", help="the dead-letter topic (default: $MICS_WORKER_DLQ_TOPIC)")
    inspect.add_argument("--limit", type=int, metavar="N", help="read at most N records")
    inspect.add_argument("--reason", action="append", metavar="GLOB", help="only these reasons (repeatable; http_5*)")
    inspect.add_argument("--show", type=int, default=5, metavar="N", help="show the first N selected records")
    inspect.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default): a summary for people; json: the same summary as one JSON document, for scripts",
    )
    inspect.set_defaults(handler=_dlq_inspect)

    replay = actions.add_parser("replay", help="produce dead-lettered records again, to their topic or --to")
    replay.add_argument("--to", metavar="TOPIC", help="destination (default: the original topic of each record)")
    replay.add_argument("--topic", help="the dead-letter topic (default: $MICS_WORKER_DLQ_TOPIC)")
    replay.add_argument("--group", help="the replay's consumer group (default: <GROUP_ID>-dlq-replay)")
    replay.add_argument("--reason", action="append", metavar="GLOB", help="only these reasons (repeatable; http_5*)")
    replay.add_argument("--since", metavar="TIME", help="dead-lettered at or after TIME (ISO 8601 or epoch ms)")
    replay.add_argument("--until", metavar="TIME", help="dead-lettered before TIME (ISO 8601 or epoch ms)")
    replay.add_argument("--source-topic", action="append", metavar="TOPIC", help="only from this topic (repeatable)")
    replay.add_argument("--partition", action="append", type=int, metavar="N", help="only from source partition N")
    replay.add_argument("--offset-from", type=int, metavar="OFFSET", help="only from source offsets >= OFFSET")
    replay.add_argument("--offset-to", type=int, metavar="OFFSET", help="only from source offsets <= OFFSET")
    replay.add_argument("--limit", type=int, metavar="N", help="replay at most N records")
    replay.add_argument("--max-replays", type=int, default=3, metavar="N", help="refuse records replayed N times")
    replay.add_argument(
        "--dry-run", action="store_true", help="count what would be replayed; produce and commit nothing"
    )
    replay.set_defaults(handler=_dlq_replay)


_SETTINGS_EPILOG = """\
settings:
  Every setting is an environment variable with the MICS_WORKER_ prefix
  (BOOTSTRAP_SERVERS, TOPICS, ROUTES, API_TOKEN, DEFAULT_DATAMART_ID, ...):
  see the Configuration table of the README for each one, its default and
  meaning. `mics-worker config` prints the effective values and where each
  came from. A bad or unknown variable stops the worker before it starts,
  with every problem listed (exit status 2).
"""


def _report_config_error(exc: ConfigError) -> None:
    if len(exc.problems) == 1:
        sys.stderr.write(f"mics-worker: configuration error: {exc}\n")
    else:
        sys.stderr.write(f"mics-worker: {exc}\n")


def _load_config() -> WorkerConfig:
    try:
        return WorkerConfig.from_env(os.environ)
    except ConfigError as exc:
        _report_config_error(exc)
        raise SystemExit(2) from None


def _run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(args)
    if args.group is not None:
        sys.stderr.write("mics-worker: --group is only for --dry-run (the worker's group is MICS_WORKER_GROUP_ID)\n")
        return 2
    config = _load_config()
    if args.processes < 1:
        sys.stderr.write("mics-worker: --processes must be at least 1\n")
        return 2
    if args.processes > 1:
        from worker.processes import run_members  # noqa: PLC0415

        return run_members(args.processes, config.health_port)
    return _run_one(config)


def _run_one(config: WorkerConfig) -> int:
    from worker.app import StartupError, format_summary, run_worker  # noqa: PLC0415 - keep `check` light
    from worker.pipeline import WorkerCrashed  # noqa: PLC0415

    try:
        summary = run_worker(config)
    except StartupError as exc:
        sys.stderr.write(f"mics-worker: cannot start: {exc}\n")
        return 2
    except WorkerCrashed as exc:
        sys.stderr.write(f"mics-worker: {exc} (see the log above); restart it to resume\n")
        return 1
    sys.stdout.write(format_summary(summary) + "\n")
    return 0


def _check(args: argparse.Namespace) -> int:
    from worker.probe import probe  # noqa: PLC0415 - keep the probe's start-up small

    url = args.url
    if url is None:
        env = Env(os.environ)
        port = env.integer("HEALTH_PORT", WorkerConfig.health_port, minimum=1, maximum=65535)
        if env.problems:
            sys.stderr.write(f"mics-worker check: {env.problems[0]} (or pass --url)\n")
            return 2
        url = f"http://127.0.0.1:{port}/{'readyz' if args.ready else 'healthz'}"
    result = probe(url, args.timeout)
    if not result.ok:
        sys.stderr.write(f"mics-worker check: unhealthy: {result.reason}\n")
    return result.exit_status


def _config(_args: argparse.Namespace) -> int:
    from worker.config_report import config_report, format_report  # noqa: PLC0415 - keep `check` light

    report = config_report(os.environ)
    sys.stdout.write(format_report(report) + "\n")
    return 2 if report.problems else 0


def _dry_run(args: argparse.Namespace) -> int:
    from worker.dryrun import config_for_dry_run, dry_run, format_dry_run  # noqa: PLC0415 - keep `check` light
    from worker.snapshot import SnapshotError  # noqa: PLC0415

    try:
        config = config_for_dry_run(os.environ)
    except ConfigError as exc:
        _report_config_error(exc)
        return 2
    try:
        report = dry_run(config, group=args.group)
    except SnapshotError as exc:
        sys.stderr.write(f"mics-worker run --dry-run: {exc}\n")
        return 1
    sys.stdout.write(format_dry_run(report) + "\n")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from worker.validate_file import command  # noqa: PLC0415 - keep `check` free of heavy imports

    return command(args.file, schema=args.schema, output_format=args.format, max_listed=args.max_errors)


def _dlq_inspect(args: argparse.Namespace) -> int:
    from worker.dlq import inspect_command  # noqa: PLC0415 - keep `check` free of heavy imports

    return inspect_command(args)


def _dlq_replay(args: argparse.Namespace) -> int:
    from worker.dlq import replay_command  # noqa: PLC0415 - keep `check` free of heavy imports

    return replay_command(args)
