"""The worker's flow control keeps events queued while flow runs, and drops them after a pause."""

from __future__ import annotations

import asyncio

from mode.utils.queues import FlowControlQueue

from stream_rec.worker.faust_compat import FlowControl


def _queue(flow: FlowControl) -> FlowControlQueue[int]:
    return FlowControlQueue(flow_control=flow, clear_on_resume=True)


def test_resuming_a_running_flow_keeps_queued_events() -> None:
    # The end of a rebalance resumes an already running flow after seeking: events fetched
    # since then are past the consumer's position and could never be fetched again.
    async def scenario() -> list[int]:
        flow = FlowControl()
        queue = _queue(flow)
        flow.resume()
        for offset in (8, 9, 10):
            queue.put_nowait(offset)
        flow.resume()
        return [queue.get_nowait() for _ in range(queue.qsize())]

    assert asyncio.run(scenario()) == [8, 9, 10]


def test_resuming_after_a_suspension_drops_events_of_the_old_assignment() -> None:
    async def scenario() -> int:
        flow = FlowControl()
        queue = _queue(flow)
        flow.resume()
        queue.put_nowait(1)
        flow.suspend()
        assert not flow.is_active()
        flow.resume()
        return queue.qsize()

    assert asyncio.run(scenario()) == 0


def test_producers_wait_while_suspended() -> None:
    async def scenario() -> tuple[bool, bool]:
        flow = FlowControl()
        flow.resume()
        flow.suspend()
        waiter = asyncio.ensure_future(flow.acquire())
        await asyncio.sleep(0.01)
        blocked = not waiter.done()
        flow.resume()
        await asyncio.wait_for(waiter, 1)
        return blocked, waiter.done()

    assert asyncio.run(scenario()) == (True, True)
