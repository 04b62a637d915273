"""Backfill: weeks of simulated history written straight into the twin's database.

The same device models as the live fleet, stepped on a coarse grid (15 minutes by
default) from ``end - span`` to ``end``; rows go to PostgreSQL through
:class:`twin.storage.readings.ReadingWriter` in COPY batches, which also keeps the
latest values and the 1-minute and 1-hour rollups, so the dashboard's charts have
history at once. Backfill bypasses MQTT and ingest (and so fault injection): it is for
history, not for testing the pipeline.

    >>> parse_span("30d"), parse_span("12h"), parse_span("90m")
    (datetime.timedelta(days=30), datetime.timedelta(seconds=43200), datetime.timedelta(seconds=5400))
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simulators.fleet import FleetSpec, build_fleet, load_spec
from simulators.models import SCHOOL_TZ
from twin.database import connect
from twin.durations import parse_duration
from twin.metrics import BY_NAME
from twin.storage.readings import ReadingWriter

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000
Row = tuple[datetime, int, int, float]


def parse_span(text: str) -> timedelta:
    """``"30d"``, ``"2w"``, ``"12h"``, ``"90m"``, ``"45s"`` -> timedelta; ValueError unless a positive duration."""
    return parse_duration(text, positive=True)


@dataclass(frozen=True, slots=True)
class BackfillResult:
    devices: int
    samples: int
    rows: int
    start: datetime
    end: datetime
    seconds: float


def backfill(database_url: str, span: timedelta, *, step: timedelta = timedelta(minutes=15), seed: int = 0,
             site_id: str | None = None, end: datetime | None = None, spec: FleetSpec | None = None,
             progress: Callable[[int, int], None] | None = None) -> BackfillResult:
    """Simulate ``span`` of history ending at ``end`` (default now) and store it; ``progress(done, total)``."""
    t0 = time.monotonic()
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = end - span
    spec = spec or load_spec(database_url, site_id)
    fleet = [d for d in build_fleet(spec, seed=seed, interval_s=step.total_seconds()) if d.key is not None]
    step_s = step.total_seconds()
    steps = max(1, int(span.total_seconds() // step_s))
    phases = [d.model.rng.uniform(0, step_s) for d in fleet]
    metric_ids = {name: m.metric_id for name, m in BY_NAME.items()}
    samples = 0
    written = [0]
    batches: queue.Queue[tuple[list[Row], int] | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def write_batches() -> None:  # the database works while the next batch is simulated
        conn = connect(database_url, autocommit=True)
        try:
            writer = ReadingWriter(conn, live=False)  # history: heard by nobody, no clock to judge
            while (item := batches.get()) is not None:
                rows, done = item
                with conn.transaction():
                    written[0] += writer.write(rows)
                if progress is not None:
                    progress(done, steps)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            failure.append(exc)
            while batches.get() is not None:  # let the producer finish
                pass
        finally:
            conn.close()

    thread = threading.Thread(target=write_batches, name="backfill-writer")
    thread.start()
    try:
        batch: list[Row] = []
        base = start.timestamp()
        for k in range(steps):
            if failure:
                break
            for dev, phase in zip(fleet, phases, strict=True):
                ts = datetime.fromtimestamp(base + k * step_s + phase, tz=UTC)
                metrics = dev.model.step(step_s, ts.astimezone(SCHOOL_TZ))
                samples += 1
                key = dev.key
                for name, value in metrics.items():
                    batch.append((ts, key, metric_ids[name], value))  # type: ignore[arg-type]
            if len(batch) >= BATCH_ROWS or k == steps - 1:
                batches.put((batch, k + 1))
                batch = []
    finally:
        batches.put(None)
        thread.join()
    if failure:
        raise failure[0]
    rows_written = written[0]
    result = BackfillResult(len(fleet), samples, rows_written, start, end, time.monotonic() - t0)
    log.info("backfill done devices=%d samples=%d rows=%d seconds=%.1f", result.devices, result.samples,
             result.rows, result.seconds)
    return result
