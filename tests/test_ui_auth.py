"""Logins for the chat UI and the rule that a network-facing UI needs them."""

from __future__ import annotations

import pytest

from rag.cli import main
from tests.conftest import make_settings
from ui.auth import check_bind, is_loopback, load_users, parse_users


def test_parse_users_skips_blanks_and_comments_and_keeps_colons_in_passwords():
    assert parse_users("# team\nalice:s3cret\n\nbob:a:b\n", "f") == [
        ("alice", "s3cret"),
        ("bob", "a:b"),
    ]


@pytest.mark.parametrize("entry", ["alice", ":pw", "alice:"])
def test_parse_users_rejects_entries_without_user_and_password(entry):
    with pytest.raises(ValueError, match="entry 1 is not user:password"):
        parse_users(entry, "users.txt")


def test_load_users_merges_file_and_environment(tmp_path, monkeypatch):
    users_file = tmp_path / "users.txt"
    users_file.write_text("alice:one\n", encoding="utf-8")
    monkeypatch.setenv("RAG_UI_USERS", "bob:two, carol:three")
    settings = make_settings(tmp_path)
    assert load_users(settings, users_file) == [
        ("alice", "one"),
        ("bob", "two"),
        ("carol", "three"),
    ]


def test_load_users_reports_unreadable_or_empty_files(tmp_path):
    settings = make_settings(tmp_path)
    with pytest.raises(ValueError, match="cannot read auth file"):
        load_users(settings, tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nobody\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no user:password lines"):
        load_users(settings, tmp_path / "empty.txt")


@pytest.mark.parametrize("host,loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False),
])  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_check_bind_needs_users_or_explicit_no_auth_off_loopback():
    check_bind("127.0.0.1", [], no_auth=False)
    check_bind("0.0.0.0", [("a", "b")], no_auth=False)
    check_bind("0.0.0.0", [], no_auth=True)
    with pytest.raises(ValueError, match="--auth FILE"):
        check_bind("0.0.0.0", [], no_auth=False)


def test_cli_chat_refuses_anonymous_network_bind_with_one_line(tmp_path, capsys):
    code = main(["chat", "--host", "0.0.0.0", "--index", str(tmp_path / "index")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: binding 0.0.0.0 exposes the UI") and err.count("\n") == 1


def test_cli_chat_reports_a_bad_auth_file_with_one_line(tmp_path, capsys):
    code = main(["chat", "--auth", str(tmp_path / "nope.txt"), "--index", str(tmp_path / "i")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "cannot read auth file" in err
