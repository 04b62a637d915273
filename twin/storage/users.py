"""Dashboard users and their server-side sessions.

Passwords are stored as salted scrypt hashes (:mod:`twin.security`); a session is stored as
the SHA-256 of its cookie token, with the CSRF token the browser must echo on every POST.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row

from twin import security

#: How long a login lasts.
SESSION_TTL = timedelta(hours=12)


class UserError(ValueError):
    """A user that cannot be added or removed (exists, unknown, bad name, role or password)."""


def add_user(conn: psycopg.Connection, username: str, role: str, password: str) -> int:
    """Create a user; raises :class:`UserError` for a taken name, unknown role or weak password."""
    try:
        security.check_username(username)
        security.check_new_password(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if role not in security.ROLES:
        raise UserError(f"unknown role {role!r} (one of {', '.join(security.ROLES)})")
    row = conn.execute(
        """INSERT INTO users (username, role, password_hash) VALUES (%s, %s, %s)
           ON CONFLICT (username) DO NOTHING RETURNING id""",
        (username, role, security.hash_password(password)),
    ).fetchone()
    if row is None:
        raise UserError(f"user {username!r} exists")
    return int(row[0])


def set_password(conn: psycopg.Connection, username: str, password: str) -> bool:
    """Give ``username`` a new password; end their sessions. False for an unknown user."""
    try:
        security.check_new_password(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    cur = conn.execute("UPDATE users SET password_hash = %s WHERE username = %s RETURNING id",
                       (security.hash_password(password), username))
    row = cur.fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM user_sessions WHERE user_id = %s", (row[0],))
    return True


def remove_user(conn: psycopg.Connection, username: str) -> bool:
    """Delete a user and their sessions; False when there is no such user."""
    return conn.execute("DELETE FROM users WHERE username = %s", (username,)).rowcount == 1


def list_users(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every user (name, role, created, last login), by name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT u.username, u.role, u.created_at,
                      (SELECT max(ts) FROM audit_log a WHERE a.username = u.username AND a.action = 'login'
                         AND a.outcome = 'ok') AS last_login
               FROM users u ORDER BY u.username""").fetchall()


def user(conn: psycopg.Connection, username: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT id, username, role, created_at FROM users WHERE username = %s",
                           (username,)).fetchone()


@dataclass(frozen=True, slots=True)
class User:
    """A dashboard user: id, name and role."""

    id: int
    username: str
    role: str


@dataclass(frozen=True, slots=True)
class SessionUser:
    """The user of a live session, with the session's CSRF token and when it expires."""

    id: int
    username: str
    role: str
    csrf_token: str
    expires_at: datetime


def authenticate(conn: psycopg.Connection, username: str, password: str) -> User | None:
    """The user when the password matches, else None (same work either way)."""
    row = conn.execute("SELECT id, username, role, password_hash FROM users WHERE username = %s",
                       (username,)).fetchone()
    ok = security.verify_password(password, row[3] if row else _DUMMY_HASH)
    if not (row and ok):
        return None
    return User(row[0], row[1], row[2])


#: Checked against when the username is unknown, so a wrong name costs as much time as a wrong password.
_DUMMY_HASH = security.hash_password(security.new_token())


def create_session(conn: psycopg.Connection, user_id: int, ttl: timedelta = SESSION_TTL) -> tuple[str, str]:
    """A new session for ``user_id``: ``(cookie token, CSRF token)``; expired sessions are purged."""
    conn.execute("DELETE FROM user_sessions WHERE expires_at < now()")
    token, csrf = security.new_token(), security.new_token()
    conn.execute(
        "INSERT INTO user_sessions (token_hash, user_id, csrf_token, expires_at) VALUES (%s, %s, %s, now() + %s)",
        (security.token_digest(token), user_id, csrf, ttl),
    )
    return token, csrf


def session_user(conn: psycopg.Connection, token: str) -> SessionUser | None:
    """The user of a live session, else None."""
    with conn.cursor(row_factory=class_row(SessionUser)) as cur:
        return cur.execute(
            """SELECT u.id, u.username, u.role, s.csrf_token, s.expires_at
               FROM user_sessions s JOIN users u ON u.id = s.user_id
               WHERE s.token_hash = %s AND s.expires_at > now()""",
            (security.token_digest(token),),
        ).fetchone()


def end_session(conn: psycopg.Connection, token: str) -> None:
    conn.execute("DELETE FROM user_sessions WHERE token_hash = %s", (security.token_digest(token),))


#: First key of the advisory locks of login attempts (two-int form: apart from the bigint keys).
LOGIN_LOCK = 0x6C6F67


@dataclass(frozen=True, slots=True)
class LoginWait:
    """How long an attempt must wait (``seconds``, 0: go ahead), and whether only because another
    attempt from the same address is being checked (``busy``: nothing failed)."""

    seconds: float
    busy: bool = False


#: Seconds a login waits while another attempt from its address is being checked.
BUSY_WAIT_S = 1.0


def login_throttle(conn: psycopg.Connection, username: str, address: str | None) -> LoginWait:
    """How long ``address`` must wait before trying ``username`` again, from the audit log's login
    failures (:func:`twin.security.throttle_wait`). A good login resets the counts of its username
    (from that address, and from everywhere); an address's count is not reset by one, but a pair that
    logged in lately is spared the address rule.

    One attempt at a time per address: this takes the address's transaction-scoped advisory lock
    (held until the caller commits the attempt's outcome) and answers ``busy`` while another attempt
    holds it, so a burst of parallel guesses cannot all pass before the first failure is stored.
    Not per username: attackers elsewhere could then keep a user's own attempts waiting.
    """
    free = conn.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))",
                        (LOGIN_LOCK, "addr:" + (address or ""))).fetchone()
    if not (free and free[0]):
        return LoginWait(BUSY_WAIT_S, busy=True)
    row = conn.execute(
        """WITH recent AS (
               SELECT ts, username, remote_addr, outcome FROM audit_log
               WHERE action = 'login' AND outcome IN ('ok', 'failed')
                 AND ts > now() - make_interval(secs => %(window)s)
                 AND (username = %(u)s OR remote_addr = %(a)s)),
           good AS (
               SELECT coalesce(max(ts) FILTER (WHERE username = %(u)s), '-infinity') AS user_ok,
                      coalesce(max(ts) FILTER (WHERE username = %(u)s AND remote_addr = %(a)s), '-infinity') AS pair_ok
               FROM recent WHERE outcome = 'ok'),
           failed AS (
               SELECT r.*, r.username = %(u)s AND r.ts > g.user_ok AS is_user,
                      r.username = %(u)s AND r.remote_addr = %(a)s AND r.ts > g.pair_ok AS is_pair,
                      r.remote_addr = %(a)s AS is_addr
               FROM recent r, good g WHERE r.outcome = 'failed')
           SELECT count(*) FILTER (WHERE is_pair), extract(epoch FROM now() - max(ts) FILTER (WHERE is_pair)),
                  count(*) FILTER (WHERE is_addr), extract(epoch FROM now() - max(ts) FILTER (WHERE is_addr)),
                  count(*) FILTER (WHERE is_user), extract(epoch FROM now() - max(ts) FILTER (WHERE is_user)),
                  EXISTS (SELECT 1 FROM audit_log WHERE action = 'login' AND outcome = 'ok' AND username = %(u)s
                            AND remote_addr = %(a)s AND ts > now() - make_interval(days => %(days)s))
           FROM failed""",
        {"u": username, "a": address, "window": security.LOGIN_WINDOW_S, "days": security.KNOWN_ADDRESS_DAYS},
    ).fetchone()

    def pair(i: int) -> tuple[int, float | None]:
        return int(row[i]), None if row[i + 1] is None else float(row[i + 1])

    return LoginWait(security.throttle_wait(pair(0), pair(2), pair(4), known_address=bool(row[6])))
