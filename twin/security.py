"""Passwords, tokens and roles: pure functions, no I/O.

Two hash formats, both with a per-secret random salt and a constant-time compare:

- dashboard users: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` (:func:`hash_password`);
- MQTT accounts: Mosquitto 2's own ``$7$<iterations>$<salt b64>$<hash b64>`` (PBKDF2-HMAC-SHA512,
  12-byte salt, 64-byte hash; :func:`mosquitto_hash`), so ``password_file`` lines are written
  here and no ``mosquitto_passwd`` binary is needed.

Roles are plain data: :data:`PERMISSIONS` says which actions each role may take.

Login throttling is plain arithmetic on stored failures (:func:`login_wait`): past a number of free
failures, each further attempt waits twice as long as the one before, up to a cap, counted from the
latest failure. Three rules apply (docs/security.md): one username from one address
(:data:`PAIR_THROTTLE`), one address over all usernames (:data:`ADDRESS_THROTTLE`, password
spraying), and one username from all addresses (:data:`USERNAME_THROTTLE`, a distributed attack).
A (username, address) pair that logged in within :data:`KNOWN_ADDRESS_DAYS` is known: only the first
rule applies to it, so others' failures on a shared address (a school's NAT, a proxy) never lock out
the users who log in from there.

    >>> allowed("operator", "acknowledge"), allowed("viewer", "command")
    (True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

ROLES = ("viewer", "operator", "planner", "admin")
#: Every action the dashboard checks; "read" is everything that changes nothing; "export" the twin as Brick.
ACTIONS = ("read", "acknowledge", "command", "upload", "users", "export")
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "acknowledge", "command"}),
    "planner": frozenset({"read", "upload"}),
    "admin": frozenset(ACTIONS),
}
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: Mosquitto's PBKDF2 iterations for generated passwords (it accepts any count; its own default is 101).
MOSQUITTO_ITERATIONS = 1000
MOSQUITTO_SALT_BYTES = 12
#: Usernames of dashboard users.
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_PASSWORD_LENGTH = 8
#: What an MQTT username (a device id) may hold so it is safe in topics, the ACL and the password file.
MQTT_NAME = re.compile(r"[^\s/+#:$\x00-\x1f\x7f][^\s/+#:\x00-\x1f\x7f]{0,127}")


@dataclass(frozen=True, slots=True)
class Throttle:
    """``free`` failures at full speed, then waits of 1, 2, 4 ... seconds, never more than ``cap_s``."""

    free: int
    cap_s: int


#: Failures count for this long (and a wait never exceeds it).
LOGIN_WINDOW_S = 900
#: One username from one address: guessing a password.
PAIR_THROTTLE = Throttle(free=5, cap_s=900)
#: One address, any usernames: password spraying (schools share NAT addresses: a generous allowance).
ADDRESS_THROTTLE = Throttle(free=20, cap_s=900)
#: One username from every address it never logged in from: a distributed attack; short cap.
USERNAME_THROTTLE = Throttle(free=20, cap_s=60)
#: An address the user logged in from within this many days is known: the address and username rules spare it.
KNOWN_ADDRESS_DAYS = 30


def allowed(role: str | None, action: str) -> bool:
    """True when ``role`` may take ``action`` (unknown roles and actions are refused)."""
    return role in PERMISSIONS and action in PERMISSIONS[role]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` for the users table."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches a :func:`hash_password` or :func:`mosquitto_hash` value."""
    if not stored:
        return False
    try:
        if stored.startswith("$7$"):
            _, _, iterations, salt, digest = stored.split("$")
            expected = base64.b64decode(digest)
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations),
                                      len(expected))
            return hmac.compare_digest(got, expected)
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
        return hmac.compare_digest(got, expected)
    except (ValueError, TypeError):
        return False


def mosquitto_hash(password: str, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """``$7$...`` as Mosquitto 2 reads it in ``password_file`` (PBKDF2-HMAC-SHA512)."""
    salt = secrets.token_bytes(MOSQUITTO_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def random_password(nbytes: int = 18) -> str:
    """A random password safe in CSV, URLs and shells (URL-safe base64, ``nbytes`` of entropy)."""
    return secrets.token_urlsafe(nbytes)


def new_token() -> str:
    """A random session or CSRF token (256 bits)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored of a session token: its SHA-256, so a database dump opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two tokens (False when either is missing)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def check_username(name: str) -> str:
    """``name`` if it is a valid dashboard username, else ValueError with the rule."""
    if not USERNAME.fullmatch(name or ""):
        raise ValueError(f"username {name!r}: 1-64 letters, digits, '_', '.', '@', '-'")
    return name


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password too short (at least {MIN_PASSWORD_LENGTH} characters)")
    return password


def valid_mqtt_name(name: str) -> bool:
    """True when ``name`` can be an MQTT username and a topic level in the ACL (no space, ``/+#:``, control)."""
    return bool(MQTT_NAME.fullmatch(name))


def login_wait(failures: int, since_latest_s: float | None, rule: Throttle) -> float:
    """Seconds to wait before another login attempt under ``rule`` (0: go ahead).

    ``failures`` counted in the window, ``since_latest_s`` since the latest of them.

    >>> rule = Throttle(free=5, cap_s=900)
    >>> [login_wait(n, 0.0, rule) for n in (4, 5, 6, 20)], login_wait(6, 0.5, rule)
    ([0.0, 1.0, 2.0, 900.0], 1.5)
    """
    if failures < rule.free or since_latest_s is None:
        return 0.0
    return max(0.0, min(float(rule.cap_s), 2.0 ** (failures - rule.free)) - since_latest_s)


def throttle_wait(pair: tuple[int, float | None], address: tuple[int, float | None],
                  username: tuple[int, float | None], known_address: bool) -> float:
    """The longest wait of the three rules, each given ``(failures, seconds since the latest)``; for a
    known address (the user logged in from it lately) only the pair rule counts.

    >>> throttle_wait((0, None), (40, 0.0), (25, 0.0), known_address=True)
    0.0
    >>> throttle_wait((0, None), (0, None), (25, 0.0), known_address=False)
    32.0
    """
    waits = [login_wait(*pair, PAIR_THROTTLE)]
    if not known_address:
        waits += [login_wait(*address, ADDRESS_THROTTLE), login_wait(*username, USERNAME_THROTTLE)]
    return max(waits)
