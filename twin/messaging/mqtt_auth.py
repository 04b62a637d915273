"""Per-account MQTT credentials, the broker's ACL and a Mosquitto configuration (docs/security.md).

Who may do what (subscribing to a filter also means receiving what matches it):

=========== ============================================================ ==========================
account     publish                                                      subscribe (receive)
=========== ============================================================ ==========================
device      its own ``telemetry``, ``status``, ``cmd/ack``                its own ``cmd``
gateway     ``telemetry``, ``status``, ``cmd/ack`` of its site's devices  its site's ``cmd``
            and ``campus/v1/{site}/_gateway/+/status``
ingest      nothing                                                      all ``telemetry``, ``status``;
                                                                         what adapter accounts publish
                                                                         (also as ``$share/<group>/...``)
dashboard   all ``cmd``; the adapters' command topics                    all ``cmd/ack``, ``alarms``
monitor     all ``campus/v1/{site}/alarms`` (alarm events)                nothing
integration its adapter's topics under its prefix (:func:`adapter_table`) its adapter's command topics
=========== ============================================================ ==========================

A device's username is its device id; a site's gateway is ``gateway@{site}``; an adapter subscription's
account ``{adapter}@{site}`` (a further prefix of that adapter at the site: ``{adapter}.2@{site}``, ...);
a Tasmota device's account its Tasmota topic. Anonymous clients and unknown usernames are refused by the
broker (``allow_anonymous false``).

Mosquitto 2.0's ``acl_file`` cannot refuse a subscription (it grants every SUBACK and checks
"read" per delivered message), and a member of a shared group still takes its turn of the
messages it may not read: a device subscribed to ``$share/campus-ingest/...`` silently
swallowed half of the telemetry. The generated ``mosquitto.conf`` therefore uses Mosquitto's
dynamic security plugin, whose subscribe ACLs default to deny: the broker refuses such a
SUBSCRIBE (reason code 0x87). ``passwd`` and ``acl`` are still written for other setups.
"""

from __future__ import annotations

import csv
import io
import json
import pwd
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from twin import security
from twin.identities import ADAPTERS, CHIRPSTACK, TASMOTA, TTS, ZIGBEE2MQTT, overlap
from twin.messaging import broker, contract, device_commands
from twin.storage import identities, mqtt_accounts
from twin.storage.identities import AdapterConfig
from twin.storage.sites import site_exists

INGEST, DASHBOARD, MONITOR = "ingest", "dashboard", "monitor"
SERVICE_ROLES = (INGEST, DASHBOARD, MONITOR)
#: Accounts of the sites' adapters: a gateway or network server, or one Tasmota device.
INTEGRATION = "integration"
#: Levels of a zigbee2mqtt friendly name the dashboard may command (``hall/lamp/set`` has two; the encoder
#: refuses deeper names): a friendly name may hold ``/``, and no MQTT filter ends a topic of any depth with
#: ``/set`` without ``{prefix}/#``, which would also let the dashboard send bridge requests (remove
#: devices, permit joining).
Z2M_NAME_LEVELS = device_commands.Z2M_NAME_LEVELS
#: Adapter usernames that no device may take: ``{adapter}@...`` and ``{adapter}.N@...``.
_INTEGRATION_NAME = re.compile("(" + "|".join(a for a in ADAPTERS if a != TASMOTA) + r")(\.[0-9]+)?@")


class CredentialsError(ValueError):
    """Credentials cannot be issued (unknown site, no devices)."""


def gateway_username(site_id: str) -> str:
    return f"gateway@{site_id}"


@dataclass(frozen=True, slots=True)
class Grants:
    """What one account may publish and subscribe to (topic filters); ``shared``: the subscriptions
    also through ``$share/<any group>/...``; ``subscribe_only``: filters it may subscribe to without
    receiving more than its ``subscribe`` filters match (a client that subscribes more widely than it needs)."""

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    shared: bool = False
    subscribe_only: tuple[str, ...] = ()


def adapter_table(adapter: str, prefix: str, account: str = "+") -> tuple[Grants, tuple[str, ...]]:
    """One adapter subscription's part of the table: its integration account's grants (``account``: a
    Tasmota device's topic; ``+`` for every device's) and the command topics the dashboard may publish.
    Ingest reads what the accounts may publish (``account`` ``+``)."""
    if adapter == ZIGBEE2MQTT:  # zigbee2mqtt publishes and subscribes under its base topic (/set, bridge requests)
        return (Grants((f"{prefix}/#",), (f"{prefix}/#",)),
                tuple(f"{prefix}/{'+/' * n}set" for n in range(1, Z2M_NAME_LEVELS + 1)))
    if adapter == CHIRPSTACK:  # prefix application/<id>; ChirpStack subscribes application/+/device/+/command/+
        device, anyone = f"{prefix}/device/+", "/".join([*prefix.split("/")[:-1], "+"])
        return (Grants((f"{device}/event/+",), (f"{device}/command/down",),
                       subscribe_only=(f"{anyone}/device/+/command/+",)), (f"{device}/command/down",))
    if adapter == TTS:  # a bridge republishing The Things Stack's v3/<app>@<tenant>/devices/<id>/<event>
        devices = f"{prefix}/devices/+"
        return Grants((f"{devices}/+",), (f"{devices}/down/push",)), (f"{devices}/down/push",)
    if adapter == TASMOTA:  # each device its own client: FullTopic [prefix/]%prefix%/%topic%/
        p = f"{prefix}/" if prefix else ""
        return (Grants((f"{p}tele/{account}/#", f"{p}stat/{account}/#"), (f"{p}cmnd/{account}/#",)),
                (f"{p}cmnd/+/POWER", f"{p}cmnd/+/Dimmer"))
    raise ValueError(f"unknown adapter {adapter!r}")


def grants(role: str, username: str, site_id: str | None, adapters: Sequence[tuple[str, str]] = ()) -> Grants:
    """The one table of who may do what; the ``acl`` file and the dynamic security file are made from it.

    ``adapters``: ``(adapter, prefix)`` subscriptions. For an integration account the one it serves (a
    Tasmota device's: its site's Tasmota prefixes), for ingest and the dashboard every one enabled; the
    other accounts ignore them."""
    p = contract.PREFIX
    if role == "device":
        own = f"{p}/{site_id}/{username}"
        return Grants((f"{own}/{contract.TELEMETRY}", f"{own}/{contract.STATUS}", f"{own}/{contract.CMD_ACK}"),
                      (f"{own}/{contract.CMD}",))
    if role == "gateway":
        site = f"{p}/{site_id}/+"
        return Grants((f"{site}/{contract.TELEMETRY}", f"{site}/{contract.STATUS}", f"{site}/{contract.CMD_ACK}",
                       f"{p}/{site_id}/{contract.GATEWAY}/+/{contract.STATUS}"), (f"{site}/{contract.CMD}",))
    parts = [adapter_table(adapter, prefix, username if role == INTEGRATION else "+") for adapter, prefix in adapters]
    if role == INGEST:
        return Grants((), (contract.TELEMETRY_FILTER, contract.STATUS_FILTER, contract.GATEWAY_STATUS_FILTER,
                           *_unique(t for account, _ in parts for t in account.publish)), shared=True)
    if role == DASHBOARD:
        return Grants((f"{p}/+/+/{contract.CMD}", *_unique(t for _, commands in parts for t in commands)),
                      (f"{p}/+/+/{contract.CMD_ACK}", f"{p}/+/{contract.ALARMS}"))
    if role == MONITOR:
        return Grants((f"{p}/+/{contract.ALARMS}",))
    if role == INTEGRATION:
        if not parts:
            raise ValueError(f"integration account {username!r} serves no adapter")
        return Grants(*(_unique(t for account, _ in parts for t in getattr(account, name))
                        for name in ("publish", "subscribe")),
                      subscribe_only=_unique(t for account, _ in parts for t in account.subscribe_only))
    raise ValueError(f"unknown MQTT account role {role!r}")


def _unique(topics: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(topics))


def account_grants(account: Mapping[str, Any], enabled: Sequence[AdapterConfig] = ()) -> Grants:
    """The grants of a stored account (:func:`twin.storage.mqtt_accounts.accounts`) with the ``enabled``
    adapter subscriptions; an integration account whose adapter is not among them gets nothing."""
    role, site = account["role"], account["site_id"]
    if role == INTEGRATION:
        adapter, prefix = account.get("adapter"), account.get("prefix")
        subs = [(c.adapter, c.prefix) for c in enabled
                if (c.site_id, c.adapter) == (site, adapter) and prefix in (None, c.prefix)]
        return grants(role, account["username"], site, subs) if subs else Grants()
    subs = [(c.adapter, c.prefix) for c in enabled] if role in (INGEST, DASHBOARD) else []
    return grants(role, account["username"], site, subs)


def covers(grant: str, wanted: str) -> bool:
    """Whether every topic the filter ``wanted`` matches also matches the filter ``grant``."""
    g, w = grant.split("/"), wanted.split("/")
    for i, level in enumerate(g):
        if level == "#":
            return True
        if i >= len(w) or w[i] == "#" or (level != "+" and w[i] != level):
            return False
    return len(w) == len(g)


def conflict(own: Grants, site_id: str, adapter: str, prefix: str | None,
             enabled: Sequence[AdapterConfig]) -> str | None:
    """Why an integration account with ``own`` grants must not be issued, or None: its topics overlap the
    twin's own (``campus/v1/#``) or another adapter subscription's (it could speak for devices not its own;
    ingest could not tell whose a message is). Its own: ``(adapter, prefix)``, for a Tasmota device (``prefix``
    None) its site's Tasmota subscriptions."""
    topics = (*own.publish, *own.subscribe)
    twin = f"{contract.PREFIX}/#"
    if any(overlap(t, twin) for t in topics):
        return f"its topics overlap the twin's own ({twin}): give the {adapter} adapter another prefix"
    for c in enabled:
        if (c.adapter, c.prefix) == (adapter, prefix) or (prefix is None and (c.site_id, c.adapter) == (site_id, adapter)):
            continue
        theirs, _ = adapter_table(c.adapter, c.prefix)
        if any(overlap(t, u) for t in topics for u in (*theirs.publish, *theirs.subscribe)):
            return (f"its topics overlap the {c.adapter} topics of site {c.site_id!r} (prefix {c.prefix!r}): "
                    "give one of them another prefix")
    return None


def acl_lines(g: Grants) -> list[str]:
    """The ``topic`` lines of one account (its ``user`` block without the header); an ``acl_file`` checks
    only what is delivered, so ``subscribe_only`` filters need no line."""
    return [f"topic write {t}" for t in g.publish] + [f"topic read {t}" for t in g.subscribe]


def acl_file(accounts: Iterable[Mapping[str, Any]], enabled: Sequence[AdapterConfig] = ()) -> str:
    """Mosquitto ``acl_file`` text: one ``user`` block per account, nothing for anyone else."""
    out = ["# Campus Twin MQTT ACL, generated by `campus-twin devices credentials`; do not edit.",
           "# Mosquitto 2.0's acl_file cannot refuse a subscription (a device could join ingest's",
           "# $share group): use the generated mosquitto.conf (dynamic security plugin) instead.", ""]
    for a in accounts:
        out += [f"user {a['username']}", *acl_lines(account_grants(a, enabled)), ""]
    return "\n".join(out)


def password_file(accounts: Iterable[Mapping[str, Any]]) -> str:
    """Mosquitto ``password_file`` text: ``username:$7$...`` lines."""
    return "".join(f"{a['username']}:{a['password_hash']}\n" for a in accounts)


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def dynsec_acls(g: Grants) -> list[dict[str, Any]]:
    """Dynamic security ACLs of one account: everything not listed is refused (see :func:`dynsec_config`)."""
    acls = [_acl("publishClientSend", t) for t in g.publish]
    for t in g.subscribe:
        acls.append(_subscribe_acl(t))
        acls.append(_acl("publishClientReceive", t))
        if g.shared:
            acls.append(_acl("subscribePattern", f"$share/+/{t}"))
    acls += [_subscribe_acl(t) for t in g.subscribe_only if t not in g.subscribe]
    return acls


def _subscribe_acl(topic: str) -> dict[str, Any]:
    wildcard = "+" in topic.split("/") or topic.endswith("#")
    return _acl("subscribePattern" if wildcard else "subscribeLiteral", topic)


def _dynsec_password(password_hash: str) -> dict[str, Any]:
    """``$7$<iterations>$<salt>$<hash>`` (PBKDF2-HMAC-SHA512, 12-byte salt) as the plugin's fields: the same
    algorithm, so the stored hash serves both files and no password is needed again."""
    parts = password_hash.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise CredentialsError("an MQTT account's password hash is not Mosquitto's $7$ format; issue it again")
    return {"password": parts[4], "salt": parts[3], "iterations": int(parts[2])}


def dynsec_config(accounts: Iterable[Mapping[str, Any]], enabled: Sequence[AdapterConfig] = ()) -> dict[str, Any]:
    """The dynamic security plugin's JSON: one client and one role per account, and default access that
    refuses publishing, receiving and subscribing to anything not granted (unsubscribing is always allowed)."""
    clients, roles = [], []
    for a in accounts:
        rolename = f"{a['role']}:{a['username']}"
        roles.append({"rolename": rolename, "acls": dynsec_acls(account_grants(a, enabled))})
        clients.append({"username": a["username"], "textname": a["role"], **_dynsec_password(a["password_hash"]),
                        "roles": [{"rolename": rolename}]})
    return {"defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False, "subscribe": False,
                                 "unsubscribe": True},
            "clients": clients, "groups": [], "roles": roles}


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """Settings of the generated ``mosquitto.conf``; paths absolute when written."""

    port: int = 1883
    bind: str | None = None  # None: every interface
    persistence_dir: Path | None = None  # None: <out>/data
    dynsec_plugin: str | None = None  # None: found next to mosquitto (twin.messaging.broker.find_dynsec_plugin)
    max_queued_messages: int = broker.MAX_QUEUED_MESSAGES
    max_queued_bytes: int = broker.MAX_QUEUED_BYTES


def mosquitto_conf(out: Path, opts: BrokerOptions) -> str:
    """A Mosquitto 2 configuration that starts as it is (``mosquitto -c <out>/mosquitto.conf``)."""
    out = out.resolve()
    plugin = opts.dynsec_plugin or broker.find_dynsec_plugin() or broker.DYNSEC_PLUGIN
    data = (opts.persistence_dir or out / "data").resolve()
    listener = f"listener {opts.port}" + (f" {opts.bind}" if opts.bind else "")
    return f"""\
# Campus Twin broker configuration, generated by `campus-twin devices credentials`; rewritten at every run.
# Start: mosquitto -c {out / 'mosquitto.conf'}   (docs/security.md)
per_listener_settings false
{listener}
allow_anonymous false
# Accounts and ACLs: the dynamic security plugin refuses any SUBSCRIBE not granted ($share/... included);
# an acl_file cannot.
plugin {plugin}
plugin_opt_config_file {out / DYNSEC_FILE}
# Sessions, subscriptions and queued messages survive a broker restart (saved on SIGTERM and every 60 s).
persistence true
persistence_location {data}/
autosave_interval 60
# Queue for an ingest outage: Mosquitto's default of 1,000 messages per client drops the rest.
{broker.delivery_settings(opts.max_queued_messages, opts.max_queued_bytes)}"""


@dataclass
class Issued:
    """What one run issued: ``(username, password, role)`` rows, and devices left out with the reason."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def issue(conn: psycopg.Connection, site_id: str, *, rotate_services: bool = False) -> Issued:
    """Issue new passwords for every device of ``site_id``, its gateway and the integration accounts of its
    enabled adapters (one per zigbee2mqtt, ChirpStack or The Things Stack prefix, one per bound Tasmota
    topic); ``ingest``, ``dashboard`` and ``monitor`` get one when they have none yet, or with
    ``rotate_services``. An account that cannot be issued is in ``skipped`` with the reason."""
    devices = mqtt_accounts.site_devices(conn, site_id)
    if not site_exists(conn, site_id):
        raise CredentialsError(f"unknown site {site_id!r}")
    issued = Issued()
    enabled = identities.adapters(conn)

    def give(username: str, role: str, site: str | None = None, key: int | None = None, *,
             adapter: str | None = None, prefix: str | None = None) -> None:
        password = security.random_password()
        mqtt_accounts.save_account(conn, username, role, security.mosquitto_hash(password), site_id=site,
                                   device_key=key, adapter=adapter, prefix=prefix)
        issued.rows.append((username, password, role))

    for service in SERVICE_ROLES:
        if rotate_services or mqtt_accounts.owner(conn, service) is None:
            give(service, service)
    give(gateway_username(site_id), "gateway", site_id)
    mqtt_accounts.drop_unused_integrations(conn)
    mine = [c for c in enabled if c.site_id == site_id]
    for c in (c for c in mine if c.adapter != TASMOTA):
        name = (mqtt_accounts.integration_username(conn, site_id, c.adapter, c.prefix)
                or _free_name(conn, c.adapter, site_id))
        problem = conflict(adapter_table(c.adapter, c.prefix)[0], site_id, c.adapter, c.prefix, enabled)
        if problem:
            issued.skipped.append((name, problem))
        else:
            give(name, INTEGRATION, site_id, adapter=c.adapter, prefix=c.prefix)
    keys = {d["device_id"]: d["id"] for d in devices}
    tasmota = [(i.hardware_id, keys[i.device_id]) for i in identities.identities(conn, site_id=site_id)
               if i.kind == TASMOTA and i.device_id in keys] if any(c.adapter == TASMOTA for c in mine) else []
    for topic, key in tasmota:
        problem = _username_problem(conn, topic, site_id, key, tasmota=True) or conflict(
            grants(INTEGRATION, topic, site_id, [(c.adapter, c.prefix) for c in mine if c.adapter == TASMOTA]),
            site_id, TASMOTA, None, enabled)
        if problem:
            issued.skipped.append((topic, problem))
        else:
            give(topic, INTEGRATION, site_id, key, adapter=TASMOTA)
    for d in devices:
        name = d["device_id"]
        problem = _username_problem(conn, name, site_id, d["id"], tasmota=False)
        if problem:
            issued.skipped.append((name, problem))
        else:
            give(name, "device", site_id, d["id"])
    return issued


def _username_problem(conn: psycopg.Connection, name: str, site_id: str, key: int, *, tasmota: bool) -> str | None:
    """Why ``name`` cannot be the account of device ``key`` of ``site_id`` (its device account, or with
    ``tasmota`` its Tasmota topic's), or None. A device account of the site is issued again; a Tasmota
    topic's account too, and it takes over the device account of its own device (same name)."""
    if not security.valid_mqtt_name(name):
        return "not usable as an MQTT username (space, '/', '+', '#', ':' or control)"
    if name in SERVICE_ROLES or name.startswith(gateway_username("")) or _INTEGRATION_NAME.match(name):
        return "reserved for the twin's service, gateway and adapter accounts"
    taken = mqtt_accounts.owner(conn, name)
    if taken is None:
        return None
    role, site, device = taken
    if site == site_id:
        if (role == "device" and not tasmota) or (role in ("device", INTEGRATION) and tasmota and device == key):
            return None
        if role == INTEGRATION and device == key:
            return "its hardware speaks Tasmota under this name: its account is the Tasmota one"
    article = "an" if role[0] in "aeiou" else "a"
    return f"username already taken by {article} {role} account" + (f" of site {site!r}" if site else "")


def _free_name(conn: psycopg.Connection, adapter: str, site_id: str) -> str:
    """``{adapter}@{site}``, or ``{adapter}.N@{site}`` with the smallest free N from 2."""
    n = 1
    while mqtt_accounts.owner(conn, name := f"{adapter}{f'.{n}' if n > 1 else ''}@{site_id}") is not None:
        n += 1
    return name


DYNSEC_FILE = "dynamic-security.json"
#: Mode of the broker's files unless told otherwise: readable by their owner only.
DEFAULT_MODE = 0o600


@dataclass(frozen=True, slots=True)
class FileOwner:
    """Who gets the broker's files (``USER[:GROUP]``; the group defaults to the user's own)."""

    user: str
    group: str | int

    @classmethod
    def parse(cls, text: str) -> FileOwner:
        user, _, group = text.partition(":")
        try:
            entry = pwd.getpwnam(user)
        except KeyError as exc:
            raise CredentialsError(f"no such user {user!r} for --owner") from exc
        return cls(user, group or entry.pw_gid)


def _write(path: Path, text: str, mode: int, owner: FileOwner | None) -> Path:
    """Write ``text`` to a file readable by nobody else while it is written, then give it ``owner`` and ``mode``."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")
    if owner is not None:
        try:
            shutil.chown(path, owner.user, owner.group)
        except (PermissionError, LookupError) as exc:
            raise CredentialsError(f"cannot give {path} to {owner.user}: {exc}") from exc
    path.chmod(mode)
    return path


def write_files(conn: psycopg.Connection, out: Path, issued: Issued, *, options: BrokerOptions | None = None,
                mode: int = DEFAULT_MODE, owner: FileOwner | None = None) -> list[Path]:
    """Write the broker's files for every account of the twin (``passwd``, ``acl``, ``dynamic-security.json``,
    ``mosquitto.conf``, with ``mode`` and ``owner``) and ``credentials.csv`` (this run's passwords; always
    mode 0600 and the caller's) to ``out``; create the persistence folder (mode 0700, ``owner``) if missing."""
    if mode & 0o007:
        raise CredentialsError(f"mode {mode:04o} lets every user read password hashes; use 0600 or 0640")
    options = options or BrokerOptions()
    out.mkdir(parents=True, exist_ok=True)
    every = mqtt_accounts.accounts(conn)
    enabled = identities.adapters(conn)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("username", "password", "role"))
    writer.writerows(issued.rows)
    data = options.persistence_dir or out / "data"
    if not data.exists():
        data.mkdir(mode=0o700, parents=True)
        if owner is not None:
            shutil.chown(data, owner.user, owner.group)
    broker_files = (("passwd", password_file(every)), ("acl", acl_file(every, enabled)),
                    (DYNSEC_FILE, json.dumps(dynsec_config(every, enabled), indent=1) + "\n"),
                    ("mosquitto.conf", mosquitto_conf(out, options)))
    paths = [_write(out / name, text, mode, owner) for name, text in broker_files]
    paths.append(_write(out / "credentials.csv", buf.getvalue(), 0o600, None))
    return paths
