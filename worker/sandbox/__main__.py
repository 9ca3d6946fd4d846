"""`python -m worker.sandbox`: run the local stand-in for the mediarithmics API until SIGTERM or SIGINT.

Once it accepts connections it prints exactly one line on stdout, `sandbox listening on http://HOST:PORT`.
The token comes from `--token` or, better (argv is visible to other users), `MICS_SANDBOX_TOKEN`; datamarts with a
token of their own from `MICS_SANDBOX_DATAMART_TOKENS` (`1509=tokenA,1510=tokenB`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

import uvloop

from worker.sandbox.admin import TokenError, check_token
from worker.sandbox.faults import FaultSettings, FaultSettingsError
from worker.sandbox.imports import add_import_arguments, import_settings
from worker.sandbox.ratelimit import DEFAULT_ARRIVALS_KEPT, RateLimitSettings, RateLimitSettingsError, parse_rate
from worker.sandbox.server import SandboxServer
from worker.sandbox.state import MIB, SandboxSettings
from worker.validation import Validators

TOKEN_ENV = "MICS_SANDBOX_TOKEN"  # noqa: S105 - the name of an environment variable, not a secret
DATAMART_TOKENS_ENV = "MICS_SANDBOX_DATAMART_TOKENS"
_FAULT_FLAGS: dict[str, tuple[type, str]] = {
    "latency_ms": (float, "milliseconds added to every API answer"),
    "p429": (float, "fraction of API requests answered 429"),
    "retry_after_s": (int, "the Retry-After of a 429, in seconds (default: 1)"),
    "p500": (float, "fraction answered 500"),
    "p503": (float, "fraction answered 503"),
    "p_reset": (float, "fraction whose connection is reset (RST) instead of answered"),
    "p_hang": (float, "fraction held for --hang-s seconds, then closed unanswered"),
    "hang_s": (float, "how long a hang lasts (default: 30)"),
    "outage_s": (float, "answer 503 to every API request for this many seconds from startup"),
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _rate(text: str) -> float:
    try:
        return parse_rate(text)
    except RateLimitSettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command line: address, token, mode, limits and the initial faults."""
    parser = argparse.ArgumentParser(
        prog="python -m worker.sandbox", description="A local stand-in for the mediarithmics Tracking API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    parser.add_argument("--token", help=f"the accepted API token (default: ${TOKEN_ENV})")
    parser.add_argument("--minimal", action="store_true", help="benchmark mode: no validation, no storage")
    parser.add_argument("--seed", type=int, help="seed of the fault RNG, for reproducible runs")
    parser.add_argument("--max-body-bytes", type=_positive_int, default=MIB, help="413 above this (default: 1 MiB)")
    parser.add_argument(
        "--journal-size", type=_positive_int, default=10_000, help="requests kept for /_sandbox/requests"
    )
    parser.add_argument(
        "--stop-on-stdin-eof",
        action="store_true",
        help="also stop when stdin reaches end of file (a parent holding the pipe died)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level (default: %(default)s)",
    )
    faults = parser.add_argument_group("faults (also settable at runtime: PUT /_sandbox/faults)")
    for name, (kind, text) in _FAULT_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        faults.add_argument(flag, dest=name, type=kind, metavar=kind.__name__.upper(), help=text)
    limits = parser.add_argument_group(
        "rate limit (token buckets on the API, not on /_sandbox; also settable at runtime: PUT /_sandbox/rate_limit)"
    )
    limits.add_argument(
        "--rate-limit",
        type=_rate,
        metavar="RATE",
        help="requests per second the whole API admits, e.g. 500/s, 500 or 30000/min; above it: 429 + Retry-After",
    )
    limits.add_argument(
        "--rate-burst",
        type=_positive_int,
        metavar="N",
        help="requests admitted at once after a quiet spell (default: one second's worth of --rate-limit)",
    )
    limits.add_argument(
        "--rate-limit-per-datamart",
        type=_rate,
        metavar="RATE",
        help="the same kind of limit for each datamart separately (the :datamartId path segment)",
    )
    limits.add_argument(
        "--rate-burst-per-datamart",
        type=_positive_int,
        metavar="N",
        help="each datamart's burst (default: one second's worth of --rate-limit-per-datamart)",
    )
    limits.add_argument(
        "--record-arrivals",
        action="store_true",
        help="count and record arrivals (GET /_sandbox/arrivals) even without a limit; a limit always does",
    )
    limits.add_argument(
        "--arrivals-kept",
        type=_positive_int,
        default=DEFAULT_ARRIVALS_KEPT,
        metavar="N",
        help="arrival times kept for GET /_sandbox/arrivals, admitted and throttled each (default: %(default)s)",
    )
    add_import_arguments(parser)
    return parser


def _datamart_tokens(text: str) -> dict[str, str]:
    """`1509=tokenA,1510=tokenB` → a token per datamart (an error never repeats a token)."""
    tokens = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        datamart, sep, token = item.partition("=")
        if not sep or not datamart.strip():
            raise TokenError(f"{DATAMART_TOKENS_ENV}: each entry must be datamart=token")
        tokens[datamart.strip()] = check_token(token)
    return tokens


def _stop_on_eof(loop: asyncio.AbstractEventLoop, fd: int, stop: asyncio.Event) -> None:
    """Set `stop` once `fd` reads end of file: the process that held its other end is gone."""

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


async def _serve(server: SandboxServer, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.stop_on_stdin_eof:
        _stop_on_eof(loop, sys.stdin.fileno(), stop)
    bound = await server.start(args.host, args.port)
    if args.outage_s:
        server.state.faults.update({"outage_s": args.outage_s})
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"sandbox listening on http://{shown_host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, serve until a stop signal, return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rate_burst is not None and args.rate_limit is None:
        parser.error("--rate-burst needs --rate-limit")
    if args.rate_burst_per_datamart is not None and args.rate_limit_per_datamart is None:
        parser.error("--rate-burst-per-datamart needs --rate-limit-per-datamart")
    logging.basicConfig(level=args.log_level, stream=sys.stderr)
    try:
        token = check_token(args.token if args.token is not None else os.environ.get(TOKEN_ENV))
        datamart_tokens = _datamart_tokens(os.environ.get(DATAMART_TOKENS_ENV, ""))
        fault_flags = {name: getattr(args, name) for name in _FAULT_FLAGS if name != "outage_s"}
        faults = FaultSettings().with_changes({k: v for k, v in fault_flags.items() if v is not None})
        if args.outage_s is not None and args.outage_s < 0:
            raise FaultSettingsError("outage_s must be >= 0")
        rate_limit = RateLimitSettings(
            rate=args.rate_limit,
            burst=args.rate_burst,
            per_datamart_rate=args.rate_limit_per_datamart,
            per_datamart_burst=args.rate_burst_per_datamart,
            record=args.record_arrivals,
            arrivals_kept=args.arrivals_kept,
        )
        imports = import_settings(args)
    except TokenError as exc:
        parser.error(f"{exc} (pass --token or set {TOKEN_ENV})")
    except (FaultSettingsError, RateLimitSettingsError, ValueError) as exc:
        parser.error(str(exc))
    settings = SandboxSettings(
        token=token,
        datamart_tokens=datamart_tokens,
        minimal=args.minimal,
        max_body_bytes=args.max_body_bytes,
        journal_capacity=args.journal_size,
        seed=args.seed,
        faults=faults,
        rate_limit=rate_limit,
        imports=imports,
    )
    checker = None if args.minimal else Validators.load()
    uvloop.run(_serve(SandboxServer(settings, checker), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
