#!/usr/bin/env bash
# A real run at study scale: generate -> 24 simulated raters through the app's code path -> analysis.
# Usage: bench/full_study.sh [OUT_DIR]   (default bench/out/full_study; re-running resumes generation)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/out/full_study}
BIN=.venv/bin
mkdir -p "$OUT"
stamp() { date +%s.%N; }
t0=$(stamp)
$BIN/spade-study generate bench/full_study.toml --out "$OUT/bundle"
t1=$(stamp)
items=$($BIN/python -c "import json,sys; print(len(json.load(open(sys.argv[1]))['items']))" "$OUT/bundle/manifest.json")
# Each rater sees each image at most once: tasks + 3 catch trials <= items.
tasks=$(( items - 3 < 31 ? items - 3 : 31 ))
{ cat bench/full_study_raters.toml; echo "tasks_per_rater = $tasks"; } > "$OUT/study.toml"
rm -f "$OUT/study.db" "$OUT/study.db-wal" "$OUT/study.db-shm"
$BIN/python bench/simulated_raters.py "$OUT/bundle" --db "$OUT/study.db" --raters 24 --config "$OUT/study.toml" --seed 0
t2=$(stamp)
$BIN/spade-study analyze --db "$OUT/study.db" --out "$OUT/analysis" --seed 0 --quiet
t3=$(stamp)
$BIN/python - "$OUT" "$t0" "$t1" "$t2" "$t3" <<'PY'
import json, sys
from pathlib import Path
out, t0, t1, t2, t3 = Path(sys.argv[1]), *map(float, sys.argv[2:])
study = json.load(open(out / "bundle" / "manifest.json"))["study"]
timings = {"generate_s": round(t1 - t0, 1), "raters_s": round(t2 - t1, 1), "analyze_s": round(t3 - t2, 1)}
(out / "timings.json").write_text(json.dumps({**timings, "candidates": study.get("candidates")}, indent=2))
print(json.dumps(timings))
PY
