"""Fixtures for real services: PostgreSQL and an MQTT broker.

PostgreSQL: the server named by ``CAMPUS_TWIN_TEST_DATABASE_URL`` (any database on it;
each test gets a fresh database of its own), else an embedded server in a temporary
directory. MQTT: the broker named by ``CAMPUS_TWIN_TEST_MQTT_URL``, else Mosquitto
started by the fixture when installed, else the in-process amqtt broker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import sql

from tests.helpers import small_twin
from twin.broker import MosquittoBroker, free_port, start_local_broker
from twin.database import connect, connection
from twin.embedded import server_processes
from twin.storage.model import save_model
from twin.storage.schema import migrate

REPO = Path(__file__).resolve().parents[1]
#: Where the real IFC files of ../shared/ifc may be: an explicit folder, next to the clone, or the workplace.
IFC_CANDIDATES = [
    Path(p) for p in (os.environ.get("CAMPUS_TWIN_SHARED_IFC", ""), REPO.parent / "shared" / "ifc", "/work/shared/ifc") if p
]


def _with_database(url: str, database: str) -> str:
    return psycopg.conninfo.make_conninfo(url, dbname=database)


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("CAMPUS_TWIN_TEST_DATABASE_URL")
    if url:
        return url
    from twin.embedded import start_embedded

    return start_embedded(tmp_path_factory.mktemp("pg") / "pgdata", database="postgres")


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    name = f"campus_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A fresh database with the twin schema migrated."""
    with connect(empty_db_url) as conn:
        migrate(conn)
        conn.commit()
    return empty_db_url


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("CAMPUS_TWIN_TEST_MQTT_URL")
    if url:
        yield url
        return
    with start_local_broker(tmp_path_factory.mktemp("mqtt"), persist=False) as broker:
        yield broker.url


@pytest.fixture(scope="session")
def shared_ifc() -> Path:
    """The folder of real IFC files made by others (../shared/ifc)."""
    for folder in IFC_CANDIDATES:
        if folder.is_dir() and any(folder.glob("*.ifc")):
            return folder
    pytest.fail(f"real IFC files expected in one of {[str(p) for p in IFC_CANDIDATES]} (set CAMPUS_TWIN_SHARED_IFC)")


def require_mosquitto(*programs: str) -> None:
    """Skip (or, with ``CAMPUS_TWIN_REQUIRE_MOSQUITTO=1`` as in CI, fail) when Mosquitto is missing.

    For what the in-process 3.1.1 broker cannot do: shared subscriptions, broker restarts, and the
    C ``mosquitto_pub`` the simulator benchmark measures against.
    """
    missing = [p for p in ("mosquitto", *programs) if shutil.which(p) is None]
    if not missing:
        return
    message = f"needs {', '.join(missing)} (Debian: apt-get install mosquitto mosquitto-clients)"
    if os.environ.get("CAMPUS_TWIN_REQUIRE_MOSQUITTO") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def mosquitto_installed() -> None:
    require_mosquitto()


@pytest.fixture
def twin_db(db_url: str) -> str:
    """A migrated database holding :func:`tests.helpers.small_twin` ``t1`` (3 rooms, 6 devices)."""
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1"))
    return db_url


def _own_mosquitto(tmp_path: Path, persist: bool) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path / "mosquitto", port=free_port(), persist=persist)
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker(tmp_path: Path, mosquitto_installed: None) -> Iterator[MosquittoBroker]:
    """A Mosquitto of this test only, without persistence (fresh sessions, nothing from other tests)."""
    yield from _own_mosquitto(tmp_path, persist=False)


@pytest.fixture
def persistent_broker(tmp_path: Path, mosquitto_installed: None) -> Iterator[MosquittoBroker]:
    """As :func:`broker`, with persistence: sessions and queued messages survive its restarts."""
    yield from _own_mosquitto(tmp_path, persist=True)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A folder outside pytest's own: as root the server runs as another user, and every pytest
    session that starts makes ``/tmp/pytest-of-root`` private again (mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="campus-embedded-"))
    try:
        yield path
    finally:
        left = server_processes(path / "pgdata")  # whatever a failed test left
        for proc in left:
            with suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=30)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pgdata(data_dir: Path) -> Path:
    """The embedded server's data directory in :func:`data_dir` (not made yet)."""
    return data_dir / "pgdata"
