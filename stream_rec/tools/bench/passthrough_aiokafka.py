"""Baseline 2: a bare aiokafka consume-and-forward loop, as a separate process.

The floor under any Python stream processor on this broker: batched fetches, one produce per
message, auto-committed offsets, nothing else. Run as
``python -m stream_rec.tools.bench.passthrough_aiokafka --broker B --in T --out T --group G``;
SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def forward(broker: str, in_topic: str, out_topic: str, group: str) -> None:
    """Forward every message of ``in_topic`` to ``out_topic`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    consumer = AIOKafkaConsumer(in_topic, bootstrap_servers=broker, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True)
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")  # as Faust's default
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            for records in batches.values():
                for record in records:
                    await producer.send(out_topic, record.value, key=record.key)
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    """Command line of the aiokafka baseline: forward every event of one topic to another."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--in", dest="in_topic", required=True)
    parser.add_argument("--out", dest="out_topic", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    asyncio.run(forward(args.broker, args.in_topic, args.out_topic, args.group))


if __name__ == "__main__":
    main()
