"""The soak's load: `generate()`'s realistic mix written at a fixed rate on a thread."""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import Producer

from tests.support.events import MixSpec, generate


class StreamProducer:
    """Writes `generate()`'s mix at a fixed rate on a thread, remembering each id's intended fate (not its bytes).

    Bare activities go to the first topic, envelopes (and invalid messages) to the second, as deployed.
    """

    def __init__(self, bootstrap_servers: str, activities: str, mixed: str, rate_per_s: float, seed: int) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 10, "enable.idempotence": True})
        self._topics = (activities, mixed)
        self._rate = rate_per_s
        self._seed = seed
        self._count = 0
        self.expected: dict[str, str] = {}
        self.failures = 0
        self.behind_s = 0.0  # the most the producer ever lagged its schedule
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-producer", daemon=True)

    def start(self, count: int) -> None:
        self._count = count
        self._thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        interval = 1.0 / self._rate
        for index, message in enumerate(generate(self._count, MixSpec(invalid=0.02), seed=self._seed)):
            if self._stop.is_set():
                break
            due = began + index * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                self.behind_s = max(self.behind_s, now - due)
            bare = message.route == "activity" and not message.value.startswith(b'{"type"')
            topic = self._topics[0] if bare else self._topics[1]
            while True:
                try:
                    self._producer.produce(topic, key=message.key, value=message.value, on_delivery=self._acked)
                    break
                except BufferError:
                    self._producer.poll(0.05)
            self.expected[message.ledger_id] = message.expected
            self._producer.poll(0)
        self._producer.flush(60)

    def _acked(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failures += 1

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
