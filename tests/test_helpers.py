"""The shared test helpers themselves."""

from __future__ import annotations

from tests.helpers import publisher


def test_publishers_have_their_own_client_ids_on_a_shared_broker(mqtt_url: str) -> None:
    # one fixed id made the broker disconnect a test's publisher when another test connected with it
    with publisher(mqtt_url) as first, publisher(mqtt_url) as second:
        assert first.client_id != second.client_id
        assert first.client_id.startswith("test-pub-") and second.client_id.startswith("test-pub-")
        assert first.is_connected() and second.is_connected()
    with publisher(mqtt_url, "test-pub-named") as named:
        assert named.client_id == "test-pub-named"
