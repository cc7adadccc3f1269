"""Running jobs: a worker process's procrastinate workers (an index lane and the rest), their
heartbeats, the recovery of jobs whose worker stopped responding, and riding out a lost database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import procrastinate
from procrastinate import exceptions as procrastinate_errors
from procrastinate import worker as procrastinate_worker

from catalog.database import Catalog
from catalog.errors import DatabaseUnavailableError
from catalog.jobs import DATABASE_LOST, HEARTBEAT_S, RENDER_TASK, STALLED_WORKER_TIMEOUT_S, is_index_queue
from catalog.metrics import DATABASE_RECONNECTS, STALLED_RECOVERIES

logger = logging.getLogger(__name__)


async def _recover(app: procrastinate.App, job: Any) -> None:
    """Give a stalled job's work to a new job, and end the stalled one as aborted.

    The stalled job's worker may be paused or cut off rather than dead: should it
    come back, whatever it reports lands on its own ended job, never on the one
    doing the work now (which a retry of the same job would be). When the same
    work already waits in the queue (a restarted watcher queues every file it
    finds), that job does it.
    """
    try:
        await app.job_manager.finish_job(job, status=procrastinate.jobs.Status.ABORTED, delete_job=False)
    except procrastinate_errors.ConnectorException:
        if await _job_status(app, job.id) == "doing":
            raise
        return  # another worker recovered it first
    task = app.configure_task(
        job.task_name, queue=job.queue, lock=job.lock, queueing_lock=job.queueing_lock, priority=job.priority
    )
    try:
        new_id = await task.defer_async(**job.task_kwargs)
    except procrastinate_errors.AlreadyEnqueued:
        logger.warning(
            "job %s belonged to a worker that stopped responding; the same work is queued already",
            job.id,
            extra={"job_id": job.id},
        )
        return
    if job.task_name == RENDER_TASK:
        await app.connector.execute_query_async(
            "UPDATE renditions SET job_id = %(new)s WHERE job_id = %(old)s", new=new_id, old=job.id
        )
    STALLED_RECOVERIES.inc()
    logger.warning(
        "job %s belonged to a worker that stopped responding: queued again as job %s",
        job.id,
        new_id,
        extra={"job_id": job.id},
    )


async def _job_status(app: procrastinate.App, job_id: int) -> str | None:
    row = await app.connector.execute_query_one_async(
        "SELECT status::text AS status FROM procrastinate_jobs WHERE id = %(id)s", id=job_id
    )
    return None if row is None else str(row["status"])


class _Worker(procrastinate_worker.Worker):
    """procrastinate's worker, told that a job may have been handed to another worker meanwhile.

    A worker paused or cut off past the stall timeout finds, when it comes back, its
    job ended as aborted and the work queued again as another job (``_recover``):
    its late outcome is dropped with a line that says so, not raised as an error.
    """

    async def _persist_job_status(self, job: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await super()._persist_job_status(job, *args, **kwargs)
        except procrastinate_errors.ConnectorException as exc:
            try:
                status = await _job_status(self.app, job.id)
            except DATABASE_LOST:
                # Left running in the queue: once this worker's heartbeat is missed, another takes it over.
                logger.warning("job %s: its outcome could not be recorded (%s)", job.id, _reason(exc))
                return
            if status != "aborted":
                raise
            logger.warning(
                "job %s was handed to another worker while this one was away; its outcome here is dropped", job.id
            )


async def _keep_alive(app: procrastinate.App, worker: procrastinate_worker.Worker, every_s: float, host: str) -> None:
    """Send ``worker``'s heartbeat for as long as it is registered (and, once, say which
    queues it listens to).

    procrastinate stops its own heartbeat as its shutdown begins, before it waits
    for the running job: a worker finishing its render after a graceful stop would
    look dead, and its job would be taken over and rendered a second time.
    """
    announced = None
    while True:
        await asyncio.sleep(every_s)
        if worker.worker_id is not None:
            with contextlib.suppress(*DATABASE_LOST):  # the watchdog deals with a lost database
                await app.job_manager.update_heartbeat(worker.worker_id)
                if announced != worker.worker_id:
                    await _announce(app, worker.worker_id, host, list(worker.queues or ()))
                    announced = worker.worker_id


async def _announce(app: procrastinate.App, worker_id: int, host: str, queues: list[str]) -> None:
    await app.connector.execute_query_async(
        "DELETE FROM worker_queues w WHERE NOT EXISTS (SELECT 1 FROM procrastinate_workers p WHERE p.id = w.worker_id)"
    )
    await app.connector.execute_query_async(
        "INSERT INTO worker_queues (worker_id, host, queues) VALUES (%(id)s, %(host)s, %(queues)s)"
        " ON CONFLICT (worker_id) DO NOTHING",
        id=worker_id,
        host=host,
        queues=queues,
    )


async def _render_alive(app: procrastinate.App, job: Any) -> bool:
    """Whether ``job`` is a render whose rendition is still leased: its render renews the lease
    whatever its worker's heartbeat says (another worker's heartbeat may simply be slower
    than this one's stall timeout), so the lease, not the heartbeat, says it is alive."""
    if job.task_name != RENDER_TASK or "rendition_id" not in job.task_kwargs:
        return False
    row = await app.connector.execute_query_one_async(
        "SELECT count(*) AS live FROM renditions WHERE id = %(id)s AND status = 'running' AND lease_expires_at > now()",
        id=job.task_kwargs["rendition_id"],
    )
    return bool(row["live"])


async def _retry_stalled(app: procrastinate.App, stall_timeout_s: float) -> None:
    """Hand the jobs of workers that stopped sending heartbeats back to the queue, for as long as the worker runs."""
    while True:
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stall_timeout_s):
                if not await _render_alive(app, job):
                    await _recover(app, job)
        except procrastinate_errors.ConnectorException as exc:
            # The database may be restarting: recovery waits for it, it never gives up.
            logger.warning("stalled-job recovery could not reach the database: %s", exc)
        await asyncio.sleep(max(0.5, stall_timeout_s / 2))


# How long a worker keeps waiting for a lost database before it gives up, and
# how often it looks (seconds): long enough for a server restart or a failover.
DATABASE_PATIENCE_S = 300.0
_RECONNECT_EVERY_S = 2.0
_PING_EVERY_S = 2.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A round that failed sooner than this after it began never reached the database.
_STILL_DOWN_S = 10.0


@dataclass
class _Outage:
    """When the database was first missed in the outage going on, shared by the watchdog and the restarts."""

    since: float | None = None

    def begin(self, now: float) -> float:
        if self.since is None:
            self.since = now
        return self.since


async def _watch_database(catalog: Catalog, pinger: ThreadPoolExecutor, outage: _Outage, patience_s: float) -> None:
    """Raise ``DATABASE_LOST`` once the database is gone and, when it is the embedded server,
    back again (or ``patience_s`` has passed): the worker then starts over on fresh connections.

    The embedded server is brought back before the worker winds down: its shutdown
    waits for the running job, whose last writes need the database.
    """
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(_PING_EVERY_S)
        try:
            await loop.run_in_executor(pinger, catalog.ping)
            outage.since = None
        except DATABASE_LOST:
            since = outage.begin(time.monotonic())
            while catalog.embedded is not None and time.monotonic() - since < patience_s:
                with contextlib.suppress(Exception):
                    await loop.run_in_executor(pinger, catalog.revive)
                    await loop.run_in_executor(pinger, catalog.ping)
                    break
                await asyncio.sleep(_RECONNECT_EVERY_S)
            raise


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (a graceful stop: the running job ends first); a second
    one ends the process at once, as the signal would unhandled: the job is then the
    next worker's to take over, as after a crash.

    procrastinate's own handlers cover only its fetch loop, not its wind-down nor our
    reconnects, where a SIGTERM would kill the worker outright.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    loop = asyncio.get_running_loop()

    def stop_now(sig: signal.Signals) -> None:
        logger.warning("stopping now; the running job is taken over by the next worker")
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)

    def request_stop(sig: signal.Signals) -> None:
        for each in _STOP_SIGNALS:
            loop.add_signal_handler(each, stop_now, each)
        logger.info("stopping once the running job has ended (again to stop at once)")
        stop.set()

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, request_stop, sig)
    try:
        yield
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def _lanes(
    queues: list[str] | None, concurrency: int, index_concurrency: int | None
) -> list[tuple[list[str] | None, int]]:
    """The procrastinate workers one process runs, as (queues, jobs at once): index jobs apart
    when they have a concurrency of their own, so that indexing several files at once never
    means rendering several at once (a render holds the GPU, or every core, by itself)."""
    if index_concurrency is None or queues is None:
        return [(queues, concurrency)]
    index = [q for q in queues if is_index_queue(q)]
    rest = [q for q in queues if not is_index_queue(q)]
    return [(lane, n) for lane, n in ((index, index_concurrency), (rest, concurrency)) if lane]


async def _run_all(runners: list[_Worker]) -> None:
    """Run every worker; when one fails the others stop (gracefully), and its error is raised as is."""
    if len(runners) == 1:
        await runners[0].run()
        return
    try:
        async with asyncio.TaskGroup() as group:
            for runner in runners:
                group.create_task(runner.run())
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


def run_worker(
    app: procrastinate.App,
    *,
    queues: list[str] | None,
    concurrency: int = 1,
    index_concurrency: int | None = None,
    name: str = "worker",
    wait: bool = True,
    stall_timeout_s: float = STALLED_WORKER_TIMEOUT_S,
    catalog: Catalog | None = None,
    patience_s: float = DATABASE_PATIENCE_S,
    host: str = "",
) -> None:
    """Run jobs until stopped (SIGINT/SIGTERM), or until the queues are empty when not ``wait``.

    Alongside the worker runs the recovery of stalled jobs, so a worker killed
    mid-job (power, OOM killer, SIGKILL) costs a retry, not the job. With
    ``catalog`` the worker looks every few seconds whether its database is
    there; when it is gone it waits for it, starting the embedded server again
    when it is footage's own, and carries on; after ``patience_s`` seconds
    without it, ``DatabaseUnavailableError``. ``index_concurrency``: files indexed at once,
    apart from the ``concurrency`` of the other jobs (see ``_lanes``).
    """

    # The watchdog's own thread: jobs fill the default executor (a render holds a
    # thread for minutes), and a ping queued behind them would notice the loss late.
    pinger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="footage-ping")
    outage = _Outage()

    async def once(stop: asyncio.Event) -> None:
        async with app.open_async():
            app.perform_import_paths()
            runners = [
                _Worker(
                    app=app,
                    queues=lane,
                    concurrency=at_once,
                    name=name,
                    wait=wait,
                    install_signal_handlers=False,  # ours cover the restarts and the wind-down too
                    stalled_worker_timeout=stall_timeout_s,
                    # _keep_alive sends the heartbeat that counts; procrastinate's own only doubles it.
                    update_heartbeat_interval=STALLED_WORKER_TIMEOUT_S / 6,
                )
                for lane, at_once in _lanes(queues, concurrency, index_concurrency)
            ]
            worker = asyncio.create_task(_run_all(runners))
            alive = [asyncio.create_task(_keep_alive(app, runner, HEARTBEAT_S, host)) for runner in runners]
            helpers = [asyncio.create_task(_retry_stalled(app, stall_timeout_s)), asyncio.create_task(stop.wait())]
            if catalog is not None:
                helpers.append(asyncio.create_task(_watch_database(catalog, pinger, outage, patience_s)))
            try:
                done, _ = await asyncio.wait([worker, *helpers], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # the worker's end, a stop, or the database lost
                if worker in done and wait and not stop.is_set():
                    # procrastinate stops its worker, without an error, when a side task fails: its
                    # LISTEN connection does so first when the database goes, before our ping
                    # notices. Unasked, a waiting worker never ends: that is an outage.
                    raise procrastinate_errors.ConnectorException("the worker's connection to the database failed")
            finally:
                for task in (worker, *helpers):
                    task.cancel()  # the worker's cancel is its graceful stop: the running job ends first
                # The heartbeat goes on until the worker has ended, its running job with it.
                for task in (worker, *helpers, *alive):
                    with contextlib.suppress(asyncio.CancelledError, *DATABASE_LOST):
                        await task
                    if task is worker:
                        for beat in alive:
                            beat.cancel()

    async def main() -> None:
        stop = asyncio.Event()
        with _stop_on_signals(stop):
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await once(stop)
                    return
                except DATABASE_LOST as exc:
                    now = time.monotonic()
                    if now - started > _STILL_DOWN_S and outage.since is not None and outage.since < started:
                        outage.since = None  # the worker ran fine in between: a new outage
                    if now - outage.begin(now) > patience_s:
                        raise DatabaseUnavailableError(
                            f"the catalog database has been unreachable for {patience_s:.0f} s: {_reason(exc)}"
                        ) from exc
                    logger.warning("the catalog database is unreachable (%s); trying again", _reason(exc))
                    DATABASE_RECONNECTS.inc()
                    if catalog is not None:
                        with contextlib.suppress(Exception):  # still down: the next round tries again
                            await asyncio.to_thread(catalog.revive)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), _RECONNECT_EVERY_S)

    try:
        asyncio.run(main())
    finally:
        pinger.shutdown(wait=False)


def _reason(exc: BaseException) -> str:
    """The first line of the deepest cause: what the driver said."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
