"""The dead-letter record format in one place: what the worker writes to the DLQ topic and how the tools read it back.

Header names follow Kafka Connect's `__connect.errors.*` where Connect has one (so existing DLQ tooling reads them);
the rest use the documented `mics.dlq.` prefix. Header values are UTF-8 text, whatever the API answered.

One concept per module: `headers` (the names, the escaping of reserved source headers, header text), `letter` (why
a message is dead-lettered), `full` (the full record: source bytes, escaped source headers, the worker's context),
`reduced` (the bounded form of a record too large for the DLQ) and `reader` (a DLQ record read back by the tools).
Writer and reader share `headers`, so a name or an escaping rule cannot drift between the two directions.
"""
