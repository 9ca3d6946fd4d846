"""The reduced dead-letter record: what is written instead when the DLQ refuses a record as too large.

Its size is bounded by construction whatever the source was: value and key cut to their first bytes, the original
headers dropped when they are large, and `mics.dlq.reduced` saying what was cut from what size. The source position
headers say where the whole record still is.
"""

from __future__ import annotations

from worker.dlq_format.full import OutgoingRecord
from worker.dlq_format.headers import REDUCED_HEADER, TRUNCATED_HEADER, is_context_header

__all__ = ["REDUCED_HEADERS_BYTES", "REDUCED_KEY_BYTES", "REDUCED_VALUE_BYTES", "reduced_record"]

REDUCED_VALUE_BYTES = 1024
REDUCED_KEY_BYTES = 1024
REDUCED_HEADERS_BYTES = 4096


def reduced_record(record: OutgoingRecord) -> OutgoingRecord:
    """The bounded form of a record the DLQ refused as too large: at most ~8 KiB whatever the source was.

    Value and key keep their first bytes, the source headers are kept only while small, and the context headers
    (bounded text) stay whole; `mics.dlq.reduced` lists each cut part with its original size.
    """
    context = [(name, data) for name, data in record.headers if is_context_header(name)]
    originals = [(name, data) for name, data in record.headers if not is_context_header(name)]
    cuts: list[str] = []
    value, key = record.value, record.key
    if value is not None and len(value) > REDUCED_VALUE_BYTES:
        cuts.append(f"value={len(value)}")
        context.append((TRUNCATED_HEADER, str(len(value)).encode()))
        value = value[:REDUCED_VALUE_BYTES]
    if key is not None and len(key) > REDUCED_KEY_BYTES:
        cuts.append(f"key={len(key)}")
        key = key[:REDUCED_KEY_BYTES]
    header_bytes = sum(len(name) + len(data or b"") for name, data in originals)
    if header_bytes > REDUCED_HEADERS_BYTES:
        cuts.append(f"headers={len(originals)}/{header_bytes}")
        originals = []
    context.append((REDUCED_HEADER, ";".join(cuts).encode() or b"none"))
    return OutgoingRecord(key, value, [*originals, *context], reduced=True)
