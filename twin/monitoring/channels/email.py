"""E-mail over SMTP: a text and an HTML part (``multipart/alternative``), sent with STARTTLS, implicit
TLS or (on a trusted network only) in clear, logged in when a user is set."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from twin.monitoring.channels.message import Message, html_body, text

SECURITIES = ("starttls", "tls", "none")
TIMEOUT_S = 10.0


def build(m: Message, sender: str, to: Sequence[str]) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = m.title
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain="campus-twin")
    mail.set_content(text(m))
    mail.add_alternative(html_body(m), subtype="html")
    return mail


def send(mail: EmailMessage, *, host: str, port: int, security: str = "starttls", username: str | None = None,
         password: str | None = None, timeout: float = TIMEOUT_S, context: ssl.SSLContext | None = None) -> None:
    """Send one message; raises :class:`smtplib.SMTPException` or :class:`OSError` on failure."""
    if security not in SECURITIES:
        raise ValueError(f"security must be one of {', '.join(SECURITIES)}")
    context = context or ssl.create_default_context()
    if security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if security == "starttls":
            client.starttls(context=context)
        if username:
            client.login(username, password or "")
        client.send_message(mail)
