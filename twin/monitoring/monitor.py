"""The monitor: evaluates rules and device health over stored rollups, persists alarms, notifies, runs the KPI job.

:meth:`Monitor.evaluate` is deterministic over historical data (an explicit range and
``now``); :meth:`Monitor.run_once` is one cycle of the continuous ``campus-twin monitor``, at the
time of the monitor's clock (:meth:`Monitor.now`: wall-clock, the data's time for replays and
accelerated simulation, or an explicit start):
re-evaluate today (and any earlier day with a room alarm still open), check device
health over the recent past, check battery and sequence gaps, refresh today's KPIs (and
any of the last days not stored yet), and wake the notifier, whose own worker thread
delivers the recorded events (:mod:`twin.monitoring.notify`): a cycle never waits on a receiver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from twin.database import connect
from twin.monitoring import device_health as health
from twin.monitoring import drift
from twin.monitoring.kpi_job import compute_day, day_bounds
from twin.monitoring.notify import Notifier
from twin.monitoring.rule_engine import Episode, evaluate_room
from twin.monitoring.site_standards import SiteStandards, standards_for
from twin.monitoring.standards import Rule, RulesError, SiteConfig
from twin.storage import alarms, kpis, listening, monitoring
from twin.storage import drift as drift_store
from twin.storage.timetables import stored_timetable
from twin.timetable import SCHOOL_TZ, Timetable

log = logging.getLogger(__name__)

#: Device health is evaluated over this much of the recent past in each cycle.
HEALTH_WINDOW = timedelta(hours=3)
#: Rooms alarms still open are re-evaluated back to at most this many days.
MAX_REEVALUATE_DAYS = 7
#: How often the continuous monitor refreshes today's KPIs.
KPI_EVERY = timedelta(minutes=15)
HEALTH_RULES = ("device_offline", "device_stuck", "device_out_of_range", drift.RULE)
#: Clock offsets are judged only once ingest has listened this long (a backlog drained after an outage
#: is late delivery, not a device's clock).
CLOCK_SETTLE = timedelta(minutes=2)
CLOCKS = ("wall", "data")


@dataclass
class Counts:
    raised: int = 0
    cleared: int = 0
    updated: int = 0

    def add(self, other: Mapping[str, int]) -> None:
        self.raised += other.get("raised", 0)
        self.cleared += other.get("cleared", 0)
        self.updated += other.get("updated", 0)


@dataclass
class Monitor:
    """Evaluates every site of the database at ``url``; ``config`` comes from a rules file (or defaults)."""

    url: str
    config: SiteConfig = field(default_factory=SiteConfig)
    notifier: Notifier | None = None
    #: The school timetable; None: the database's, read at every cycle (the real one unless ``campus-twin demo``
    #: stored its shifted one, :mod:`twin.storage.timetables`).
    timetable: Timetable | None = None
    kpi_every: timedelta = KPI_EVERY
    totals: Counts = field(default_factory=Counts)
    #: Set to stop: a cycle in progress ends after the site or KPI day it is on.
    stop: threading.Event = field(default_factory=threading.Event)
    #: Set once :meth:`run` is cycling (its notifier started): the monitor as a service is ready.
    started: threading.Event = field(default_factory=threading.Event)
    #: ``"wall"`` (now), ``"data"`` (the time the stored readings have reached: replays, ``simulate
    #: --speed``), or a datetime the clock starts from and runs on at wall speed.
    clock: str | datetime = "wall"
    _kpis_at: datetime | None = None
    _tt: Timetable = field(default_factory=Timetable)
    _clock_origin: tuple[datetime, float] | None = None
    #: Whether the last cycle found no ingest listening (said once per such spell, see :meth:`_say_if_deaf`).
    _deaf: bool = False
    #: The first cycle's time: an ingest started with the monitor has a spell's gap to send its first beat.
    _first_cycle: datetime | None = None

    # -- configuration --------------------------------------------------------------------------------
    def standards(self, conn: psycopg.Connection, site_id: str, stored_zone: Any = ...) -> SiteStandards:
        """The site's standards (:func:`twin.monitoring.site_standards.standards_for` with this monitor's rules file)."""
        return standards_for(conn, site_id, config=self.config, stored_zone=stored_zone)

    def rules(self, conn: psycopg.Connection, site_id: str) -> dict[str, Rule]:
        """The site's rules: defaults, the rules file, then the database's overrides."""
        return dict(self.standards(conn, site_id).rules)

    def _rules_or_defaults(self, conn: psycopg.Connection, site_id: str) -> dict[str, Rule]:
        """:meth:`rules`, or the defaults and rules file when the site's stored overrides are broken
        (for the KPIs: one school's bad override must not stop the network's figures)."""
        if not site_id:
            return self.config.rules_for(site_id)
        try:
            return self.rules(conn, site_id)
        except RulesError as exc:
            log.error("monitor: site %s: stored rule overrides ignored for the KPIs: %s", site_id, exc)
            return self.config.rules_for(site_id)

    def season_of(self, site_id: str, stored_zone: str | None) -> Any:
        return SiteStandards(site_id, date.today(), self.config.climate_zone(site_id, stored_zone)).season_of

    # -- evaluation --------------------------------------------------------------------------------------
    def evaluate(self, conn: psycopg.Connection, site_id: str, start: datetime, end: datetime, *,
                 now: datetime | None = None) -> Counts:
        """Rules on every school day touching ``[start, end)`` and device health over it; store the alarms."""
        now = now or datetime.now(UTC)
        self._tt = self.timetable or stored_timetable(conn)
        zone = dict(monitoring.sites(conn)).get(site_id)
        counts = Counts()
        counts.add(self._evaluate_rules(conn, site_id, start, end, now, zone))
        counts.add(self._evaluate_health(conn, site_id, start, min(end, now), now))
        self.totals.add(counts.__dict__)
        return counts

    def evaluate_rules(self, conn: psycopg.Connection, site_id: str, start: datetime, end: datetime, *,
                       now: datetime) -> Counts:
        """The standards' rules only, over every school day touching ``[start, end)`` (history written at once:
        a backfill's coarse steps say nothing of device health)."""
        self._tt = self.timetable or stored_timetable(conn)
        counts = Counts()
        counts.add(self._evaluate_rules(conn, site_id, start, end, now, dict(monitoring.sites(conn)).get(site_id)))
        self.totals.add(counts.__dict__)
        return counts

    # -- the clock ---------------------------------------------------------------------------------------
    def now(self, conn: psycopg.Connection | None = None) -> datetime:
        """The monitor's present: wall-clock, the data's time (wall-clock while there is none), or the
        explicit start plus the wall time elapsed since the first call."""
        wall = datetime.now(UTC)
        if self.clock == "wall":
            return wall
        if self.clock == "data":
            if conn is None:
                with connect(self.url) as c:
                    found = monitoring.data_time(c)
            else:
                found = monitoring.data_time(conn)
            return found or wall
        assert isinstance(self.clock, datetime)
        if self._clock_origin is None:
            self._clock_origin = (self.clock, time.monotonic())
        start, mono = self._clock_origin
        return start + timedelta(seconds=time.monotonic() - mono)

    @property
    def live(self) -> bool:
        """On the wall clock: offline is judged on what ingest heard, clocks against receive time, silence
        only while ingest listened. Otherwise (replays, simulated time) on the readings' own times."""
        return self.clock == "wall"

    def _evaluate_rules(self, conn: psycopg.Connection, site_id: str, start: datetime, end: datetime,
                        now: datetime, zone: str | None) -> dict[str, int]:
        standards = self.standards(conn, site_id, zone)
        every_rule = standards.rules
        rules = standards.active()
        metrics = sorted({r.metric for r in rules} | {"occupancy"})
        rooms = monitoring.rooms(conn, site_id)
        tt = self._tt
        first = tt.school_date(start.astimezone(SCHOOL_TZ))
        last = tt.school_date((end - timedelta(microseconds=1)).astimezone(SCHOOL_TZ))
        episodes: list[Episode] = []
        day = first
        while day <= last:
            if tt.school_day(day):
                # every rule's hours lie within the school day: read only those minutes
                lo, hi = tt.day_hours(day)
                hi = min(hi, now)
                data = monitoring.room_minutes(conn, site_id, metrics, lo, hi) if hi > lo else {}
                for room in rooms:
                    if room.room_id in data:
                        episodes += evaluate_room(rules, room, data[room.room_id], now=now, timetable=tt,
                                                  season_of=standards.season_of)
            day += timedelta(days=1)
        # a shifted (demo) school day may reach into the calendar day before or after
        lo_day = min(day_bounds(first)[0], tt.day_hours(first)[0])
        hi_day = max(day_bounds(last)[1], tt.day_hours(last)[1])
        # Every rule of the site, switched off ones too: their open alarms end (nothing explains
        # them any more), and no later than now.
        return alarms.reconcile(conn, site_id, episodes, rules=list(every_rule), start=lo_day,
                                end=min(hi_day, now), standards={r.id: r.standard for r in rules}, now=now)

    def _evaluate_health(self, conn: psycopg.Connection, site_id: str, start: datetime, horizon: datetime,
                         now: datetime, *, heard: bool = False) -> dict[str, int]:
        """Offline (on the minutes heard with ``heard``, else the readings' minutes), stuck, out of range."""
        episodes: list[Episode] = []
        offline_since = alarms.open_alarm_starts(conn, site_id, "device_offline")
        devices: list[tuple[monitoring.DeviceActivity, datetime | None]] = []
        for dev in monitoring.device_activity(conn, site_id, start, horizon, heard=heard):
            if dev.kind in health.REPORTING_INTERVAL:
                before = dev.before
                if before is None and dev.device in offline_since:
                    # Back after an outage longer than the look-back (a weekend): the open alarm says
                    # when it was last seen, so the episode is the same one and ends where it should.
                    before = health.last_seen_before(offline_since[dev.device], dev.kind)
                devices.append((dev, before))
        # Silence counts only while the twin listened (docs/monitoring.md): its spells since the
        # earliest last report that an episode can start from.
        since = min([start, *(before for _, before in devices if before is not None)])
        spells = listening.spells(conn, since, max(now, horizon)) if self.live else None
        for dev, before in devices:
            episodes += health.offline_episodes(dev.device, dev.kind, dev.buckets, before=before,
                                                after=dev.after, now=now, listening=spells,
                                                open_since=offline_since.get(dev.device), last=dev.last,
                                                spans=dev.spans)
        stuck = monitoring.metric_minutes(conn, site_id, list(health.STUCK_AFTER), start, horizon)
        episodes += health.per_device(ep for (dev_key, kind, metric), minutes in stuck.items()
                                      for ep in health.stuck_episodes(dev_key, metric, minutes, kind=kind))
        window = horizon - drift.WINDOW
        episodes += health.per_device(drift.drift_episodes(
            drift_store.neighbour_means(conn, site_id, list(drift.BOUNDS), window, horizon), start=window,
            end=horizon, open_since=alarms.open_alarm_starts(conn, site_id, drift.RULE),
            quiet=drift.quiet_hours(self._tt)))
        letters = monitoring.out_of_range_letters(conn, site_id, start - health.OUT_OF_RANGE_QUIET, horizon,
                                                  device_time=not heard)
        for dev_key, times in letters.items():
            episodes += health.out_of_range_episodes(dev_key, times, now=now)
        return alarms.reconcile(conn, site_id, episodes, rules=HEALTH_RULES, start=start, end=horizon,
                                continuing_from=start, now=now)

    def check_vitals(self, conn: psycopg.Connection, site_id: str, now: datetime, *,
                     clocks: bool = False) -> Counts:
        """Battery, sequence gaps and (with ``clocks``: on the wall clock, ingest settled) clock offsets as
        the devices report them now (their status has no history)."""
        counts = Counts()
        for v in monitoring.device_vitals(conn, site_id):
            dev = v["device"]
            if clocks:
                self._check_clock(conn, site_id, dev, v["clock_offset_s"], now, counts)
            battery = alarms.open_alarm(conn, site_id, "device_low_battery", dev)
            low = health.battery_low(v["battery_pct"], alarm_open=battery is not None)
            if low and battery is None:
                alarms.raise_alarm(conn, site_id, "device_low_battery", health.SEVERITY["device_low_battery"],
                                   f"battery at {v['battery_pct']:.0f}%", device_key=dev, at=now,
                                   value=v["battery_pct"], known_at=now)
                counts.raised += 1
            elif low is False and battery is not None:
                counts.cleared += alarms.clear(conn, battery[0], now)
            gaps, seen, last_gap_at = v["seq_gaps"], v["seq_gaps_seen"] or 0, v["last_gap_at"]
            gap_alarm = alarms.open_alarm(conn, site_id, "device_seq_gaps", dev)
            if gaps > seen:
                last_gap_at = now
                if gap_alarm is None:
                    alarms.raise_alarm(conn, site_id, "device_seq_gaps", health.SEVERITY["device_seq_gaps"],
                                       f"{gaps - seen} message(s) missing (sequence gaps)", device_key=dev, at=now,
                                       value=gaps - seen, known_at=now)
                    counts.raised += 1
                else:
                    conn.execute("UPDATE alarms SET message = %s, value = coalesce(value, 0) + %s WHERE id = %s",
                                 (f"{gaps - seen} more message(s) missing (sequence gaps)", gaps - seen, gap_alarm[0]))
                    counts.updated += 1
            elif gap_alarm is not None and last_gap_at is not None and now - last_gap_at >= health.SEQ_GAP_QUIET:
                counts.cleared += alarms.clear(conn, gap_alarm[0], now)
            if gaps != v["seq_gaps_seen"] or last_gap_at != v["last_gap_at"]:
                monitoring.remember_seq_gaps(conn, dev, gaps, last_gap_at)
        return counts

    @staticmethod
    def _check_clock(conn: psycopg.Connection, site_id: str, dev: int, offset_s: float | None, now: datetime,
                     counts: Counts) -> None:
        """``device_clock_skew`` (info): the device's newest reading is dated far from when it was stored."""
        skew = alarms.open_alarm(conn, site_id, "device_clock_skew", dev)
        off = health.clock_off(offset_s, alarm_open=skew is not None)
        if off and skew is None:
            assert offset_s is not None
            alarms.raise_alarm(conn, site_id, "device_clock_skew", health.SEVERITY["device_clock_skew"],
                               health.clock_message(offset_s), device_key=dev, at=now, value=offset_s, known_at=now)
            counts.raised += 1
        elif off and skew is not None:
            assert offset_s is not None
            conn.execute("UPDATE alarms SET message = %s, value = %s WHERE id = %s",
                         (health.clock_message(offset_s), offset_s, skew[0]))
        elif off is False and skew is not None:
            counts.cleared += alarms.clear(conn, skew[0], now)

    # -- the continuous cycle ---------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> Counts:
        """One cycle over every site at ``now`` (default: the monitor's clock); commits per site.

        On the live wall clock (no ``now`` given) offline is judged on the minutes ingest heard each
        device and device clocks are checked; with an explicit ``now`` or another clock, on the
        readings' own times."""
        counts = Counts()
        with connect(self.url) as conn:
            heard = now is None and self.live
            now = now or self.now(conn)
            self._tt = self.timetable or stored_timetable(conn)
            today = now.astimezone(SCHOOL_TZ).date()
            if not monitoring.try_lock_monitor(conn):
                log.warning("another monitor is running on this database: this cycle is skipped")
                return counts
            if self.live:
                self._say_if_deaf(listening.last_heard(conn), now)
            clocks = heard and self._settled(conn, now)
            for site_id, zone in monitoring.sites(conn):
                if self.stop.is_set():
                    return counts
                try:
                    counts.add(self._site_cycle(conn, site_id, zone, today, now, heard=heard,
                                                clocks=clocks).__dict__)
                    conn.commit()
                except (RulesError, psycopg.DataError) as exc:  # one school's bad overrides stop only that school
                    conn.rollback()
                    log.error("monitor: site %s skipped this cycle: %s", site_id, str(exc).splitlines()[0])
            if self._kpis_at is None or now - self._kpis_at >= self.kpi_every or now < self._kpis_at:
                self.daily_kpis(conn, today, now=now)
                if heard:
                    monitoring.prune_heard(conn, now)
                self._kpis_at = now
            conn.commit()
        if self.notifier is not None:  # the cycle only records events; the notifier's worker delivers them
            self.notifier.start(self.url)
        self.totals.add(counts.__dict__)
        return counts

    @staticmethod
    def _settled(conn: psycopg.Connection, now: datetime) -> bool:
        """Whether ingest has been listening for :data:`CLOCK_SETTLE` without a break (what it stores
        now is live, not a backlog)."""
        spells = health.merge_spells(listening.spells(conn, now - CLOCK_SETTLE - listening.SPELL_GAP, now))
        return any(a <= now - CLOCK_SETTLE and b >= now - listening.SPELL_GAP for a, b in spells)

    def _say_if_deaf(self, heard: datetime | None, now: datetime) -> None:
        """Warn once when no ingest worker listens: silence is then nobody's fault, and offline alarms wait.
        Not judged before a beat was due since the first cycle (ingest and monitor often start together)."""
        self._first_cycle = self._first_cycle or now
        if now - self._first_cycle < listening.SPELL_GAP:
            return
        deaf = heard is None or heard < now
        if deaf and not self._deaf:
            log.warning("monitor: no ingest worker is listening (last heard %s); device_offline is judged only "
                        "while one listens: is campus-twin ingest running?",
                        heard.astimezone(UTC).isoformat(timespec="seconds") if heard else "never")
        elif not deaf and self._deaf:
            log.info("monitor: ingest is listening again")
        self._deaf = deaf

    def _site_cycle(self, conn: psycopg.Connection, site_id: str, zone: str | None, today: date,
                    now: datetime, *, heard: bool = False, clocks: bool = False) -> Counts:
        """Rules since today (or the oldest open rule alarm, bounded), device health, vitals of one site."""
        counts = Counts()
        start = day_bounds(today)[0]
        oldest = monitoring.earliest_open_rule_alarm(conn, site_id)
        if oldest is not None:
            floor = day_bounds(today - timedelta(days=MAX_REEVALUATE_DAYS))[0]
            start = min(start, max(floor, day_bounds(oldest.astimezone(SCHOOL_TZ).date())[0]))
        counts.add(self._evaluate_rules(conn, site_id, start, now, now, zone))
        counts.add(self._evaluate_health(conn, site_id, now - HEALTH_WINDOW, now, now, heard=heard))
        counts.add(self.check_vitals(conn, site_id, now, clocks=clocks).__dict__)
        return counts

    def daily_kpis(self, conn: psycopg.Connection, today: date, *, now: datetime, back: int = 7) -> list[date]:
        """Today's KPIs, and those of the last ``back`` days not stored yet; return the days computed."""
        present = kpis.days_complete(conn, kpis.NETWORK, today - timedelta(days=back), today,
                                     lambda d: day_bounds(d)[1])
        days = [today - timedelta(days=i) for i in range(back, 0, -1) if today - timedelta(days=i) not in present]
        for day in [*days, today]:
            if self.stop.is_set():
                break
            compute_day(conn, day, rules_for=lambda s: self._rules_or_defaults(conn, s), now=now,
                        timetable=self._tt)
            conn.commit()
        return [*days, today]

    def run(self, stop: threading.Event, interval_s: float = 60.0) -> None:
        """Cycle until ``stop`` is set; a failing cycle is logged and retried at the next interval.

        The notifier's worker thread runs alongside from the start and is stopped (and the
        broker connection closed) when the cycles stop."""
        self.stop = stop
        if self.notifier is not None:
            self.notifier.start(self.url)
        self.started.set()
        while not stop.is_set():
            try:
                c = self.run_once()
                log.info("monitor cycle raised=%d cleared=%d updated=%d", c.raised, c.cleared, c.updated)
            except Exception as exc:  # a bad cycle (database down, a bad override) must not stop the service
                log.warning("monitor cycle failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc)
                            else "")
            stop.wait(interval_s)
        if self.notifier is not None:
            self.notifier.close()

