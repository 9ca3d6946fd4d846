"""Schema Registry framing: prefix and header forms, per-topic modes, bad frames."""

from __future__ import annotations

import uuid

import pytest

from worker.framing import VALUE_SCHEMA_ID_HEADER, BadFrame, Framed, SchemaRef, parse_framing, unframe

PAYLOAD = b'{"$type":"SITE_VISIT"}'


def prefixed(schema_id: int, payload: bytes = PAYLOAD) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + payload


class TestPrefix:
    def test_auto_strips_the_five_byte_prefix_and_reads_the_id(self) -> None:
        assert unframe("auto", prefixed(7), None) == Framed(PAYLOAD, SchemaRef(schema_id=7))

    def test_confluent_reads_a_large_id_big_endian(self) -> None:
        assert unframe("confluent", prefixed(2**31 - 1), []) == Framed(PAYLOAD, SchemaRef(schema_id=2**31 - 1))

    def test_a_prefix_without_payload_is_a_bad_frame(self) -> None:
        result = unframe("auto", b"\x00\x00\x00\x00\x07", None)
        assert isinstance(result, BadFrame)
        assert "more than 5 bytes" in result.message

    def test_plain_leaves_a_framed_value_alone(self) -> None:
        assert unframe("plain", prefixed(7), None) == Framed(prefixed(7), None)


class TestHeader:
    def test_a_guid_header_leaves_the_value_bare(self) -> None:
        guid = uuid.uuid4()
        header = [(VALUE_SCHEMA_ID_HEADER, b"\x01" + guid.bytes)]
        assert unframe("auto", PAYLOAD, header) == Framed(PAYLOAD, SchemaRef(guid=str(guid)))

    def test_an_id_header_is_read_too(self) -> None:
        header = {VALUE_SCHEMA_ID_HEADER: b"\x00\x00\x00\x01\x00"}
        assert unframe("confluent", PAYLOAD, header) == Framed(PAYLOAD, SchemaRef(schema_id=256))

    @pytest.mark.parametrize("header", [b"", b"\x02" + bytes(16), b"\x01" + bytes(15), b"\x00\x00"])
    def test_a_malformed_header_is_a_bad_frame(self, header: bytes) -> None:
        result = unframe("auto", PAYLOAD, [(VALUE_SCHEMA_ID_HEADER, header)])
        assert isinstance(result, BadFrame)
        assert VALUE_SCHEMA_ID_HEADER in result.message

    def test_other_headers_are_ignored(self) -> None:
        assert unframe("auto", PAYLOAD, [("trace", b"x")]) == Framed(PAYLOAD, None)


class TestModes:
    def test_confluent_refuses_an_unframed_value(self) -> None:
        result = unframe("confluent", PAYLOAD, None)
        assert isinstance(result, BadFrame)
        assert "byte 123" in result.message

    def test_confluent_refuses_an_empty_value(self) -> None:
        assert isinstance(unframe("confluent", None, None), BadFrame)

    def test_auto_passes_plain_json_through(self) -> None:
        assert unframe("auto", PAYLOAD, None) == Framed(PAYLOAD, None)

    def test_rules_by_topic_and_regex_with_a_default(self) -> None:
        rules = parse_framing("confluent, raw=plain, ^legacy-.*=auto")
        assert (rules.mode_for("raw"), rules.mode_for("legacy-1"), rules.mode_for("other")) == (
            "plain",
            "auto",
            "confluent",
        )
        assert rules.uses_registry

    def test_the_default_is_plain(self) -> None:
        rules = parse_framing("")
        assert rules.mode_for("any") == "plain"
        assert not rules.uses_registry

    @pytest.mark.parametrize("text", ["avro", "t=json", "=auto", "^(=auto"])
    def test_bad_settings_are_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match=r"framing|topic=mode|regex"):
            parse_framing(text)
