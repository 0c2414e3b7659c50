"""Data a researcher can trust, through the real server in headless chromium: a double click or tap at a
human pace answers at most one task (desktop and phone), and no media URL of the admin page gives data
to someone who has not signed in. One server for the module, one browser context per check."""
from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect
from study.examples import make_bundle, write_config
from study.browser import answer_step, current_assignment_id, current_stage
from tests.study.helpers import serve_study

from study.db import connect
from study.invites import create_invites

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GAPS_MS = (0, 80, 250, 500)  # the double clicks: 250 and 500 ms answered the next task unseen
MIN_VIEW_S = 1.0
ADMIN_PASSWORD = "admin-pw-for-the-test"
DEVICES = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("trust-study")
    bundle = make_bundle(root / "bundle", n_items=12)
    config = write_config(root / "study.toml", identity="invite", tasks_per_rater=4, catch_per_rater=1,
                          practice_min_correct=1, min_view_seconds=MIN_VIEW_S)  # fmt: skip
    db = root / "study.db"
    with serve_study(bundle, db, config, env={"SPADE_STUDY_ADMIN_PASSWORD": ADMIN_PASSWORD}) as url:
        yield {"url": url, "db": db}


def _answers(db: Path, rater_id: str) -> list[dict]:
    sql = ("SELECT a.assignment_id, r.choice, r.response_ms FROM responses r JOIN assignments a USING (assignment_id) "
           "WHERE a.rater_id = ? ORDER BY r.response_id")  # fmt: skip
    return list(connect(db).query(sql, [rater_id]))


@pytest.mark.parametrize("device", list(DEVICES))
def test_a_double_click_or_tap_answers_at_most_one_task(served, browser, device) -> None:
    inv = create_invites(served["db"], 1, served["url"])[0]
    context = browser.new_context(**DEVICES[device])
    page = context.new_page()
    page.goto(inv.url)
    while current_stage(page) != "task":
        answer_step(page)
    for n, gap in enumerate(GAPS_MS, start=1):
        aid = current_assignment_id(page)
        button = page.locator(f".st-key-task-{aid}-B button")
        expect(button).to_be_enabled(timeout=60_000)
        box = button.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        for press in range(2):  # the same spot twice, `gap` ms apart, as a person would
            if press and gap:
                page.wait_for_timeout(gap)
            if device == "phone":
                page.touchscreen.tap(x, y)
            else:
                page.mouse.click(x, y)
        page.locator(f".st-key-task-{aid}-B").wait_for(state="detached", timeout=60_000)
        page.wait_for_timeout(int(MIN_VIEW_S * 1000) + 500)  # long enough for a wrongly accepted second answer to land
        answers = _answers(served["db"], inv.rater_id)
        assert [a["assignment_id"] for a in answers][-1] == aid, f"{device}, gap {gap} ms: {answers}"
        assert len(answers) == n, f"{device}, gap {gap} ms answered {len(answers) - n + 1} tasks: {answers}"
    assert all(a["response_ms"] >= MIN_VIEW_S * 1000 for a in _answers(served["db"], inv.rater_id))
    context.close()


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_no_media_url_of_the_admin_page_gives_data_without_signing_in(served, browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    media: set[str] = set()
    page.on("request", lambda r: media.add(r.url) if "/media/" in r.url else None)
    page.goto(served["url"] + "/?page=admin")
    page.locator(".st-key-admin-password input").fill(ADMIN_PASSWORD)
    page.locator(".st-key-admin-sign-in button").click()
    expect(page.get_by_text("Refused requests")).to_be_visible(timeout=60_000)
    # Every download the page offers, as the admin would click it (data leave through `spade-study db` instead).
    for button in page.locator("[data-testid='stDownloadButton'] button").all():
        with page.expect_download() as download:
            button.click()
        media.add(download.value.url)
    # The sign-in survives a reload, and the password is nowhere in the address.
    page.reload()
    expect(page.get_by_text("Refused requests")).to_be_visible(timeout=60_000)
    assert "admin_session=" in page.url and ADMIN_PASSWORD not in page.url
    media |= set(page.eval_on_selector_all("[src*='/media/'], [href*='/media/']", "els => els.map(e => e.src || e.href)"))
    # While the admin's tab is still open, an anonymous client fetches each of them.
    for url in sorted(media):
        status, body = _fetch(url)
        assert status >= 400 or b"token" not in body and b"SQLite format" not in body and b"rater_id" not in body, url
    context.close()
