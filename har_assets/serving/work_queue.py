"""Predict work of one worker process, computed one job at a time (or `concurrency` at a time) in arrival order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

INLINE_BODY_BYTES = 64 * 1024  # jobs on bodies up to this size run on the event loop (a few ms of work at most)


class WorkQueue:
    """A FIFO of jobs and `concurrency` consumers.

    A small job (body ≤ INLINE_BODY_BYTES: one or a few windows) runs on the event loop itself, which saves the
    thread hop and the GIL hand-over between the loop and a worker thread (on 2 cores, 8 clients of one window:
    426 -> 530 req/s). After each job the consumer yields, so the loop reads the requests that arrived meanwhile
    and queues them behind the waiting ones: every request waits its turn, none a second round. (Computing in
    each request's own task instead, two of 8 connections repeatedly waited two rounds, p99 twice the p95: a
    request that yields once on its way goes behind every task already ready.) A larger job runs in a worker
    thread while the loop keeps answering /health and reading bodies; it still occupies its consumer, so at most
    `concurrency` jobs compute at once, which also bounds a worker's memory. At most `max_queued` jobs wait.
    """

    def __init__(self, concurrency: int, max_queued: int) -> None:
        self.concurrency = concurrency
        self.max_queued = max_queued
        self._queue: asyncio.Queue[tuple[Callable[..., Any], tuple[Any, ...], bool, asyncio.Future]] | None = None
        self._consumers: list[asyncio.Task] = []

    async def run(self, job: Callable[..., Any], body: bytes, *args: Any) -> Any:
        """job(body, *args) when its turn comes; its result or its exception. asyncio.QueueFull at once when
        `max_queued` jobs already wait."""
        if self._queue is None:
            self._queue = asyncio.Queue(self.max_queued)
            self._consumers = [asyncio.create_task(self._consume(self._queue)) for _ in range(self.concurrency)]
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, (body, *args), len(body) <= INLINE_BODY_BYTES, done))
        return await done

    async def close(self) -> None:
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._queue, self._consumers = None, []

    @staticmethod
    async def _consume(queue: asyncio.Queue) -> None:
        while True:
            job, args, inline, done = await queue.get()
            if done.cancelled():  # the client went away while it waited
                continue
            try:
                result = job(*args) if inline else await run_in_threadpool(job, *args)
            except Exception as exc:
                if not done.cancelled():
                    done.set_exception(exc)
            else:
                if not done.cancelled():
                    done.set_result(result)
            await asyncio.sleep(0)  # let the loop queue what arrived meanwhile before the next job
