"""Per-device MQTT credentials and ACLs through a real Mosquitto configured from the generated files,
and a TLS listener with a CA and a server certificate made by the test (docs/security.md)."""

from __future__ import annotations

import csv
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.conftest import require_mosquitto
from tests.helpers import running, small_twin, stored_readings, wait_for
from twin import security
from twin.database import connection
from twin.messaging import contract, mqtt_auth
from twin.messaging.broker import BrokerError, ConfiguredMosquitto, wait_for_port
from twin.messaging.mqtt import MqttClient, detect_protocol
from twin.storage.model import save_model


@contextmanager
def broker_folder() -> Iterator[tuple[Path, mqtt_auth.FileOwner | None]]:
    """A folder for the generated broker files, and who must own them: as root, Mosquitto drops to its
    own user (``mosquitto``) before it reads them, so they go to that user in a folder it can reach."""
    if os.geteuid() != 0:
        with tempfile.TemporaryDirectory(prefix="campus-broker-") as d:
            yield Path(d), None
        return
    user = "mosquitto" if _user_exists("mosquitto") else "nobody"
    d = Path(tempfile.mkdtemp(prefix="campus-broker-"))  # /tmp itself: pytest's base folder is 0700
    d.chmod(0o711)
    try:
        yield d / "out", mqtt_auth.FileOwner.parse(user)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def generate(db_url: str, out: Path, owner: mqtt_auth.FileOwner | None, site: str = "t1",
             **options: object) -> tuple[dict[str, str], int]:
    """``campus-twin devices credentials`` for ``site`` through its library calls, on a free port:
    the passwords issued, and the port of the generated listener."""
    from twin.messaging.broker import free_port

    port = free_port()
    with connection(db_url) as conn:
        issued = mqtt_auth.issue(conn, site)
        mqtt_auth.write_files(conn, out, issued, options=mqtt_auth.BrokerOptions(port=port, bind="127.0.0.1",
                                                                                 **options),  # type: ignore[arg-type]
                              mode=0o640 if owner else 0o600, owner=owner)
    return {u: p for u, p, _ in issued.rows}, port


@pytest.fixture
def secured(db_url: str, tmp_path: Path) -> Iterator[tuple[ConfiguredMosquitto, dict[str, str], str]]:
    """A twin with site t1 (ENV-0.., LUM-0..), credentials issued by the CLI path, and a Mosquitto started
    from the generated configuration as it is (``mosquitto -c <out>/mosquitto.conf``)."""
    require_mosquitto()
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1", rooms=2))
    with broker_folder() as (out, owner):
        passwords, port = generate(db_url, out, owner)
        broker = ConfiguredMosquitto(out / "mosquitto.conf", port, tmp_path / "mosquitto.log")
        try:
            yield broker, passwords, db_url
        finally:
            broker.stop()


def _url(broker: ConfiguredMosquitto, user: str, password: str) -> str:
    from urllib.parse import quote

    return f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{broker.port}"


class Client:
    """A bare paho MQTT 5 client recording its CONNACK, SUBACKs, PUBACKs and messages."""

    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.connack: object = None
        self.connected = threading.Event()
        self.subacks: dict[int, list] = {}
        self.messages: list[tuple[str, bytes]] = []
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda c, u, mid, codes, p: self.subacks.__setitem__(mid, codes)
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.connected.wait(10)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code
        self.connected.set()

    @property
    def refused(self) -> bool:
        return self.connack is not None and self.connack.is_failure

    def subscribe(self, topic: str) -> list:
        mid = self.c.subscribe(topic, qos=1)[1]
        return wait_for(lambda: self.subacks.get(mid), timeout=10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_generated_files_hold_mosquitto_hashes_and_per_account_acl_blocks(db_url: str, tmp_path: Path) -> None:
    with connection(db_url) as conn:
        save_model(conn, small_twin("t1", rooms=1))
        issued = mqtt_auth.issue(conn, "t1")
        mqtt_auth.write_files(conn, tmp_path, issued)
        again = mqtt_auth.issue(conn, "t1")  # devices and gateway rotate; services keep theirs
    rows = list(csv.DictReader((tmp_path / "credentials.csv").open()))
    assert {(r["username"], r["role"]) for r in rows} == {
        ("ingest", "ingest"), ("dashboard", "dashboard"), ("monitor", "monitor"), ("gateway@t1", "gateway"),
        ("ENV-0", "device"), ("LUM-0", "device")}
    assert {u for u, _, _ in again.rows} == {"gateway@t1", "ENV-0", "LUM-0"}
    passwd = dict(line.split(":", 1) for line in (tmp_path / "passwd").read_text().splitlines())
    assert all(h.startswith("$7$1000$") for h in passwd.values())
    first = {r["username"]: r["password"] for r in rows}
    assert security.verify_password(first["ingest"], passwd["ingest"])
    assert first["ENV-0"] not in (tmp_path / "passwd").read_text() + (tmp_path / "acl").read_text()
    acl = (tmp_path / "acl").read_text()
    assert "user ENV-0\ntopic write campus/v1/t1/ENV-0/telemetry\n" in acl
    assert "topic read campus/v1/t1/ENV-0/cmd\n" in acl
    assert oct((tmp_path / "passwd").stat().st_mode & 0o777) == "0o600"


def test_device_ids_unfit_for_mqtt_are_left_out_with_the_reason(db_url: str) -> None:
    from dataclasses import replace

    twin = small_twin("t1", rooms=1)
    hostile = replace(twin.devices[0], device_id="EVIL\ntopic readwrite campus", global_id="G-EVIL")
    # ids that would take over another site's gateway account or a service account
    squatters = [replace(twin.devices[0], device_id=d, global_id=f"G-{i}")
                 for i, d in enumerate(("gateway@t2", "monitor"))]
    with connection(db_url) as conn:
        save_model(conn, replace(twin, devices=(*twin.devices, hostile, *squatters)))
        issued = mqtt_auth.issue(conn, "t1")
        acl = mqtt_auth.acl_file(__import__("twin.storage.mqtt_accounts", fromlist=["x"]).accounts(conn))
    assert sorted(name for name, _ in issued.skipped) == ["EVIL\ntopic readwrite campus", "gateway@t2", "monitor"]
    assert "readwrite" not in acl and "EVIL" not in acl
    assert "user gateway@t2\n" not in acl and acl.count("user monitor\n") == 1  # the service's own block only


def test_a_device_speaks_only_for_itself(secured) -> None:
    broker, pw, _ = secured
    ingest = Client(broker.port, "ingest", pw["ingest"])
    env0 = Client(broker.port, "ENV-0", pw["ENV-0"])
    try:
        assert not ingest.refused and not env0.refused
        assert not ingest.subscribe(contract.TELEMETRY_FILTER)[0].is_failure
        # another device's topic: dropped by the broker; then its own, which arrives
        env0.publish(contract.topic("t1", "ENV-1", "telemetry"), b'{"metrics": {"co2": 1}}')
        env0.publish(contract.topic("t1", "ENV-0", "telemetry"), b'{"metrics": {"co2": 2}}')
        wait_for(lambda: ingest.messages, timeout=10)
        assert [t for t, _ in ingest.messages] == ["campus/v1/t1/ENV-0/telemetry"]
        # a device may not listen to telemetry (its own or anyone's) nor to another device's commands.
        # Mosquitto 2.0's acl_file grants every SUBACK; it checks "read" on each message it would deliver.
        for topic in (contract.TELEMETRY_FILTER, "campus/v1/t1/ENV-1/telemetry", "campus/v1/t1/LUM-0/cmd", "#",
                      "campus/v1/t1/ENV-0/cmd"):
            env0.subscribe(topic)
        env1 = Client(broker.port, "ENV-1", pw["ENV-1"])
        dashboard = Client(broker.port, "dashboard", pw["dashboard"])
        env1.publish(contract.topic("t1", "ENV-1", "telemetry"), b'{"metrics": {"co2": 3}}')
        dashboard.publish("campus/v1/t1/LUM-0/cmd", b'{"id": "x", "action": "on"}')
        dashboard.publish("campus/v1/t1/ENV-0/cmd", b'{"id": "y", "action": "on"}')
        wait_for(lambda: len(ingest.messages) == 2 and env0.messages, timeout=10)
        env1.close()
        dashboard.close()
        assert {t for t, _ in env0.messages} == {"campus/v1/t1/ENV-0/cmd"}  # its own commands, nothing else
    finally:
        ingest.close()
        env0.close()


def test_unknown_clients_wrong_passwords_and_anonymous_are_refused(secured) -> None:
    broker, pw, _ = secured
    for user, password in (("GHOST-1", "whatever"), ("ENV-0", pw["LUM-0"]), (None, None)):
        client = Client(broker.port, user, password)
        try:
            assert client.refused, (user, client.connack)
        finally:
            client.close()
    with pytest.raises(BrokerError, match="refused the credentials"):
        detect_protocol(_url(broker, "GHOST-2", "nope"))


def test_dashboard_commands_and_the_device_acks(secured) -> None:
    broker, pw, _ = secured
    dash = Client(broker.port, "dashboard", pw["dashboard"])
    lum = Client(broker.port, "LUM-0", pw["LUM-0"])
    try:
        assert not lum.subscribe("campus/v1/t1/LUM-0/cmd")[0].is_failure
        assert not dash.subscribe("campus/v1/+/+/cmd/ack")[0].is_failure
        dash.subscribe(contract.TELEMETRY_FILTER)  # granted by Mosquitto, but nothing is delivered
        dash.publish("campus/v1/t1/LUM-0/cmd", b'{"id": "c1", "action": "on"}')
        wait_for(lambda: lum.messages, timeout=10)
        lum.publish("campus/v1/t1/LUM-0/cmd/ack", b'{"id": "c1", "ok": true}')
        wait_for(lambda: dash.messages, timeout=10)
        lum.publish("campus/v1/t1/LUM-1/cmd", b'{"id": "c2", "action": "off"}')  # a device may not command
        lum.publish("campus/v1/t1/LUM-0/cmd/ack", b'{"id": "c3", "ok": true}')
        lum.publish("campus/v1/t1/LUM-0/telemetry", b'{"metrics": {"on": 1}}')
        wait_for(lambda: len(dash.messages) == 2, timeout=10)
        assert len(lum.messages) == 1
        assert [t for t, _ in dash.messages] == ["campus/v1/t1/LUM-0/cmd/ack"] * 2
    finally:
        dash.close()
        lum.close()


def test_only_the_monitor_publishes_alarm_events(secured) -> None:
    broker, pw, _ = secured
    dash = Client(broker.port, "dashboard", pw["dashboard"])
    monitor = Client(broker.port, "monitor", pw["monitor"])
    env0 = Client(broker.port, "ENV-0", pw["ENV-0"])
    try:
        assert not dash.subscribe(contract.alarms_topic("+"))[0].is_failure
        env0.publish(contract.alarms_topic("t1"), b'{"event": "cleared", "forged": true}')  # dropped
        monitor.publish("campus/v1/t1/ENV-0/telemetry", b'{"metrics": {"co2": 1}}')  # not the monitor's
        monitor.publish(contract.alarms_topic("t1"), b'{"event": "raised"}')
        wait_for(lambda: dash.messages, timeout=10)
        time.sleep(0.3)  # anything else would have arrived by now
        assert dash.messages == [(contract.alarms_topic("t1"), b'{"event": "raised"}')]
    finally:
        for client in (dash, monitor, env0):
            client.close()


def test_ingest_with_its_account_dead_letters_devices_not_in_the_twin(secured) -> None:
    """The gateway may publish for any device id of its site; ingest stores only the twin's devices."""
    from ingest.worker import IngestWorker

    broker, pw, db_url = secured
    worker = IngestWorker(db_url, _url(broker, "ingest", pw["ingest"]), client_id=f"sec-{uuid.uuid4().hex[:6]}")
    with running(worker.run):
        assert worker.connected.wait(15)
        gateway = MqttClient(_url(broker, "gateway@t1", pw["gateway@t1"]), "gw-t1", persistent=False)
        up = threading.Event()
        gateway.on_connect = lambda session_present: up.set()
        gateway.connect()
        assert up.wait(10)
        body = orjson.dumps({"metrics": {"co2": 640}})
        for device in ("ENV-0", "GHOST-9"):
            gateway.publish(contract.topic("t1", device, "telemetry"), body, qos=1).wait_for_publish(10)
        gateway.publish(contract.topic("t2", "ENV-0", "telemetry"), body, qos=1).wait_for_publish(10)
        gateway.close()
        wait_for(lambda: worker.counters.rows >= 1 and worker.counters.dead_letters >= 1, timeout=20)
    with connection(db_url) as conn:
        letters = conn.execute("SELECT topic, reason FROM dead_letters").fetchall()
        stored = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    assert letters == [("campus/v1/t1/GHOST-9/telemetry", "unknown device 'GHOST-9' at site 't1'")]
    assert stored == 1  # the t2 message never passed the gateway's ACL


STREAM_START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def _gateway_stream(port: int, password: str, n: int) -> None:
    """``n`` QoS 1 telemetry messages from the gateway of t1 (ENV-0 and ENV-1 in turn, one second apart),
    each acknowledged by the broker; message i is the same on every call."""
    gateway = Client(port, "gateway@t1", password)
    try:
        infos = []
        for i in range(n):
            ts = int((STREAM_START + timedelta(seconds=i)).timestamp() * 1000)
            body = orjson.dumps({"ts": ts, "seq": i + 1, "metrics": {"co2": 400 + i % 100}})
            infos.append(gateway.c.publish(contract.topic("t1", f"ENV-{i % 2}", "telemetry"), body, qos=1))
        for info in infos:
            info.wait_for_publish(30)
    finally:
        gateway.close()


def test_a_device_cannot_join_ingest_s_shared_subscription(secured) -> None:
    """Issue 13: with Mosquitto 2.0's acl_file a device's ``$share/campus-ingest/...`` subscription was granted,
    and the broker gave it its turn of the messages and then dropped them (read ACL): 1,000 of 2,000 never
    stored. The generated configuration refuses such a SUBSCRIBE; every message reaches ingest."""
    from ingest.worker import IngestWorker

    broker, pw, db_url = secured
    n = 2000
    worker = IngestWorker(db_url, _url(broker, "ingest", pw["ingest"]), client_id=f"share-{uuid.uuid4().hex[:6]}",
                          share_group=contract.SHARE_GROUP, batch_wait_s=0.05)
    env0 = Client(broker.port, "ENV-0", pw["ENV-0"])
    forbidden = (contract.SHARED_TELEMETRY_FILTER, f"$share/{contract.SHARE_GROUP}/{contract.STATUS_FILTER}",
                 "$share/other/#", "$share/campus-ingest/campus/v1/t1/+/telemetry",
                 "$share/g/campus/v1/t1/ENV-0/cmd", contract.TELEMETRY_FILTER, "campus/v1/t1/ENV-1/cmd", "#",
                 "$CONTROL/dynamic-security/#")
    try:
        with running(worker.run):
            assert worker.connected.wait(15)
            codes = {f: env0.subscribe(f)[0] for f in forbidden}
            _gateway_stream(broker.port, pw["gateway@t1"], n)
            stored = _readings_when(db_url, n)
        assert stored == n, f"{n - stored} of {n} messages never stored"
        assert {f: c.is_failure for f, c in codes.items()} == dict.fromkeys(forbidden, True)
        assert not env0.subscribe(contract.topic("t1", "ENV-0", "cmd"))[0].is_failure  # its own commands
        assert env0.messages == []
    finally:
        env0.close()
    assert stored_readings(db_url) == n


def _readings_when(db_url: str, n: int, timeout: float = 60) -> int:
    """Stored readings once there are ``n`` of them, or after ``timeout`` (to report what is missing)."""
    try:
        wait_for(lambda: stored_readings(db_url) >= n, timeout=timeout)
    except AssertionError:
        pass
    return stored_readings(db_url)


def test_the_generated_broker_keeps_an_ingest_outage_backlog(secured) -> None:
    """Issue 13: with Mosquitto's default ``max_queued_messages 1000``, 4,000 of 5,000 messages published while
    ingest was stopped were dropped. The generated configuration queues them for ingest's session."""
    broker, pw, db_url = secured
    url, n = _url(broker, "ingest", pw["ingest"]), 5000

    def ingest() -> subprocess.Popen:  # `campus-twin ingest` with its default settings
        return subprocess.Popen([sys.executable, "-m", "twin.cli", "--database-url", db_url, "--mqtt-url", url,
                                 "ingest"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    proc = ingest()
    try:
        # ingest's session and subscription exist once the stream's first message is stored
        wait_for(lambda: _gateway_stream(broker.port, pw["gateway@t1"], 1) or stored_readings(db_url), interval=0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        _gateway_stream(broker.port, pw["gateway@t1"], n)  # every one acknowledged by the broker
        assert stored_readings(db_url) == 1
        proc = ingest()
        stored = _readings_when(db_url, n)
        assert stored == n, f"{n - stored} of {n} messages dropped while ingest was stopped"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_devices_credentials_writes_a_configuration_mosquitto_starts_from(db_url: str, tmp_path: Path) -> None:
    """The CLI as an operator runs it; as root the files go to Mosquitto's user (it drops to that user before it
    reads them: root's 0600 files gave "Unable to open pwfile"), credentials.csv stays the caller's, 0600."""
    require_mosquitto()
    from click.testing import CliRunner

    from twin.cli import main
    from twin.messaging.broker import free_port

    with connection(db_url) as conn:
        save_model(conn, small_twin("t1", rooms=1))
    port = free_port()
    with broker_folder() as (out, owner):
        as_owner = ["--owner", owner.user, "--mode", "0640"] if owner else []
        args = ["--database-url", db_url, "devices", "credentials", "--site", "t1", "--out", str(out),
                "--port", str(port), "--bind", "127.0.0.1"]
        result = CliRunner().invoke(main, [*args, *as_owner], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"start the broker: mosquitto -c {out.resolve() / 'mosquitto.conf'}" in result.output
        files = {p.name: p.stat() for p in out.iterdir()}
        assert set(files) == {"passwd", "acl", "dynamic-security.json", "mosquitto.conf", "credentials.csv", "data"}
        assert files["credentials.csv"].st_mode & 0o777 == 0o600 and files["credentials.csv"].st_uid == os.geteuid()
        for name in ("passwd", "acl", "dynamic-security.json", "mosquitto.conf"):
            assert files[name].st_mode & 0o777 == (0o640 if owner else 0o600), name
            if owner:
                assert files[name].st_uid == pwd.getpwnam(owner.user).pw_uid, name
        refused = CliRunner().invoke(main, [*args, "--mode", "0644"], catch_exceptions=False)
        assert refused.exit_code == 2 and "no access for others" in refused.output
        pw = {r["username"]: r["password"] for r in csv.DictReader((out / "credentials.csv").open())}
        broker = ConfiguredMosquitto(out / "mosquitto.conf", port, tmp_path / "mosquitto.log")
        try:
            ingest = Client(port, "ingest", pw["ingest"])
            try:
                assert not ingest.refused
                assert not ingest.subscribe(f"$share/{contract.SHARE_GROUP}/{contract.TELEMETRY_FILTER}")[0].is_failure
            finally:
                ingest.close()
        finally:
            broker.stop()


# --- TLS ----------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_files(tmp_path: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 / localhost, signed by it."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl binary")
    d = tmp_path / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=Campus Twin test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)
    # a second CA the broker's certificate does not chain to
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.crt",
             "-days", "2", "-subj", "/CN=Someone else", cwd=d)
    return d


def test_tls_listener_with_a_test_ca(db_url: str, tmp_path: Path, tls_files: Path) -> None:
    """The listener block of docs/security.md appended to the generated mosquitto.conf: clients verify the
    broker against the CA, then log in."""
    require_mosquitto()
    from twin.messaging.broker import free_port

    with connection(db_url) as conn:
        save_model(conn, small_twin("t1", rooms=1))
    tls_port = free_port()
    with broker_folder() as (out, owner):
        pw, port = generate(db_url, out, owner)
        d = out / "certs"  # where the broker's user can read them
        d.mkdir()
        for name in ("ca.crt", "server.crt", "server.key"):
            shutil.copy(tls_files / name, d / name)
            if owner:
                shutil.chown(d / name, owner.user, owner.group)
        with (out / "mosquitto.conf").open("a") as conf:
            conf.write(f"listener {tls_port}\ncafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\n"
                       f"keyfile {d / 'server.key'}\ntls_version tlsv1.2\n")
        broker = ConfiguredMosquitto(out / "mosquitto.conf", port, tmp_path / "mosquitto.log")
        assert wait_for_port("127.0.0.1", tls_port)
        _tls_checks(tls_files, tls_port, pw, broker)


def _tls_checks(d: Path, tls_port: int, pw: dict[str, str], broker: ConfiguredMosquitto) -> None:
    try:
        url = f"mqtts://ENV-0:{pw['ENV-0']}@127.0.0.1:{tls_port}?ca={d / 'ca.crt'}"
        assert detect_protocol(url) == MQTTProtocolVersion.MQTTv5
        client = MqttClient(url, "tls-env0", persistent=False)
        connected = threading.Event()
        client.on_connect = lambda session_present: connected.set()  # called for an accepted connection only
        client.connect()
        assert connected.wait(10)
        client.publish("campus/v1/t1/ENV-0/telemetry", b'{"metrics": {"co2": 500}}', qos=1).wait_for_publish(10)
        client.close()
        with pytest.raises(BrokerError, match="unreachable"):  # a CA the broker's certificate does not chain to
            detect_protocol(f"mqtts://ENV-0:{pw['ENV-0']}@127.0.0.1:{tls_port}?ca={d / 'other.crt'}")
    finally:
        broker.stop()
