"""twin.mqtt's client on a real broker: buffered socket reads."""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as paho

from tests.helpers import publisher, wait_for
from twin.mqtt import READ_CHUNK, MqttClient


def _subscriber(mqtt_url: str, client_id: str, topic_filter: str, *, persistent: bool = False,
                manual_ack: bool = False) -> tuple[MqttClient, list[paho.MQTTMessage]]:
    """A connected client subscribed to ``topic_filter`` (QoS 1), collecting what it receives."""
    mqtt = MqttClient(mqtt_url, client_id, persistent=persistent, manual_ack=manual_ack)
    received: list[paho.MQTTMessage] = []
    subscribed = threading.Event()
    mqtt.client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos=1)
    mqtt.client.on_subscribe = lambda *a: subscribed.set()
    mqtt.client.on_message = lambda c, u, msg: received.append(msg)
    mqtt.connect()
    assert subscribed.wait(10), "could not subscribe"
    return mqtt, received


def test_buffered_reads_deliver_every_packet_whole_and_in_order(mqtt_url: str, monkeypatch) -> None:
    """Packets of every size, from empty to several read chunks, come out exactly as sent, while
    the socket is read far fewer times than there are packets."""
    reads = []
    plain_recv = paho.Client._sock_recv

    def counting_recv(self, bufsize):  # noqa: ANN001
        reads.append(bufsize)
        return plain_recv(self, bufsize)

    monkeypatch.setattr(paho.Client, "_sock_recv", counting_recv)
    base = f"test/buffered/{uuid.uuid4().hex[:8]}"
    sizes = [0, 1, 100, 127, 128, 16_383, 16_384, READ_CHUNK - 5, READ_CHUNK, READ_CHUNK + 7, 3 * READ_CHUNK + 1]
    sent = [(f"{base}/{i % 7}", bytes([i % 251]) * sizes[i % len(sizes)] if i % 50 == 0 else
             b'{"ts":%d,"metrics":{"co2":%d}}' % (i, 400 + i % 600)) for i in range(3000)]
    mqtt, received = _subscriber(mqtt_url, f"test-buffered-{uuid.uuid4().hex[:6]}", f"{base}/#")
    reads.clear()
    try:
        with publisher(mqtt_url, f"test-buffered-pub-{uuid.uuid4().hex[:6]}") as pub:
            # In bursts the broker's per-client queue holds (Mosquitto's default is 1,000 messages).
            for start in range(0, len(sent), 250):
                for t, p in sent[start:start + 250]:
                    pub.publish(t, p, qos=1)
                wait_for(lambda: len(received) >= min(start + 250, len(sent)), timeout=30)
        time.sleep(0.3)  # nothing more may come
    finally:
        mqtt.close()
    assert [(m.topic, m.payload) for m in received] == sent
    # Two or three reads a packet unbuffered; the subscriber's reads here also include its
    # PUBACK-free ones for the big packets. Far fewer than one a packet means the buffer served them.
    assert len(reads) < len(sent) / 3, f"{len(reads)} socket reads for {len(sent)} packets"
