"""Every fixed interface string of the rater's pages, in one table (the admin page stays in English).

A study config can replace any of them in a `[strings]` table (for a study in another
language, or other wording) without touching code:

    [strings]
    undecided = "Je ne sais pas"
    task_heading = "Tâche {n} sur {total}"

Placeholders in braces are filled by the app; an override may use only the placeholders of
the default (checked when the config is loaded), and unknown keys are refused. Texts a
study writes itself (consent, instructions) stay in their own config sections.
"""
from __future__ import annotations

import string
from collections.abc import Mapping

DEFAULT_STRINGS: dict[str, str] = {
    # answers
    "choice_A": "A",
    "choice_B": "B",
    "undecided": "Can't decide",
    "keyboard_hint": "Keyboard: press 1 for A, 2 for B, 3 for Can't decide.",
    # trial layout
    "visualization_label": "Neuron visualization",
    "photo_label": "Photo with regions A and B",
    "regions_label": "Regions A and B enlarged",
    "alt_visualization": "Feature visualization of the neuron: an artificial image of what it responds to",
    "alt_catch_visualization": "An enlarged part of the photo",
    "alt_photo": "The photo, with region A outlined in blue and region B outlined in orange",
    "alt_crop_A": "Region A of the photo, enlarged",
    "alt_crop_B": "Region B of the photo, enlarged",
    "question": "Which region, **A** or **B**, makes this neuron respond?",
    "answers_final": "Answers are final.",
    "confidence_question": "How confident are you in your answer? (1 = guessing, 5 = certain)",
    "show_instructions": "Instructions",
    # refusal, consent, declined
    "refusal_heading": "Cannot continue",
    "refusal_contact": "If you think this is a mistake, please contact the researchers who sent you the link.",
    "consent_heading": "Consent to take part",
    "consent_agree": "I have read the information above and agree to take part",
    "consent_continue": "Continue",
    "consent_decline": "I do not agree",
    "declined_heading": "You chose not to take part",
    "declined_body": "We kept only a note that this study link declined, with the time. No answers and nothing else "
    "about you were recorded. You can close this page.",
    "declined_prolific": 'Please return your submission on Prolific (the "Return" button there) so that your place goes to someone else.',
    # instructions and practice
    "instructions_heading": "Instructions",
    "worked_example": "A worked example",
    "practice_next_info": "Next come a few practice tasks with feedback, then the study itself.",
    "start_practice": "Start the practice",
    "practice_heading": "Practice",
    "practice_progress": "Round {round}, practice task {trial} of {trials}. You will get feedback after each answer.",
    "practice_correct": "Correct!",
    "practice_undecided": "In this practice the answer can be found.",
    "practice_wrong": "Not quite.",
    "practice_passed": "You answered {n} of {total} practice tasks correctly. The study begins now; there is no feedback from here on.",
    "practice_over": "You answered {n} of {total} correctly. Let's move on to the study; there is no feedback from here on.",
    "practice_again": "You answered {n} of {total} correctly; {need} are needed. Let's practise one more round.",
    "next": "Next",
    # tasks
    "task_heading": "Task {n} of {total}",
    "task_progress": "{answered} of {total} answered",
    "break_heading": "Time for a short break",
    "break_body": "You have answered {answered} of {total} tasks. Rest your eyes for a moment; continue when you are ready.",
    "break_continue": "Continue",
    # end page
    "end_heading": "Thank you!",
    "end_code": "You have finished the study. Your completion code is:",
    "end_prolific": "Please return to Prolific with this button to confirm your participation:",
    "end_return_prolific": "Return to Prolific",
    "end_send_code": "Please send this code to the researchers who invited you. You can close this page.",
    "feedback_label": "Anything you would like to tell us about the study? (optional)",
    "feedback_send": "Send feedback",
    "feedback_thanks": "Thank you for your feedback.",
    # errors and withdrawal
    "page_error": "Sorry, this page could not be shown. The problem has been reported to the researchers.",
    "page_error_continue": "Continue",
    "withdraw_expander": "Withdraw from the study",
    "withdraw_body": "You may stop at any time by closing this page. If you withdraw here, your answers are kept in the "
    "study's database but marked as withdrawn: they are left out of every export and analysis.",
    "withdraw_now": "Withdraw now",
    "withdrawn_heading": "You have withdrawn",
    "withdrawn_body": "Your answers are marked as withdrawn and will not be used in any export or analysis. "
    "Thank you for your time. You can close this page.",
}


def placeholders(text: str) -> set[str]:
    """The `{name}` placeholders of a string."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def check_overrides(overrides: Mapping[str, object]) -> dict[str, str]:
    """Return the validated `[strings]` overrides; raise ValueError (one line) on an unknown key,
    a non-string value, or a placeholder the default does not have."""
    out: dict[str, str] = {}
    for key, value in overrides.items():
        if key not in DEFAULT_STRINGS:
            raise ValueError(f"[strings]: unknown key {key!r} (see study/strings.py for the keys)")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"[strings].{key} must be a non-empty string")
        try:
            got = placeholders(value)
        except ValueError as exc:
            raise ValueError(f"[strings].{key}: {exc}") from None
        want = placeholders(DEFAULT_STRINGS[key])
        if not got <= want:
            raise ValueError(f"[strings].{key} may use only the placeholders {sorted(want) or 'none'}, not {sorted(got - want)}")
        out[key] = value
    return out


class Strings:
    """The interface strings of one study: the defaults with the config's overrides."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self._table = {**DEFAULT_STRINGS, **(overrides or {})}

    def __call__(self, key: str, **values: object) -> str:
        """The string `key`, with its placeholders filled from `values`."""
        text = self._table[key]
        return text.format(**values) if values else text

    def choice(self, choice: str) -> str:
        """The label of an answer: "A", "B" or "undecided"."""
        return self("undecided") if choice == "undecided" else self(f"choice_{choice}")
