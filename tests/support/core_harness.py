"""The in-process harness: the real pipeline over a fake consumer, producer and API, on the test's own loop.

    async with CoreHarness(api=FakeApi(handler), max_in_flight=50) as core:
        core.consumer.append("events", 0, b"...")
        await core.until(lambda: core.consumer.committed.get(("events", 0)) == 1)

`until` waits for a condition by yielding to the loop (bounded by a deadline), never for a fixed time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self, cast

import orjson
from prometheus_client import CollectorRegistry

from tests.support.fake_kafka import FakeConsumer, FakeProducer
from worker.config import DlqGuardSettings, RouteRule, TrafficSettings, WorkerConfig
from worker.health import Health
from worker.kafka import Consumer, Producer
from worker.metrics import WorkerMetrics
from worker.mics.auth import ApiToken
from worker.mics.client import MicsClient
from worker.mics.token_source import TokenSource
from worker.mics.transport import RawResponse, TransportError
from worker.pipeline import Pipeline, RunSummary
from worker.registry import SchemaRegistry
from worker.retry import RetryPolicy
from worker.tracing import NO_TRACING, Tracing
from worker.validation import Validators

TOPIC = "events"
BASE_URL = "http://api.test"
OK = RawResponse(200, {}, b'{"status":"ok","data":{}}')
NOT_FOUND = RawResponse(404, {}, b'{"status":"error","error":"Resource Not Found"}')

Handler = Callable[["Request"], Awaitable[RawResponse | TransportError] | RawResponse | TransportError]


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: bytes | None
    token: str = ""  # the Authorization header it carried
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def datamart(self) -> str:
        return self.url.split("/v1/datamarts/", 1)[1].split("/", 1)[0]

    @property
    def is_probe(self) -> bool:
        return self.method == "GET"


@dataclass
class FakeApi:
    """A transport answering each request with `handler(request)` (a response, or a coroutine of one)."""

    handler: Handler = lambda _request: OK
    requests: list[Request] = field(default_factory=list)

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        request = Request(method, url, body, headers.get("Authorization", ""), dict(headers))
        self.requests.append(request)
        answer = self.handler(request)
        if isinstance(answer, Awaitable):
            answer = await answer
        if isinstance(answer, TransportError):
            raise answer
        return answer

    async def aclose(self) -> None:
        return None

    def writes(self) -> list[Request]:
        return [request for request in self.requests if not request.is_probe]


def activity(ts: int = 1_764_000_000_000, **extra: Any) -> bytes:
    """A valid bare user activity."""
    document = {
        "$ts": ts,
        "$type": "SITE_VISIT",
        "$session_status": "NO_SESSION",
        "$site_id": "1023",
        "$user_identifiers": [{"$type": "USER_AGENT", "$user_agent_id": "vec:1"}],
        "$events": [{"$ts": ts, "$event_name": "$page_view", "$properties": {}}],
        **extra,
    }
    return orjson.dumps(document)


def envelope_activity(datamart: str, ts: int = 1_764_000_000_000) -> bytes:
    """An envelope naming its datamart."""
    body = orjson.loads(activity(ts))
    return orjson.dumps({"type": "activity", "datamart_id": datamart, "body": body})


def config(**overrides: Any) -> WorkerConfig:
    """A worker configuration for the harness: one envelope topic, two datamarts, fast retries and probes."""
    base = WorkerConfig(
        bootstrap_servers="fake:9092",
        api_token=ApiToken("harness-token"),
        topics=(TOPIC,),
        routes=(RouteRule(TOPIC, "envelope"), RouteRule("^bare", "activity")),
        api_base_url=BASE_URL,
        default_datamart_id="1509",
        allowed_datamarts=frozenset({"1509", "2000"}),
        retry=RetryPolicy(max_attempts=20, max_elapsed_s=600.0, base_delay_s=0.001, max_delay_s=0.005),
        dlq_guard=DlqGuardSettings(window=1000, max_ratio=1.0, min_samples=1000, max_consecutive=100_000),
        credentials_probe_interval_s=0.01,
        traffic=TrafficSettings(backoff_spread_s=0.01, probe_interval_s=0.005, probe_max_interval_s=0.02),
        drain_timeout_s=5.0,
    )
    return replace(base, **overrides)


class CoreHarness:
    """Runs `Pipeline.run` as a task on the current loop; `async with` starts it and stops it (drain included)."""

    def __init__(
        self,
        api: FakeApi | None = None,
        producer: FakeProducer | None = None,
        tracing: Tracing = NO_TRACING,
        tokens: TokenSource | None = None,
        schema_registry: SchemaRegistry | None = None,
        **overrides: Any,
    ) -> None:
        self.tracing = tracing
        self.config = config(**overrides)
        self.tokens = tokens
        self.schema_registry = schema_registry
        self.api = api or FakeApi()
        self.consumer = FakeConsumer()
        self.producer = producer or FakeProducer()
        self.registry = CollectorRegistry()
        self.metrics = WorkerMetrics(self.registry, process_metrics=False)
        self.health = Health()
        self.pipeline: Pipeline | None = None
        self.task: asyncio.Task[RunSummary] | None = None

    async def __aenter__(self) -> Self:
        token = self.tokens if self.tokens is not None else self.config.api_token
        client = MicsClient(self.api, BASE_URL, token, decode_write_answers=False, statuses=self.config.status_classes)
        self.pipeline = Pipeline(
            self.config,
            consumer=cast(Consumer, self.consumer),  # a named fake of the consumer's surface
            producer=cast(Producer, self.producer),  # likewise
            client=client,
            validators=Validators.load(self.config.schemas_dir),
            metrics=self.metrics,
            health=self.health,
            rng=random.Random(7),
            tracing=self.tracing,
            registry=self.schema_registry,
        )
        bridge = self.pipeline.bridge()
        self.consumer.on_commit = bridge.on_commit
        self.task = asyncio.create_task(self.pipeline.run(bridge))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.task is not None and not self.task.done():
            await self.stop()

    async def stop(self) -> RunSummary:
        """SIGTERM's path: request the stop and wait for the drain and close."""
        assert self.pipeline is not None
        assert self.task is not None
        self.pipeline.request_stop()
        return await asyncio.wait_for(self.task, 30)

    def assign(self, *partitions: int, topic: str = TOPIC) -> None:
        self.consumer.rebalance("assign", [(topic, partition) for partition in partitions])

    async def until(self, condition: Callable[[], bool], what: str = "the condition", timeout_s: float = 20.0) -> None:
        """Yield to the loop until `condition()` holds; fail after `timeout_s` (a generous bound, not a pace)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition():
            if self.task is not None and self.task.done():
                self.task.result()  # surface a crash instead of waiting it out
                raise AssertionError(f"the pipeline stopped before {what}")
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.001)

    def committed(self, partition: int, topic: str = TOPIC) -> int:
        return self.consumer.committed.get((topic, partition), 0)

    def stored(self, partition: int, topic: str = TOPIC) -> int:
        return self.consumer.stored.get((topic, partition), 0)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})
