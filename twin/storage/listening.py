"""When the twin was listening: the ingest workers' heartbeats and the spells they make.

A device's silence is evidence against the device only while the twin could have heard
it. Each ingest worker beats every :data:`BEAT_EVERY_S` while its MQTT subscription is
acknowledged and the database answers (:class:`Heartbeat`); a beat within
:data:`SPELL_GAP` of the worker's last extends its current spell
(``ingest_listening``), a later one begins a new spell. The monitor reads the spells
(:func:`spells`) and judges offline devices only inside them (twin/monitoring/device_health.py).
Times are the database server's clock, the same for every worker host.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

import psycopg

from twin.database import connect, first_line

log = logging.getLogger(__name__)

#: How often a listening worker beats.
BEAT_EVERY_S = 5.0
#: A beat this close to the worker's last one extends its spell; a spell also counts as listening
#: for this long after its last beat (the next beat is due within it).
SPELL_GAP = timedelta(seconds=30)
#: The owner's loop must have said it is alive and listening this recently for a beat to be sent
#: (a loop stuck on a database that does not answer is not listening).
ALIVE_WITHIN_S = 15.0

Spell = tuple[datetime, datetime]


def beat(conn: psycopg.Connection, client_id: str, at: datetime | None = None) -> None:
    """Record that ``client_id`` is listening at ``at`` (default: the server's now)."""
    conn.execute(
        """WITH t AS (SELECT coalesce(%(at)s::timestamptz, now()) AS at),
                last AS (SELECT id FROM ingest_listening WHERE client_id = %(client)s
                         ORDER BY last_seen_at DESC LIMIT 1),
                extended AS (UPDATE ingest_listening l SET last_seen_at = greatest(l.last_seen_at, t.at) FROM t
                             WHERE l.id = (SELECT id FROM last) AND l.last_seen_at >= t.at - %(gap)s
                             RETURNING l.id)
           INSERT INTO ingest_listening (client_id, started_at, last_seen_at)
           SELECT %(client)s, t.at, t.at FROM t WHERE NOT EXISTS (SELECT 1 FROM extended)""",
        {"client": client_id, "at": at, "gap": SPELL_GAP})


def record(conn: psycopg.Connection, client_id: str, started_at: datetime, last_seen_at: datetime) -> None:
    """Record a whole spell (history imported from elsewhere, or a synthetic history in tests)."""
    conn.execute("INSERT INTO ingest_listening (client_id, started_at, last_seen_at) VALUES (%s, %s, %s)",
                 (client_id, started_at, last_seen_at))


def spells(conn: psycopg.Connection, since: datetime, until: datetime) -> list[Spell]:
    """Every worker's spells touching ``[since, until)``, each as ``(start, last beat + SPELL_GAP)``, by start.

    Overlapping spells of several workers are not merged here (see ``device_health.merge_spells``).
    """
    return [(a, b) for a, b in conn.execute(
        """SELECT started_at, last_seen_at + %(gap)s FROM ingest_listening
           WHERE last_seen_at + %(gap)s > %(since)s AND started_at < %(until)s ORDER BY started_at""",
        {"gap": SPELL_GAP, "since": since, "until": until}).fetchall()]


def last_heard(conn: psycopg.Connection) -> datetime | None:
    """Until when the newest spell of any worker counts as listening (``None``: no worker ever listened)."""
    row = conn.execute("SELECT max(last_seen_at) + %s FROM ingest_listening", (SPELL_GAP,)).fetchone()
    return row[0] if row else None


class Heartbeat:
    """Beats for ``client_id`` on its own thread and connection, so that ingest never waits for it.

    The owner calls :meth:`alive` from its loop with whether it is listening (subscription
    acknowledged); a beat is sent only when that was true within :data:`ALIVE_WITHIN_S`.
    A failed beat is logged and tried again at the next one; nothing is raised to the owner.
    """

    def __init__(self, database_url: str, client_id: str, *, every_s: float = BEAT_EVERY_S) -> None:
        self.database_url = database_url
        self.client_id = client_id
        self.every_s = every_s
        self._alive_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._failing = False

    def alive(self, listening: bool) -> None:
        """From the owner's loop: it runs, and is (or is not) listening."""
        self._alive_at = time.monotonic() if listening else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.client_id}-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (the spell ends at the last beat); waits briefly, never for a hung database."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _due(self) -> bool:
        alive_at = self._alive_at
        return alive_at is not None and time.monotonic() - alive_at <= ALIVE_WITHIN_S

    def _run(self) -> None:
        last = float("-inf")
        try:
            while not self._stop.wait(min(0.5, self.every_s)):
                if time.monotonic() - last >= self.every_s and self._due():
                    last = time.monotonic()
                    self._beat()
        finally:
            if self._conn is not None:
                self._conn.close()

    def _beat(self) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.database_url, autocommit=True)
            beat(self._conn, self.client_id)
            if self._failing:
                log.info("ingest heartbeat recorded again client=%s", self.client_id)
            self._failing = False
        except Exception as exc:  # the database may be down: the spell ends, ingest goes on
            if not self._failing:
                log.warning("ingest heartbeat failed client=%s (retried every %.0fs): %s", self.client_id,
                            self.every_s, first_line(exc))
            self._failing = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
