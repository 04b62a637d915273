"""Passwords, tokens and roles: pure functions, no I/O.

Two hash formats, both with a per-secret random salt and a constant-time compare:

- dashboard users: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` (:func:`hash_password`);
- MQTT accounts: Mosquitto 2's own ``$7$<iterations>$<salt b64>$<hash b64>`` (PBKDF2-HMAC-SHA512,
  12-byte salt, 64-byte hash; :func:`mosquitto_hash`), so ``password_file`` lines are written
  here and no ``mosquitto_passwd`` binary is needed.

Roles are plain data: :data:`PERMISSIONS` says which actions each role may take.

    >>> allowed("operator", "acknowledge"), allowed("viewer", "command")
    (True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

ROLES = ("viewer", "operator", "planner", "admin")
#: Every action the dashboard checks; "read" is everything that changes nothing.
ACTIONS = ("read", "acknowledge", "command", "upload", "users")
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
