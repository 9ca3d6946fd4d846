"""The status table: one test per documented row, and the override syntax (validated, later entries win)."""

from __future__ import annotations

import re

import pytest

from worker.mics.statuses import DEFAULT_TABLE, ROUTES, OutcomeKind, StatusTable, parse_status_classes

S, R, P, A, H = OutcomeKind.SUCCESS, OutcomeKind.RETRYABLE, OutcomeKind.PERMANENT, OutcomeKind.AUTH, OutcomeKind.HALT


class TestDefaultRows:
    @pytest.mark.parametrize("route", ROUTES)
    @pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
    def test_2xx_is_success(self, route: str, status: int) -> None:
        """Every 2xx is delivered, on every route."""
        assert DEFAULT_TABLE.kind(route, status) is S

    @pytest.mark.parametrize("route", ROUTES)
    @pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308, 399])
    def test_3xx_halts(self, route: str, status: int) -> None:
        """The client never follows a redirect: it means the base URL or path is wrong, on every route."""
        assert DEFAULT_TABLE.kind(route, status) is H

    @pytest.mark.parametrize("route", ROUTES)
    @pytest.mark.parametrize("status", [401, 403])
    def test_401_and_403_are_credentials(self, route: str, status: int) -> None:
        """A refused token holds the datamart."""
        assert DEFAULT_TABLE.kind(route, status) is A

    def test_404_on_the_activity_collection_halts(self) -> None:
        """POST …/user_activities cannot be missing: a 404 says the configuration is wrong."""
        assert DEFAULT_TABLE.kind("activity", 404) is H

    @pytest.mark.parametrize("route", ["profile", "choice"])
    def test_404_on_a_user_point_put_is_permanent(self, route: str) -> None:
        """The user point may not exist: that message is dead-lettered, the route goes on."""
        assert DEFAULT_TABLE.kind(route, 404) is P

    @pytest.mark.parametrize("route", ROUTES)
    @pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524])
    def test_transient_statuses_retry(self, route: str, status: int) -> None:
        """Timeouts, throttling, gateway and Cloudflare-style origin errors are retried."""
        assert DEFAULT_TABLE.kind(route, status) is R

    @pytest.mark.parametrize("route", ROUTES)
    def test_413_is_permanent(self, route: str) -> None:
        """A body too large stays too large."""
        assert DEFAULT_TABLE.kind(route, 413) is P

    @pytest.mark.parametrize("route", ROUTES)
    @pytest.mark.parametrize("status", [100, 400, 405, 409, 410, 415, 418, 422, 451, 499, 501, 505, 525, 599])
    def test_every_other_status_is_permanent(self, route: str, status: int) -> None:
        """Other 1xx, 4xx and 5xx statuses are dead-lettered with their status."""
        assert DEFAULT_TABLE.kind(route, status) is P

    @pytest.mark.parametrize("status", [-1, 0, 99, 600, 10_000])
    def test_statuses_outside_the_http_range_are_permanent(self, status: int) -> None:
        assert DEFAULT_TABLE.kind("activity", status) is P


class TestOverrides:
    def test_the_example_overrides_apply_to_every_route(self) -> None:
        """`404=permanent,418=retry`: the activity 404 no longer halts, 418 retries everywhere."""
        table = parse_status_classes("404=permanent,418=retry")
        assert [table.kind(route, 404) for route in ROUTES] == [P, P, P]
        assert [table.kind(route, 418) for route in ROUTES] == [R, R, R]
        assert table.kind("activity", 503) is R

    def test_a_route_prefix_and_a_range_are_honoured_and_later_entries_win(self) -> None:
        table = parse_status_classes(" profile:404=halt , 525-527=retry, 526=permanent ,")
        assert (table.kind("profile", 404), table.kind("choice", 404)) == (H, P)
        assert [table.kind("choice", status) for status in (525, 526, 527, 528)] == [R, P, R, P]

    def test_an_empty_setting_is_the_default_table(self) -> None:
        assert parse_status_classes("") == StatusTable() == DEFAULT_TABLE

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("404", "is not [route:]status"),
            ("404=ignore", "class one of"),
            ("four=retry", "is not a status"),
            ("200=retry", "2xx always means success"),
            ("199-201=halt", "2xx always means success"),
            ("600=retry", "within 100-599"),
            ("503-500=retry", "low to high"),
            ("search:404=halt", "route 'search'"),
        ],
    )
    def test_a_bad_entry_is_refused_naming_it(self, text: str, fragment: str) -> None:
        with pytest.raises(ValueError, match=re.escape(fragment)) as caught:
            parse_status_classes(text)
        assert fragment in str(caught.value)
        assert repr(text.split(",", maxsplit=1)[0].strip()) in str(caught.value)
