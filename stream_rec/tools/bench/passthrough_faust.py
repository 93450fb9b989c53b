"""Baseline 1: a bare Faust agent that forwards each event as one message.

The same ``create_app`` configuration as the real worker (broker, partitions, RocksDB store,
processing guarantee), no table and no work: what Faust itself costs per event. Run as
``python -m faust -A stream_rec.tools.bench.passthrough_faust worker``; the topics come from
``BENCH_IN_TOPIC`` / ``BENCH_OUT_TOPIC`` and the rest from ``STREAM_REC_*``.
"""

from __future__ import annotations

import os

from faust import StreamT

from stream_rec.app import create_app
from stream_rec.config import load_settings

settings = load_settings()
app = create_app(settings)
source = app.topic(os.environ["BENCH_IN_TOPIC"], key_serializer="raw", value_serializer="raw",
                   partitions=settings.partitions)
sink = app.topic(os.environ["BENCH_OUT_TOPIC"], key_serializer="raw", value_serializer="raw",
                 partitions=settings.partitions)


@app.agent(source)
async def forward(stream: StreamT) -> None:
    """One message out per message in, unchanged (the event carries its event_id)."""
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)
