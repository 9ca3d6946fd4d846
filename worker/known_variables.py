"""Unknown `MICS_WORKER_*` variables are mistakes: a misspelt setting must not be silently ignored.

The known names are exactly what the readers asked `Env` for — the worker's (`WorkerConfig.read`) and those of the
commands with settings of their own (`OTHER_READERS`) — so a setting added to any reader is known without a list to
keep. `MICS_WORKER_KAFKA_*` variables pass through to librdkafka, which judges them itself (`kafka_properties`).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import re
from collections.abc import Callable, Collection, Mapping
from typing import cast

from worker.env import ENV_PREFIX, ConfigError, Env
from worker.kafka_properties import KAFKA_PREFIX

__all__ = ["OTHER_READERS", "WORKER_READER", "known_keys", "unknown_variable_problems"]

# A command that reads settings the worker does not: "module:callable" taking an `Env` (imported only when checking).
# A new command with settings of its own adds its reader here (tests/unit/test_known_variables.py checks the source).
OTHER_READERS = ("worker.dlq.settings:DlqSettings.read",)
_SERVICE_LINK_SUFFIX = re.compile(
    r"SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_PROTO|_PORT|_ADDR)?)?"
)
# The worker's own reader: a tool run with the worker's environment checks against it and its own reads.
WORKER_READER = "worker.config:WorkerConfig.read"


def unknown_variable_problems(environ: Mapping[str, str], read: Collection[str]) -> list[str]:
    """One problem per `MICS_WORKER_*` variable no reader asks for, with the closest known names."""
    links = _service_links(environ)
    unread = sorted(
        name[len(ENV_PREFIX) :]
        for name in environ
        if name.startswith(ENV_PREFIX)
        and not name.startswith(KAFKA_PREFIX)
        and name[len(ENV_PREFIX) :] not in read
        and name not in links
    )
    if not unread:
        return []
    known = set(read) | known_keys(environ, readers=(WORKER_READER, *OTHER_READERS))
    problems = []
    for key in unread:
        if key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
        hint = f"; did you mean {_one_of([ENV_PREFIX + name for name in close])}?" if close else ""
        problems.append(f"{ENV_PREFIX}{key} is not a setting (see README, Configuration){hint}")
    return problems


def _service_links(environ: Mapping[str, str]) -> set[str]:
    """The variables Kubernetes adds for a Service named `mics-worker…` (`MICS_WORKER_SERVICE_HOST`,
    `MICS_WORKER_PORT_9102_TCP_ADDR`, …) to every pod of its namespace unless `enableServiceLinks` is false.

    Recognised by their shape and only beside their service's `…SERVICE_HOST`, so a lone `MICS_WORKER_PORT=9102`
    (meant as `HEALTH_PORT`) is still a mistake.
    """
    services = [name.removesuffix("SERVICE_HOST") for name in environ if name.endswith("SERVICE_HOST")]
    return {
        name
        for name in environ
        for service in services
        if name.startswith(service) and _SERVICE_LINK_SUFFIX.fullmatch(name[len(service) :])
    }


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def known_keys(environ: Mapping[str, str], *, readers: Collection[str]) -> set[str]:
    """The keys `readers` ask for when reading `environ` (their problems are theirs to report, not this check's)."""
    keys: set[str] = set()
    for reference in readers:
        env = Env(environ)
        with contextlib.suppress(ConfigError):
            _resolve(reference)(env)
        keys |= env.read
    return keys


def _resolve(reference: str) -> Callable[[Env], object]:
    module_name, _, path = reference.partition(":")
    target: object = importlib.import_module(module_name)
    for attribute in path.split("."):
        target = getattr(target, attribute)
    return cast(Callable[[Env], object], target)
