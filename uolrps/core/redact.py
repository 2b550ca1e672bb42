"""Credentials out of every text that leaves the process: one function, :func:`redact`.

A source string can hold secrets: ``rtsp://admin:S3cret@10.0.0.7/stream``, ``https://cam/x?token=...``, or a
GStreamer pipeline with ``user-pw=...``. The API, the page, log lines, metrics, the run's summary and JSONL
records show sources through :func:`redact`, which keeps what identifies the source (scheme, host, path) and
replaces the secret parts with ``***``. It works on whole messages too (every URL in the text is redacted).
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://userinfo@ : the user name and the password both go (a user name alone is half a credential)
# (greedy up to the last '@' before the path: a password may hold an '@' of its own)
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s?#'\"]*)@")
# query parameters and pipeline properties whose value is a secret
_SECRET_KEYS = r"(?:pass(?:word|wd)?|pwd|token|access[_-]?token|api[_-]?key|apikey|key|secret|auth|sig|signature" \
               r"|credentials?|user-pw|user-id|proxy-pw|proxy-id)"
_QUERY = re.compile(r"(?P<head>[?&;]" + _SECRET_KEYS + r"=)(?P<value>[^&#\s'\"]*)", re.IGNORECASE)
_PROPERTY = re.compile(r"(?P<head>(?:^|(?<=[\s!]))" + _SECRET_KEYS + r"\s*=\s*)(?P<value>\"[^\"]*\"|'[^']*'|\S+)",
                       re.IGNORECASE)


def redact(text: object) -> str:
    """``text`` with every credential replaced by ``***`` (None stays None's ``str``: use only on text)."""
    s = str(text)
    s = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", s)
    s = _QUERY.sub(lambda m: f"{m.group('head')}{MASK}", s)
    return _PROPERTY.sub(lambda m: f"{m.group('head')}{MASK}", s)


def redact_optional(text: str | None) -> str | None:
    """:func:`redact` that passes None through (reasons, optional fields)."""
    return None if text is None else redact(text)
