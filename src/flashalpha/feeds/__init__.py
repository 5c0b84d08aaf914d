"""Market-data feeds: each decodes its source at the edge and emits normalized `TickBatch`es.

`synthetic` (the daemon's default: a simulated option market), `replay` (a journal played back),
and the live adapters for Polygon and ThetaData. Every feed exposes ``async run(emit)``.
"""
