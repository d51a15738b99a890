"""Who may use the chat UI: logins from a file or the environment, and when they are required.

The UI can ingest and delete papers, so exposing it beyond this machine without
logins is refused unless the operator says so explicitly (`--no-auth`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from rag.settings import Settings

Users = list[tuple[str, str]]


def parse_users(text: str, origin: str, separator: str = "\n") -> Users:
    """`user:password` entries; blank entries and `#` comments are skipped."""
    users: Users = []
    for number, entry in enumerate(text.split(separator), start=1):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        user, colon, password = entry.partition(":")
        if not colon or not user.strip() or not password:
            raise ValueError(f"{origin}: entry {number} is not user:password")
        users.append((user.strip(), password))
    return users


def load_users(settings: Settings, auth_file: Path | None) -> Users:
    """Logins from `--auth FILE` (one per line) plus RAG_UI_USERS (comma-separated)."""
    users: Users = []
    if auth_file is not None:
        try:
            text = auth_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(
                f"{auth_file}: cannot read auth file ({exc.strerror or exc})"
            ) from None
        users += parse_users(text, str(auth_file))
        if not users:
            raise ValueError(f"{auth_file}: no user:password lines")
    if settings.ui_users is not None:
        users += parse_users(settings.ui_users.get_secret_value(), "RAG_UI_USERS", separator=",")
    return users


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, users: Users, no_auth: bool) -> None:
    """Refuse to serve a non-loopback address to anonymous users unless explicitly allowed."""
    if not is_loopback(host) and not users and not no_auth:
        raise ValueError(
            f"binding {host} exposes the UI to the network: give --auth FILE (or RAG_UI_USERS), "
            "or --no-auth to allow anonymous access"
        )
