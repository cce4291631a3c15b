"""The API's work queue: arrival order, one job at a time per consumer, large bodies off the event loop, bounded."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from har_assets.serving.work_queue import INLINE_BODY_BYTES, WorkQueue

SMALL = b"x" * 10
LARGE = b"x" * (INLINE_BODY_BYTES + 1)
MAX_QUEUED = 64


def test_jobs_run_in_arrival_order_and_small_ones_on_the_loop() -> None:
    async def main() -> tuple[list[int], set[str]]:
        queue, order, threads = WorkQueue(1, MAX_QUEUED), [], set()

        def job(body: bytes, i: int) -> int:
            order.append(i)
            threads.add(threading.current_thread().name)
            return i * 10

        results = await asyncio.gather(*(queue.run(job, SMALL, i) for i in range(6)))
        assert results == [0, 10, 20, 30, 40, 50]
        await queue.close()
        return order, threads

    order, threads = asyncio.run(main())
    assert order == list(range(6))
    assert threads == {threading.main_thread().name}


def test_a_failing_job_fails_only_its_caller() -> None:
    async def main() -> list:
        queue = WorkQueue(1, MAX_QUEUED)

        def job(body: bytes, i: int) -> int:
            if i == 1:
                raise ValueError("bad body 1")
            return i

        out = await asyncio.gather(*(queue.run(job, body, i) for i, body in enumerate([SMALL, SMALL, LARGE, SMALL])),
                                   return_exceptions=True)
        await queue.close()
        return out

    out = asyncio.run(main())
    assert out[0] == 0 and out[2] == 2 and out[3] == 3
    assert isinstance(out[1], ValueError) and str(out[1]) == "bad body 1"


@pytest.mark.parametrize("concurrency", [1, 2])
def test_large_jobs_run_in_threads_at_most_concurrency_at_once_while_the_loop_answers(concurrency: int) -> None:
    async def main() -> tuple[int, int, set[str]]:
        queue, lock = WorkQueue(concurrency, MAX_QUEUED), threading.Lock()
        active, peak, threads = [0], [0], set()
        ticks = 0

        def job(body: bytes) -> None:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            threads.add(threading.current_thread().name)
            time.sleep(0.1)
            with lock:
                active[0] -= 1

        async def ticker() -> None:  # stands for /health and other requests
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        tick = asyncio.create_task(ticker())
        await asyncio.gather(*(queue.run(job, LARGE) for _ in range(4)))
        tick.cancel()
        await queue.close()
        return peak[0], ticks, threads

    peak, ticks, threads = asyncio.run(main())
    assert peak == concurrency
    assert threading.main_thread().name not in threads
    assert ticks >= 10  # the loop kept running while 4 jobs of 0.1 s each computed


def test_a_caller_that_went_away_is_skipped() -> None:
    async def main() -> list[str]:
        queue, ran = WorkQueue(1, MAX_QUEUED), []

        def job(body: bytes, name: str) -> str:
            if name == "first":
                time.sleep(0.05)
            ran.append(name)
            return name

        first = asyncio.create_task(queue.run(job, LARGE, "first"))
        gone = asyncio.create_task(queue.run(job, SMALL, "gone"))
        last = asyncio.create_task(queue.run(job, SMALL, "last"))
        await asyncio.sleep(0.01)
        gone.cancel()
        assert await first == "first" and await last == "last"
        await queue.close()
        return ran

    assert asyncio.run(main()) == ["first", "last"]


def test_a_full_queue_refuses_at_once_and_takes_jobs_again_once_it_drains() -> None:
    async def main() -> list[str]:
        queue, started, release = WorkQueue(1, 2), threading.Event(), threading.Event()

        def job(body: bytes, name: str) -> str:
            if name == "computing":
                started.set()
                release.wait()
            return name

        computing = asyncio.create_task(queue.run(job, LARGE, "computing"))
        assert await asyncio.to_thread(started.wait, 60)  # the consumer took it off the queue
        waiting = [asyncio.create_task(queue.run(job, SMALL, f"waiting {i}")) for i in range(2)]
        await asyncio.sleep(0)  # both are queued: the queue is full
        with pytest.raises(asyncio.QueueFull):
            await queue.run(job, SMALL, "one too many")
        release.set()
        done = [await computing, *[await task for task in waiting], await queue.run(job, SMALL, "after")]
        await queue.close()
        return done

    assert asyncio.run(main()) == ["computing", "waiting 0", "waiting 1", "after"]
