"""A minimal Faust app built exactly like stream_rec.app (create_app + RocksDB table).

Run by test_faust_table_recovery.py as `python -m faust -A counter_app worker`; the topics
come from the environment so each test run has its own.
"""

import os

from stream_rec.app import create_app
from stream_rec.config import load_settings

app = create_app(load_settings())
counts = app.Table("counts", default=int)
source = app.topic(os.environ["COUNTER_IN"], key_type=str, value_type=str)
sink = app.topic(os.environ["COUNTER_OUT"], key_type=str, value_serializer="json")


@app.agent(source)
async def count(stream):  # type: ignore[no-untyped-def]
    async for key, _value in stream.items():
        counts[key] += 1
        await sink.send(key=key, value={"key": key, "count": counts[key]})
