"""One IFC import at a time across every dashboard process and host (gunicorn runs several workers; issue 18):
the slot is a PostgreSQL advisory lock, not a lock of one process."""

from __future__ import annotations

import base64
import functools

import pytest

from tests.test_dashboard import KnownTwin, known_twin, make_app  # noqa: F401 - fixture
from tests.test_dashboard_auth import HEADER
from twin.database import connection
from twin.storage import bim_imports


def test_an_import_in_another_worker_refuses_this_one_until_it_ends(known_twin: KnownTwin) -> None:  # noqa: F811
    from dashboard.app import close_app
    from twin.cli import load_bim

    app = make_app(known_twin.url, bim_loader=functools.partial(load_bim, known_twin.url))
    contents = "data:application/octet-stream;base64," + base64.b64encode(HEADER).decode()
    try:
        from dashboard import data
        from dashboard.pages import bim  # pages register with an app
        from dashboard.uploads import UploadError

        with connection(known_twin.url) as other:  # another worker process, importing
            assert bim_imports.try_lock_running(other)
            with app.server.test_request_context("/bim"):
                with pytest.raises(UploadError, match="another IFC import is running"):
                    bim.plan_upload(contents, "x.ifc", "lock-test", None, "member", username="planner-1")
                with data.import_slot() as ours:
                    assert not ours
            bim_imports.unlock_running(other)
        with app.server.test_request_context("/bim"):
            with data.import_slot() as ours:
                assert ours
            with data.import_slot() as ours:  # given back when the import ended
                assert ours
    finally:
        close_app(app)
