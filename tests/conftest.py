"""Fixtures for real services: PostgreSQL and an MQTT broker.

PostgreSQL: the server named by ``CAMPUS_TWIN_TEST_DATABASE_URL`` (any database on it;
each test gets a fresh database of its own), else an embedded server in a temporary
directory. TimescaleDB's own mechanisms (chunks, compression, retention policies) are tested
on ``CAMPUS_TWIN_TEST_TIMESCALEDB_URL``, else on the test server when it is a TimescaleDB one,
else skipped. MQTT: the broker named by ``CAMPUS_TWIN_TEST_MQTT_URL``, else Mosquitto started
by the fixture when installed, else the in-process amqtt broker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import sql

from tests.helpers import small_twin
from twin.database import connect, connection
from twin.embedded import server_processes
from twin.messaging.broker import MosquittoBroker, free_port, start_local_broker
from twin.storage.model import save_model
from twin.storage.schema import inspect_backend, migrate

REPO = Path(__file__).resolve().parents[1]
#: Where the real IFC files of ../shared/ifc may be: an explicit folder, or next to the clone.
IFC_CANDIDATES = [Path(p) for p in (os.environ.get("CAMPUS_TWIN_SHARED_IFC", ""), REPO.parent / "shared" / "ifc") if p]


def _with_database(url: str, database: str) -> str:
    return psycopg.conninfo.make_conninfo(url, dbname=database)


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("CAMPUS_TWIN_TEST_DATABASE_URL")
    if url:
        return url
    from twin.embedded import start_embedded

    return start_embedded(tmp_path_factory.mktemp("pg") / "pgdata", database="postgres")


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``, dropped afterwards."""
    name = f"campus_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def migrated(url: str) -> str:
    with connect(url) as conn:
        migrate(conn)
        conn.commit()
    return url


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    with fresh_database(pg_admin_url) as url:
        yield url


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A fresh database with the twin schema migrated."""
    return migrated(empty_db_url)


# -- backends ------------------------------------------------------------------------------------
TIMESCALEDB_MISSING = ("no TimescaleDB server: set CAMPUS_TWIN_TEST_TIMESCALEDB_URL (or CAMPUS_TWIN_TEST_DATABASE_URL) "
                       "to a PostgreSQL server that preloads timescaledb (docs/testing.md)")


def backend_of_server(admin_url: str) -> str:
    """The backend the twin picks on this server for a new database (see twin.storage.schema.inspect_backend)."""
    with fresh_database(admin_url) as url, connect(url) as conn:
        return inspect_backend(conn).name


@pytest.fixture(scope="session")
def server_backend(pg_admin_url: str) -> str:
    """``"timescaledb"`` or ``"postgresql"``: what the twin uses on the test server."""
    return backend_of_server(pg_admin_url)


@pytest.fixture
def plain_postgresql(server_backend: str) -> None:
    """For tests of plain PostgreSQL's own mechanism (monthly partitions)."""
    if server_backend != "postgresql":
        pytest.skip("about plain PostgreSQL's monthly partitions; the test server uses TimescaleDB (chunks instead)")


@pytest.fixture(scope="session")
def timescaledb_admin_url(pg_admin_url: str, server_backend: str) -> str:
    """A TimescaleDB server: ``CAMPUS_TWIN_TEST_TIMESCALEDB_URL``, else the test server when it is one; else skip."""
    url = os.environ.get("CAMPUS_TWIN_TEST_TIMESCALEDB_URL")
    if url:
        found = backend_of_server(url)
        assert found == "timescaledb", f"CAMPUS_TWIN_TEST_TIMESCALEDB_URL names a server without TimescaleDB ({found})"
        return url
    if server_backend == "timescaledb":
        return pg_admin_url
    pytest.skip(TIMESCALEDB_MISSING)


@pytest.fixture
def tsdb_url(timescaledb_admin_url: str) -> Iterator[str]:
    """A fresh database with the twin schema migrated on a TimescaleDB server."""
    with fresh_database(timescaledb_admin_url) as url:
        yield migrated(url)


@pytest.fixture
def tsdb_twin(tsdb_url: str) -> str:
    """:func:`tsdb_url` holding :func:`tests.helpers.small_twin` ``t1``."""
    with connection(tsdb_url) as conn:
        save_model(conn, small_twin("t1"))
    return tsdb_url


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
    reason = f"real IFC files not found in {[str(p) for p in IFC_CANDIDATES]} (set CAMPUS_TWIN_SHARED_IFC)"
    if os.environ.get("CAMPUS_TWIN_REQUIRE_IFC") == "1":  # CI: they must run
        pytest.fail(reason)
    pytest.skip(reason)


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``realtime`` (minutes of wall-clock time, whatever the backend) are skipped when
    ``CAMPUS_TWIN_SKIP_REALTIME=1``: ``.ci/run`` runs them in its run against the machine's servers only."""
    if os.environ.get("CAMPUS_TWIN_SKIP_REALTIME") != "1":
        return
    skip = pytest.mark.skip(reason="realtime: run once per CI, in the run against the machine's servers "
                                   "(CAMPUS_TWIN_SKIP_REALTIME=1)")
    for item in items:
        if "realtime" in item.keywords:
            item.add_marker(skip)
