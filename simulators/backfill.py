"""Backfill: weeks of simulated history written straight into the twin's database.

The same device models as the live fleet, stepped on a coarse grid (15 minutes by
default) from ``end - span`` to ``end``; rows go to PostgreSQL through
:class:`twin.storage.readings.ReadingWriter` in COPY batches, which also keeps the
latest values and the 1-minute and 1-hour rollups, so the dashboard's charts have
history at once. Backfill bypasses MQTT and ingest: it is for history, not for testing the
pipeline.

With ``dense`` the last part of the span is stepped at ``dense_step`` (2 minutes), close enough
to the devices' reporting intervals for the monitor's device-health rules (a device is offline
after 3 missed reports, stuck after 20-60 minutes of one value). A fault profile
(:mod:`simulators.faults`) then makes some devices fall silent (``dropout``: 10-30 minutes) or
freeze one metric (``stuck``: 30-120 minutes) in that part, so the monitor's first pass over
the history finds device-health alarms besides the standards' (``campus-twin demo``).

    >>> parse_span("30d"), parse_span("12h"), parse_span("90m")
    (datetime.timedelta(days=30), datetime.timedelta(seconds=43200), datetime.timedelta(seconds=5400))
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simulators.faults import AFFECTED, STUCK_LIVE_MIN, STUCK_MINUTES, FaultProfile
from simulators.fleet import FleetSpec, build_fleet, load_spec, load_timetable
from simulators.models import SCHOOL_TZ
from simulators.timetable import Timetable
from twin.database import connect
from twin.durations import parse_duration
from twin.metrics import BY_NAME
from twin.storage.readings import ReadingWriter

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000
#: The step of the dense part of a backfill (``dense``): within every device's offline limit (3 reports).
DENSE_STEP = timedelta(minutes=2)
#: How long a backfilled dropout lasts, minutes.
DROPOUT_MINUTES = (10.0, 30.0)
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
    faults: int = 0


class _Faults:
    """Dropouts and stuck metrics of a backfill's dense part, at the profile's rates per sample."""

    def __init__(self, profile: FaultProfile, seed: int, step: timedelta) -> None:
        scale = step.total_seconds() / 60.0  # the profiles' rates are per message of a device reporting every minute
        self.dropout = profile.rates.get("dropout", 0.0) * scale
        self.stuck = profile.rates.get("stuck", 0.0) * scale
        self.rng = random.Random(f"backfill-faults/{seed}")
        self.silent: dict[int, datetime] = {}
        self.frozen: dict[int, tuple[str, float, datetime]] = {}
        self.injected: list[dict[str, object]] = []

    def apply(self, i: int, device_id: str, ts: datetime, metrics: dict[str, float]) -> dict[str, float] | None:
        """The metrics as stored (None: the device sent nothing)."""
        until = self.silent.get(i)
        if until is not None and ts < until:
            return None
        frozen = self.frozen.get(i)
        if frozen is not None and ts < frozen[2] and frozen[0] in metrics:
            return {**metrics, frozen[0]: frozen[1]}
        r = self.rng.random()
        if r < self.dropout:
            self.silent[i] = ts + timedelta(minutes=self.rng.uniform(*DROPOUT_MINUTES))
            self.injected.append({"kind": "dropout", "device": device_id, "ts": ts, "until": self.silent[i]})
            return None
        if r < self.dropout + self.stuck:
            live = [m for m in metrics if m in AFFECTED and metrics[m] > STUCK_LIVE_MIN.get(m, float("-inf"))]
            if live:
                metric = self.rng.choice(sorted(live))
                until = ts + timedelta(minutes=self.rng.uniform(*STUCK_MINUTES))
                self.frozen[i] = (metric, metrics[metric], until)
                self.injected.append({"kind": "stuck", "device": device_id, "ts": ts, "metric": metric,
                                      "until": until})
        return metrics


def backfill(database_url: str, span: timedelta, *, step: timedelta = timedelta(minutes=15), seed: int = 0,
             site_id: str | None = None, end: datetime | None = None, spec: FleetSpec | None = None,
             progress: Callable[[int, int], None] | None = None, timetable: Timetable | None = None,
             dense: timedelta = timedelta(0), dense_step: timedelta = DENSE_STEP,
             faults: FaultProfile | None = None) -> BackfillResult:
    """Simulate ``span`` of history ending at ``end`` (default now) and store it; ``progress(done, total)``.

    The last ``dense`` of it is stepped at ``dense_step``, with ``faults`` (dropout and stuck) injected there.
    ``timetable``: default the database's (the demo's shifted one when stored)."""
    t0 = time.monotonic()
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = end - span
    spec = spec or load_spec(database_url, site_id)
    tt = timetable or load_timetable(database_url)
    fleet = [d for d in build_fleet(spec, seed=seed, interval_s=step.total_seconds(), timetable=tt)
             if d.key is not None]
    dense = min(dense, span)
    step_s = step.total_seconds()
    coarse = int((span - dense).total_seconds() // step_s)
    grid = [start.timestamp() + k * step_s for k in range(coarse)]
    fine_from = start.timestamp() + coarse * step_s
    fine_s = dense_step.total_seconds()
    fine = int((end.timestamp() - fine_from) // fine_s) if dense else 0
    grid += [fine_from + k * fine_s for k in range(fine)]
    steps = max(1, len(grid))
    grid = grid or [start.timestamp()]
    injector = _Faults(faults, seed, dense_step) if faults is not None and faults.active and dense else None
    # a device's samples sit at its own phase within the step (they do not all report at once); the dense part
    # keeps the phase within its own step, so the switch from coarse to fine leaves no gap longer than a step
    phases = [d.model.rng.uniform(0, 1) for d in fleet]
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
        for k, t in enumerate(grid):
            if failure:
                break
            dt = step_s if k < coarse else fine_s
            for i, (dev, phase) in enumerate(zip(fleet, phases, strict=True)):
                ts = datetime.fromtimestamp(t + phase * dt, tz=UTC)
                if ts >= end:
                    continue
                metrics = dev.model.step(dt, ts.astimezone(SCHOOL_TZ))
                if injector is not None and k >= coarse:
                    stored = injector.apply(i, dev.device_id, ts, metrics)
                    if stored is None:
                        continue
                    metrics = stored
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
    result = BackfillResult(len(fleet), samples, rows_written, start, end, time.monotonic() - t0,
                            len(injector.injected) if injector is not None else 0)
    log.info("backfill done devices=%d samples=%d rows=%d seconds=%.1f", result.devices, result.samples,
             result.rows, result.seconds)
    return result
