#!/usr/bin/env bash
# The nightly job: run the compare suite on one target, gate it against a baseline, and record
# it in the history only when it passed. Installs nothing: the image (or venv) it runs in has
# deploybench.
#
# Environment (all optional):
#   TARGET         cpu | a100 | h100 | edge | auto  (default: auto)
#   MODELS         comma-separated models  (default: mobilenetv4,resnet50,efficientnet_b0,vit_b16,yolov8n)
#   RUNTIMES, PRECISIONS, BATCHES   override the target's own defaults
#   OUT            output folder  (default: nightly-out)
#   BASELINE       a results JSON to gate against; without it, the last BASELINE_RUNS
#                  comparable nights in the history are the baseline (none yet: no gate)
#   BASELINE_RUNS  how many recorded nights make the history baseline (default: 7)
#   HISTORY        history database (default: deploybench's, in the user's data directory)
#   MAX_SLOWDOWN, MAX_MEMORY_GROWTH   regression limits (default: 5%, 10%)
#   QUICK=1        short timed windows (smoke runs, CPU checks): gated, never recorded
#   CACHE          artifact cache folder (default: deploybench's)
#   DEPLOYBENCH    the command to run (default: deploybench)
#
# Order: compare, the regression gate, then `deploybench history --record` for a full night
# whose verdict is PASS or NO-BASELINE. A failing night stays out of the history, so a lasting
# regression never becomes part of the baseline it is judged against; a smoke run is not a night.
#
# Writes to OUT: results.json/.csv/.md, report.html, compare.log, regress.txt, regress.md and
# verdict.txt (PASS, FAIL, NO-BASELINE, or ERROR when the check itself could not run). The
# Markdown goes to $GITHUB_STEP_SUMMARY when set; NO-BASELINE is also a ::warning:: annotation.
# Exit status: 0 when the gate passes (or there is no baseline yet), 1 on a regression, 2 when
# the gate could not run or a passing night could not be recorded, and the compare's own status
# when it could not produce results (2: bad options, 130: interrupted).
set -euo pipefail

TARGET=${TARGET:-auto}
MODELS=${MODELS:-mobilenetv4,resnet50,efficientnet_b0,vit_b16,yolov8n}
OUT=${OUT:-nightly-out}
BASELINE=${BASELINE:-}
BASELINE_RUNS=${BASELINE_RUNS:-7}
HISTORY=${HISTORY:-}
MAX_SLOWDOWN=${MAX_SLOWDOWN:-5%}
MAX_MEMORY_GROWTH=${MAX_MEMORY_GROWTH:-10%}
QUICK=${QUICK:-0}
read -r -a DEPLOYBENCH <<< "${DEPLOYBENCH:-deploybench}"

mkdir -p "$OUT"
say() { echo "nightly: $*" >&2; }

# Without HISTORY, deploybench's default database.
history_args=()
[[ -n "$HISTORY" ]] && history_args=(--history "$HISTORY")

compare_args=(compare --models "$MODELS" --target "$TARGET" --out "$OUT" --html "$OUT/report.html" --allow-mismatch)
[[ -n "${RUNTIMES:-}" ]] && compare_args+=(--runtimes "$RUNTIMES")
[[ -n "${PRECISIONS:-}" ]] && compare_args+=(--precisions "$PRECISIONS")
[[ -n "${BATCHES:-}" ]] && compare_args+=(--batch "$BATCHES")
[[ -n "${CACHE:-}" ]] && compare_args+=(--cache "$CACHE")
[[ "$QUICK" == 1 ]] && compare_args+=(--quick)

say "${DEPLOYBENCH[*]} ${compare_args[*]}"
compare_status=0
# The table to a file, progress both to the log and live to stderr (pipefail keeps compare's status).
"${DEPLOYBENCH[@]}" "${compare_args[@]}" 2>&1 > "$OUT/table.txt" | tee "$OUT/compare.log" >&2 || compare_status=$?
cat "$OUT/table.txt"
if [[ ! -s "$OUT/results.json" ]]; then
    say "compare produced no results (exit $compare_status); see $OUT/compare.log"
    exit $(( compare_status ? compare_status : 2 ))
fi
# Exit 1 from compare means some cells failed; the gate below decides whether that is new.
[[ $compare_status -eq 1 ]] && say "some cells failed or did not run; the regression gate judges them"
[[ $compare_status -gt 1 ]] && { say "compare failed (exit $compare_status)"; exit "$compare_status"; }

regress_args=(regress --max-slowdown "$MAX_SLOWDOWN" --max-memory-growth "$MAX_MEMORY_GROWTH"
              --markdown "$OUT/regress.md")
if [[ -n "$BASELINE" ]]; then
    regress_args+=("$BASELINE" "$OUT/results.json")
    say "gating against $BASELINE"
else
    regress_args+=("$OUT/results.json" --baseline-history "$BASELINE_RUNS" --no-baseline-ok "${history_args[@]}")
    say "gating against the last $BASELINE_RUNS comparable nights in the history"
fi
regress_status=0
"${DEPLOYBENCH[@]}" "${regress_args[@]}" > "$OUT/regress.txt" || regress_status=$?
cat "$OUT/regress.txt"

if [[ $regress_status -eq 0 ]] && grep -q "^no baseline" "$OUT/regress.txt"; then
    verdict="NO-BASELINE"
    # Workflow commands end at a newline and read % as an escape.
    reason=$(head -n 1 "$OUT/regress.txt")
    echo "::warning title=deploybench nightly ($TARGET)::not gated: ${reason//%/%25}"
elif [[ $regress_status -eq 0 ]]; then
    verdict="PASS"
elif [[ $regress_status -eq 1 ]]; then
    verdict="FAIL"
else
    say "the regression check could not run (exit $regress_status)"
    verdict="ERROR"
fi
echo "$verdict" > "$OUT/verdict.txt"
say "verdict: $verdict"

record_status=0
if [[ "$QUICK" == 1 ]]; then
    say "smoke run (QUICK=1): not recorded in the history"
elif [[ "$verdict" == PASS || "$verdict" == NO-BASELINE ]]; then
    "${DEPLOYBENCH[@]}" history --record "$OUT/results.json" "${history_args[@]}" || record_status=$?
    if [[ $record_status -ne 0 ]]; then
        echo "::error title=deploybench nightly ($TARGET)::the night passed but could not be recorded in the" \
             "history (exit $record_status); later nights will not be gated against it"
    fi
else
    say "verdict $verdict: not recorded, so later nights are not gated against this one"
fi

if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
    {
        echo "# deploybench nightly ($TARGET): $verdict"
        echo
        [[ -s "$OUT/regress.md" ]] && cat "$OUT/regress.md" && echo
        cat "$OUT/results.md"
    } >> "$GITHUB_STEP_SUMMARY"
fi

if [[ $regress_status -ne 0 ]]; then
    exit "$regress_status"
fi
exit $(( record_status ? 2 : 0 ))
