#!/usr/bin/env bash
# The tumor board on the demo (issue 26): schedule a board, put the demo study on it, record the
# board's decision, build the board packet (PDF) and the decision CSV, and say where each is.
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
run board decide "$board" "$study" --category borderline \
    --treatment neoadjuvant-then-surgery --treatment biopsy \
    --text "Demo: neoadjuvant therapy, then re-staging CT"
run board list
run board packet "$board" --out "$DEMO_DIR/board-$board-packet.pdf"
run board csv "$board" --out "$DEMO_DIR/board-$board-decisions.csv"

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
A packet-ready notification is queued; the node's notifier sends it to the channels configured.
EOF
