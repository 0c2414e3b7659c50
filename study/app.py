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

import hmac
import os
import sys
from pathlib import Path
from typing import Callable

import streamlit as st

# `streamlit run study/app.py` puts study/ on sys.path, not the repository root.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from contracts.observer import ObserverError, bundle_summaries  # noqa: E402
from study.config import ConfigError, load_config  # noqa: E402
from study.db import StudyDBError  # noqa: E402
from study.export import backup_bytes, responses_csv_text  # noqa: E402
from study.practice import PracticeTrial, worked_example  # noqa: E402
from study.render import crop_region, draw_regions, framed, task_images  # noqa: E402
from study.service import Assignment, Refused, StudyService  # noqa: E402

ENV_BUNDLE, ENV_DB, ENV_CONFIG = "SPADE_STUDY_BUNDLE", "SPADE_STUDY_DB", "SPADE_STUDY_CONFIG"
ENV_ADMIN_PASSWORD = "SPADE_STUDY_ADMIN_PASSWORD"
CHOICE_LABELS = {"A": "A", "B": "B", "undecided": "Can't decide"}


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
def show_trial(pictures: dict) -> None:
    """Lay out one trial: the visualization, the photo with A and B outlined, and the two crops."""
    left, right = st.columns([1, 2])
    with left:
        st.markdown("**Neuron visualization**")
        st.image(pictures["visualization"], width=280)
    with right:
        st.markdown("**Photo with regions A and B**")
        st.image(pictures["photo"], width=448)
    ca, cb, _ = st.columns([1, 1, 1])
    with ca:
        st.markdown("**Region A**")
        st.image(pictures["crop_a"])
    with cb:
        st.markdown("**Region B**")
        st.image(pictures["crop_b"])


def practice_pictures(t: PracticeTrial) -> dict:
    """The four pictures of a synthetic practice trial."""
    return {
        "visualization": t.visualization,
        "photo": draw_regions(t.image, t.box_a, t.box_b),
        "crop_a": framed(crop_region(t.image, t.box_a), "A"),
        "crop_b": framed(crop_region(t.image, t.box_b), "B"),
    }


def answer_buttons(key: str, on_click: Callable[..., None], args: tuple, disabled: bool = False) -> None:
    """Three buttons: A, B, Can't decide (the callbacks carry the ids of what is answered)."""
    cols = st.columns([1, 1, 1, 3])
    for col, (choice, label) in zip(cols, CHOICE_LABELS.items()):
        with col:
            st.button(
                label,
                key=f"{key}-{choice}",
                on_click=on_click,
                args=(*args, choice),
                type="secondary",  # equal weight: no answer looks like the expected one
                disabled=disabled,
                width="stretch",
            )


# --------------------------------------------------------------------------- pages
def refusal_page(message: str) -> None:
    """The page for an unknown or withdrawn link and other refusals."""
    st.title("Cannot continue")
    st.error(message)
    st.markdown("If you think this is a mistake, please contact the researchers who sent you the link.")


def consent_page(svc: StudyService, params: dict) -> None:
    """Welcome and consent: the config's text; continuing requires ticking the agreement."""
    st.title("Consent to take part")
    st.markdown(svc.config.page_text(svc.config.consent_text))
    agree = st.checkbox("I have read the information above and agree to take part", key="consent-agree")

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
        st.button("Continue", type="primary", disabled=not agree, on_click=accept, key="consent-continue")
    with c2:
        st.button("I do not agree", on_click=decline, key="consent-decline")


def declined_page() -> None:
    """Shown after a rater declines consent."""
    st.title("You chose not to take part")
    st.markdown("Nothing was recorded about you. You can close this page.")


def instructions_page(svc: StudyService, rater_id: str) -> None:
    """Instructions with a worked example (a synthetic one, not a study image)."""
    st.title("Instructions")
    st.markdown(svc.config.page_text(svc.config.instructions_text))
    st.subheader("A worked example")
    ex = worked_example(svc.config.seed)
    show_trial(practice_pictures(ex))
    st.success(ex.explanation)
    st.markdown("Next come a few practice tasks with feedback, then the study itself.")
    st.button("Start the practice", type="primary", on_click=svc.finish_instructions, args=(rater_id,), key="instr-done")


def practice_feedback_page(fb: dict) -> None:
    """Feedback on the last practice answer (cosmetic: lost on reload, the DB already moved on)."""
    st.title("Practice")
    if fb["is_correct"]:
        st.success("Correct! " + fb["explanation"])
    elif fb["choice"] == "undecided":
        st.warning("In this practice the answer can be found. " + fb["explanation"])
    else:
        st.error("Not quite. " + fb["explanation"])
    if fb["round_finished"]:
        n, total, need = fb["round_correct"], fb["trials"], fb["min_correct"]
        if fb["passed"]:
            st.info(f"You answered {n} of {total} practice tasks correctly. The study begins now; there is no feedback from here on.")
        elif fb["practice_over"]:
            st.info(f"You answered {n} of {total} correctly. Let's move on to the study; there is no feedback from here on.")
        else:
            st.info(f"You answered {n} of {total} correctly; {need} are needed. Let's practise one more round.")

    def dismiss() -> None:
        """Leave the feedback for the next practice trial (or the tasks)."""
        st.session_state.pop("practice_feedback", None)

    st.button("Next", type="primary", on_click=dismiss, key=f"practice-next-{fb['round']}-{fb['trial']}")


def practice_page(svc: StudyService, rater_id: str) -> None:
    """One practice trial with its three buttons."""
    state = svc.practice_state(rater_id)
    trial: PracticeTrial = svc.practice_trial(state)
    st.title("Practice")
    st.markdown(f"Round {state.round}, practice task {state.trial + 1} of {state.trials}. You will get feedback after each answer.")
    st.markdown("Which region, **A** or **B**, makes this neuron respond?")
    show_trial(practice_pictures(trial))

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

    answer_buttons(f"practice-{state.round}-{state.trial}", answer, (state.round, state.trial))


def task_page(svc: StudyService, rater_id: str, a: Assignment) -> None:
    """One study task: visualization, photo with regions, crops, three buttons, progress."""
    answered = a.position  # positions are answered in order; the current one is not answered yet
    st.title(f"Task {a.position + 1} of {a.total}")
    st.progress(answered / a.total, text=f"{answered} of {a.total} answered")
    st.markdown("Which region, **A** or **B**, makes this neuron respond? Answers are final.")
    # A catch trial (no visualization) shows the correct region itself in its place.
    show_trial(task_images(a.image, a.visualization, a.box_a, a.box_b, a.correct))
    if svc.config.confidence:
        st.radio(
            "How confident are you in your answer? (1 = guessing, 5 = certain)",
            [1, 2, 3, 4, 5],
            index=None,
            horizontal=True,
            key=f"confidence-{a.assignment_id}",
        )

    def answer(assignment_id: int, nonce: str, choice: str) -> None:
        """Submit the answer; a refusal becomes a notice on the next page."""
        confidence = st.session_state.get(f"confidence-{assignment_id}") if svc.config.confidence else None
        try:
            svc.submit(rater_id, assignment_id, choice, nonce, confidence=confidence)
        except Refused as exc:
            st.session_state["notice"] = exc.message

    answer_buttons(f"task-{a.assignment_id}", answer, (a.assignment_id, a.nonce))


def end_page(svc: StudyService, rater_id: str) -> None:
    """The completion code, and in Prolific mode the way back to Prolific with it."""
    done = svc.completion(rater_id)
    st.title("Thank you!")
    st.markdown("You have finished the study. Your completion code is:")
    st.code(done.code, language=None)
    if done.redirect_url:
        # A button, not an automatic redirect: Streamlit sanitizes page HTML and sandboxes component
        # scripts, so neither a meta refresh nor a script can navigate the page reliably.
        st.markdown("Please return to Prolific with this button to confirm your participation:")
        st.link_button("Return to Prolific", done.redirect_url, type="primary")
    else:
        st.markdown("Please send this code to the researchers who invited you. You can close this page.")


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
    """Progress, raters and live results; downloads of the responses CSV and a backup. Password protected."""
    st.title("Admin")
    password = admin_password()
    if password is None:
        st.error(f"The admin page is disabled: no password is set. Set {ENV_ADMIN_PASSWORD} (or `admin_password` in Streamlit secrets) and restart.")
        return
    if not st.session_state.get("admin_ok"):
        typed = st.text_input("Admin password", type="password", key="admin-password")
        if st.button("Sign in", key="admin-sign-in"):
            if hmac.compare_digest(typed.encode(), password.encode()):
                st.session_state["admin_ok"] = True
                st.rerun()
            st.error("Wrong password.")
        return
    stats = svc.stats()
    t = stats["totals"]
    cols = st.columns(4)
    for col, (label, key) in zip(cols, [("Raters", "raters"), ("Completed", "completed"), ("Responses", "responses"), ("Refused requests", "refusals")]):
        col.metric(label, t[key])
    st.subheader("Progress and results per condition")
    st.dataframe(stats["conditions"], hide_index=True)
    machine_observer_table(svc.bundle)
    st.subheader("Raters")
    st.dataframe(stats["raters"], hide_index=True)
    st.subheader("Tasks")
    st.dataframe(stats["tasks"], hide_index=True)
    c1, c2, c3 = st.columns(3)
    with c1:
        st.download_button("Download responses CSV", lambda: responses_csv_text(svc.db_path), "responses.csv", "text/csv", key="dl-csv")
    with c2:
        st.download_button("Download database backup", lambda: backup_bytes(svc.db_path), "study-backup.db", "application/vnd.sqlite3", key="dl-db")
    with c3:
        st.button("Refresh", key="admin-refresh")


# --------------------------------------------------------------------------- routing
def main() -> None:
    """Route the request to a page."""
    db, bundle, config = os.environ.get(ENV_DB), os.environ.get(ENV_BUNDLE), os.environ.get(ENV_CONFIG, "")
    if not db or not bundle:
        st.title("Cannot continue")
        st.error(f"The study is not configured: start it with `spade-study serve BUNDLE --db STUDY.db` ({ENV_BUNDLE} and {ENV_DB} are unset).")
        return
    try:
        svc = get_service(db, bundle, config)
    except (ConfigError, StudyDBError, ValueError, OSError) as exc:
        st.title("Cannot continue")
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
    try:
        rater = svc.identify(params)
        if rater is None:
            declined_page() if st.session_state.get("declined") else consent_page(svc, params)
            return
        fb = st.session_state.get("practice_feedback")
        if fb and fb.get("rater_id") == rater.rater_id:
            practice_feedback_page(fb)
        elif rater.stage == "consent":
            declined_page() if st.session_state.get("declined") else consent_page(svc, params)
        elif rater.stage == "instructions":
            instructions_page(svc, rater.rater_id)
        elif rater.stage == "practice":
            practice_page(svc, rater.rater_id)
        elif rater.stage == "tasks":
            a = svc.next_task(rater.rater_id)
            if a is None:
                end_page(svc, rater.rater_id)
            else:
                task_page(svc, rater.rater_id, a)
        else:
            end_page(svc, rater.rater_id)
    except Refused as exc:
        refusal_page(exc.message)


main()
