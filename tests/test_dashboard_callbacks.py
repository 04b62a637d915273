"""Every callback of the dashboard is registered once: a page that another page imports before Dash's page
loader reaches it would otherwise register its callbacks twice, and each of its refreshes would run twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A fresh interpreter: nothing imported before the app, as in ``campus-twin dashboard``.
CALLBACK_OUTPUTS = """
import json, sys
from dashboard.app import close_app, create_app
app = create_app(sys.argv[1])
try:
    print(json.dumps([c["output"] for c in app._callback_list]))
finally:
    close_app(app)
"""


def test_every_callback_is_registered_once(db_url: str) -> None:
    done = subprocess.run([sys.executable, "-c", CALLBACK_OUTPUTS, db_url], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    outputs = json.loads(done.stdout.strip().splitlines()[-1])
    assert outputs
    assert sorted({o for o in outputs if outputs.count(o) > 1}) == []
