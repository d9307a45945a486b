"""Settings: profile, default visibility, units, followers (approval, requests, blocked athletes),
privacy (zones, hidden ends, hidden maps), downloading one's data, deleting the account,
the route suggestions question, password and sign-ins, spoken cues, and device pairing."""

from zoneinfo import available_timezones

import streamlit as st

from core.accounts.sessions import change_password, end_other_web_sessions
from core.accounts.tokens import create_device_token, revoke_device_token
from core.accounts.users import (
    MAX_NAME_CHARS,
    AccountError,
    authenticate,
    display_name,
    update_profile,
    user_by_id,
)
from core.activities.cues import CUE_FIELDS, MAX_EVERY_KM, MAX_EVERY_MIN, CuePrefs
from core.activities.tables import SPORTS, VISIBILITIES
from core.challenges.assign import reschedule
from core.challenges.awards import recount_user
from core.challenges.badges import time_zone
from core.config import load_settings
from core.jobs.deletion import delete_account
from core.jobs.export import ExportError, export_file, export_keep_hours, latest_export, request_export
from core.recommend.tables import TERRAINS
from core.routes.matching import rematch_athlete
from core.social.follows import answer_request, set_approval, unblock
from core.social.leaderboards import drop_lines
from core.social.privacy import HIDE_ENDS_MAX_M, ZONE_MAX_M, ZONE_MIN_M, PrivacyError, hidden_ends_m
from core.social.privacy_settings import (
    MAX_ZONES,
    add_zone,
    delete_zone,
    set_hide_ends,
    set_hide_map,
    zones_of,
)
from core.text import DEVICE_NAME_MAX_CHARS
from core.units import UNITS, distance_unit, file_size, unit_length_m
from dashboard import auth, data, queries, ui
from dashboard.queries import device_tokens, discovery_settings

v = ui.viewer()
st.title("Settings")

with data.sessions()() as s:
    me = user_by_id(s, v.id)
    name, default_visibility, settings = me.name, me.default_visibility, dict(me.settings or {})
    stated = discovery_settings(s, v.id)
prefs = CuePrefs.from_settings(settings)


ZONES = sorted(available_timezones() | {"UTC"})


def save(**changes) -> None:
    with data.sessions()() as s, s.begin():
        user = user_by_id(s, v.id)
        moved = "time_zone" in changes and changes["time_zone"] != str(time_zone(user.settings))
        update_profile(s, user, **changes)
        if moved:  # the calendar badges (weeks, months, hours) are counted again, the week too
            recount_user(s, user.id)
            reschedule(s, user.id)
    auth.refresh_viewer()
    data.forget_activity_lists()


zone_now = str(time_zone(settings))
zones = ZONES if zone_now in ZONES else sorted([*ZONES, zone_now])
stored_zone = settings.get("time_zone")
st.subheader("Profile")
if isinstance(stored_zone, str) and stored_zone != zone_now:
    st.warning(f"Your time zone ({ui.plain(stored_zone[:64])}) is not in this server's time zone database "
               "(renamed or withdrawn): times and weeks go by UTC until you choose another.")
with st.form("profile"):
    new_name = st.text_input("Display name", value=name, max_chars=MAX_NAME_CHARS)
    vis = st.selectbox("Who sees my new activities", VISIBILITIES, index=VISIBILITIES.index(default_visibility),
                       help="public: everyone · followers: athletes who follow you · private: only you")
    units = st.radio("Units", UNITS, index=UNITS.index(v.units), horizontal=True,
                     help="metric: km, min/km, km/h · imperial: mi, min/mi, mph")
    zone = st.selectbox("Time zone", zones, index=zones.index(zone_now),
                        help="Times on every page, weeks (Monday to Sunday), months and the hours of "
                             "early-bird badges go by it.")
    if st.form_submit_button("Save profile"):
        if not new_name.strip():
            st.error("The display name cannot be empty.")
        else:
            save(name=display_name(new_name, v.username), default_visibility=vis, units=units, time_zone=zone)
            st.success("Saved.")

st.subheader("Followers")


def approval() -> None:
    """Turn approval of new followers on or off (off accepts whoever waits)."""
    on = st.session_state.approve_followers
    with data.sessions()() as s, s.begin():
        accepted = set_approval(s, user_by_id(s, v.id), on)
    data.forget_activity()
    if accepted:
        st.session_state.followers_notice = f"Accepted {accepted} waiting request{'' if accepted == 1 else 's'}."


def answer(requester_id: int, accept: bool) -> None:
    with data.sessions()() as s, s.begin():
        answer_request(s, user_by_id(s, v.id), requester_id, accept)
    data.forget_activity()
    data.forget_suggestions()


def lift_block(other_id: int) -> None:
    with data.sessions()() as s, s.begin():
        other = user_by_id(s, other_id)
        if other is not None:
            unblock(s, user_by_id(s, v.id), other)
    data.forget_activity()


with data.sessions()() as s:
    people = queries.follow_lists(s, v.id)
st.toggle("Approve new followers", value=bool(settings.get("approve_followers", False)), key="approve_followers",
          on_change=approval,
          help="When on, someone who follows you sends a request, and sees only your public activities until you "
               "approve it. Turning it off accepts every waiting request.")
if notice := st.session_state.pop("followers_notice", None):
    st.success(notice)
if people["requests"]:
    st.markdown("**Requests to follow you**")
for a in people["requests"]:
    c1, c2, c3 = st.columns([4, 1, 1], vertical_alignment="center")
    c1.markdown(f"{ui.strong(ui.who(a['name'], a['username']))} · @{ui.plain(a['username'])}")
    c2.button("Approve", key=f"approve_{a['id']}", on_click=answer, args=(a["id"], True), type="primary")
    c3.button("Decline", key=f"decline_{a['id']}", on_click=answer, args=(a["id"], False))
if people["blocked"]:
    st.markdown("**Blocked athletes**")
    st.caption("They see nothing of yours (public activities included), cannot follow you, and cannot comment on "
               "or give kudos to your activities.")
for a in people["blocked"]:
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.markdown(f"{ui.strong(ui.who(a['name'], a['username']))} · @{ui.plain(a['username'])}")
    c2.button("Unblock", key=f"settings_unblock_{a['id']}", on_click=lift_block, args=(a["id"],))
st.caption("Find athletes to follow or block, and remove followers, on the Athletes page.")

st.subheader("Privacy")
st.caption("What you hide here nobody else sees on any activity, past or new: not on maps, charts, splits, GPX "
           "files, feed sketches, the live view or routes, and the distance, times and elevation they are shown "
           "leave the hidden part out. A zone hides more than its circle: the hidden area lies around a point "
           "drawn at random well away from yours, so that where your activities appear does not point at it. "
           "A route stays hidden past it while the street it is on points back at your point, and an activity "
           "that leaves it near your point shows others no map, at random: half to two thirds of those that "
           "start or end in a 400 m zone.")


def hidden_changed() -> None:
    """After a change of what the athlete hides: pages drawn before are dropped, and so are
    their lines on the Redis boards until the worker has worked out what others see."""
    data.forget_activity()
    drop_lines(data.redis(), v.id)


def new_zone() -> None:
    try:
        with data.sessions()() as s, s.begin():
            add_zone(s, user_by_id(s, v.id), st.session_state.zone_lat, st.session_state.zone_lon,
                     st.session_state.zone_radius)
            rematch_athlete(s, v.id)
    except PrivacyError as exc:
        st.session_state.privacy_error = f"Zone not added: {ui.plain(str(exc))}."
        return
    st.session_state.privacy_notice = "Zone added."
    hidden_changed()


def drop_zone(zone_id: int) -> None:
    with data.sessions()() as s, s.begin():
        if delete_zone(s, user_by_id(s, v.id), zone_id):
            rematch_athlete(s, v.id)
    hidden_changed()


def hide(what: str) -> None:
    with data.sessions()() as s, s.begin():
        me_now = user_by_id(s, v.id)
        if what == "ends":
            set_hide_ends(s, me_now, st.session_state.hide_ends_m)
        else:
            set_hide_map(s, me_now, st.session_state.hide_map)
        rematch_athlete(s, v.id)
    hidden_changed()


with data.sessions()() as s:
    my_zones = [(z.id, z.lat, z.lon, z.radius_m) for z in zones_of(s, v.id)]
if notice := st.session_state.pop("privacy_notice", None):
    st.success(notice)
if err := st.session_state.pop("privacy_error", None):
    st.error(err)
for k, (zone_id, lat, lon, radius) in enumerate(my_zones, start=1):
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.markdown(f"Zone {k}: {lat:.5f}, {lon:.5f} · {radius:.0f} m")
    c2.button("Delete", key=f"zone_delete_{zone_id}", on_click=drop_zone, args=(zone_id,))
if len(my_zones) < MAX_ZONES:
    with st.form("zone", clear_on_submit=True):
        st.markdown("**Add a privacy zone**")
        c1, c2 = st.columns(2)
        c1.number_input("Latitude", min_value=-85.0, max_value=85.0, value=None, format="%.5f", key="zone_lat",
                        placeholder="e.g. 46.05120")
        c2.number_input("Longitude", min_value=-180.0, max_value=180.0, value=None, format="%.5f", key="zone_lon",
                        placeholder="e.g. 14.50310")
        st.slider("Radius (m)", int(ZONE_MIN_M), int(ZONE_MAX_M), 400, step=50, key="zone_radius")
        st.form_submit_button("Add zone", on_click=new_zone)
st.slider("Hide the start and end of every activity (m)", 0, int(HIDE_ENDS_MAX_M),
          int(hidden_ends_m(settings)), step=50, key="hide_ends_m", on_change=hide, args=("ends",),
          help="The first and last metres of the path. On their own they do not hide a home from someone who "
               "sees many of your activities: a zone does.")
st.toggle("Hide the map of every activity", value=bool(settings.get("hide_map", False)), key="hide_map",
          on_change=hide, args=("map",), help="Others see the figures, and no map, chart or GPX.")

st.subheader("Route suggestions")
st.caption("A short question for the Discover page: until your own activities say more, suggestions start "
           "from your answers. Each is optional.")
SPORT_WORDS = {"run": "Run", "ride": "Ride"}
TERRAIN_WORDS = {"hilly": "Hills", "flat": "Flat", "any": "Either"}
terrains = [t for t in TERRAIN_WORDS if t in TERRAINS] + [t for t in TERRAINS if t not in TERRAIN_WORDS]
unit_m, unit = unit_length_m(v.units), distance_unit(v.units)
area = stated["area"] or (None, None)
with st.form("discovery"):
    sport = st.radio("Sport", SPORTS, index=SPORTS.index(stated["sport"]) if stated["sport"] in SPORTS else None,
                     format_func=lambda x: SPORT_WORDS.get(x, x), horizontal=True, key="discovery_sport")
    usual = st.number_input(f"Usual distance ({unit})", value=round(stated["usual_distance_m"] / unit_m, 1)
                            if stated["usual_distance_m"] else None, step=0.5, format="%.1f",
                            placeholder="e.g. 10", key="discovery_distance")
    terrain = st.radio("Hills or flat", terrains,
                       index=terrains.index(stated["terrain"]) if stated["terrain"] in terrains else None,
                       format_func=lambda x: TERRAIN_WORDS.get(x, x), horizontal=True, key="discovery_terrain")
    c1, c2 = st.columns(2)
    lat = c1.number_input("Your area: latitude", value=area[0], step=0.01, format="%.2f", placeholder="e.g. 52.37",
                          key="discovery_lat")
    lon = c2.number_input("Your area: longitude", value=area[1], step=0.01, format="%.2f",
                          placeholder="e.g. 4.89", key="discovery_lon")
    st.caption("Where you would like to start, kept rounded to about a kilometre.")
    discoverable = st.checkbox("Let other athletes find me in suggestions", value=stated["discoverable"],
                               key="discovery_discoverable")
    st.caption("Others may see your name suggested as a training partner; never where your activities "
               "are, and nothing of your private activities.")
    if st.form_submit_button("Save suggestion settings"):
        # core keeps an answer until it is changed: an emptied field leaves it as it was.
        emptied = [what for what, now, before in (("usual distance", usual, stated["usual_distance_m"]),
                                                   ("area", None if lat is None and lon is None else (lat, lon),
                                                    stated["area"]))
                   if now is None and before is not None]
        if (lat is None) != (lon is None):
            st.error("Give both a latitude and a longitude for your area, or neither.")
        else:
            try:
                data.save_discovery_settings(
                    v.id, sport=sport, terrain=terrain, discoverable=discoverable,
                    usual_distance_m=None if usual is None else usual * unit_m,
                    area=None if lat is None else (lat, lon))
            except ValueError as exc:
                st.error(f"Not saved: {exc}.")
            else:
                st.success("Saved: the Discover page suggests from these answers.")
                if emptied:
                    st.info(f"Your {' and '.join(emptied)} {'stays' if len(emptied) == 1 else 'stay'} as before: "
                            "an answer can be changed, not removed.")

st.subheader("Password and sign-in")
with st.form("password", clear_on_submit=True):
    current = st.text_input("Current password", type="password", key="current_password")
    new = st.text_input("New password", type="password", help="at least 8 characters", key="new_password")
    again = st.text_input("New password again", type="password", key="new_password_again")
    if st.form_submit_button("Change password"):
        if new != again:
            st.error("The two new passwords differ.")
        else:
            try:
                with data.sessions()() as s, s.begin():
                    ended = change_password(s, user_by_id(s, v.id), current, new,
                                            keep=st.session_state.get("session_secret"))
            except AccountError as exc:
                st.error(str(exc))
            else:
                st.success(f"Password changed; signed out of {ended} other browser{'' if ended == 1 else 's'}.")
c1, c2 = st.columns(2)
if c1.button("Sign out of every other browser", icon=":material/devices_other:"):
    with data.sessions()() as s, s.begin():
        ended = end_other_web_sessions(s, user_by_id(s, v.id), keep=st.session_state.get("session_secret"))
    st.success(f"Signed out of {ended} other browser{'' if ended == 1 else 's'}.")
if c2.button("Sign out everywhere", icon=":material/logout:",
             help="Every browser signed in to this account, this one included"):
    auth.sign_out(everywhere=True)
    st.rerun()

st.subheader("Spoken cues")
st.caption("What your device says while you record, and how often.")
with st.form("cues"):
    fields = st.multiselect("Say", list(CUE_FIELDS), default=list(prefs.fields),
                            help="time, distance, and pace (runs) or speed (rides)")
    c1, c2 = st.columns(2)
    by_km = c1.number_input("Every … km (0 = never)", min_value=0.0, max_value=MAX_EVERY_KM, step=0.5,
                            value=float(prefs.every_km or 0.0))
    by_min = c2.number_input("Every … minutes (0 = never)", min_value=0.0, max_value=MAX_EVERY_MIN, step=1.0,
                             value=float(prefs.every_min or 0.0))
    if st.form_submit_button("Save cues"):
        if not fields:
            st.error("Choose at least one thing to hear.")
        elif not by_km and not by_min:
            st.error("Choose a distance or a time interval (or both).")
        else:
            save(cues=CuePrefs(tuple(fields), by_km or None, by_min or None).to_settings())
            st.success("Saved: your devices use these from their next activity.")

st.subheader("Devices")
st.caption("A device (phone, watch, or `python -m realtime.client`) sends activities to the ingest server with a "
           "token. The token is shown once; only a hash of it is kept.")
if token := st.session_state.pop("new_token", None):
    st.success("New device token: copy it now, it will not be shown again.")
    st.code(token, language=None)
with st.form("pair", clear_on_submit=True):
    device_name = st.text_input("Device name", placeholder="e.g. my watch", max_chars=DEVICE_NAME_MAX_CHARS)
    if st.form_submit_button("Create device token"):
        with data.sessions()() as s, s.begin():
            _, secret = create_device_token(s, user_by_id(s, v.id), device_name.strip() or "device")
        st.session_state.new_token = secret
        st.rerun()
with data.sessions()() as s:
    tokens = device_tokens(s, v.id)
for t in tokens:
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    used = ui.when(t["last_used_at"]) if t["last_used_at"] else "never"
    c1.markdown(f"{ui.strong(t['name'])} · created {ui.when(t['created_at'])} · last used {used}"
                + (" · *revoked*" if t["revoked"] else ""))
    if not t["revoked"] and c2.button("Revoke", key=f"revoke_{t['id']}"):
        with data.sessions()() as s, s.begin():
            revoke_device_token(s, user_by_id(s, v.id), t["id"])
        st.rerun()
if not tokens:
    st.caption("No devices paired yet.")

st.subheader("Download your data")
st.caption("An archive (zip) of everything held about you: each activity as GPX with a listing this tracker and "
           "others import, and your profile, settings, follows, comments and kudos, badges and challenges, "
           "flags and moderators' decisions about your activities, and devices and sign-ins. It is built in the "
           f"background and kept for {export_keep_hours():g} hours; a new one may be asked for once an hour.")


def archive_file(export_id: int) -> bytes:
    """The archive's bytes, read when the athlete clicks (it may be large)."""
    with data.sessions()() as s:
        return export_file(load_settings(), s, v.id, export_id).read_bytes()


@st.fragment(run_every=3)
def archive_progress() -> None:
    with data.sessions()() as s:
        export = latest_export(s, v.id)
    if export is None or export.status not in ("queued", "building"):
        st.rerun()  # built (or failed): the whole section shows it
    share = export.done / export.total if export.total else 0.0
    st.progress(share, text="Waiting for the worker to start on it..." if export.status == "queued" else
                f"Building your archive: {export.done} of {export.total} steps")


def your_archive() -> None:
    with data.sessions()() as s:
        export = latest_export(s, v.id)
        path = None
        if export is not None and export.status == "ready":
            try:
                path = export_file(load_settings(), s, v.id, export.id)
            except ExportError as exc:
                st.caption(f"Your last archive: {exc}.")
    if export is not None and export.status in ("queued", "building"):
        archive_progress()
        return
    if export is not None and export.status == "failed":
        st.error(export.error or "The archive could not be built.")
    if path is not None:
        size = path.stat().st_size
        shown = file_size(size)
        st.download_button(f"Download your archive ({shown}, until {ui.when(export.expires_at)})", data=lambda e=export.id: archive_file(e),
                           file_name=f"tracker-{v.username}.zip", mime="application/zip",
                           icon=":material/download:", key="download_archive", on_click="ignore")
    if st.button("Prepare a new archive" if path is not None else "Prepare my archive", key="ask_archive"):
        try:
            with data.sessions()() as s, s.begin():
                request_export(s, v.id)
        except ExportError as exc:
            st.info(f"{exc}.")
        else:
            st.rerun()


your_archive()

st.subheader("Delete my account")
st.caption("Deletes, for good, your account and everything held about you: every activity with its points, your "
           "badges, challenges, follows and followers, privacy zones, devices and sign-ins, and the comments and "
           "kudos you gave, **comments you wrote on other athletes' activities included**. Your devices are "
           "disconnected. It cannot be undone.")
with st.form("delete_account"):
    typed = st.text_input("Type your username to confirm", key="delete_confirm", max_chars=64)
    with data.sessions()() as s:
        has_password = bool(user_by_id(s, v.id).password_hash)
    password = st.text_input("Your password", type="password", key="delete_password") if has_password else ""
    if st.form_submit_button("Delete my account for good", type="primary", icon=":material/delete_forever:"):
        with data.sessions()() as s:
            right = not has_password or authenticate(s, v.username, password) is not None
        if typed.strip() != v.username:
            st.error("That is not your username: nothing was deleted.")
        elif not right:
            st.error("That is not your password: nothing was deleted.")
        else:
            with st.spinner("Deleting everything about you..."):
                delete_account(data.sessions(), v.id, data.redis())
            st.cache_data.clear()  # nothing cached about them is shown to anyone after this
            auth.sign_out()
            st.session_state.sign_in_notice = "Your account and everything about you were deleted."
            st.rerun()
