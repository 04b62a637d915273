"""Device models: state plus a pure ``step(dt, local)`` that advances it and returns metrics.

``step`` touches nothing but the model's own state and its random generator, so a model
is unit-testable on its own and a run is reproducible for a seed. Integrations are
exact for piecewise-constant inputs (exponential approach to a steady state), so the
same model serves 30-second live steps and 10-minute backfill steps.

- :class:`EnvSensor`: occupancy, CO2 (mass balance: per-person generation, infiltration,
  windows, fresh air), temperature and humidity (outdoor weather, people, air
  conditioning with dehumidification), PM2.5 (outdoor penetration, resuspension),
  noise (lessons, breaks, lunch nap, empty room).
- :class:`Luminaire`: occupancy- and daylight-linked switching and dimming (blackboard
  luminaires on for lessons), manual commands, power, energy counter, desk or
  blackboard illuminance = daylight + artificial light, lamp lumen depreciation.
- :class:`Panel`: off/standby/on with lessons, screen, input source, power, internal
  temperature, cloud-class sessions of the 1+N network (:mod:`simulators.cloud_class`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from simulators.climate import desk_daylight, outdoor
from simulators.cloud_class import CloudSeat, cloud_session
from simulators.rooms import RoomContext, day_plan, occupancy
from simulators.timetable import Timetable

SCHOOL_TZ = ZoneInfo("Asia/Shanghai")
OUTDOOR_CO2_PPM = 420.0
CO2_PER_PERSON_LPS = 0.0043  # litres/s of CO2 exhaled by a seated pupil
MOISTURE_PER_PERSON_GPH = 30.0  # grams of water vapour per pupil and hour
#: Moisture buffering of walls and furniture, as equivalent air changes per hour.
BUFFERING_ACH = 1.5
INFILTRATION_ACH = 0.4
WINDOW_ACH = 4.0
#: In breaks the door stands open and pupils go in and out.
BREAK_DOOR_ACH = 3.0
#: A window tilted or the door opened because the room is stuffy (:attr:`RoomContext.airs_at_ppm`).
AIRING_ACH = 3.0
#: Aired until the CO2 is this much below the room's stuffy level.
AIRING_HYSTERESIS_PPM = 1000.0
#: Largest measurement noise of relative humidity, %RH (keeps a reading of a saturated room within 0-100).
HUMIDITY_NOISE_MAX = 2.5
AC_SETPOINT_C = 26.0  # GB/T 18883 summer range 22-28 °C
AC_MAX_RH = 0.55
TARGET_DESK_LX = 350.0  # maintained 300 lx (GB 7793) with a margin
LAMP_LIFE_H = 50_000.0  # L80: 80 % of the initial flux after this many hours


def aware(local: datetime) -> datetime:
    """A naive datetime is school-local time."""
    return local.replace(tzinfo=SCHOOL_TZ) if local.tzinfo is None else local


def _approach(value: float, target: float, dt: float, tau_s: float) -> float:
    """Exact first-order approach of ``value`` to ``target`` over ``dt`` with time constant ``tau_s``."""
    return target + (value - target) * math.exp(-dt / tau_s)


def saturation_kpa(t_c: float) -> float:
    """Saturation vapour pressure over water (Tetens), kPa."""
    return 0.6108 * math.exp(17.27 * t_c / (t_c + 237.3))


@dataclass(slots=True)
class EnvSensor:
    """Classroom environment sensor: occupancy, CO2, temperature, humidity, PM2.5, noise."""

    rng: random.Random
    timetable: Timetable = field(default_factory=Timetable)
    room: RoomContext = field(default_factory=RoomContext)
    co2: float = OUTDOOR_CO2_PPM + 30
    temperature: float | None = None
    vapour_kpa: float | None = None
    pm25: float | None = None
    ac_on: bool = False
    window_open: bool = False
    airing: bool = False  # opened because the air is stuffy

    def step(self, dt: float, local: datetime) -> dict[str, float]:
        local = aware(local)
        room, r = self.room, self.rng
        people = occupancy(self.timetable, local, room)
        phase = self.timetable.phase(local)
        w = outdoor(local, seed=room.weather_seed)
        if self.temperature is None:  # first step: start in equilibrium with the weather
            self.temperature = w.temperature_c + 1.0
            self.vapour_kpa = w.humidity_pct / 100 * saturation_kpa(w.temperature_c)
            self.pm25 = 0.5 * w.pm25_ugm3
        in_hours = self.timetable.school_hours(local) and phase not in ("night", "off_day")
        # Air conditioning: on in occupied school hours when warm, with hysteresis.
        if in_hours and people > 0:
            self.ac_on = self.temperature > AC_SETPOINT_C + 0.5 or (self.ac_on and self.temperature > AC_SETPOINT_C - 1)
        else:
            self.ac_on = False
        # Windows: opened in breaks in mild weather by rooms that do so, shut when the AC runs and at night.
        mild = 16.0 <= w.temperature_c <= 28.0
        habit = (room.opens_windows and in_hours and mild and not self.ac_on
                 and phase in ("break", "lunch", "after_school", "lesson")
                 and (phase != "lesson" or w.temperature_c >= 18.0))
        # Stuffy air: any room, in any weather, gets a window or the door opened until it is fresher.
        if self.airing:
            self.airing = in_hours and self.co2 > room.airs_at_ppm - AIRING_HYSTERESIS_PPM
        else:
            self.airing = in_hours and people > 0 and self.co2 > room.airs_at_ppm
        self.window_open = habit or self.airing
        ach = (INFILTRATION_ACH + (WINDOW_ACH if habit else AIRING_ACH if self.airing else 0.0)
               + (BREAK_DOOR_ACH if in_hours and phase == "break" else 0.0)
               + (room.fresh_air_ach if in_hours else 0.0))
        lam = ach / 3600.0
        volume = room.volume_m3
        # CO2 mass balance: dC/dt = G - lambda (C - C_out), solved exactly for constant G over dt.
        generation = people * CO2_PER_PERSON_LPS / 1000.0 * 1e6 / volume  # ppm/s
        self.co2 = _approach(self.co2, OUTDOOR_CO2_PPM + generation / lam, dt, 1.0 / lam)
        # Temperature: AC to the setpoint, else free-floating with the weather, people and sun.
        if self.ac_on:
            target, tau = AC_SETPOINT_C, 900.0
        else:
            target = w.temperature_c + 1.0 + 0.05 * people
            tau = 1500.0 if self.window_open else 5400.0
        self.temperature = _approach(self.temperature, target, dt, tau)
        # Humidity: vapour follows outdoors plus people's moisture; the AC condenses down to 55 %.
        e_out = w.humidity_pct / 100 * saturation_kpa(w.temperature_c)
        gain = people * MOISTURE_PER_PERSON_GPH / 3600.0 / volume / 7.3  # kPa/s (7.3 g/m3 per kPa)
        lam_v = lam + BUFFERING_ACH / 3600.0
        e_target = e_out + gain / lam_v
        if self.ac_on:
            e_target = min(e_target, AC_MAX_RH * saturation_kpa(self.temperature))
        self.vapour_kpa = _approach(self.vapour_kpa or e_out, e_target, dt, 1.0 / lam_v if not self.ac_on else 1200.0)
        humidity = min(97.0, max(10.0, 100.0 * self.vapour_kpa / saturation_kpa(self.temperature)))
        # PM2.5: outdoor air penetrating (more through open windows) plus dust stirred up by people.
        penetration = 0.9 if self.window_open else 0.35 if room.fresh_air_ach else 0.55
        pm_target = penetration * w.pm25_ugm3 + 0.12 * people
        self.pm25 = _approach(self.pm25 or pm_target, pm_target, dt, 3600.0 / (ach + 0.2))
        return {
            "occupancy": float(people),
            "co2": round(self.co2 + r.gauss(0, 8), 1),
            "temperature": round(self.temperature + r.gauss(0, 0.1), 2),
            # Noise on the clamped humidity stays within 0-100 %RH and never settles on a bound.
            "humidity": round(humidity + max(-HUMIDITY_NOISE_MAX, min(HUMIDITY_NOISE_MAX, r.gauss(0, 0.8))), 1),
            # Clean air reads a little above 0 rather than a flat 0 (a healthy sensor never repeats a value).
            "pm25": round(abs(self.pm25 + r.gauss(0, 1.5)), 1),
            "noise": round(self._noise(local, phase, people), 1),
        }

    def _noise(self, local: datetime, phase: str, people: int) -> float:
        """A-weighted level over the reporting interval, dB(A)."""
        r = self.rng
        hour = local.hour + local.minute / 60.0
        background = 33.0 + 6.0 * math.exp(-((hour - 13.0) ** 2) / 30.0) + (5.0 if self.window_open else 0.0)
        if people == 0:
            return background + r.gauss(0, 1.5)
        if phase == "lesson":
            return 56.0 + r.gauss(0, 3)  # the teacher speaking, pupils answering
        if phase == "break":
            return 68.0 + r.gauss(0, 4)
        if phase == "lunch":
            return (38.0 if people >= 0.5 * self.room.class_size else 58.0) + r.gauss(0, 2)
        return background + 8.0 + r.gauss(0, 3)


@dataclass(slots=True)
class Luminaire:
    """LED luminaire with a presence and daylight sensor; dimmable; power, energy counter, ageing.

    ``override`` holds a manual command (``{"on": 0|1, "dimming": %}``) until an ``auto``
    command or the end of the day.
    """

    rng: random.Random
    timetable: Timetable = field(default_factory=Timetable)
    room: RoomContext = field(default_factory=RoomContext)
    blackboard: bool = False
    rated_w: float = 36.0
    #: Desk (or blackboard) illuminance of this luminaire's group at 100 % with new lamps, lx.
    full_lx: float | None = None
    #: Daylight here relative to the room average (more near the window, less at the back).
    position_factor: float = 1.0
    hours: float = 0.0  # operating hours so far (lamp ageing)
    energy_wh: float = 0.0
    on: bool = False
    dimming: float = 100.0
    override: dict[str, float] | None = None
    override_day: date | None = None
    standby_w: float = 0.3

    @property
    def lumen_factor(self) -> float:
        """Remaining share of the initial luminous flux (L80 at :data:`LAMP_LIFE_H`)."""
        return max(0.6, 1.0 - 0.2 * self.hours / LAMP_LIFE_H)

    def command(self, action: str, level: float | None = None, *, day: date | None = None) -> None:
        """Apply ``on``, ``off``, ``dim`` (level 0..100) or ``auto``; raises ValueError if invalid."""
        if action == "auto":
            self.override = None
            return
        if action not in ("on", "off", "dim"):
            raise ValueError(f"unsupported action {action!r} for a luminaire")
        if action == "dim" and (isinstance(level, bool) or not isinstance(level, int | float)
                                or not 0 <= level <= 100):
            raise ValueError("level must be 0..100")
        self.override = {"on": 0.0 if action == "off" or (action == "dim" and level == 0) else 1.0,
                         "dimming": float(level) if action == "dim" else 100.0}
        self.override_day = day

    def step(self, dt: float, local: datetime) -> dict[str, float]:
        local = aware(local)
        room = self.room
        full = self.full_lx or (560.0 if self.blackboard else 430.0)
        cloud = outdoor(local, seed=room.weather_seed).cloud
        daylight = desk_daylight(local, latitude=room.latitude, longitude=room.longitude,
                                 window_azimuth=room.window_azimuth, cloud=cloud,
                                 position_factor=self.position_factor * (0.35 if self.blackboard else 1.0))
        if self.override is not None and self.override_day not in (None, local.date()):
            self.override = None  # manual commands last until the end of the day
        if self.override is not None:
            self.on, self.dimming = self.override["on"] >= 0.5, self.override["dimming"]
        else:
            self._auto(local, daylight, full)
        light = full * self.lumen_factor * self.dimming / 100.0 if self.on else 0.0
        power = self.rated_w * (0.08 + 0.92 * self.dimming / 100.0) if self.on else self.standby_w
        self.energy_wh += power * dt / 3600.0
        if self.on:  # the meter's reading wanders with the mains voltage (about 0.5 %)
            power *= 1.0 + self.rng.gauss(0, 0.005)
        if self.on:
            self.hours += dt / 3600.0
        key = "blackboard_illuminance" if self.blackboard else "illuminance"
        return {"on": 1.0 if self.on else 0.0, "dimming": round(self.dimming if self.on else 0.0, 1),
                "power": round(power, 2), "energy": round(self.energy_wh, 3),
                key: round(max(0.0, daylight + light + self.rng.gauss(0, 4)), 1)}

    def _auto(self, local: datetime, daylight: float, full: float) -> None:
        people = occupancy(self.timetable, local, self.room)
        if self.blackboard:  # the blackboard needs 500 lx whenever there is a lesson
            self.on = people > 0 and self.timetable.phase(local) == "lesson"
            self.dimming = 100.0
            return
        need = TARGET_DESK_LX - daylight
        # Hysteresis: switch off only when daylight alone clearly exceeds the target.
        if people == 0 or need < (-100.0 if self.on else 0.0):
            self.on = False
            return
        self.on = True
        self.dimming = round(min(100.0, max(20.0, 100.0 * need / (full * self.lumen_factor))), 0)


@dataclass(slots=True)
class Panel:
    """Interactive display panel (交互式一体机): on in lessons, standby in school hours, off otherwise.

    ``seat`` places a classroom panel in the 1+N cloud-class network; commands
    ``standby``, ``on`` and ``off`` hold until the next lesson starts.
    """

    rng: random.Random
    timetable: Timetable = field(default_factory=Timetable)
    room: RoomContext = field(default_factory=RoomContext)
    seat: CloudSeat | None = None
    rated_w: float = 190.0
    temperature: float = 26.0
    forced: float | None = None  # a commanded state (0, 1, 2)
    forced_at: tuple[date, int | None] | None = None

    def command(self, action: str, local: datetime) -> None:
        """Apply ``standby``, ``on`` or ``off``; raises ValueError if invalid."""
        states = {"off": 0.0, "standby": 1.0, "on": 2.0}
        if action not in states:
            raise ValueError(f"unsupported action {action!r} for a panel")
        local = aware(local)
        self.forced = states[action]
        self.forced_at = (self.timetable.school_date(local), self.timetable.lesson_index(local))

    def step(self, dt: float, local: datetime) -> dict[str, float]:
        local = aware(local)
        tt = self.timetable
        phase = tt.phase(local)
        lesson = tt.lesson_index(local)
        session = cloud_session(self.seat, tt, local) if self.seat is not None else None
        if self.forced is not None and lesson is not None and self.forced_at != (tt.school_date(local), lesson):
            self.forced = None  # a new lesson has started: the timetable takes over again
        source = 0.0
        if self.forced is not None:
            state = self.forced
            source = 1.0 if state == 2.0 else 0.0
        elif session is not None:
            state, source = 2.0, 3.0
        elif phase == "lesson" and lesson is not None and occupancy(tt, local, self.room) > 0:
            plan = day_plan(self.room.key, tt.school_date(local), len(tt.lessons))
            used = plan.panel_used[lesson]
            state = 2.0 if used else 1.0
            source = (2.0 if plan.hdmi[lesson] else 1.0) if used else 0.0
        elif phase in ("lesson", "break", "lunch", "after_school"):
            state = 1.0
        else:
            state = 0.0
        ambient = 26.0
        target = {2.0: ambient + 16.0, 1.0: ambient + 1.5, 0.0: ambient}[state]
        self.temperature = _approach(self.temperature, target, dt, 900.0)
        power = {2.0: self.rated_w + self.rng.gauss(0, 6), 1.0: 0.5, 0.0: 0.0}[state]
        out = {"panel_state": state, "screen_on": 1.0 if state == 2.0 else 0.0, "power": round(max(0.0, power), 1),
               "panel_temperature": round(self.temperature + self.rng.gauss(0, 0.2), 1), "input_source": source}
        if self.seat is not None:
            on_session = session is not None and state == 2.0 and source == 3.0
            out["cloud_session"] = float(session[0]) if on_session else 0.0
            out["cloud_role"] = float(session[1]) if on_session else 0.0
        return out


DeviceModel = EnvSensor | Luminaire | Panel


def model_for(kind: str, rng: random.Random, timetable: Timetable, room: RoomContext | None = None, *,
              seat: CloudSeat | None = None, position_factor: float = 1.0) -> DeviceModel | None:
    """The model simulating a device kind, or None for kinds that do not publish telemetry."""
    room = room or RoomContext()
    if kind == "env_sensor":
        return EnvSensor(rng, timetable, room)
    if kind in ("luminaire", "blackboard_luminaire"):
        # Installed lamps have aged by up to 5 years of school use.
        return Luminaire(rng, timetable, room, blackboard=kind == "blackboard_luminaire",
                         hours=rng.uniform(0, 12_000), position_factor=position_factor)
    if kind == "panel":
        return Panel(rng, timetable, room, seat=seat, rated_w=rng.choice((150.0, 190.0, 230.0)))
    return None
