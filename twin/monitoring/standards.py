"""The standards the twin checks, as data: rules, seasons, climate zones, per-site overrides.

:data:`DEFAULT_RULES` is the table of DESIGN.md ("Standards the twin checks"). A site may
change any field of a rule, switch it off, or add its own, from a TOML file or the
``rule_overrides`` table (docs/monitoring.md gives the format)::

    >>> rule = DEFAULT_RULES["classroom_co2_high"].with_params({"max": 1200, "min_duration": "15m"})
    >>> rule.bounds(SUMMER), rule.min_duration
    ((None, 1200.0), datetime.timedelta(seconds=900))

Seasons: temperature and humidity bounds differ in summer and winter (GB/T 18883-2022).
Which months are winter depends on the site's building climate zone (GB 50176).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from twin import durations
from twin.metrics import BY_NAME

SUMMER, WINTER = "summer", "winter"
SEVERITIES = ("info", "warning", "critical")
#: Aggregates over the devices of a room, per minute: mean, min (background level),
#: uniformity (min / mean over devices, needs two), density (sum over devices / room area).
AGGREGATES = ("mean", "min", "uniformity", "density")
#: When a rule applies: ``occupied`` (lessons on school days) or ``empty`` (school hours, room occupancy 0).
HOURS = ("occupied", "empty")

#: China's building climate zones (GB 50176-2016) -> the months that count as winter.
CLIMATE_ZONES: dict[str, frozenset[int]] = {
    "severe_cold": frozenset({10, 11, 12, 1, 2, 3, 4}),
    "cold": frozenset({11, 12, 1, 2, 3}),
    "hot_summer_cold_winter": frozenset({12, 1, 2}),
    "hot_summer_warm_winter": frozenset({12, 1, 2}),
    "mild": frozenset({12, 1, 2}),
}
#: For sites without a zone: the seed network is in Shenzhen.
DEFAULT_CLIMATE_ZONE = "hot_summer_warm_winter"


class RulesError(ValueError):
    """A rules file or override that cannot be used (one line, for the CLI)."""


def season(day: date, climate_zone: str | None = None) -> str:
    """``"winter"`` in the winter months of the site's climate zone, else ``"summer"``.

    >>> season(date(2026, 11, 23), "cold"), season(date(2026, 11, 23), None)
    ('winter', 'summer')
    """
    zone = climate_zone or DEFAULT_CLIMATE_ZONE
    if zone not in CLIMATE_ZONES:
        raise RulesError(f"unknown climate zone {zone!r} (one of {', '.join(CLIMATE_ZONES)})")
    return WINTER if day.month in CLIMATE_ZONES[zone] else SUMMER


def parse_duration(value: Any) -> timedelta:
    """``"10m"``, ``"1h"``, ``"30s"`` or a number of seconds (:func:`twin.durations.parse_duration`)."""
    try:
        return durations.parse_duration(value)
    except durations.DurationError as exc:
        raise RulesError(str(exc)) from None


def outside(value: float, low: float | None, high: float | None, margin: float = 0.0) -> bool:
    """The one comparison every judgement makes: below ``low + margin`` or above ``high - margin``.

    >>> outside(17.5, 16.0, 24.0), outside(17.5, 22.0, 28.0), outside(16.2, 16.0, 24.0, margin=0.5)
    (False, True, True)
    """
    return (low is not None and value < low + margin) or (high is not None and value > high - margin)


@dataclass(frozen=True, slots=True)
class Rule:
    """One check: a metric's aggregate per room must stay within bounds.

    ``window``: ``None`` compares each minute; a duration compares the trailing mean over
    that span; ``"day"`` the mean since the start of the school day (daily-mean limits).
    Only minutes in ``hours`` count. A violation lasting ``min_duration`` raises an alarm
    (starting at the first violating minute); it clears at the first minute back inside the
    bounds by ``hysteresis``. Bounds are ``min``/``max``, or per season for temperature and humidity.
    """

    id: str
    metric: str
    standard: str
    min: float | None = None
    max: float | None = None
    seasonal: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    aggregate: str = "mean"
    window: timedelta | str | None = None
    min_duration: timedelta = timedelta(minutes=10)
    hysteresis: float = 0.0
    severity: str = "warning"
    uses: tuple[str, ...] = ("classroom",)
    kinds: tuple[str, ...] = ()  # only devices of these kinds (empty: all)
    hours: str = "occupied"
    enabled: bool = True
    description: str = ""

    def bounds(self, season_name: str) -> tuple[float | None, float | None]:
        """``(low, high)`` in this season (``None``: no bound on that side)."""
        if season_name in self.seasonal:
            return self.seasonal[season_name]
        return self.min, self.max

    def broken_by(self, value: float, season_name: str, margin: float = 0.0) -> bool:
        """Whether ``value`` lies outside this season's bounds (by ``margin`` inside them: the hysteresis)."""
        return outside(value, *self.bounds(season_name), margin)

    def with_params(self, params: Mapping[str, Any]) -> Rule:
        """A copy with the fields of an override applied and checked."""
        return build_rule({**_as_params(self), **params, "id": self.id})


def _as_params(rule: Rule) -> dict[str, Any]:
    return {f.name: getattr(rule, f.name) for f in fields(rule)}


_FIELDS = {f.name for f in fields(Rule)}


def build_rule(params: Mapping[str, Any]) -> Rule:
    """A validated rule from a mapping of fields (TOML or JSON values accepted)."""
    rid = params.get("id", "?")
    unknown = set(params) - _FIELDS
    if unknown:
        raise RulesError(f"rule {rid}: unknown field(s) {', '.join(sorted(unknown))}")
    p = dict(params)
    try:
        if p.get("metric") not in BY_NAME:
            raise RulesError(f"rule {rid}: unknown metric {p.get('metric')!r}")
        for key in ("min", "max", "hysteresis"):
            if p.get(key) is not None:
                p[key] = float(p[key])
        p["min_duration"] = parse_duration(p.get("min_duration", "10m"))
        window = p.get("window")
        if window not in (None, "", "day"):
            p["window"] = parse_duration(window)
        elif window == "":
            p["window"] = None
        p["seasonal"] = {str(s): (None if b[0] is None else float(b[0]), None if b[1] is None else float(b[1]))
                         for s, b in dict(p.get("seasonal") or {}).items()}
        p["uses"] = tuple(p.get("uses") or ("classroom",))
        p["kinds"] = tuple(p.get("kinds") or ())
    except (TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, RulesError):
            raise
        raise RulesError(f"rule {rid}: {exc}") from None
    if p.get("severity", "warning") not in SEVERITIES:
        raise RulesError(f"rule {rid}: severity must be one of {', '.join(SEVERITIES)}")
    if p.get("aggregate", "mean") not in AGGREGATES:
        raise RulesError(f"rule {rid}: aggregate must be one of {', '.join(AGGREGATES)}")
    if p.get("hours", "occupied") not in HOURS:
        raise RulesError(f"rule {rid}: hours must be one of {', '.join(HOURS)}")
    if p.get("min") is None and p.get("max") is None and not p["seasonal"]:
        raise RulesError(f"rule {rid}: give min, max or seasonal bounds")
    if not p.get("standard"):
        p["standard"] = "site rule"
    return Rule(**p)


_LUMINAIRES = ("luminaire", "blackboard_luminaire")
_TEACHING = ("classroom", "lab")

DEFAULT_RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("desk_illuminance_low", "illuminance", "GB 7793-2010", min=300, hysteresis=20, uses=_TEACHING,
         description="maintained average desk illuminance >= 300 lx"),
    Rule("desk_uniformity_low", "illuminance", "GB 7793-2010", min=0.7, aggregate="uniformity", hysteresis=0.03,
         uses=_TEACHING, description="desk illuminance uniformity (min/mean over the room's devices) >= 0.7"),
    Rule("blackboard_illuminance_low", "blackboard_illuminance", "GB 7793-2010", min=500, hysteresis=25,
         description="maintained average blackboard illuminance >= 500 lx"),
    Rule("blackboard_uniformity_low", "blackboard_illuminance", "GB 7793-2010", min=0.8, aggregate="uniformity",
         hysteresis=0.03, description="blackboard illuminance uniformity >= 0.8"),
    Rule("lighting_power_density_high", "power", "GB 7793-2010", max=11.0, aggregate="density", hysteresis=0.5,
         min_duration=timedelta(minutes=30), severity="info", kinds=_LUMINAIRES, uses=_TEACHING,
         description="lighting power density <= 11 W/m² (target 9 W/m²)"),
    Rule("classroom_co2_high", "co2", "GB/T 17226-2017", max=1500, window="day", hysteresis=50, severity="critical",
         description="daily mean CO2 in classrooms <= 0.15 % (1500 ppm)"),
    Rule("indoor_co2_high", "co2", "GB/T 18883-2022", max=1000, window="day", hysteresis=50,
         uses=("lab", "office"), description="daily mean CO2 indoors <= 0.10 % (1000 ppm)"),
    Rule("temperature_out_of_range", "temperature", "GB/T 18883-2022", hysteresis=0.5, uses=_TEACHING,
         seasonal={SUMMER: (22.0, 28.0), WINTER: (16.0, 24.0)},
         description="22-28 °C in summer, 16-24 °C in winter"),
    Rule("humidity_out_of_range", "humidity", "GB/T 18883-2022", hysteresis=2.0, severity="info", uses=_TEACHING,
         seasonal={SUMMER: (40.0, 80.0), WINTER: (30.0, 60.0)},
         description="40-80 %RH in summer, 30-60 %RH in winter"),
    Rule("pm25_high", "pm25", "GB/T 18883-2022", max=50, window="day", hysteresis=5, uses=_TEACHING,
         description="24 h mean PM2.5 <= 50 µg/m³ (mean over the school day)"),
    Rule("noise_background_high", "noise", "GB 50118-2010", max=45, aggregate="min", hysteresis=2,
         severity="info", hours="empty", min_duration=timedelta(minutes=15),
         description="background noise in an empty classroom <= 45 dB(A)"),
)}


def apply_overrides(rules: Mapping[str, Rule], overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Rule]:
    """Rules with overrides applied: change fields of known rules, add new ones (with ``metric``)."""
    out = dict(rules)
    for rid, params in overrides.items():
        if not isinstance(params, Mapping):
            raise RulesError(f"rule {rid}: expected a table of fields")
        out[rid] = out[rid].with_params(params) if rid in out else build_rule({**params, "id": rid})
    return out


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """What a rules file says: rule overrides for every site and per site, climate zones."""

    rules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sites: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def rules_for(self, site_id: str, db_overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Rule]:
        """Defaults, then the file's ``[rules]``, then ``[sites.<id>.rules]``, then the database's overrides."""
        rules = apply_overrides(DEFAULT_RULES, self.rules)
        rules = apply_overrides(rules, self.sites.get(site_id, {}).get("rules", {}))
        return apply_overrides(rules, db_overrides or {})

    def climate_zone(self, site_id: str, stored: str | None = None) -> str:
        """The file's zone for the site, else the stored one, else the default."""
        return self.sites.get(site_id, {}).get("climate_zone") or stored or DEFAULT_CLIMATE_ZONE


def load_config(path: Path | None) -> SiteConfig:
    """Read and check a rules file (TOML); no file: the defaults."""
    if path is None:
        return SiteConfig()
    try:
        doc = tomllib.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules file {path}: {exc}") from None
    unknown = set(doc) - {"rules", "sites"}
    if unknown:
        raise RulesError(f"rules file {path}: unknown section(s) {', '.join(sorted(unknown))} (use rules, sites)")
    config = SiteConfig(doc.get("rules", {}), doc.get("sites", {}))
    for site_id, site in config.sites.items():
        unknown = set(site) - {"rules", "climate_zone"}
        if unknown:
            raise RulesError(f"rules file {path}: sites.{site_id}: unknown key(s) {', '.join(sorted(unknown))}")
        season(date(2026, 1, 1), site.get("climate_zone"))
    for site_id in [*config.sites, "_check"]:
        config.rules_for(site_id)  # raise now, not in the middle of a run
    return config


def active_rules(rules: Iterable[Rule]) -> list[Rule]:
    return [r for r in rules if r.enabled]
