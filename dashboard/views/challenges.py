"""Challenges: this week's personal challenges with progress bars, their deadline and a way
to decline each (with a reason); group challenges with friends (invitations, a small board
each, starting one); the last weeks' outcomes; the badges the athlete earned
(each with the activity that earned it), those withdrawn and why, the next ones with a
progress bar and what is left, and a calendar of the weekly streak in the athlete's time zone."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import streamlit as st

from core import units
from core.challenges.assign import ChallengeError
from core.challenges.groups import KIND_WORDS as GROUP_WORDS
from core.challenges.groups import MAX_INVITED, MAX_SESSIONS, GroupError
from core.challenges.personal import amount, describe
from core.challenges.tables import DECLINE_REASONS, GROUP_KINDS
from dashboard import data, ui

REASON_WORDS = {"too_hard": "Too hard", "too_easy": "Too easy", "not_now": "Not now"}
STATUS_WORDS = {"active": "in progress", "completed": "completed", "missed": "missed", "declined": "declined"}

WEEKS_SHOWN = 26
NEXT_SHOWN = 9

v = ui.viewer()
st.title("Challenges")
b = data.badges(v.id)


def attempt(fn, *args) -> None:
    """Run a change the viewer asked for; say why if it is refused."""
    try:
        fn(v.id, *args)
    except (ChallengeError, GroupError) as exc:
        st.session_state.challenge_error = str(exc)


if err := st.session_state.pop("challenge_error", None):
    st.error(err)

zone = ZoneInfo(b["time_zone"])
now = datetime.now(zone)
current = [c for c in b["challenges"] if c["deadline"] > now]
st.subheader("This week")
if not current:
    st.info("No challenge this week yet: they come each week from your activities of the last eight weeks. "
            "Record an activity to get yours.")
for c in current:
    with st.container(border=True, key=f"challenge_{c['id']}"):
        what = describe(c["kind"], c["sport"], c["target"], v.units)
        left = c["deadline"] - now
        days = left.days + (left.seconds > 0)
        status = STATUS_WORDS[c["status"]] + (f" ({REASON_WORDS[c['decline_reason']]})" if c["decline_reason"] else "")
        st.progress(min(c["progress"] / c["target"], 1.0),
                    text=f"**{what[0].upper() + what[1:]}** · {amount(c['kind'], c['progress'], v.units)} of "
                         f"{amount(c['kind'], c['target'], v.units)} · {status}")
        last_day = (c["deadline"] - timedelta(minutes=1)).astimezone(zone)
        st.caption(f"Until the end of {last_day:%A %d %B} ({days} day{'s' if days != 1 else ''} "
                   "left)" + (f" · your usual week: {amount(c['kind'], c['usual'], v.units)}" if c["usual"] else ""))
        if c["status"] == "active":
            cols = st.columns(len(DECLINE_REASONS) + 2)
            cols[0].caption("Decline:")
            for col, reason in zip(cols[1:], DECLINE_REASONS):
                col.button(REASON_WORDS[reason], key=f"decline_{c['id']}_{reason}", on_click=attempt,
                           args=(data.decline_challenge, c["id"], reason))
st.subheader("With friends")
g = data.groups(v.id)


for grp in g["groups"]:
    with st.container(border=True, key=f"group_{grp['id']}"):
        ended = grp["ends_at"] <= now
        # Its creator no longer on the board (left, or not shown to the viewer): not named.
        who = (f" · started by {ui.strong(ui.who(grp['creator'], grp['creator_username']))}"
               if grp["creator_username"] else "")
        st.markdown(f"**{grp['what'][0].upper() + grp['what'][1:]}**{who}"
                    + (" · ended" if ended else f" · until the end of "
                       f"{(grp['ends_at'] - timedelta(minutes=1)).astimezone(zone):%A %d %B}")
                    + (" · everyone made it" if grp["complete"] else ""))
        if grp["status"] == "invited" and ended:
            st.caption("It ended before you answered.")
            st.button("Dismiss", key=f"refuse_{grp['id']}", on_click=attempt,
                      args=(data.answer_group, grp["id"], False))
        elif grp["status"] == "invited":
            j, d, _ = st.columns([1, 1, 4])
            j.button("Join", key=f"join_{grp['id']}", on_click=attempt,
                     args=(data.answer_group, grp["id"], True))
            d.button("Decline", key=f"refuse_{grp['id']}", on_click=attempt,
                     args=(data.answer_group, grp["id"], False))
        elif not ended:
            st.button("Leave", key=f"leave_{grp['id']}", on_click=attempt,
                      args=(data.leave_group, grp["id"]))
        rows = []
        for rank, r in enumerate(grp["rows"], 1):
            figure = (f"{r['value']:.0f} of {grp['target']:.0f}" + (" ✓" if r["done"] else "")
                      if grp["kind"] == "everyone_sessions" else units.distance(r["value"], v.units, digits=1))
            rows.append({"#": rank if r["status"] == "joined" else "", "Athlete": ui.who(r["name"], r["username"]),
                         "So far": figure if r["status"] == "joined" else "invited"})
        mine = next((i for i, r in enumerate(grp["rows"]) if r["user_id"] == v.id), None)
        ui.table(rows, highlight=mine)

if not g["friends"]:
    st.caption("Group challenges are among athletes who follow each other: follow someone who follows you to "
               "start one.")
else:
    with st.expander("Start a group challenge", icon=":material/groups:"):
        with st.form("new_group", clear_on_submit=True):
            kind = st.radio("Challenge", GROUP_KINDS, format_func=lambda k: GROUP_WORDS[k], horizontal=True)
            sport = st.radio("Sport", ["", "run", "ride"], format_func=lambda x: {"": "both", "run": "running",
                                                                                  "ride": "riding"}[x], horizontal=True)
            target = st.number_input("Activities each (for \"everyone active this week\")", 1, MAX_SESSIONS, 3)
            names = {f["id"]: f"{ui.who(f['name'], f['username'])} (@{f['username']})" for f in g["friends"]}
            invited = st.multiselect("Invite", list(names), format_func=names.get, max_selections=MAX_INVITED)
            if st.form_submit_button("Start"):
                try:
                    data.create_group(v.id, kind, invited, sport or None,
                                      float(target) if kind == "everyone_sessions" else None)
                except GroupError as exc:
                    st.error(str(exc))
                else:
                    st.rerun()

past = [c for c in b["challenges"] if c["deadline"] <= now]
if past:
    with st.expander(f"Past weeks ({len(past)} challenges, {sum(c['status'] == 'completed' for c in past)} completed)"):
        for c in past:
            st.markdown(f"{ui.plain(c['week'])} · {describe(c['kind'], c['sport'], c['target'], v.units)} · "
                        f"{amount(c['kind'], c['progress'], v.units)} done · **{STATUS_WORDS[c['status']]}**")

c1, c2, c3 = st.columns(3)
c1.metric("Badges earned", len(b["earned"]))
c2.metric("Weekly streak", f"{b['streak']} week{'' if b['streak'] == 1 else 's'}")
c3.metric("Still to earn", len(b["next"]))
st.caption("Badges count completed activities that are not held for review; a badge whose activity a moderator "
           "confirms as irregular, or that a crop or a deletion takes below the mark, is withdrawn. "
           f"Weeks run Monday to Sunday in your time zone ({ui.plain(b['time_zone'])}; change it in Settings).")

st.subheader("Badges earned")
if not b["earned"]:
    st.info("No badge yet: your first activity earns one.")
cols = st.columns(3)
for i, e in enumerate(b["earned"]):
    with cols[i % 3].container(border=True, key=f"badge_{e['code']}"):
        st.markdown(f"### :material/{e['icon']}: {ui.plain(e['name'])}")
        st.caption(f"{ui.plain(e['description'])} · {ui.when(e['earned_at'])}")
        if e["activity_id"]:
            st.page_link("views/activity.py", label="The activity", icon=":material/route:",
                         query_params={"id": str(e["activity_id"])})

if b["withdrawn"]:
    st.subheader("Withdrawn")
    for w in b["withdrawn"]:
        st.markdown(f":material/{w['icon']}: {ui.strong(w['name'])} · {ui.when(w['withdrawn_at'])}: "
                    f"{ui.plain(w['reason'])}")

st.subheader("Next")
for n in b["next"][:NEXT_SHOWN]:
    st.progress(n["share"], text=f":material/{n['icon']}: **{ui.plain(n['name'])}** · {ui.plain(n['description'])} "
                                  f"· {ui.plain(n['left'])}")
if len(b["next"]) > NEXT_SHOWN:
    with st.expander(f"{len(b['next']) - NEXT_SHOWN} more"):
        for n in b["next"][NEXT_SHOWN:]:
            st.markdown(f":material/{n['icon']}: {ui.strong(n['name'])} · {ui.plain(n['description'])} · "
                        f"{ui.plain(n['left'])}")

st.subheader("Streak calendar")
today = now.date()
this_week = today - timedelta(days=today.weekday())
weeks = [this_week - timedelta(weeks=k) for k in range(WEEKS_SHOWN - 1, -1, -1)]
counts = [b["weeks"].get(w, 0) for w in weeks]
fig = go.Figure(go.Bar(x=[w.isoformat() for w in weeks], y=counts,
                       marker_color=["#fc4c02" if c else "#d9d9de" for c in counts],
                       hovertemplate="week of %{x}: %{y} activities<extra></extra>"))
fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_title="activities",
                  xaxis_title="week (Monday)", yaxis_rangemode="tozero", bargap=0.15)
ui.plotly_chart(fig)
st.caption(f"The last {WEEKS_SHOWN} weeks; a week with an activity keeps the streak going.")
