"""`spade-study analyze`: the analysis, with the study's assignment planner injected for `analyze power`.

`analysis` never imports `study` (dependencies flow one way), yet the power
simulation must run the very assignment rules the app uses; this glue, part of
the command line, is the one place that hands one to the other.
"""
from __future__ import annotations


def main(argv: list[str]) -> int:
    """Run `spade-study analyze ...`; `analyze power ...` and `analyze plan ...` get the study's planner."""
    from analysis.cli import main as analysis_main

    if argv and argv[0] in ("power", "plan"):
        from study.assignment import simulate_assignments

        return analysis_main(argv, assign=simulate_assignments)
    return analysis_main(argv)
