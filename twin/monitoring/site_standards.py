"""The one API that judges values: a site's rules on a given day, with its season and overrides.

Everything that says whether a value meets a standard asks a :class:`SiteStandards`: the
monitor (its rules and seasons feed the rule engine), lighting compliance and the KPIs,
the dashboard's floor-plan colours, legends and chart bands, and the monthly report. So
what the plan shows and what raises an alarm cannot disagree::

    >>> december = SiteStandards("hq", date(2026, 12, 14))     # winter in the default zone
    >>> december.judge("temperature", 17.5, "classroom").status
    'ok'
    >>> SiteStandards("hq", date(2026, 7, 6)).judge("temperature", 17.5, "classroom").status
    'warning'

A verdict's status is ``"ok"``, ``"none"`` (no rule judges this metric for this room use),
or the severity of the worst rule the value breaks (``info``, ``warning``, ``critical``):
the severity of the alarm the value would raise if it lasted. Only rules over one value
(aggregate ``mean`` or ``min``) judge single values; uniformity and power density need a
room's devices together and are judged by the rule engine and :mod:`twin.monitoring.lighting`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from twin.monitoring.standards import DEFAULT_RULES, SEVERITIES, Rule, SiteConfig, season
from twin.storage import monitoring
from twin.timetable import SCHOOL_TZ

OK = "ok"
NO_STANDARD = "none"
#: Statuses from best to worst (a room takes the worst of its values).
STATUSES = (NO_STANDARD, OK, *SEVERITIES)
#: Aggregates a single value can be judged by.
VALUE_AGGREGATES = ("mean", "min")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the standards say about a value (or a room's values): a status and the rules broken."""

    status: str
    broken: tuple[str, ...] = ()

    @property
    def meets(self) -> bool | None:
        """True when every judging rule is met, False when one is broken, None when none judges."""
        return None if self.status == NO_STANDARD else self.status == OK


@dataclass(frozen=True, slots=True)
class Band:
    """A rule's bounds on a day: the allowed ``[low, high]`` (None: open), for legends and chart bands."""

    rule: str
    metric: str
    low: float | None
    high: float | None
    severity: str
    standard: str
    uses: tuple[str, ...]
    season: str | None  # the season when the rule's bounds are seasonal


_NO_STANDARD = Verdict(NO_STANDARD)
#: How many verdicts a :class:`SiteStandards` keeps (then it starts again): a few storeys' values.
_VERDICTS_KEPT = 50_000


def _worst(statuses: list[str]) -> str:
    return max(statuses, key=STATUSES.index) if statuses else NO_STANDARD


@dataclass(frozen=True, slots=True)
class SiteStandards:
    """The rules of ``site_id`` on ``day``: defaults, rules file and stored overrides already applied."""

    site_id: str
    day: date
    climate_zone: str | None = None
    rules: Mapping[str, Rule] = field(default_factory=lambda: DEFAULT_RULES)
    #: What the lookups below found (the rules and the day never change): a floor plan judges every value
    #: of every room on each tick, and scanning the rule set each time cost more than the drawing.
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: Verdicts by (metric, value, use, occupied): a storey's latest values mostly stay the same between ticks.
    _verdicts: dict[tuple[str, float, str, bool | None], Verdict] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def season(self) -> str:
        found = self._memo.get("season")
        if found is None:
            found = self._memo["season"] = season(self.day, self.climate_zone)
        return found

    def season_of(self, day: date) -> str:
        """The season of another day at this site (the rule engine's ``season_of``)."""
        return season(day, self.climate_zone)

    def active(self) -> list[Rule]:
        return [r for r in self.rules.values() if r.enabled]

    def value_rules(self, metric: str, use: str | None = None, *, occupied: bool | None = None
                    ) -> tuple[Rule, ...]:
        """The enabled rules judging single values of ``metric`` (for ``use``; every use when None).

        ``occupied`` (True, False or None: unknown) drops rules whose hours exclude it:
        ``occupied`` rules in an empty room, ``empty`` rules (background noise) in an occupied one.
        """
        key = (metric, use, occupied)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = tuple(
                r for r in self.active() if r.metric == metric and r.aggregate in VALUE_AGGREGATES and not r.kinds
                and (use is None or use in r.uses)
                and not (occupied is False and r.hours == "occupied") and not (occupied is True and r.hours == "empty"))
        return found

    def judge(self, metric: str, value: float, use: str, *, occupied: bool | None = None) -> Verdict:
        """The verdict of one value of ``metric`` in a room of ``use``."""
        key = (metric, value, use, occupied)
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) >= _VERDICTS_KEPT:
                self._verdicts.clear()
            verdict = self._verdicts[key] = self._judge(metric, value, use, occupied)
        return verdict

    def _judge(self, metric: str, value: float, use: str, occupied: bool | None) -> Verdict:
        rules = self.value_rules(metric, use, occupied=occupied)
        if not rules:
            return _NO_STANDARD
        season_now = self.season
        broken = [r for r in rules if r.broken_by(value, season_now)]
        return Verdict(_worst([OK, *(r.severity for r in broken)]), tuple(r.id for r in broken))

    def judge_room(self, values: Mapping[str, float], use: str) -> Verdict:
        """The worst verdict over a room's latest values, each rule in its hours.

        The room is occupied when its ``occupancy`` is above 0: rules of occupied hours (desk
        illuminance, temperature, CO2...) judge only then, the background-noise rule only when it
        is 0, as the rule engine counts them. Without an occupancy value every rule judges.
        """
        occupancy = values.get("occupancy")
        occupied = None if occupancy is None or math.isnan(occupancy) else occupancy > 0
        statuses, broken = [], []
        for metric, value in values.items():
            if value is None or math.isnan(value):
                continue
            verdict = self.judge(metric, value, use, occupied=occupied)
            statuses.append(verdict.status)
            broken += verdict.broken
        return Verdict(_worst(statuses), tuple(broken))

    def bands(self, metric: str, use: str | None = None) -> tuple[Band, ...]:
        """The bounds of the rules judging ``metric`` (for ``use``; every use when None), in rule order."""
        return tuple(Band(r.id, r.metric, *r.bounds(self.season), r.severity, r.standard, r.uses,
                          self.season if self.season in r.seasonal else None)
                     for r in self.value_rules(metric, use))


def today(now: datetime | None = None) -> date:
    """The school-local date (what a standard's season is taken from)."""
    return (now or datetime.now(UTC)).astimezone(SCHOOL_TZ).date()


def standards_for(conn: psycopg.Connection, site_id: str, day: date | None = None, *,
                  config: SiteConfig | None = None, stored_zone: Any = ...) -> SiteStandards:
    """A stored site's standards on ``day`` (today when None): defaults, ``config`` (a rules file), then the
    site's stored overrides; the climate zone of the rules file, else the stored one, else the default.

    ``stored_zone``: the site's stored climate zone when the caller has read it already.
    Raises :class:`twin.monitoring.standards.RulesError` for a stored override that cannot be used.
    """
    config = config or SiteConfig()
    if stored_zone is ...:
        stored = monitoring.site_rules(conn, site_id)
        stored_zone, overrides = stored.climate_zone, stored.overrides
    else:
        overrides = monitoring.rule_overrides(conn, site_id)
    return SiteStandards(site_id, day or today(), config.climate_zone(site_id, stored_zone),
                         config.rules_for(site_id, overrides))

