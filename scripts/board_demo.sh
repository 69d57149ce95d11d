#!/usr/bin/env bash
# The tumor board's loop on the demo (issue 26): schedule a board, put the demo study on it, record
# a radiologist's override through the plugin's API (the request OHIF's "Override" button sends),
# record the board's decision, build the board packet (PDF) and the decision CSV, wait for the
# notifications to reach the demo's webhook inbox, and export the reviewed case for training.
#
#   make demo KEEP=1                 # in one terminal: the demo's Orthanc and node keep running
#   scripts/board_demo.sh            # in another (or after the demo stopped: the files stay)
#   scripts/board_demo.sh 1.2.826.0.1.3680043.8.498.123   # a given study instead of the newest
#
# Every step is a `pancreas-node board ...` command against the demo's node settings
# ($DEMO_DIR/node.toml), so this is also the command-line path for a real board.
# Environment: DEMO_DIR (default .demo, as in the Makefile), BIN (default .venv/bin),
# ORTHANC_URL (default http://localhost:8042, where the plugin serves the packet).
set -euo pipefail

DEMO_DIR=${DEMO_DIR:-.demo}
BIN=${BIN:-.venv/bin}
ORTHANC_URL=${ORTHANC_URL:-http://localhost:8042}
CONFIG="$DEMO_DIR/node.toml"
NODE=("$BIN/pancreas-node")

if [[ ! -f "$CONFIG" ]]; then
    echo "board_demo: $CONFIG not found: run \`make demo KEEP=1\` first" >&2
    exit 1
fi

study=${1:-}
if [[ -z "$study" ]]; then
    # The newest study the demo's node analysed (the demo sends one phantom study).
    study=$("$BIN/python" - "$CONFIG" <<'EOF'
import sys
from pathlib import Path

from db import NodeDatabase, list_worklist
from pancreas_contracts import load_settings

database = NodeDatabase(load_settings(Path(sys.argv[1])).resolved_database_url)
try:
    analysed = [e for e in list_worklist(database) if e.job is not None]
finally:
    database.dispose()
if analysed:
    print(max(analysed, key=lambda e: e.study_created_at).study_instance_uid)
EOF
)
fi
if [[ -z "$study" ]]; then
    echo "board_demo: the demo's node has no analysed study yet: wait for \`make demo\`" >&2
    exit 1
fi

run() {
    echo "\$ pancreas-node $*" >&2
    "${NODE[@]}" "$@" --config "$CONFIG"
}

created=$(run board create --date "$(date +%F)" --title "Demo HPB tumor board" \
    --member "Dr A (surgery)" --member "Dr B (oncology)" --member "Dr C (radiology)")
echo "$created"
board=$(sed -E 's/^board ([0-9]+):.*/\1/' <<<"$created")

run board add "$board" "$study"

# The radiologist overrides the AI category, as OHIF's Override button does (POST .../reviews as
# an Orthanc user with write rights). "metastatic" always disagrees with the NCCN category.
echo "\$ POST $ORTHANC_URL/pancreas-ai/studies/<study>/reviews (override)" >&2
"$BIN/python" - "$DEMO_DIR/orthanc/orthanc.json" "$ORTHANC_URL" "$study" <<'EOF'
import base64, json, sys, urllib.request
from pathlib import Path

config, url, study = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
password = json.loads(config.read_text(encoding="utf-8"))["RegisteredUsers"]["admin"]
body = {"verdict": "override", "category": "metastatic",
        "reason": "Demo: liver lesion suspicious for a metastasis"}
request = urllib.request.Request(
    f"{url}/pancreas-ai/studies/{study}/reviews", data=json.dumps(body).encode(), method="POST",
    headers={"Content-Type": "application/json",
             "Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()},
)
with urllib.request.urlopen(request, timeout=30) as answer:
    review = json.loads(answer.read())
print(f"review {review['id']}: {review['verdict']} to {review['category']} by {review['reviewer']}"
      f" (disagrees with the AI: {review['disagrees']})")
EOF

run board decide "$board" "$study" --category borderline \
    --treatment neoadjuvant-then-surgery --treatment biopsy \
    --text "Demo: neoadjuvant therapy, then re-staging CT"
run board list
run board packet "$board" --out "$DEMO_DIR/board-$board-packet.pdf"
run board csv "$board" --out "$DEMO_DIR/board-$board-decisions.csv"

# The node's notifier sends the disagreement and the packet-ready notification to the demo's
# webhook inbox (make demo prints them as they arrive, and appends them to notifications.jsonl).
inbox="$DEMO_DIR/notifications.jsonl"
for _ in $(seq 1 120); do
    if grep -q "packet ready" "$inbox" 2>/dev/null && grep -q "review disagrees" "$inbox"; then
        break
    fi
    sleep 0.5
done
if ! grep -q "packet ready" "$inbox" 2>/dev/null; then
    echo "board_demo: no packet-ready notification in $inbox within 60 s (is the demo running?)" >&2
    exit 1
fi
echo "notifications received by the demo's inbox:" >&2
"$BIN/python" -c 'import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    print("  " + json.loads(line).get("title", ""))' "$inbox"

run export-cases --reviewed --out "$DEMO_DIR/reviewed-cases"

data_dir=$("$BIN/python" -c \
    'import sys, pathlib; from pancreas_contracts import load_settings
print(load_settings(pathlib.Path(sys.argv[1])).data_dir)' \
    "$CONFIG")
cat <<EOF

Board $board: study $study decided (borderline; neoadjuvant therapy then surgery, biopsy).
  Board packet (PDF):   $data_dir/boards/$board/packet.pdf
                        copy: $DEMO_DIR/board-$board-packet.pdf
  Decision CSV:         $DEMO_DIR/board-$board-decisions.csv
  Served by the plugin: $ORTHANC_URL/pancreas-ai/boards/$board/packet.pdf
                        $ORTHANC_URL/pancreas-ai/boards/$board/decisions.csv
  Worklist (OHIF):      $ORTHANC_URL/ohif/pancreas-ai-worklist
  Notifications:        $inbox
  Reviewed cases:       $DEMO_DIR/reviewed-cases (pancreas-node train --data $DEMO_DIR/reviewed-cases ...)
EOF
