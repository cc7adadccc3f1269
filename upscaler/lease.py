"""Keeping a render's lease on its rendition while it renders, and letting go when it is lost.

A render that cannot show the catalog it is alive (paused, cut off from the
database, or simply slower than its lease) may be taken over by another
worker. From then on it must not record anything or publish its file: the
keeper notices at its next renewal that reaches the database and stops the
render. The epoch, not the clock, decides: a render that was cut off while
nobody took its rendition renews and goes on once the database is back.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from catalog import Catalog
from catalog import renditions as records
from catalog.jobs import DATABASE_LOST
from catalog.renditions import Lease, LeaseLostError

logger = logging.getLogger(__name__)

# Renewals per lease: two can fail (a database restart) before the lease runs out.
_RENEWALS_PER_LEASE = 3


class LeaseKeeper:
    """Renews ``lease`` on a thread of its own while the render runs.

    When the database says the lease is lost (another render took the rendition)
    it sets ``lost`` and ``cancel``, so the render stops at its next frame.
    """

    def __init__(self, catalog: Catalog, lease: Lease, cancel: threading.Event) -> None:
        self.catalog, self.lease, self.cancel = catalog, lease, cancel
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.rendition_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def confirm(self) -> None:
        """Renew now, before something only the holder may do (publishing the file); LeaseLostError if not held."""
        if self.lost.is_set() or not self._renew():
            self._lose()
            raise LeaseLostError(
                f"rendition {self.lease.rendition_id} was taken over by another worker; "
                "this render's output was discarded"
            )

    def _renew(self) -> bool:
        with self.catalog.session() as session:
            return records.renew(session, self.lease)

    def _run(self) -> None:
        every = self.lease.seconds / _RENEWALS_PER_LEASE
        unreachable = False
        while not self._stop.wait(every):
            try:
                held = self._renew()
            except DATABASE_LOST as exc:
                if not unreachable:  # once an outage: the worker's own watchdog reports it too
                    logger.warning("rendition %s: cannot renew the render's lease: %s", self.lease.rendition_id, exc)
                unreachable = True
                continue
            unreachable = False
            if not held:
                self._lose()
                return

    def _lose(self) -> None:
        if not self.lost.is_set():
            logger.warning(
                "rendition %s: this render lost its lease (another worker may have taken it over); stopping",
                self.lease.rendition_id,
            )
        self.lost.set()
        self.cancel.set()
