"""The `mics-worker` command: `run`, `check`, and the operator tools, each a sub-command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from worker import __version__
from worker.config import ConfigError, WorkerConfig

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

    run = commands.add_parser("run", help="consume, validate, route and send until SIGTERM (settings: MICS_WORKER_*)")
    run.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="start N members of the same consumer group (one per core); member i serves health on HEALTH_PORT+i",
    )
    run.set_defaults(handler=_run)

    check = commands.add_parser("check", help="exit 0 when the local worker is healthy (an exec probe)")
    check.add_argument("--url", help="health URL (default: http://127.0.0.1:$MICS_WORKER_HEALTH_PORT/healthz)")
    check.add_argument("--ready", action="store_true", help="check /readyz instead of /healthz")
    check.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    check.set_defaults(handler=_check)
    return parser


def _load_config() -> WorkerConfig:
    try:
        return WorkerConfig.from_env(os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"mics-worker: configuration error: {exc}\n")
        raise SystemExit(2) from None


def _run(args: argparse.Namespace) -> int:
    config = _load_config()
    if args.processes < 1:
        sys.stderr.write("mics-worker: --processes must be at least 1\n")
        return 2
    if args.processes > 1:
        from worker.processes import run_members  # noqa: PLC0415

        return run_members(args.processes, config.health_port)
    from worker.app import format_summary, run_worker  # noqa: PLC0415 - keep `check` free of heavy imports

    summary = run_worker(config)
    sys.stdout.write(format_summary(summary) + "\n")
    return 0


def _check(args: argparse.Namespace) -> int:
    from worker.health import check  # noqa: PLC0415 - keep the probe's start-up small

    url = args.url
    if url is None:
        port = os.environ.get("MICS_WORKER_HEALTH_PORT", "9102")
        url = f"http://127.0.0.1:{port}/{'readyz' if args.ready else 'healthz'}"
    return check(url, args.timeout)
