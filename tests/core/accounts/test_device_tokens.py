"""What the ingest server asks of device tokens (who a token acts for, which tokens no
longer let a device in) and the accounts of a role, on SQLite and PostgreSQL."""

import uuid

from core.accounts import tokens
from core.accounts.tokens import (
    create_device_token,
    device_identity,
    revoke_device_token,
    revoked_among,
    user_for_token,
)
from core.accounts.users import create_user, users_with_role


def tag() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def test_a_valid_token_names_its_owner_and_its_own_id_and_is_marked_used(session):
    user = create_user(session, f"{tag()}_dev")
    row, secret = create_device_token(session, user, name="watch")
    assert row.last_used_at is None
    owner, token_id = device_identity(session, secret)
    assert owner is user and token_id == row.id
    assert row.last_used_at is not None
    assert user_for_token(session, secret) is user


def test_a_revoked_unknown_or_empty_token_names_nobody(session):
    user = create_user(session, f"{tag()}_rev")
    row, secret = create_device_token(session, user)
    assert revoke_device_token(session, user, row.id)
    assert device_identity(session, secret) is None and user_for_token(session, secret) is None
    assert device_identity(session, "trk_not_a_token") is None
    assert device_identity(session, "") is None


def test_revoked_and_missing_tokens_are_told_apart_from_valid_ones(session, monkeypatch):
    user = create_user(session, f"{tag()}_among")
    rows = [create_device_token(session, user, name=f"d{k}")[0] for k in range(5)]
    for row in rows[1:3]:
        revoke_device_token(session, user, row.id)
    missing = max(r.id for r in rows) + 10**6
    ids = [r.id for r in rows] + [missing]
    assert revoked_among(session, ids) == {rows[1].id, rows[2].id, missing}
    monkeypatch.setattr(tokens, "TOKEN_LOOKUP_CHUNK", 2)  # the same answer a few ids per query
    assert revoked_among(session, ids) == {rows[1].id, rows[2].id, missing}
    assert revoked_among(session, []) == set()


def test_accounts_of_a_role_come_oldest_first_up_to_the_limit(session):
    t = tag()
    athletes = [create_user(session, f"{t}_a{k}") for k in range(3)]
    moderator = create_user(session, f"{t}_mod", role="moderator")
    found = users_with_role(session, "athlete")
    mine = [u for u in found if u.username.startswith(t)]
    assert mine == athletes
    assert [u.id for u in found] == sorted(u.id for u in found)
    assert moderator in users_with_role(session, "moderator")
    assert moderator not in found
    assert len(users_with_role(session, "athlete", limit=2)) == 2
