"""Outdoor weather and the sun: pure functions of time, place and seed.

The default climate is Shenzhen's (humid subtropical, monsoon): monthly normals of
temperature, relative humidity, cloud cover and PM2.5, interpolated by day of year,
with a diurnal cycle and a day-to-day anomaly drawn from the seed (the same day gives
the same weather in every run with that seed).

The sun follows the NOAA approximations (declination, equation of time, hour angle):

    >>> from datetime import UTC, datetime
    >>> elevation, azimuth = sun_position(datetime(2026, 12, 21, 4, 30, tzinfo=UTC), 22.54, 114.06)
    >>> round(elevation), round(azimuth)  # Shenzhen, local noon at the December solstice: low, due south
    (44, 183)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Climate:
    """Monthly normals (January first) and the mean diurnal half-range of temperature."""

    temperature_c: tuple[float, ...]
    humidity_pct: tuple[float, ...]
    cloud: tuple[float, ...]
    pm25_ugm3: tuple[float, ...]
    diurnal_half_range_c: float = 3.2


#: Shenzhen normals (temperature and humidity from the Shenzhen Meteorological Bureau 1991-2020;
#: cloud and PM2.5 rounded typical values).
SHENZHEN = Climate(
    temperature_c=(15.4, 16.5, 19.2, 23.0, 26.3, 28.2, 28.9, 28.6, 27.5, 25.0, 21.1, 17.0),
    humidity_pct=(70, 77, 81, 83, 83, 83, 80, 81, 77, 71, 69, 66),
    cloud=(0.55, 0.70, 0.75, 0.75, 0.70, 0.75, 0.60, 0.60, 0.55, 0.40, 0.40, 0.45),
    pm25_ugm3=(32, 30, 27, 22, 17, 12, 11, 13, 18, 24, 28, 33),
)

DEFAULT_LATITUDE, DEFAULT_LONGITUDE = 22.5431, 114.0579
#: Windows face south unless the BIM says otherwise (azimuth, degrees clockwise from north).
DEFAULT_WINDOW_AZIMUTH = 180.0


@dataclass(frozen=True, slots=True)
class Weather:
    temperature_c: float
    humidity_pct: float
    cloud: float  # 0 clear .. 1 overcast
    pm25_ugm3: float


def _monthly(values: tuple[float, ...], day: date) -> float:
    """Linear interpolation of monthly normals (each at mid-month) for ``day``."""
    pos = (day.timetuple().tm_yday - 15.0) / (365.0 / 12.0)  # 0 at mid-January
    i = math.floor(pos)
    frac = pos - i
    return values[i % 12] * (1 - frac) + values[(i + 1) % 12] * frac


@lru_cache(maxsize=4096)
def _anomaly(seed: int, day: date) -> tuple[float, float, float]:
    """Day-to-day anomaly: temperature (°C), cloud (±), PM2.5 factor; smooth over a few days."""
    def draw(d: int) -> tuple[float, float, float]:
        r = random.Random(f"weather/{seed}/{d}")
        return r.gauss(0, 1.6), r.gauss(0, 0.2), r.lognormvariate(0, 0.35)

    o = day.toordinal()
    days = [draw(o - k) for k in range(3)]  # a 3-day memory makes spells, not white noise
    w = (0.5, 0.3, 0.2)
    return tuple(sum(wi * d[j] for wi, d in zip(w, days, strict=True)) for j in range(3))  # type: ignore[return-value]


def outdoor(local: datetime, *, seed: int = 0, climate: Climate = SHENZHEN) -> Weather:
    """Outdoor weather at a local time: seasonal normal + diurnal cycle + the day's anomaly.

    Computed once per minute (weather does not change faster), which keeps 10,000 devices cheap.
    """
    offset = local.utcoffset() or timedelta(0)
    return _outdoor_minute(int(local.timestamp() // 60), int(offset.total_seconds()), seed, climate)


@lru_cache(maxsize=8192)
def _outdoor_minute(minute: int, offset_s: int, seed: int, climate: Climate) -> Weather:
    local = datetime.fromtimestamp(minute * 60, timezone(timedelta(seconds=offset_s)))
    day = local.date()
    d_temp, d_cloud, pm_factor = _anomaly(seed, day)
    hour = local.hour + local.minute / 60.0 + local.second / 3600.0
    diurnal = math.cos(2 * math.pi * (hour - 14.5) / 24.0)  # warmest mid-afternoon, coolest near dawn
    temperature = _monthly(climate.temperature_c, day) + d_temp + climate.diurnal_half_range_c * diurnal
    humidity = _monthly(climate.humidity_pct, day) - 9.0 * diurnal - 1.5 * d_temp
    cloud = min(1.0, max(0.0, _monthly(climate.cloud, day) + d_cloud))
    traffic = 1.0 + 0.25 * math.exp(-((hour - 8.0) ** 2) / 2) + 0.2 * math.exp(-((hour - 18.5) ** 2) / 2)
    pm25 = _monthly(climate.pm25_ugm3, day) * pm_factor * traffic
    return Weather(round(temperature, 3), min(99.0, max(20.0, humidity)), cloud, pm25)


def sun_position(when: datetime, latitude: float, longitude: float) -> tuple[float, float]:
    """Solar elevation and azimuth (degrees; azimuth clockwise from north) at an aware datetime."""
    utc = when.astimezone(UTC)
    day_of_year = utc.timetuple().tm_yday
    hour = utc.hour + utc.minute / 60.0 + utc.second / 3600.0
    g = 2 * math.pi / 365.0 * (day_of_year - 1 + (hour - 12) / 24.0)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                       - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    true_solar_min = hour * 60.0 + eqtime + 4.0 * longitude
    hour_angle = math.radians(true_solar_min / 4.0 - 180.0)
    lat = math.radians(latitude)
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    zenith = math.acos(max(-1.0, min(1.0, cos_zenith)))
    elevation = 90.0 - math.degrees(zenith)
    # Azimuth from north, clockwise.
    azimuth = math.degrees(math.atan2(math.sin(hour_angle),
                                      math.cos(hour_angle) * math.sin(lat) - math.tan(decl) * math.cos(lat))) + 180.0
    return elevation, azimuth % 360.0


@lru_cache(maxsize=65536)
def _sun_minute(minute: int, latitude: float, longitude: float) -> tuple[float, float]:
    return sun_position(datetime.fromtimestamp(minute * 60 + 30, UTC), latitude, longitude)


#: Share of outdoor horizontal illuminance reaching the average desk (daylight factor).
DAYLIGHT_FACTOR = 0.02
#: Share of direct sun on the facade that reaches the desks (glazing, blinds drawn in strong sun).
DIRECT_SHARE = 0.004


def outdoor_illuminance(elevation_deg: float, cloud: float) -> tuple[float, float]:
    """Direct-normal and diffuse-horizontal illuminance outdoors (lx) for a sun elevation and cloud cover."""
    if elevation_deg <= 0:
        return 0.0, 0.0
    s = math.sin(math.radians(elevation_deg))
    air_mass = 1.0 / max(s, 0.05)
    direct_normal = 110_000.0 * 0.7 ** (air_mass ** 0.678) * (1.0 - cloud) ** 1.5
    diffuse = 16_000.0 * s ** 0.6 * (1.0 + 0.4 * cloud) * (1.0 - 0.5 * cloud ** 3)
    return direct_normal, diffuse


def desk_daylight(when: datetime, *, latitude: float = DEFAULT_LATITUDE, longitude: float = DEFAULT_LONGITUDE,
                  window_azimuth: float = DEFAULT_WINDOW_AZIMUTH, cloud: float = 0.5,
                  position_factor: float = 1.0) -> float:
    """Daylight on a classroom desk (lx): sky through the window plus the sun when it faces the facade.

    ``position_factor`` is 1 for the room average, more near the window, less deep inside.
    """
    elevation, azimuth = _sun_minute(int(when.timestamp() // 60), round(latitude, 2), round(longitude, 2))
    if elevation <= -0.5:
        return 0.0
    direct_normal, diffuse = outdoor_illuminance(max(elevation, 0.0), cloud)
    horizontal = diffuse + direct_normal * math.sin(math.radians(max(elevation, 0.0)))
    cos_incidence = math.cos(math.radians(elevation)) * math.cos(math.radians(azimuth - window_azimuth))
    facade_direct = direct_normal * max(0.0, cos_incidence)
    return position_factor * (DAYLIGHT_FACTOR * horizontal + DIRECT_SHARE * facade_direct)
