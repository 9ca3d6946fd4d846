"""`MICS_WORKER_BACKFILL_*`: read through the worker's configuration, bounded, errors naming the variable."""

from __future__ import annotations

import pytest

from tests.unit.test_config import build
from worker.config import BackfillSettings, ConfigError


class TestBackfillSettings:
    def test_defaults_when_nothing_is_set(self) -> None:
        """Without any BACKFILL_ variable the documented defaults apply."""
        assert build().backfill == BackfillSettings()

    def test_each_variable_is_read(self) -> None:
        """Every setting comes from its own variable."""
        settings = build(
            BACKFILL_MAX_RECORDS="10",
            BACKFILL_MAX_BYTES="2048",
            BACKFILL_MAX_PENDING_EXECUTIONS="2",
            BACKFILL_POLL_INTERVAL_S="0.5",
            BACKFILL_EXECUTION_TIMEOUT_S="60",
            BACKFILL_EXECUTION_ATTEMPTS="1",
            BACKFILL_HTTP_TIMEOUT_S="30",
            BACKFILL_MAX_HELD="5000",
            BACKFILL_PROFILE_FORMAT="update_strategy",
        ).backfill
        assert settings == BackfillSettings(10, 2048, 2, 0.5, 60.0, 1, 30.0, 5000, "update_strategy")

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("BACKFILL_MAX_BYTES", str(100 * 1024 * 1024 + 1)),  # past the documented 100 MB a file
            ("BACKFILL_MAX_RECORDS", "0"),
            ("BACKFILL_PROFILE_FORMAT", "merge"),
        ],
    )
    def test_a_bad_value_stops_with_the_variable_named(self, name: str, value: str) -> None:
        """Out of range or unknown: a ConfigError whose message names the variable."""
        with pytest.raises(ConfigError, match=f"MICS_WORKER_{name}"):
            build(**{name: value})
