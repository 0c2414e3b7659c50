"""Another language without code changes: every fixed string of the rater's pages comes from
study/strings.py, and a study config's `[strings]` table overrides any of them."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from study.examples import write_config
from study.browser import current_assignment_id, current_stage, launch_chromium
from tests.study.helpers import REPO, make_service, rater_at_tasks, serve_study

from study.config import ConfigError, load_config
from study.strings import DEFAULT_STRINGS, Strings, check_overrides

APP = REPO / "study" / "app.py"
FRENCH = {
    "undecided": "Je ne sais pas",
    "task_heading": "Tâche {n} sur {total}",
    "task_progress": "{answered} sur {total} répondues",
    "question": "Quelle région, **A** ou **B**, fait réagir ce neurone ?",
    "answers_final": "Les réponses sont définitives.",
    "keyboard_hint": "Clavier : 1 pour A, 2 pour B, 3 pour Je ne sais pas.",
    "visualization_label": "Visualisation du neurone",
    "photo_label": "Photo avec les régions A et B",
    "regions_label": "Régions A et B agrandies",
    "alt_photo": "La photo, avec la région A entourée en bleu et la région B en orange",
    "show_instructions": "Consignes",
    "consent_heading": "Consentement",
    "consent_agree": "J'ai lu les informations ci-dessus et j'accepte de participer",
    "consent_continue": "Continuer",
    "consent_decline": "Je refuse",
    "withdraw_expander": "Me retirer de l'étude",
}


def french_config(path: Path, **overrides: object) -> Path:
    """A small study config with a [strings] table in French."""
    write_config(path, **overrides)
    lines = ["", "[strings]"] + [f'{k} = "{v}"' for k, v in FRENCH.items()]
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


ADMIN_FUNCTIONS = {"admin_page", "exclusion_section", "machine_observer_table", "dashboard_section", "main"}
WIDGETS = {"title", "header", "subheader", "markdown", "button", "checkbox", "expander", "error", "warning", "info",
           "success", "caption", "text_area", "popover", "link_button", "radio"}  # fmt: skip


def test_every_string_key_the_app_uses_is_in_the_table() -> None:
    source = APP.read_text(encoding="utf-8")
    used = set(re.findall(r"\bT\(\s*\"([A-Za-z_]+)\"", source)) | set(re.findall(r"Strings\(\)\(\"([A-Za-z_]+)\"", source))
    assert len(used) > 40
    assert used <= set(DEFAULT_STRINGS), sorted(used - set(DEFAULT_STRINGS))


def test_no_fixed_text_on_a_rater_page_bypasses_the_table() -> None:
    """Outside the admin page, no Streamlit call gets a literal text (Markdown with only tags or
    placeholders filled from T(...) is built with f-strings, which this allows)."""
    tree = ast.parse(APP.read_text(encoding="utf-8"))
    literals = []
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name not in ADMIN_FUNCTIONS):
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
            f = call.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "st" and f.attr in WIDGETS:
                if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
                    literals.append(f"{fn.name}: st.{f.attr}({call.args[0].value[:40]!r})")
    assert literals == []


def test_config_strings_override_and_are_checked(tmp_path) -> None:
    cfg = load_config(french_config(tmp_path / "fr.toml"))
    T = Strings(cfg.strings)
    assert T.choice("undecided") == "Je ne sais pas" and T.choice("A") == "A"
    assert T("task_heading", n=3, total=34) == "Tâche 3 sur 34"
    assert T("consent_heading") == "Consentement" and T("end_heading") == "Thank you!"  # not overridden: the default
    with pytest.raises(ValueError, match="unknown key 'undecidable'"):
        check_overrides({"undecidable": "x"})
    with pytest.raises(ValueError, match=r"only the placeholders \['n', 'total'\], not \['count'\]"):
        check_overrides({"task_heading": "Tâche {count}"})
    bad = tmp_path / "bad.toml"
    write_config(bad)
    with bad.open("a") as fh:
        fh.write('\n[strings]\nundecided = 3\n')
    with pytest.raises(ConfigError, match=r"\[strings\]\.undecided must be a non-empty string"):
        load_config(bad)


def test_serve_refuses_a_bad_strings_table_with_one_line(tmp_path, study_bundle) -> None:
    bad = tmp_path / "bad.toml"
    write_config(bad)
    with bad.open("a") as fh:
        fh.write('\n[strings]\nno_such_string = "x"\n')
    out = subprocess.run([sys.executable, "-m", "spade_study", "serve", str(study_bundle), "--db", str(tmp_path / "s.db"),
                          "--config", str(bad)], cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and out.stderr.startswith("error: ")
    assert "no_such_string" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
@pytest.mark.browser
def test_a_study_served_in_french(tmp_path, study_bundle) -> None:
    from playwright.sync_api import sync_playwright

    config = french_config(tmp_path / "fr.toml", identity="invite", tasks_per_rater=4, catch_per_rater=1, min_view_seconds=0)
    svc = make_service(tmp_path, study_bundle, db_name="fr.db", identity="invite", min_view_seconds=0)
    from study.invites import create_invites

    with serve_study(study_bundle, svc.db_path, config) as url:
        fresh, ready = create_invites(svc.db_path, 2, url)
        rater_at_tasks(svc, {"token": ready.token})  # through consent, instructions and practice
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(fresh.url)
            page.get_by_role("heading", name="Consentement").wait_for(timeout=60_000)
            page.get_by_text("J'ai lu les informations ci-dessus et j'accepte de participer").wait_for(timeout=30_000)
            page.get_by_role("button", name="Continuer").wait_for(timeout=30_000)
            page.goto(ready.url)
            assert current_stage(page) == "task"
            aid = current_assignment_id(page)
            page.get_by_role("heading", name="Tâche 1 sur 5").wait_for(timeout=30_000)
            assert page.locator(f".st-key-task-{aid}-undecided button").inner_text().startswith("Je ne sais pas")
            page.get_by_text("Régions A et B agrandies").wait_for(timeout=30_000)
            page.get_by_role("button", name="Consignes").wait_for(timeout=30_000)
            page.get_by_text("Me retirer de l'étude").wait_for(timeout=30_000)  # the last element of the page
            assert page.locator(".st-key-trial-photo img").get_attribute("alt") == FRENCH["alt_photo"]
            body = page.inner_text("body")
            for english in ("Can't decide", "Which region", "Task 1 of", "Instructions", "Withdraw from the study"):
                assert english not in body, english
            browser.close()
