"""Small named fakes for the client's unit tests."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.mics.transport import RawResponse, TransportError


@dataclass(frozen=True)
class SentRequest:
    """One request as the transport received it."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None


@dataclass
class ScriptedTransport:
    """Records every request and answers with the next scripted response or error (the last one repeats)."""

    script: list[RawResponse | TransportError] = field(
        default_factory=lambda: [RawResponse(200, {}, b'{"status":"ok","data":{}}')]
    )
    sent: list[SentRequest] = field(default_factory=list)
    closed: bool = False

    async def request(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        self.sent.append(SentRequest(method, url, dict(headers), body))
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, TransportError):
            raise answer
        return answer

    async def aclose(self) -> None:
        self.closed = True
