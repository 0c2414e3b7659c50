"""The Streamlit app raters use: welcome and consent, instructions with a worked example,
practice with feedback, the tasks, the end page with the completion code; plus a
refusal page and a password-protected admin page (`?page=admin`).

Launched by `spade-study serve`, which passes the bundle, database and config
through the environment variables SPADE_STUDY_BUNDLE, SPADE_STUDY_DB and
SPADE_STUDY_CONFIG. Every step that matters goes through `study.service`, so the
database, not `st.session_state`, knows where a rater is: a reload resumes. The
session state holds only cosmetic things (the feedback of the last practice answer,
a one-off notice) and the admin's sign-in.
"""
from __future__ import annotations

import html
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import streamlit as st

# `streamlit run study/app.py` puts study/ on sys.path, not the repository root.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from contracts.observer import ObserverError, bundle_summaries  # noqa: E402
from study.config import ConfigError, load_config  # noqa: E402
from study.db import StudyDBError, log_event  # noqa: E402
from study.exclusion import rater_exclusions, rule_summary  # noqa: E402
from study import pictures as picture_store  # noqa: E402
from study.practice import PracticeTrial, worked_example  # noqa: E402
from study.render import crop_region, draw_regions, framed, jpeg_bytes, picture_format, picture_size, task_picture_bytes  # noqa: E402
from study.service import Assignment, Refused, StudyService  # noqa: E402
from study.strings import Strings  # noqa: E402

ENV_BUNDLE, ENV_DB, ENV_CONFIG = "SPADE_STUDY_BUNDLE", "SPADE_STUDY_DB", "SPADE_STUDY_CONFIG"
ENV_ADMIN_PASSWORD = "SPADE_STUDY_ADMIN_PASSWORD"


@st.cache_resource(show_spinner=False)
def get_service(db: str, bundle: str, config: str) -> StudyService:
    """One service per (database, bundle, config) for the whole server process."""
    return StudyService(db, bundle, load_config(config or None))


def admin_password() -> str | None:
    """Return the admin password from the environment or Streamlit secrets; None when neither sets one."""
    pw = os.environ.get(ENV_ADMIN_PASSWORD)
    if pw:
        return pw
    try:
        pw = st.secrets.get("admin_password")
    except Exception:  # no secrets.toml at all: Streamlit raises instead of returning None
        pw = None
    return str(pw) if pw else None


# --------------------------------------------------------------------------- drawing
_CSS = (Path(__file__).resolve().parent / "static" / "study.css").read_text(encoding="utf-8")
# Streamlit keeps the scroll position across reruns, so a new task would open where the rater had
# scrolled to on the last one (on a phone: below the pictures). This scrolls its containers to the
# top; it runs again only when `page_id` changes (a new task, practice trial or page).
_SCROLL_TOP = """<script>/* page {page_id} */
for (const el of [document.scrollingElement, ...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], section.main')]) {{
  if (el) el.scrollTo(0, 0);
}}
window.scrollTo(0, 0);
</script>"""
KEYS = {"A": "1", "B": "2", "undecided": "3"}  # keyboard answers (st.button shortcuts)
DASHBOARD_REFRESH_S = 30  # the admin page's plots redraw themselves this often
# The minimum viewing time in the page: the answer buttons are disabled (DOM) and the keys 1-3 are
# swallowed (a capture listener on window runs before Streamlit's shortcut handler) until `ms`
# milliseconds after the page showed the task; the server refuses earlier answers in any case.
_ANSWER_GATE = """<script>/* gate {key} */
(() => {{
  const until = Date.now() + {ms};
  window.__studyGateUntil = until;
  if (!window.__studyGateKeys) {{
    window.__studyGateKeys = true;
    window.addEventListener("keydown", (e) => {{
      if (Date.now() < (window.__studyGateUntil || 0) && ["1", "2", "3"].includes(e.key)) {{
        e.stopImmediatePropagation();
        e.preventDefault();
      }}
    }}, true);
  }}
  const tick = () => {{
    const open = Date.now() >= until;
    document.querySelectorAll({sel}).forEach((b) => {{ b.disabled = !open; }});
    if (!open) requestAnimationFrame(tick);
  }};
  tick();
}})();
</script>"""


def strings(svc: StudyService | None = None) -> Strings:
    """The interface strings of this study (study/strings.py, with the config's [strings])."""
    return Strings(svc.config.strings if svc is not None else None)


def page_setup(page_id: str) -> None:
    """The study's CSS, and a jump to the top of the page whenever `page_id` is new."""
    st.html(f"<style>{_CSS}</style>")
    st.html(_SCROLL_TOP.format(page_id=page_id.replace("*/", "")), unsafe_allow_javascript=True)


def show_trial(pictures: dict, T: Strings, catch: bool = False, controls: Callable[[], None] | None = None) -> None:
    """Lay out one trial in one row: the visualization, the photo with A and B outlined, and the two
    enlarged regions with the answer controls under them (on a phone: the first two side by side,
    the answers fixed at the bottom of the screen; see static/study.css)."""
    def figure(label: str, items: list[tuple[bytes, str]], css: str) -> None:
        """A bold label and its pictures; one Markdown element with <img> tags at the pictures'
        stable URLs when study/server.py serves them (see study/pictures.py), else st.image."""
        if picture_store.served:
            # width/height give the browser each picture's shape before it loads: the page does not jump.
            imgs = "".join(
                f'<img class="{css}" src="{picture_store.publish(data)}" width="{w}" height="{h}" alt="{html.escape(alt, quote=True)}">'
                for data, alt in items
                for w, h in [picture_size(data)]
            )
            st.markdown(f'<p class="study-label"><strong>{html.escape(label)}</strong></p><div class="study-pictures">{imgs}</div>',
                        unsafe_allow_html=True)
            return
        st.markdown(f"**{label}**")
        st.image([d for d, _ in items], width="content", output_format=picture_format(items[0][0]), alt=[a for _, a in items])

    with st.container(key="trial"):
        left, mid, right = st.columns([0.26, 0.42, 0.32], gap="small")
        with left, st.container(key="trial-visual"):
            alt = T("alt_catch_visualization" if catch else "alt_visualization")
            figure(T("visualization_label"), [(pictures["visualization"], alt)], "study-vis")
        with mid, st.container(key="trial-photo"):
            figure(T("photo_label"), [(pictures["photo"], T("alt_photo"))], "study-photo")
        with right, st.container(key="trial-regions"):
            figure(T("regions_label"), [(pictures["crop_a"], T("alt_crop_A")), (pictures["crop_b"], T("alt_crop_B"))], "study-crop")
            if controls is not None:
                controls()


def practice_pictures(t: PracticeTrial) -> dict:
    """The four pictures of a synthetic practice trial, encoded once."""
    return {
        "visualization": jpeg_bytes(t.visualization),
        "photo": jpeg_bytes(draw_regions(t.image, t.box_a, t.box_b)),
        "crop_a": jpeg_bytes(framed(crop_region(t.image, t.box_a), "A")),
        "crop_b": jpeg_bytes(framed(crop_region(t.image, t.box_b), "B")),
    }


@st.cache_resource(show_spinner=False, max_entries=64)
def cached_practice(seed: int, round_: int, trial: int, trials: int, _svc: StudyService, _state: object) -> tuple[PracticeTrial, dict]:
    """A practice trial and its encoded pictures, the same for every rater at this position: drawn
    once per server (about 60 ms of CPU per practice page otherwise)."""
    t = _svc.practice_trial(_state)
    return t, practice_pictures(t)


@st.cache_resource(show_spinner=False, max_entries=8)
def cached_example(seed: int) -> tuple[PracticeTrial, dict]:
    """The instructions' worked example and its encoded pictures, drawn once per server."""
    ex = worked_example(seed)
    return ex, practice_pictures(ex)


def answer_buttons(
    key: str, on_click: Callable[..., None], args: tuple, disabled: bool = False, wait_s: float = 0.0, T: Strings | None = None
) -> None:
    """Three buttons in a row: A, B, Can't decide, also answerable with the keys 1, 2, 3 (the callbacks
    carry the ids of what is answered).

    `wait_s`: the minimum viewing time left (StudyService.seconds_until_answerable). The page itself
    keeps the buttons disabled and the keys 1-3 inert until then (_ANSWER_GATE), so the task needs no
    second script run to enable them (a sleep and a rerun doubled the server's work per task under
    load; see bench/README.md). `StudyService.submit` still refuses an earlier answer.
    """
    T = T or Strings()
    if wait_s > 0 and not disabled:
        sel = ", ".join(f".st-key-{key}-{c} button" for c in ("A", "B", "undecided"))
        st.html(_ANSWER_GATE.format(key=key.replace("*/", ""), ms=int(wait_s * 1000) + 1, sel=json.dumps(sel)),
                unsafe_allow_javascript=True)
    with st.container(key="answers", horizontal=True, gap="small"):
        for choice in ("A", "B", "undecided"):
            st.button(
                T.choice(choice),
                key=f"{key}-{choice}",
                on_click=on_click,
                args=(*args, choice),
                type="secondary",  # equal weight: no answer looks like the expected one
                disabled=disabled,
                shortcut=KEYS[choice],
                width="stretch",
            )
    st.markdown(f'<p class="study-hint">{html.escape(T("keyboard_hint"))}</p>', unsafe_allow_html=True)


def instructions_popover(svc: StudyService, T: Strings) -> None:
    """The instructions, reopenable from every practice and task page."""
    with st.popover(T("show_instructions"), icon=":material/help:"):
        st.markdown(svc.config.page_text(svc.config.instructions_text))


def heading(title: str, svc: StudyService, T: Strings) -> None:
    """A practice or task page's heading, with the instructions one click away beside it."""
    with st.container(key="heading"):
        c1, c2 = st.columns([0.8, 0.2], vertical_alignment="center")
        with c1:
            st.title(title)
        with c2:
            instructions_popover(svc, T)


# --------------------------------------------------------------------------- pages
def refusal_page(message: str, T: Strings | None = None) -> None:
    """The page for an unknown or withdrawn link and other refusals."""
    T = T or Strings()
    st.title(T("refusal_heading"))
    st.error(message)
    st.markdown(T("refusal_contact"))


def consent_page(svc: StudyService, params: dict) -> None:
    """Welcome and consent: the config's text; continuing requires ticking the agreement."""
    T = strings(svc)
    st.title(T("consent_heading"))
    st.markdown(svc.config.page_text(svc.config.consent_text))
    agree = st.checkbox(T("consent_agree"), key="consent-agree")

    def accept() -> None:
        """Record consent; in open mode put the new token into the address."""
        try:
            rater = svc.consent(params)
        except Refused as exc:
            st.session_state["notice"] = exc.message
            return
        if rater.token and svc.config.identity == "open":
            st.query_params["token"] = rater.token  # the link now resumes this rater on reload

    def decline() -> None:
        """Log the refusal and show the goodbye page."""
        svc.decline(params)
        st.session_state["declined"] = True

    c1, c2, _ = st.columns([1, 1, 3])
    with c1:
        st.button(T("consent_continue"), type="primary", disabled=not agree, on_click=accept, key="consent-continue")
    with c2:
        st.button(T("consent_decline"), on_click=decline, key="consent-decline")


def declined_page(svc: StudyService) -> None:
    """Shown after a rater declines consent; says exactly what was kept."""
    T = strings(svc)
    st.title(T("declined_heading"))
    st.markdown(T("declined_body"))
    if svc.config.identity == "prolific":
        st.warning(T("declined_prolific"))


def instructions_page(svc: StudyService, rater_id: str) -> None:
    """Instructions with a worked example (a synthetic one, not a study image)."""
    T = strings(svc)
    page_setup(f"instructions-{rater_id}")
    st.title(T("instructions_heading"))
    st.markdown(svc.config.page_text(svc.config.instructions_text))
    st.subheader(T("worked_example"))
    ex, pictures = cached_example(svc.config.seed)
    show_trial(pictures, T)
    st.success(ex.explanation)
    st.markdown(T("practice_next_info"))
    st.button(T("start_practice"), type="primary", on_click=svc.finish_instructions, args=(rater_id,), key="instr-done")


def practice_feedback_page(fb: dict, T: Strings | None = None) -> None:
    """Feedback on the last practice answer (cosmetic: lost on reload, the DB already moved on)."""
    T = T or Strings()
    page_setup(f"practice-feedback-{fb['round']}-{fb['trial']}")
    st.title(T("practice_heading"))
    if fb["is_correct"]:
        st.success(T("practice_correct") + " " + fb["explanation"])
    elif fb["choice"] == "undecided":
        st.warning(T("practice_undecided") + " " + fb["explanation"])
    else:
        st.error(T("practice_wrong") + " " + fb["explanation"])
    if fb["round_finished"]:
        n, total, need = fb["round_correct"], fb["trials"], fb["min_correct"]
        if fb["passed"]:
            st.info(T("practice_passed", n=n, total=total))
        elif fb["practice_over"]:
            st.info(T("practice_over", n=n, total=total))
        else:
            st.info(T("practice_again", n=n, total=total, need=need))

    def dismiss() -> None:
        """Leave the feedback for the next practice trial (or the tasks)."""
        st.session_state.pop("practice_feedback", None)

    st.button(T("next"), type="primary", on_click=dismiss, key=f"practice-next-{fb['round']}-{fb['trial']}", shortcut="Enter")


def practice_page(svc: StudyService, rater_id: str) -> None:
    """One practice trial with its three buttons."""
    state = svc.practice_state(rater_id)
    trial, pictures = cached_practice(svc.config.seed, state.round, state.trial, state.trials, svc, state)
    T = strings(svc)
    page_setup(f"practice-{rater_id}-{state.round}-{state.trial}")
    heading(T("practice_heading"), svc, T)
    st.markdown(T("practice_progress", round=state.round, trial=state.trial + 1, trials=state.trials) + " " + T("question"))

    def answer(round_: int, trial_: int, choice: str) -> None:
        """Record a practice answer and keep its feedback for the next run."""
        try:
            fb = svc.submit_practice(rater_id, round_, trial_, choice)
        except Refused as exc:
            st.session_state["notice"] = exc.message
            return
        st.session_state["practice_feedback"] = {
            "rater_id": rater_id,
            "round": round_,
            "trial": trial_,
            "choice": choice,
            "trials": state.trials,
            "min_correct": svc.config.practice.min_correct,
            **fb.__dict__,
        }

    show_trial(pictures, T, controls=lambda: answer_buttons(
        f"practice-{state.round}-{state.trial}", answer, (state.round, state.trial), T=T))


def task_page(svc: StudyService, rater_id: str, a: Assignment) -> None:
    """One study task: visualization, photo with regions, crops, three buttons, progress."""
    T = strings(svc)
    answered = a.position  # positions are answered in order; the current one is not answered yet
    page_setup(f"task-{a.assignment_id}")
    heading(T("task_heading", n=a.position + 1, total=a.total), svc, T)
    st.progress(answered / a.total, text=T("task_progress", answered=answered, total=a.total) + " · " + T("question") + " " + T("answers_final"))

    def answer(assignment_id: int, nonce: str, choice: str) -> None:
        """Submit the answer; a refusal becomes a notice on the next page."""
        confidence = st.session_state.get(f"confidence-{assignment_id}") if svc.config.confidence else None
        try:
            svc.submit(rater_id, assignment_id, choice, nonce, confidence=confidence)
        except Refused as exc:
            st.session_state["notice"] = exc.message

    # A catch trial (no visualization) shows the correct region itself in its place.
    pictures = task_picture_bytes(a.image, a.visualization, a.box_a, a.box_b, a.correct)
    wait_s = svc.seconds_until_answerable(a)

    def controls() -> None:
        """The optional confidence rating, then the answer buttons."""
        if svc.config.confidence:
            st.radio(T("confidence_question"), [1, 2, 3, 4, 5], index=None, horizontal=True, key=f"confidence-{a.assignment_id}")
        answer_buttons(f"task-{a.assignment_id}", answer, (a.assignment_id, a.nonce), wait_s=wait_s, T=T)

    show_trial(pictures, T, catch=a.visualization is None, controls=controls)


def end_page(svc: StudyService, rater_id: str) -> None:
    """The completion code, and in Prolific mode the way back to Prolific with it."""
    done = svc.completion(rater_id)
    T = strings(svc)
    page_setup(f"end-{rater_id}")
    st.title(T("end_heading"))
    st.markdown(T("end_code"))
    st.code(done.code, language=None)
    if done.redirect_url:
        # A button, not an automatic redirect: Streamlit sanitizes page HTML and sandboxes component
        # scripts, so neither a meta refresh nor a script can navigate the page reliably.
        st.markdown(T("end_prolific"))
        st.link_button(T("end_return_prolific"), done.redirect_url, type="primary")
    else:
        st.markdown(T("end_send_code"))
    if svc.config.feedback:
        feedback_box(svc, rater_id, T)


def feedback_box(svc: StudyService, rater_id: str, T: Strings) -> None:
    """The optional end-of-study feedback box (config `feedback = true`); stored as a `feedback` event."""
    if st.session_state.get("feedback-sent") == rater_id:
        st.success(T("feedback_thanks"))
        return

    def send() -> None:
        """Store the text (at most 2,000 characters) once."""
        text = (st.session_state.get("feedback-text") or "").strip()[:2000]
        if text:
            # The service's writer (its lock and transaction): an append-only event row, no new table.
            with svc._write() as db:
                log_event(db, "feedback", rater_id, text=text)
            st.session_state["feedback-sent"] = rater_id

    st.text_area(T("feedback_label"), key="feedback-text", max_chars=2000)
    st.button(T("feedback_send"), key="feedback-send", on_click=send)


def break_due(svc: StudyService, rater_id: str) -> bool:
    """Whether a break screen comes now: after every `break_every` answers, not after the last one,
    and only once per break (cosmetic: a reload shows it again, which costs nothing)."""
    n = svc.config.break_every
    if n <= 0:
        return False
    answered, total = svc.progress(rater_id)
    return 0 < answered < total and answered % n == 0 and st.session_state.get("break-done") != (rater_id, answered)


def break_page(svc: StudyService, rater_id: str) -> None:
    """A short break between tasks; the next task is assigned (and its viewing time starts) only after it."""
    T = strings(svc)
    answered, total = svc.progress(rater_id)
    page_setup(f"break-{rater_id}-{answered}")
    st.title(T("break_heading"))
    st.progress(answered / total)
    st.markdown(T("break_body", answered=answered, total=total))
    st.button(T("break_continue"), type="primary", key=f"break-{answered}", shortcut="Enter",
              on_click=lambda: st.session_state.__setitem__("break-done", (rater_id, answered)))


def machine_observer_table(bundle: Path) -> None:
    """The machine observer's rates per condition beside the humans', when `spade-study observe` left results."""
    try:
        rows = bundle_summaries(bundle)
    except ObserverError as exc:
        st.warning(f"The machine observer's results cannot be read: {exc}")
        return
    if rows:
        st.subheader("Machine observer on the same tasks")
        st.caption("One answer per task of the bundle (BUNDLE/observer/, docs/observer.md): compare its "
                   "decision_rate, agreement and net_agreement with the raters' above.")
        st.dataframe(rows, hide_index=True)


def admin_page(svc: StudyService) -> None:
    """Progress, raters, live results and who the declared exclusion rules exclude. Password protected.

    No downloads: a Streamlit download is a `/media/...` URL that anyone holding it can fetch without
    signing in, for as long as the admin's tab stays open. Data leave the server through the command
    line only (`spade-study db backup`, `spade-study db export`).
    """
    st.title("Admin")
    password = admin_password()
    if password is None:
        st.error(f"The admin page is disabled: no password is set. Set {ENV_ADMIN_PASSWORD} (or `admin_password` in Streamlit secrets) and restart.")
        return
    # The sign-in is a random session token in the address (stored server-side as a hash, expiring):
    # a reload keeps it, and the password never goes into a URL. Wrong passwords close the sign-in for
    # a growing delay and are logged (StudyService.admin_sign_in).
    session = st.query_params.get("admin_session")
    if not svc.admin_session_valid(session):
        typed = st.text_input("Admin password", type="password", key="admin-password")
        if st.button("Sign in", key="admin-sign-in"):
            try:
                session = svc.admin_sign_in(typed, password)
            except Refused as exc:
                st.error(exc.message)
                return
            st.query_params["admin_session"] = session
            st.rerun()
        return
    stats = svc.stats()
    t = stats["totals"]
    cols = st.columns(4)
    for col, (label, key) in zip(cols, [("Raters", "raters"), ("Completed", "completed"), ("Responses", "responses"), ("Refused requests", "refusals")]):
        col.metric(label, t[key])
    dashboard_section(svc, len(stats["tasks"]) * svc.config.ratings_per_task)
    st.subheader("Progress and results per condition")
    st.dataframe(stats["conditions"], hide_index=True)
    machine_observer_table(svc.bundle)
    st.subheader("Raters")
    st.dataframe(stats["raters"], hide_index=True)
    st.subheader("Tasks")
    st.dataframe(stats["tasks"], hide_index=True)
    exclusion_section(svc)
    st.caption("Data leave the server only through the command line: `spade-study db export --db STUDY.db --out responses.csv`, "
               "`spade-study db backup --db STUDY.db --out backup.db`.")
    c1, c2, _ = st.columns(3)
    with c1:
        st.button("Refresh", key="admin-refresh")
    with c2:
        if st.button("Sign out", key="admin-sign-out"):
            svc.admin_sign_out(session)
            del st.query_params["admin_session"]
            st.rerun()


def dashboard_section(svc: StudyService, target_answers: int) -> None:
    """The plots: progress over time, rates per condition with Wilson intervals, participant flow;
    redrawn from the database every 30 s while the page is open (only this part reruns)."""
    st.html(f"<style>{_CSS}</style>")  # the study's CSS (readable captions) on the admin page too
    from study.dashboard import show_dashboard  # matplotlib and statsmodels: loaded for the admin page only

    @st.fragment(run_every=DASHBOARD_REFRESH_S)
    def live() -> None:
        """The three plots, from the database as it is now."""
        try:
            excluded = int(rater_exclusions(svc.db_path, svc.config.exclusion)["excluded"].sum())
        except Exception:  # no rater yet, or the rules cannot be evaluated: the flow stops at "completed"
            excluded = None
        show_dashboard(svc.db_path, target_answers=target_answers or None, excluded=excluded)

    live()


def exclusion_section(svc: StudyService) -> None:
    """Who each declared exclusion rule excludes now (config `[exclusion]`), and the errors raters met."""
    rules = svc.config.exclusion
    st.subheader("Declared exclusion rules")
    table = rater_exclusions(svc.db_path, rules)
    st.dataframe(rule_summary(table, rules), hide_index=True)
    errors = svc.errors()
    if errors:
        st.subheader("Errors on rater pages")
        st.caption("Each task whose page failed was retired (never shown again); the rater went on.")
        st.dataframe(errors, hide_index=True)


# --------------------------------------------------------------------------- routing
def main() -> None:
    """Route the request to a page."""
    db, bundle, config = os.environ.get(ENV_DB), os.environ.get(ENV_BUNDLE), os.environ.get(ENV_CONFIG, "")
    if not db or not bundle:
        st.title(Strings()("refusal_heading"))
        st.error(f"The study is not configured: start it with `spade-study serve BUNDLE --db STUDY.db` ({ENV_BUNDLE} and {ENV_DB} are unset).")
        return
    try:
        svc = get_service(db, bundle, config)
    except (ConfigError, StudyDBError, ValueError, OSError) as exc:
        st.title(Strings()("refusal_heading"))
        st.error(f"The study cannot start: {exc}")
        return
    st.set_page_config(page_title=svc.config.title, layout="wide", initial_sidebar_state="collapsed")
    params = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if params.get("page") == "admin":
        admin_page(svc)
        return
    notice = st.session_state.pop("notice", None)
    if notice:
        st.info(notice)
    rater, current = None, None
    try:
        rater = svc.identify(params)
        if rater is None:
            if st.session_state.get("declined"):
                declined_page(svc)
            else:
                consent_page(svc, params)
            return
        fb = st.session_state.get("practice_feedback")
        if rater.stage == "withdrawn":
            withdrawn_page(strings(svc))
            return
        if fb and fb.get("rater_id") == rater.rater_id:
            practice_feedback_page(fb, strings(svc))
        elif rater.stage == "consent":
            if st.session_state.get("declined"):
                declined_page(svc)
            else:
                consent_page(svc, params)
        elif rater.stage == "instructions":
            instructions_page(svc, rater.rater_id)
        elif rater.stage == "practice":
            practice_page(svc, rater.rater_id)
        elif rater.stage == "tasks" and break_due(svc, rater.rater_id):
            break_page(svc, rater.rater_id)
        elif rater.stage == "tasks":
            a = svc.next_task(rater.rater_id)
            if a is None:
                end_page(svc, rater.rater_id)
            else:
                current = a
                task_page(svc, rater.rater_id, a)
        else:
            end_page(svc, rater.rater_id)
        if rater.stage in ("instructions", "practice", "tasks", "done"):
            withdraw_control(svc, rater.rater_id)
    except Refused as exc:
        refusal_page(exc.message, strings(svc))
    except Exception as exc:  # any failure of a rater page: a plain message, no traceback, no paths
        page_failed(svc, rater, current, exc)


def page_failed(svc: StudyService, rater: object, current: Assignment | None, exc: Exception) -> None:
    """Log the error for the admin; retire a task whose page failed (its pictures, most likely) so the rater
    goes on to another; show a plain message and a way on."""
    error = f"{type(exc).__name__}: {exc}"
    rater_id = getattr(rater, "rater_id", None)
    try:
        if current is not None and rater_id is not None:
            svc.retire_task(rater_id, current.assignment_id, error)
        else:
            svc.log_page_error(rater_id, getattr(rater, "stage", "unknown"), error)
    except Exception:  # the log itself failed (e.g. the disk): the rater still gets the plain message
        pass
    T = strings(svc)
    st.error(T("page_error"))
    st.button(T("page_error_continue"), type="primary", key="error-continue")


def withdraw_control(svc: StudyService, rater_id: str) -> None:
    """Withdrawal from any page: the answers stay stored, marked withdrawn, and leave exports and analysis."""
    T = strings(svc)
    with st.expander(T("withdraw_expander")):
        st.markdown(T("withdraw_body"))
        st.button(T("withdraw_now"), key="withdraw-confirm", on_click=svc.withdraw, args=(rater_id,))


def withdrawn_page(T: Strings | None = None) -> None:
    """Shown to a rater who withdrew."""
    T = T or Strings()
    st.title(T("withdrawn_heading"))
    st.markdown(T("withdrawn_body"))


main()
