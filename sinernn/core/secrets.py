"""Storage URLs: validated, and their passwords kept out of params, logs and printed text."""

from __future__ import annotations

import re


def check_storage_url(url: str) -> str:
    """The Optuna storage URLs sinernn opens, wherever they come from (params, --storage, env)."""
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+", "grpc://")):
        raise ValueError(f"storage must be null, sqlite:///PATH, postgresql://... or grpc://HOST:PORT "
                         f"(got {redact_url(url)!r})")
    return url


def storage_password(url: str) -> str | None:
    """The password a database URL carries, in its user part or as ?password=."""
    from urllib.parse import parse_qs, urlsplit

    database = _database_url(url)
    if database is not None:  # as SQLAlchemy reads it: a password may hold '/', '#' or '?'
        query = database.query.get("password")
        return database.password or (query if isinstance(query, str) else (query or [None])[0])
    parts = urlsplit(url)
    query = parse_qs(parts.query).get("password")
    return parts.password or (query[0] if query else None)


def redact_url(url: str) -> str:
    """The URL as it may be printed or logged: any password replaced by ***, as written (percent-
    encoded or not) in the user part and in every ?password= of the query."""
    database = _database_url(url)
    if database is not None and database.password:
        url = database.render_as_string(hide_password=True)
    url = re.sub(r"(?<=[?&;]password=)[^&;#]*", "***", url)
    scheme, separator, rest = url.partition("://")
    credentials, at, _ = rest.split("/", 1)[0].rpartition("@")
    if separator and at and ":" in credentials:
        url = f"{scheme}://{credentials.partition(':')[0]}:***@{rest[len(credentials) + 1:]}"
    return url


def redact_in(text: str, url: str) -> str:
    """An error text that may quote the URL (or its password) made safe to print."""
    text = text.replace(url, redact_url(url))
    password = storage_password(url)
    return text.replace(password, "***") if password else text


def _database_url(url: str):
    """A postgresql:// URL parsed the way SQLAlchemy (and so the storage) parses it, or None."""
    if not url.startswith("postgresql"):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        return None
