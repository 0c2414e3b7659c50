"""The `spade-study` command: one entry point, each subcommand imported lazily.

Each part owns the argument parsing of its subcommands (`<part>/cli.py`, a
`main(argv) -> int` function); this module only dispatches, so that
`spade-study analyze` never imports torch and `spade-study prune` never
imports Streamlit.
"""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "prune": ("spade.cli", "main", "build the SPADE trace of one image and print its report"),
    "generate": ("generation.cli", "main", "build a study bundle from an image folder (`generate merge` joins shards)"),
    "serve": ("study.cli", "serve_main", "serve a study bundle to raters (Streamlit + SQLite)"),
    "raters": ("study.cli", "raters_main", "invite and list raters of a study database"),
    "db": ("study.cli", "db_main", "back up a study database or export its responses CSV (`db backup`, `db export`)"),
    "analyze": ("spade_study.analyze", "main", "analyze a study's responses (`analyze power` plans a study)"),
    "demo": ("spade_study.demo", "main", "build the embedded default study and serve it"),
    "observe": ("observer.cli", "main", "a machine observer answers every task of a bundle (results in BUNDLE/observer/)"),
    "trojan": ("saliency.cli", "trojan_main", "plant Trojan patches into a classifier by fine-tuning (saliency ground truth)"),
    "saliency": ("saliency.cli", "saliency_main", "the paper's saliency benchmark on a Trojan model, dense vs SPADE (Tables 1-2)"),
}


def usage() -> str:
    """Return the top-level help text."""
    lines = ["usage: spade-study SUBCOMMAND [ARGS...]", "", "subcommands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `spade-study SUBCOMMAND --help` for the options of one subcommand."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the subcommand named by the first argument."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"spade-study: error: unknown subcommand {name!r} (choose from {', '.join(SUBCOMMANDS)})", file=sys.stderr)
        return 2
    module, func, _ = SUBCOMMANDS[name]
    entry = getattr(importlib.import_module(module), func)
    return int(entry(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
