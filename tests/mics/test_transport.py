"""The transport factory and its settings."""

import pytest

from worker.mics.aiohttp_backend import AiohttpTransport
from worker.mics.httptools_backend import HttptoolsTransport
from worker.mics.httpx_backend import HttpxTransport
from worker.mics.pyreqwest_backend import PyreqwestTransport
from worker.mics.transport import BACKENDS, DEFAULT_BACKEND, Timeouts, make_transport


class TestMakeTransport:
    @pytest.mark.parametrize(
        ("backend", "kind"),
        [
            ("aiohttp", AiohttpTransport),
            ("httptools", HttptoolsTransport),
            ("httpx", HttpxTransport),
            ("pyreqwest", PyreqwestTransport),
        ],
    )
    async def test_builds_the_named_backend(self, backend: str, kind: type) -> None:
        """Each backend name gives its transport, which closes cleanly without having sent anything."""
        transport = make_transport(backend, Timeouts(), max_connections=4)
        assert isinstance(transport, kind)
        await transport.aclose()

    def test_unknown_backend_lists_the_choices(self) -> None:
        """An unknown backend name is a ValueError naming the valid ones."""
        with pytest.raises(ValueError, match="aiohttp, httptools, httpx, pyreqwest"):
            make_transport("requests", Timeouts(), max_connections=4)

    def test_at_least_one_connection(self) -> None:
        """A pool of zero connections is refused."""
        with pytest.raises(ValueError, match="max_connections"):
            make_transport("aiohttp", Timeouts(), max_connections=0)

    def test_default_backend_is_one_of_the_backends(self) -> None:
        """The default is a valid backend name."""
        assert DEFAULT_BACKEND in BACKENDS


class TestTimeouts:
    @pytest.mark.parametrize("field", ["connect_s", "read_s", "total_s"])
    @pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
    def test_non_positive_deadlines_are_refused(self, field: str, value: float) -> None:
        """Each deadline must be a positive number of seconds."""
        with pytest.raises(ValueError, match=field):
            Timeouts(**{field: value})
