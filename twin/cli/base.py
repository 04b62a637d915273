"""What every subcommand shares: the ``campus-twin`` group and its options, the settings it builds,
errors turned into one-line messages (:func:`friendly`), JSON output, signals, common options.

Library errors become ``Error: <one line>`` and exit status 1; wrong arguments exit 2 (click's
convention).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from twin.database import DatabaseUnavailable
from twin.embedded import EmbeddedDatabaseError
from twin.logs import setup_logging
from twin.messaging.broker import BrokerError
from twin.process import thread_death
from twin.services import ServiceError
from twin.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors() -> tuple[type[BaseException], ...]:
    from dashboard.serve import PortInUse
    from models_bim.errors import IfcReadError
    from models_bim.importer import PlanChanged, RevisionRefused
    from twin.messaging.mqtt_auth import CredentialsError
    from twin.monitoring.channels.config import ConfigError
    from twin.monitoring.report import ReportError
    from twin.monitoring.standards import RulesError
    from twin.storage.users import UserError

    return (DatabaseUnavailable, EmbeddedDatabaseError, BrokerError, IfcReadError, PortInUse, UserError,
            CredentialsError, RulesError, ReportError, RevisionRefused, PlanChanged, ServiceError, ConfigError)


def friendly(fn: F) -> F:
    """Turn known library errors into ``Error: <one line>`` and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _user_errors() as exc:
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    click.echo(orjson.dumps(obj, default=str, option=orjson.OPT_INDENT_2).decode())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar="CAMPUS_TWIN_DATABASE_URL", help="PostgreSQL URL; default: embedded server.")
@click.option("--mqtt-url", envvar="CAMPUS_TWIN_MQTT_URL", help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883.")
@click.option("--data-dir", envvar="CAMPUS_TWIN_DATA_DIR", type=click.Path(file_okay=False, path_type=Path),
              help="Where embedded data is kept; default ~/.local/share/campus-twin.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="campus-twin")
@click.pass_context
def main(ctx: click.Context, database_url: str | None, mqtt_url: str | None, data_dir: Path | None,
         verbose: int) -> None:
    """Campus Twin: a live digital twin of school campuses.

    \b
    Try:  campus-twin demo          # everything on embedded defaults
          campus-twin db status     # what is stored
    """
    setup_logging(verbose)
    ctx.obj = Settings.from_env().override(database_url=database_url, mqtt_url=mqtt_url, data_dir=data_dir)


@main.result_callback()
def _exit_if_a_thread_died(*_: object, **__: object) -> None:
    """A command whose stop came from a dead thread (see :func:`stop_on_signals`) fails with its reason."""
    if (died := thread_death()) is not None:
        raise click.ClickException(died)


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_object(Settings)  # type: ignore[return-value]


def require_mqtt(settings: Settings) -> str:
    if not settings.mqtt_url:
        raise click.UsageError("no MQTT broker: pass --mqtt-url or set CAMPUS_TWIN_MQTT_URL "
                               "(campus-twin demo starts one for you)")
    return settings.mqtt_url


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (install first, so a signal at any time stops cleanly).

    A thread that dies (a service's own, paho's) sets it too, and the command then exits non-zero
    (:func:`_exit_if_a_thread_died`): no service runs on half-alive. Both are undone when the
    command's context closes (after that check), so a command run in-process leaves nothing behind.
    """
    from twin import services

    stop, restore = services.stop_on_signals()
    if (ctx := click.get_current_context(silent=True)) is not None:
        ctx.call_on_close(restore)
    return stop


def rules_option(fn: F) -> F:
    return click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
                        envvar="CAMPUS_TWIN_RULES", help="TOML file of per-site rule overrides (docs/monitoring.md).")(fn)


def operator_name() -> str:
    """Who ran the command, for the audit log (the OS user)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def parse_time(value: str | None, param: str) -> datetime | None:
    """ISO 8601 (``2026-11-23``, ``2026-11-23T08:00:00+08:00``, ``...Z``); no zone means UTC."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=param) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

