"""Looking accounts up (by id, by e-mail, by a sign-on provider's identity), changing a
profile, and listing device tokens, on SQLite and PostgreSQL."""

import uuid

import pytest

from core.accounts.tokens import create_device_token, device_tokens, revoke_device_token
from core.accounts.users import (
    AccountError,
    create_user,
    update_profile,
    user_by_email,
    user_by_id,
    user_for_identity,
    username_for_email,
)


def tag() -> str:
    return f"l{uuid.uuid4().hex[:8]}"


def test_a_user_is_found_by_id_and_by_address_as_stored(session):
    t = tag()
    user = create_user(session, f"{t}_ann", email=f"{t}.Ann@Example.org")
    assert user_by_id(session, user.id) is user
    assert user_by_id(session, user.id + 10**6) is None
    assert user_by_email(session, f"  {t}.ANN@example.ORG ").id == user.id
    assert user_by_email(session, f"{t}.other@example.org") is None


def test_a_username_made_from_an_address_keeps_the_allowed_characters_and_is_free(session):
    t = tag()
    assert username_for_email(session, f"{t}.Mary+news@example.org") == f"{t}.marynews"
    assert username_for_email(session, "ab@example.org") == "ab_"  # padded to the shortest username
    assert username_for_email(session, "+++@example.org") == "athlete"  # nothing allowed is left
    long = f"{t}" + "x" * 40
    assert username_for_email(session, f"{long}@example.org") == long[:24]
    create_user(session, f"{t}_bo")
    create_user(session, f"{t}_bo2")
    assert username_for_email(session, f"{t}_bo@elsewhere.example") == f"{t}_bo3"


def test_a_providers_identity_signs_in_the_account_with_that_address_or_a_new_one(session):
    t = tag()
    known = create_user(session, f"{t}_known", email=f"{t}.known@example.org")
    assert user_for_identity(session, f"{t}.KNOWN@example.org", "Someone Else").id == known.id
    assert known.name == f"{t}_known"  # a sign-in does not rename the account

    new = user_for_identity(session, f"{t}.new@example.org", "Nia New")
    assert (new.username, new.name, new.email, new.role) == (f"{t}.new", "Nia New", f"{t}.new@example.org",
                                                             "athlete")
    assert new.password_hash is None
    assert user_for_identity(session, f"{t}.new@example.org").id == new.id
    unnamed = user_for_identity(session, f"{t}.plain@example.org")
    assert unnamed.name == unnamed.username == f"{t}.plain"
    with pytest.raises(AccountError, match="e-mail"):
        user_for_identity(session, f"{t} spaced@example.org")


def test_a_profile_change_sets_the_columns_given_and_merges_the_settings(session):
    user = create_user(session, f"{tag()}_prof", name="Old Name")
    user.settings = {"units": "metric", "cues": {"fields": ["time"]}, "sessions_valid_after": 1.0}
    session.flush()
    update_profile(session, user, name="New Name", default_visibility="public", units="imperial")
    assert (user.name, user.default_visibility) == ("New Name", "public")
    assert user.settings == {"units": "imperial", "cues": {"fields": ["time"]}, "sessions_valid_after": 1.0}
    update_profile(session, user, cues={"fields": ["distance"]})
    assert (user.name, user.default_visibility) == ("New Name", "public")
    assert user.settings["cues"] == {"fields": ["distance"]} and user.settings["units"] == "imperial"
    session.expire_all()
    stored = user_by_id(session, user.id)
    assert stored.settings["cues"] == {"fields": ["distance"]} and stored.name == "New Name"


def test_device_tokens_are_listed_for_their_owner_oldest_first_revoked_included(session):
    owner, other = create_user(session, f"{tag()}_dev"), create_user(session, f"{tag()}_dev")
    first, _ = create_device_token(session, owner, "watch")
    second, _ = create_device_token(session, owner, "phone")
    create_device_token(session, other, "bike computer")
    revoke_device_token(session, owner, first.id)
    listed = device_tokens(session, owner.id)
    assert [(r.id, r.name, r.revoked) for r in listed] == [(first.id, "watch", True), (second.id, "phone", False)]
    assert device_tokens(session, owner.id + 10**6) == []
