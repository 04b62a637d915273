"""Settings from the environment, overridable by CLI flags.

One :class:`Settings` object is built at the entry point and passed down; nothing
reads the environment anywhere else.

    >>> Settings.from_env({"CAMPUS_TWIN_MQTT_URL": "mqtt://broker:1883"}).mqtt_url
    'mqtt://broker:1883'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

ENV_DATABASE_URL = "CAMPUS_TWIN_DATABASE_URL"
ENV_MQTT_URL = "CAMPUS_TWIN_MQTT_URL"
ENV_DATA_DIR = "CAMPUS_TWIN_DATA_DIR"


def default_data_dir(env: Mapping[str, str]) -> Path:
    """The user's data directory: $XDG_DATA_HOME/campus-twin, else ~/.local/share/campus-twin."""
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "campus-twin"


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the twin keeps its data and which servers it talks to.

    ``database_url`` and ``mqtt_url`` are ``None`` when not given: the embedded
    PostgreSQL and a local broker are started instead.
    """

    data_dir: Path
    database_url: str | None = None
    mqtt_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = env.get(ENV_DATA_DIR)
        return cls(
            data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(env),
            database_url=env.get(ENV_DATABASE_URL) or None,
            mqtt_url=env.get(ENV_MQTT_URL) or None,
        )

    def override(self, **values: object) -> Settings:
        """A copy with the given non-None values replaced (CLI flags win over the environment)."""
        given = {k: v for k, v in values.items() if v is not None}
        if "data_dir" in given:
            given["data_dir"] = Path(str(given["data_dir"])).expanduser()
        return replace(self, **given)  # type: ignore[arg-type]

    @property
    def pgdata(self) -> Path:
        """Data directory of the embedded PostgreSQL."""
        return self.data_dir / "pgdata"
