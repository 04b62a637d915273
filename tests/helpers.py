"""Small helpers shared by tests: a known twin, waiting for conditions, publishing."""

from __future__ import annotations

import http.cookiejar
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shapely.geometry import box

from twin.database import connection
from twin.domain import Building, Device, Room, Site, Storey, TwinModel
from twin.messaging.mqtt import MqttClient


def stored_readings(url: str) -> int:
    """Rows in ``readings``. Tests on a shared broker wait on this, not on a worker's message counter:
    that also counts the retained statuses other tests left on the broker."""
    with connection(url) as conn:
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])


def small_twin(site_id: str = "t1", rooms: int = 3) -> TwinModel:
    """One building, one storey, ``rooms`` classrooms side by side, a sensor and a luminaire in each."""
    room_list = tuple(
        Room(f"R{i}", "S1", f"Room {i}", use="classroom", footprint=box(i * 10, 0, i * 10 + 9, 7),
             area_m2=63.0, height_m=3.2)
        for i in range(rooms)
    )
    devices = tuple(
        dev for i in range(rooms) for dev in (
            Device(f"ENV-{i}", f"G-ENV-{i}", "env_sensor", "IfcSensor", room_global_id=f"R{i}",
                   storey_global_id="S1", mapping="containment", x=i * 10 + 1, y=1, z=1),
            Device(f"LUM-{i}", f"G-LUM-{i}", "luminaire", "IfcLightFixture", room_global_id=f"R{i}",
                   storey_global_id="S1", mapping="containment", x=i * 10 + 4, y=3, z=3),
        )
    )
    return TwinModel(Site(site_id, f"Test school {site_id}", "headquarters", 22.5, 114.0),
                     (Building("B1", "Main"),), (Storey("S1", "B1", "1F", 0.0),), room_list, devices, "IFC4")


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with the last value on timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


@contextmanager
def running(target: Callable[[threading.Event], None]) -> Iterator[threading.Event]:
    """Run ``target(stop)`` in a thread for the duration of the block."""
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(20)
        assert not thread.is_alive(), "worker did not stop within 20 s"


@contextmanager
def publisher(mqtt_url: str, client_id: str | None = None) -> Iterator[Any]:
    """A connected :class:`MqttClient`; waits for outstanding QoS 1 publishes before disconnecting. Its
    client id is unique unless given: a shared broker disconnects an older connection with the same id."""
    connected = threading.Event()
    client_id = client_id or f"test-pub-{uuid.uuid4().hex[:8]}"
    mqtt = MqttClient(mqtt_url, client_id, persistent=False, on_connect=lambda session_present: connected.set())
    mqtt.connect()
    assert connected.wait(10), "publisher could not connect"
    try:
        yield mqtt
    finally:
        mqtt.close()


class QosPublisher:
    """Publishes QoS 1 messages from a persistent session at ``rate`` a second (from any thread).

    Holds while ``go`` is clear and while disconnected; after a broker restart it reconnects within
    half a second (sooner than ingest, whose backoff starts at 1 s) and paho resends what the broker
    had not acknowledged. ``infos`` holds every publish, ``acked()`` counts their PUBACKs.
    """

    def __init__(self, url: str, rate: float = 2000.0) -> None:
        self.connected = threading.Event()
        self.mqtt = MqttClient(url, f"pub-{uuid.uuid4().hex[:8]}", persistent=True, reconnect_delay_s=(0.1, 0.5),
                               on_connect=lambda session_present: self.connected.set(),
                               on_disconnect=lambda reason: self.connected.clear())
        self.rate = rate
        self.go = threading.Event()
        self.go.set()
        self.infos: list[Any] = []
        self.mqtt.connect()
        assert self.connected.wait(10), "publisher could not connect"

    def publish(self, messages: Iterable[tuple[str, bytes]], ack_timeout: float | None = 60.0) -> None:
        """Publish ``(topic, payload)`` pairs, throttled; then wait for their PUBACKs (unless ``ack_timeout`` is None)."""
        mine, t0 = [], time.monotonic()
        for sent, (t, body) in enumerate(messages, 1):
            self.go.wait()
            self.connected.wait(60)
            info = self.mqtt.publish(t, body, qos=1)
            mine.append(info)
            self.infos.append(info)
            ahead = sent / self.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        if ack_timeout is not None:
            wait_for(lambda: all(info.is_published() for info in mine), timeout=ack_timeout)

    def acked(self) -> int:
        return sum(1 for info in self.infos if info.is_published())

    def close(self) -> None:
        self.mqtt.close()

    def __enter__(self) -> QosPublisher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@contextmanager
def in_thread(fn: Callable[..., Any], *args: Any) -> Iterator[threading.Thread]:
    """Run ``fn(*args)`` in a thread for the duration of the block; it must end within 120 s after."""
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    yield thread
    thread.join(120)
    assert not thread.is_alive(), f"{fn} did not end within 120 s"


# --- dashboard logins (through the real /login form) ---------------------------------------------

PASSWORD = "correct horse battery staple"
_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_user(db_url: str, username: str, role: str, password: str = PASSWORD) -> None:
    """A dashboard user stored the way ``campus-twin users add`` stores it."""
    from twin.database import connection
    from twin.storage.users import add_user as add

    with connection(db_url) as conn:
        add(conn, username, role, password)


@dataclass(frozen=True)
class Login:
    """A logged-in session: its cookie token and CSRF token, as headers for requests."""

    session: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        """Cookie and ``X-CSRFToken`` headers, as the browser sends them on a callback POST."""
        return {"Cookie": f"campus_twin_session={self.session}; _csrf_token={self.csrf}", "X-CSRFToken": self.csrf}


def login(client: Any, username: str, password: str = PASSWORD, prefix: str = "/") -> Login:
    """Log ``client`` (a Flask test client) in through the login form; it keeps the cookies."""
    page = client.get(f"{prefix}login")
    token = _FORM_TOKEN.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    response = client.post(f"{prefix}login", data={"username": username, "password": password,
                                                   "csrf_token": token, "next": prefix})
    assert response.status_code == 302, f"login of {username!r} failed: HTTP {response.status_code}"
    return Login(client.get_cookie("campus_twin_session").value, client.get_cookie("_csrf_token").value)


def http_login(base: str, username: str, password: str = PASSWORD) -> tuple[urllib.request.OpenerDirector, Login]:
    """Log in over real HTTP; an opener that keeps the session cookie, and the login."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base + "/login", timeout=10) as page:
        token = _FORM_TOKEN.search(page.read().decode()).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token,
                                   "next": "/"}).encode()
    with opener.open(base + "/login", form, timeout=10) as response:
        assert response.status == 200, response.status  # followed the redirect to the overview
    cookies = {c.name: c.value for c in jar}
    return opener, Login(cookies["campus_twin_session"], cookies["_csrf_token"])


def browser_login(browser: Any, base_url: str, db_url: str, username: str, role: str, next_path: str = "/",
                  timeout: float = 20.0) -> None:
    """Make ``username`` (``role``) and log in through the login form in a real browser; returns on the page
    ``next_path`` with the user badge shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    add_user(db_url, username, role)
    wait = WebDriverWait(browser, timeout)
    browser.get(base_url + "/login?" + urllib.parse.urlencode({"next": next_path}))
    wait.until(lambda d: d.find_elements(By.ID, "login-username"))
    browser.find_element(By.ID, "login-username").send_keys(username)
    browser.find_element(By.ID, "login-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait.until(lambda d: d.find_elements(By.ID, "current-user"))
