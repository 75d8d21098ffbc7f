#!/usr/bin/env bash
# Render a results file as the HTML report and screenshot it with headless Chromium.
# Usage: scripts/screenshot_report.sh RESULTS.json OUT.png [WIDTH,HEIGHT]
# Needs chromium (Debian: apt-get install chromium) and deploybench on PATH (or a .venv here).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 RESULTS.json OUT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
results=$1
out=$2
size=${3:-1400,2400}

browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z $browser ]]; then
    echo "no chromium on PATH; install it (Debian: apt-get install chromium)" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
deploybench=$(command -v deploybench || echo "$repo/.venv/bin/deploybench")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
html="$work/report.html"
"$deploybench" report "$results" --html "$html" > /dev/null 2> "$work/report.log" \
    || { cat "$work/report.log" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

# A throwaway profile and no background services: nothing but the local file is loaded.
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --window-size="$size" --screenshot="$out_abs" \
    "file://$html" 2> "$work/chromium.log" || { cat "$work/chromium.log" >&2; exit 1; }
[[ -s $out_abs ]] || { echo "chromium wrote no screenshot" >&2; cat "$work/chromium.log" >&2; exit 1; }
echo "wrote $out_abs"
