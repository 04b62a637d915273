"""``campus-twin demo`` as a user runs it: embedded defaults, serves, stores, stops cleanly, reruns."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psutil

from tests.helpers import http_login, wait_for
from twin.messaging.broker import free_port


def cli(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "twin.cli", "--data-dir", str(data_dir), *args]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPUS_TWIN_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def processes_using(path: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmd:
            found.append(f"{proc.info['pid']}: {cmd[:120]}")
    return found


def finish(proc: subprocess.Popen[str], timeout: float, seen: list[str]) -> str:
    """The rest of the output once ``proc`` exits; a hang fails with everything it printed (stacks included)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # every thread's stack on its output (twin.services.stop_on_signals)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        raise AssertionError(f"still running {timeout} s after the stop:\n" + "".join(seen) + out) from None
    return out


def test_demo_runs_on_embedded_defaults_serves_stores_and_stops_cleanly(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    proc = subprocess.Popen(cli(data, "demo", "--duration", "30", "--port", str(port), "--interval", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env())
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("login:"):
            break
    assert any(f"http://127.0.0.1:{port}/" in line for line in lines), "".join(lines)
    match = re.search(r"log in as 'admin' with password (\S+)", lines[-1])
    assert match, "".join(lines)  # the first run creates the admin and prints the password once
    body = ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            opener, _ = http_login(f"http://127.0.0.1:{port}", "admin", match.group(1))
            with opener.open(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                body = resp.read().decode()
                break
        except OSError:
            time.sleep(0.3)
    assert "_dash-renderer" in body
    lines.append(finish(proc, 120, lines))
    assert proc.returncode == 0, "".join(lines)
    assert "loaded hq" in "".join(lines) and "loaded m02" in "".join(lines)

    status = subprocess.run(cli(data, "db", "status", "--json"), capture_output=True, text=True, env=clean_env(),
                            timeout=60)
    assert status.returncode == 0, status.stderr
    info = orjson.loads(status.stdout)
    assert info["tables"]["readings"] > 0 and info["tables"]["sites"] == 3
    wait_for(lambda: processes_using(data) == [], timeout=30)  # no orphan processes after the demo stopped

    # a second run reuses the data and exits 0 on SIGTERM
    proc = subprocess.Popen(cli(data, "demo", "--port", str(port)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=clean_env())
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("login:"):
            break
    assert "password printed by the first demo run" in seen[-1] and match.group(1) not in "".join(seen)
    proc.terminate()
    out = finish(proc, 120, seen)  # the services' 30 s, then the embedded server's own stop
    assert proc.returncode == 0, "".join(seen) + out
    assert not any(line.startswith("loaded ") for line in seen), "second run must reuse the loaded network"
    status = subprocess.run(cli(data, "db", "status", "--json"), capture_output=True, text=True, env=clean_env(),
                            timeout=60)
    again = orjson.loads(status.stdout)
    assert again["tables"]["sites"] == 3 and again["tables"]["devices"] == info["tables"]["devices"]
    assert again["tables"]["readings"] >= info["tables"]["readings"]
    wait_for(lambda: processes_using(data) == [], timeout=30)
