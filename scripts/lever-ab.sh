#!/usr/bin/env bash
# One performance lever's before and after, interleaved: builds swavd at
# BEFORE (a commit, default HEAD) and from the working tree, then runs
# `swavd bench --preset edge-small --backend cpu` PAIRS times at batch 64
# and 16, before then after, and prints each pair's ratio (after / before),
# of training samples/s and of inference frames/s at batch 1 and 64.
# Usage: BEFORE=HEAD~1 PAIRS=3 [BATCHES="64 16"] scripts/lever-ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${BEFORE:-HEAD}
PAIRS=${PAIRS:-3}
STEPS=${STEPS:-10}
BATCHES=${BATCHES:-64 16}
OUT=${OUT:-runs/lever-ab}
mkdir -p "$OUT"
tree=$(mktemp -d)
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"' EXIT
git worktree add --detach "$tree" "$BEFORE" >/dev/null 2>&1
(cd "$tree" && go build -o "$OLDPWD/$OUT/swavd-before" ./cmd/swavd)
go build -o "$OUT/swavd-after" ./cmd/swavd
# field FILE KEY [SUBKEY]: a number from a bench report.
field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])); [v:=v[k] for k in sys.argv[2:]]; print(v)" "$@"; }
for batch in $BATCHES; do
	for i in $(seq 1 "$PAIRS"); do
		for v in before after; do
			SWAVD_TRAIN_BATCH=$batch "$OUT/swavd-$v" bench --preset edge-small --backend cpu --steps "$STEPS" --json > "$OUT/$v-b$batch-$i.json" 2> /dev/null
		done
		b=$(field "$OUT/before-b$batch-$i.json" samples_per_s) a=$(field "$OUT/after-b$batch-$i.json" samples_per_s)
		printf 'batch %s pair %s: before %.1f samples/s, after %.1f: %.2fx' "$batch" "$i" "$b" "$a" "$(python3 -c "print($a/$b)")"
		for ib in 1 64; do
			b=$(field "$OUT/before-b$batch-$i.json" inference_frames_per_s "batch_$ib") a=$(field "$OUT/after-b$batch-$i.json" inference_frames_per_s "batch_$ib")
			printf '; inference batch %s %.2fx' "$ib" "$(python3 -c "print($a/$b)")"
		done
		echo
	done
done
