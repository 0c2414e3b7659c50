"""The full analysis on responses built to match the paper: every published number back, DB == CSV, all outputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from analysis.examples import FAILING_RATER, paper_responses, write_csv, write_study_db
from PIL import Image

from analysis.cli import main as analyze
from analysis.paper import PUBLISHED

REPO = Path(__file__).resolve().parents[2]
OUTPUT_STEMS = ["headline", "verdict", "paper_comparison", "models", "inter_rater", "inter_rater_comparable", "raters",
                "items"]
FIGURES = ["figure4", "effect", "items", "targets", "rater_net"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The full analysis (models included) from the CSV and from a study-shaped DB of the same responses."""
    base = tmp_path_factory.mktemp("paper")
    raw = paper_responses()
    csv = write_csv(raw, base / "responses.csv")
    db = write_study_db(raw, base / "study.db")
    codes = {
        "csv": analyze(["--responses", str(csv), "--out", str(base / "from_csv"), "--quiet", "--bootstrap", "400"]),
        "db": analyze(["--db", str(db), "--out", str(base / "from_db"), "--quiet", "--bootstrap", "400"]),
    }
    return {"base": base, "csv": csv, "db": db, "codes": codes}


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_reproduces_every_published_number(runs):
    assert runs["codes"] == {"csv": 0, "db": 0}
    s = summary(runs["base"] / "from_csv")
    for cond in ("spade", "dense"):
        for m in ("decision_rate", "agreement", "net"):
            assert round(100 * s[cond][m], 1) == pytest.approx(PUBLISHED[cond][m], abs=0.1001), (cond, m)
        assert (s[cond]["pairs_agree"], s[cond]["pairs_disagree"]) == (
            PUBLISHED[cond]["pairs_agree"], PUBLISHED[cond]["pairs_disagree"])
        assert s[cond]["pairs_ratio"] == pytest.approx(PUBLISHED[cond]["pairs_ratio"], abs=0.01)
    assert (s["spade"]["n"], s["spade"]["decided"], s["spade"]["correct"]) == (388, 339, 271)
    assert (s["dense"]["n"], s["dense"]["decided"], s["dense"]["correct"]) == (358, 276, 203)
    assert s["input"]["analysed_ratings"] == 746 and s["input"]["analysed_raters"] == 24
    # the stated differences: decision "over 10%", net "13.1%"; agreement 79.9 - 73.6
    assert 100 * s["difference"]["decision_rate"]["estimate"] == pytest.approx(10.3, abs=0.1)
    assert 100 * s["difference"]["net"]["estimate"] == pytest.approx(13.1, abs=0.1)
    assert 100 * s["difference"]["agreement"]["estimate"] == pytest.approx(79.9 - 73.6, abs=0.1)


def test_summary_contract(runs):
    s = summary(runs["base"] / "from_csv")
    assert {"dense", "spade", "difference", "inter_rater"} <= set(s)
    for cond in ("dense", "spade"):
        for key in ("n", "decided", "decision_rate", "agreement", "net", "pairs_agree", "pairs_disagree"):
            assert key in s[cond]
        for key in ("decision_rate", "agreement", "net"):
            assert 0 <= s[cond][key] <= 1 and 0 <= s[cond][f"{key}_ci"][0] <= s[cond][key] <= s[cond][f"{key}_ci"][1] <= 1
        ir = s["inter_rater"][cond]
        assert -1 <= ir["krippendorff_alpha_undecided_missing"] <= 1 and -1 <= ir["fleiss_kappa"] <= 1
    assert set(s["difference"]) == {"decision_rate", "agreement", "net"}


def test_models_agree_on_the_direction(runs):
    m = summary(runs["base"] / "from_csv")["models"]
    for key in ("mixed_net", "mixed_decided", "gee_net", "gee_decided"):
        assert m[key]["fitted"] and m[key]["odds_ratio"] > 1, key
        lo, hi = m[key]["odds_ratio_ci"]
        assert lo < m[key]["odds_ratio"] < hi
    assert m["mixed_net"]["n"] == 746 and m["mixed_net"]["raters"] == 24
    boot = m["bootstrap"]
    net = summary(runs["base"] / "from_csv")["difference"]["net"]["estimate"]
    for scheme in ("raters_and_items", "raters", "items"):
        lo, hi = boot[scheme]["net"]["ci"]
        assert lo < net < hi and boot[scheme]["replicates"] == 400
    # the two-way bootstrap counts more variation than either one-way bootstrap
    assert boot["raters_and_items"]["net"]["se"] > max(boot["raters"]["net"]["se"], boot["items"]["net"]["se"])


def test_db_and_csv_results_are_identical(runs):
    a, b = runs["base"] / "from_csv", runs["base"] / "from_db"
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    for name in files:
        if name == "report.md":  # names its input file, otherwise the same
            continue
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    strip = lambda p: [ln for ln in p.read_text().splitlines() if not ln.startswith("Input:")]  # noqa: E731
    assert strip(a / "report.md") == strip(b / "report.md")


def test_every_output_is_written(runs):
    out = runs["base"] / "from_csv"
    for stem in OUTPUT_STEMS:
        for ext in ("csv", "md", "tex"):
            assert (out / f"{stem}.{ext}").stat().st_size > 0, f"{stem}.{ext}"
    tex = (out / "headline.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "87.4 [83.7, 90.3]" in (out / "headline.md").read_text()
    raters = pd.read_csv(out / "raters.csv")
    assert len(raters) == 24 and raters["n"].sum() == 746 and set(raters["n_catch"]) == {3}
    assert raters.loc[raters["rater_id"] == FAILING_RATER, "catch_accuracy"].item() == pytest.approx(1 / 3)
    items = pd.read_csv(out / "items.csv")
    assert items["n_spade"].sum() == 388 and items["n_dense"].sum() == 358
    for stem in FIGURES:
        with Image.open(out / f"{stem}.png") as im:
            assert im.size[0] > 300 and im.size[1] > 300
        assert (out / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    assert "87.4%" not in (out / "figure4.svg").read_text()  # SPADE: 69.8 agree + 17.5 disagree
    assert all(f"{v}%" in (out / "figure4.svg").read_text() for v in ("69.8", "56.7", "12.6", "22.9"))


def test_report_puts_the_paper_beside_the_measurement(runs):
    report = (runs["base"] / "from_csv" / "report.md").read_text()
    assert "| spade       | decision rate  | 87.4        | 87.4       | [83.7, 90.3] | yes" in report
    assert "275 / 83" in report and "247 / 89" in report
    assert "5.3" in report and "6.3" in report  # the paper's inconsistent agreement difference is flagged
    assert "descriptive" in report and "BinomialBayesMixedGLM" in report
    # the primary test and its verdict come first; everything else is labelled secondary
    assert report.index("## Primary outcome") < report.index("## Secondary")
    assert all(h.startswith(("Primary", "Secondary", "Participant", "Pre-registration", "Warnings", "Software",
                             "Files", "Replication")) for h in
               [ln.lstrip("# ") for ln in report.splitlines() if ln.startswith("## ") or ln.startswith("### ")])
    assert "| net agreement (primary)   | 13.1 [6.2, 19.9]" in report and "replicated" in report
    assert "sha256 " in report and "statsmodels " in report  # input hash and package versions
    assert "| analysed | 24 | 746 |" in report  # participant flow
    assert "r23" in report  # the rater failing catch trials is named, not silently dropped


def test_exclude_raters_failing_catch(runs, tmp_path, capsys):
    out = tmp_path / "excluded"
    assert analyze(["--responses", str(runs["csv"]), "--out", str(out), "--quiet", "--no-models",
                    "--exclude-raters-failing-catch"]) == 0
    printed = capsys.readouterr().out
    assert f"excluded 1 rater(s) failing catch trials: {FAILING_RATER}" in printed
    s = summary(out)
    raw = paper_responses()
    kept = raw[(raw["rater_id"] != FAILING_RATER) & (raw["is_catch"] == "0")]
    assert s["input"]["excluded_raters"] == [FAILING_RATER]
    assert s["spade"]["n"] + s["dense"]["n"] == len(kept) < 746
    assert s["spade"]["n"] == (kept["condition"] == "spade").sum()
    assert s["spade"]["decided"] == ((kept["condition"] == "spade") & (kept["choice"] != "undecided")).sum()
    assert s["models"] is None and not (out / "models.csv").exists()
    assert pd.read_csv(out / "raters.csv").set_index("rater_id").loc[FAILING_RATER, "excluded"]
    # a lower bar lets r23 (1 of 3 catch trials right) through
    out2 = tmp_path / "lenient"
    assert analyze(["--responses", str(runs["csv"]), "--out", str(out2), "--quiet", "--no-models",
                    "--exclude-raters-failing-catch", "--min-catch-accuracy", "0.3"]) == 0
    assert summary(out2)["input"]["excluded_raters"] == [] and summary(out2)["spade"]["n"] == 388


def test_spade_study_analyze_through_the_dispatcher(runs, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "spade_study.cli", "analyze", "--responses", str(runs["csv"]),
                           "--out", str(out), "--no-models", "--quiet"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| spade" in proc.stdout and "87.4 [83.7, 90.3]" in proc.stdout
    assert summary(out)["spade"]["pairs_agree"] == 275


def balanced_environments(tex: str) -> list[str]:
    """The \\begin/\\end environments that do not pair up (empty when balanced)."""
    import re

    stack, problems = [], []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]+)\}", tex):
        if kind == "begin":
            stack.append(name)
        elif not stack or stack.pop() != name:
            problems.append(name)
    return problems + stack


def test_latex_tables_are_publication_ready(runs):
    """booktabs, caption and label, human headers, <= 8 columns, longtable when long, no raw floats."""
    import re

    out = runs["base"] / "from_csv"
    for stem in OUTPUT_STEMS:
        tex = (out / f"{stem}.tex").read_text()
        assert balanced_environments(tex) == [], stem
        assert "\\caption{" in tex and f"\\label{{tab:{stem.replace('_', '-')}}}" in tex, stem
        assert "\\toprule" in tex and "\\bottomrule" in tex, stem
        spec = re.search(r"\\begin\{(?:tabular|longtable)\}(?:\[[^]]*\])?\{([lrc]+)\}", tex).group(1)
        assert len(spec) <= 8, (stem, spec)
        header = tex.split("\\toprule")[1].split("\\\\")[0]
        assert "\\_" not in header, (stem, header)  # no snake_case column names
        # formatted for print: no raw floats (0.6666666, 1.292e+04); p-values, alphas and kappas take 3 decimals
        assert not re.search(r"\d\.\d{4,}|\de[+-]\d\d", tex.split("\\midrule")[-1]), stem
    assert "\\begin{longtable}" in (out / "items.tex").read_text()  # 100 rows break across pages
    assert "\\begin{table}" in (out / "headline.tex").read_text()
    assert "87.4 [83.7, 90.3]" in (out / "headline.tex").read_text()
    headline = (out / "headline.md").read_text()
    assert "SPADE - dense (clustered)" in headline and "SPADE - dense (descriptive)" in headline
    assert "13.1 [6.2, 19.9]" in headline.split("(descriptive)")[1]  # the naive interval, labelled


def test_latex_compiles_with_pdflatex(runs, tmp_path):
    """Every table in one document, compiled (skipped where TeX Live is not installed)."""
    import shutil

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended)")
    out = runs["base"] / "from_csv"
    body = "\n".join(f"\\input{{{(out / stem).as_posix()}.tex}}\n\\clearpage" for stem in OUTPUT_STEMS)
    doc = tmp_path / "tables.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs,longtable}\n"
                   "\\usepackage[margin=1.5cm,landscape]{geometry}\n\\begin{document}\n" + body + "\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 1000


@pytest.mark.slow
def test_headline_labels_the_naive_interval_descriptive(runs, capsys):
    """The CLI printout carries both intervals, the naive one labelled descriptive, and the verdict."""
    out = runs["base"] / "printout"
    assert analyze(["--responses", str(runs["csv"]), "--out", str(out), "--quiet", "--no-models"]) == 0
    printed = capsys.readouterr().out
    assert "SPADE - dense (descriptive)" in printed and "Newcombe" in printed
    assert "replication verdict (net agreement, primary): replicated" in printed


def test_singular_components_match_lme4_on_the_fixture(runs):
    """Where glmer puts a crossed variance at 0 (tests/reference), the report calls the fit singular there."""
    ref = pd.read_csv(REPO / "tests" / "reference" / "glmer_reference.csv")
    ref = ref[(ref["dataset"] == "paper") & (ref["model"] == "task")].set_index("outcome")
    s = summary(runs["base"] / "from_csv")
    for outcome in ("net", "decided"):
        at_zero = [t for t in ("rater", "item") if ref.loc[outcome, f"{t}_sd"] == 0 and ref.loc[outcome, "singular"]]
        flagged = s["models"][f"mixed_{outcome}"].get("singular", [])
        assert "rater" in at_zero and "rater" in flagged, (outcome, at_zero, flagged)
        assert set(flagged) <= set(at_zero) | {"item"}, (outcome, flagged)
    assert any("mixed_net: singular fit, no rater variation" in w for w in s["warnings"])
    assert "(singular: at ~0)" in (runs["base"] / "from_csv" / "report.md").read_text()
