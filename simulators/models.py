"""Device models: state plus a ``step(dt, now)`` that advances it and returns metrics.

Deliberately simple physics for the walking skeleton (mass-balance CO2, diurnal
temperature, daylight plus artificial light); each model is deterministic for a given
random generator so runs are reproducible with a seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

from simulators.timetable import Timetable

OUTDOOR_CO2_PPM = 420.0
CO2_PER_PERSON_LPS = 0.0043  # litres/s of CO2 exhaled by a seated pupil
CLASS_SIZE = 40


def occupancy(tt: Timetable, local: datetime, class_size: int = CLASS_SIZE) -> int:
    """People in a classroom: the class in lessons, a few in breaks, nobody at night."""
    phase = tt.phase(local)
    return {"lesson": class_size, "break": class_size // 4, "lunch": 2, "after_school": 3}.get(phase, 0)


def outdoor_temperature(local: datetime) -> float:
    """A subtropical (Shenzhen-like) outdoor temperature: seasonal plus diurnal cycle, °C."""
    season = 23.0 + 6.5 * math.sin(2 * math.pi * (local.timetuple().tm_yday - 105) / 365.0)
    hour = local.hour + local.minute / 60.0
    return season + 3.5 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


def daylight_lx(local: datetime) -> float:
    """Desk daylight near a window: zero at night, peaking around noon."""
    hour = local.hour + local.minute / 60.0
    if not 6.5 < hour < 18.5:
        return 0.0
    return 450.0 * math.sin(math.pi * (hour - 6.5) / 12.0)


@dataclass(slots=True)
class EnvSensor:
    """Classroom environment sensor: occupancy, CO2, temperature, humidity, PM2.5, noise."""

    rng: random.Random
    timetable: Timetable = field(default_factory=Timetable)
    volume_m3: float = 200.0
    co2: float = OUTDOOR_CO2_PPM + 30
    temperature: float = 24.0

    def step(self, dt: float, local: datetime) -> dict[str, float]:
        people = occupancy(self.timetable, local)
        ach = 1.5 if people else 0.5  # air changes per hour (windows opened when occupied)
        generation = people * CO2_PER_PERSON_LPS / 1000.0 * 1e6 / self.volume_m3  # ppm/s
        decay = ach / 3600.0 * (self.co2 - OUTDOOR_CO2_PPM)
        self.co2 = max(OUTDOOR_CO2_PPM, self.co2 + dt * (generation - decay))
        target = outdoor_temperature(local) + 0.05 * people
        if people and target > 27.0:  # air conditioning during school hours
            target = 26.0
        self.temperature += (target - self.temperature) * min(1.0, dt / 1800.0)
        r = self.rng
        return {
            "occupancy": float(people),
            "co2": round(self.co2 + r.gauss(0, 8), 1),
            "temperature": round(self.temperature + r.gauss(0, 0.1), 2),
            "humidity": round(min(95.0, max(30.0, 70.0 - (self.temperature - 24) * 2 + r.gauss(0, 1))), 1),
            "pm25": round(max(0.0, 18 + 6 * math.sin(local.hour / 3.8) + r.gauss(0, 2)), 1),
            "noise": round((58.0 if people > 10 else 40.0) + r.gauss(0, 2), 1),
        }


@dataclass(slots=True)
class Luminaire:
    """LED luminaire: switched by occupancy and daylight, dimmable; power and energy counter."""

    rng: random.Random
    timetable: Timetable = field(default_factory=Timetable)
    rated_w: float = 36.0
    blackboard: bool = False
    energy_wh: float = 0.0
    override: dict[str, float] | None = None

    def step(self, dt: float, local: datetime) -> dict[str, float]:
        people = occupancy(self.timetable, local)
        daylight = daylight_lx(local)
        if self.override is not None:
            on, dimming = self.override["on"], self.override["dimming"]
        else:
            on = 1.0 if people else 0.0
            dimming = 100.0 if daylight < 150 else 70.0
        power = self.rated_w * dimming / 100.0 * on
        self.energy_wh += power * dt / 3600.0
        artificial = (520.0 if self.blackboard else 360.0) * dimming / 100.0 * on
        out = {"on": on, "dimming": dimming, "power": round(power, 2), "energy": round(self.energy_wh, 3)}
        key = "blackboard_illuminance" if self.blackboard else "illuminance"
        out[key] = round(max(0.0, artificial + daylight * (0.3 if self.blackboard else 1.0) + self.rng.gauss(0, 5)), 1)
        return out


@dataclass(slots=True)
class Panel:
    """Interactive display panel: on in lessons, standby in school hours, off otherwise."""

    rng: random.Random
    timetable: Timetable = field(default_factory=Timetable)
    temperature: float = 25.0

    def step(self, dt: float, local: datetime) -> dict[str, float]:
        phase = self.timetable.phase(local)
        state = 2.0 if phase == "lesson" else 1.0 if phase in ("break", "lunch", "after_school") else 0.0
        target = {2.0: 42.0, 1.0: 30.0, 0.0: 24.0}[state]
        self.temperature += (target - self.temperature) * min(1.0, dt / 900.0)
        power = {2.0: 180.0, 1.0: 0.5, 0.0: 0.0}[state]
        return {"panel_state": state, "power": round(power + (self.rng.gauss(0, 3) if state == 2.0 else 0.0), 1),
                "panel_temperature": round(self.temperature, 1)}


DeviceModel = EnvSensor | Luminaire | Panel


def model_for(kind: str, rng: random.Random, timetable: Timetable) -> DeviceModel | None:
    """The model simulating a device kind, or None for kinds that do not publish telemetry."""
    if kind == "env_sensor":
        return EnvSensor(rng, timetable)
    if kind in ("luminaire", "blackboard_luminaire"):
        return Luminaire(rng, timetable, blackboard=kind == "blackboard_luminaire")
    if kind == "panel":
        return Panel(rng, timetable)
    return None
