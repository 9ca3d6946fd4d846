"""Everything the sandbox remembers between requests, and how it is put back to its starting point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.sandbox.faults import FaultInjector, FaultSettings
from worker.sandbox.imports import ImportRegistry, ImportSettings
from worker.sandbox.journal import DEFAULT_CAPACITY, Journal
from worker.sandbox.ratelimit import RateLimiter, RateLimitSettings
from worker.sandbox.registry import SchemaRegistryStub
from worker.sandbox.store import DocumentStore

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """How the sandbox was started.

    `minimal` trades fidelity for speed (benchmarks): no JSON parsing, no validation, no storage, counts only.
    """

    token: str = field(repr=False)
    datamart_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Datamarts with a token of their own (the others accept `token`)."""
    minimal: bool = False
    max_body_bytes: int = MIB
    journal_capacity: int = DEFAULT_CAPACITY
    seed: int | None = None
    faults: FaultSettings = field(default_factory=FaultSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    imports: ImportSettings = field(default_factory=ImportSettings)


class SandboxState:
    """The accepted token, stored documents, request journal, fault injector and rate limiter of one sandbox."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.token = settings.token
        self.datamart_tokens: dict[str, bytes] = {k: v.encode("utf-8") for k, v in settings.datamart_tokens.items()}
        self.store = DocumentStore()
        self.journal = Journal(settings.journal_capacity)
        self.faults = FaultInjector(settings.faults, seed=settings.seed)
        self.limiter = RateLimiter(settings.rate_limit)
        self.registry = SchemaRegistryStub()
        self.imports = ImportRegistry()

    @property
    def token(self) -> str:
        """The one API token accepted right now."""
        return self._token

    @token.setter
    def token(self, token: str) -> None:
        self._token = token
        self.token_bytes = token.encode("utf-8")  # compared on every request: encoded once

    def token_bytes_for(self, datamart: str | None) -> bytes:
        """The token a request for `datamart` must present."""
        if datamart is not None:
            own = self.datamart_tokens.get(datamart)
            if own is not None:
                return own
        return self.token_bytes

    def __repr__(self) -> str:
        return f"SandboxState(minimal={self.settings.minimal}, stored={self.store.counts()})"

    def reset(self) -> None:
        """Back to how it started: startup token, faults and limits, re-seeded RNG, nothing stored or counted."""
        self.token = self.settings.token
        self.datamart_tokens = {k: v.encode("utf-8") for k, v in self.settings.datamart_tokens.items()}
        self.store.clear()
        self.journal.clear()
        self.faults.reset()
        self.limiter.reset()
        self.registry.clear()
        self.imports.clear()
