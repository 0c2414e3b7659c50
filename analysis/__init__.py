"""The analysis of a SPADE human study: the paper's numbers, their uncertainty, and the replication report.

Reads the study's responses (SQLite `responses_export` view or the CSV export) and
never imports torch nor `study`. Entry points: `analysis.cli.main` (`spade-study
analyze`), `analysis.pipeline.run_analysis`, `analysis.power.main` (`analyze power`).
Nothing heavy is imported here.
"""
