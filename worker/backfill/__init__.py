"""`mics-worker backfill`: replay history into mediarithmics through document imports, not one request per event.

One module per concept: `source` (a topic range or NDJSON files), `lines` (the documented per-line formats),
`batching` (records grouped per datamart and document type, bounded by size and count), `client` (document imports
and executions over HTTP), `executions` (each batch uploaded once and followed to its end), `checkpoint` (resume,
no double-send), `deadletters` (the worker's DLQ record format), `report`, `runner` (the loop),
`command` (the sub-command). See docs/backfill.md.
"""
