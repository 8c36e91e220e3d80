#!/usr/bin/env bash
# Speed of swavd's CPU backend against the PyTorch reference of the
# edge-small preset, measured side by side: PAIRS times, swavd then the
# reference, at batch 64 and at the daemon's batch 16, then inference. Each
# pair runs one right after the other, so that a noisy shared machine
# affects both alike; the ratios (swavd / PyTorch) are what to compare.
# Usage: make peer-ratio, or PEER=../shared/peer/swav_ref.py PAIRS=3 scripts/peer-ratio.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PEER=${PEER:-../shared/peer/swav_ref.py}
PAIRS=${PAIRS:-3}
STEPS=${STEPS:-10}
OUT=${OUT:-runs/peer-ratio}
[ -e "$PEER" ] || { echo "peer-ratio: no reference at $PEER (PEER=...)" >&2; exit 1; }
mkdir -p "$OUT"
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$1" "$2"; }
for batch in 64 16; do
	for i in $(seq 1 "$PAIRS"); do
		SWAVD_TRAIN_BATCH=$batch bin/swavd bench --preset edge-small --backend cpu --steps "$STEPS" --json > "$OUT/swavd-b$batch-$i.json" 2> /dev/null
		/usr/bin/python3 "$PEER" speed --steps "$STEPS" --batch-size "$batch" > "$OUT/peer-b$batch-$i.json" 2> /dev/null
		s=$(field "$OUT/swavd-b$batch-$i.json" "['samples_per_s']")
		p=$(field "$OUT/peer-b$batch-$i.json" "['train']['samples_per_s']")
		line="batch $batch pair $i: swavd $(printf %.1f "$s") samples/s, PyTorch $(printf %.1f "$p"): ratio $(python3 -c "print(f'{$s/$p:.2f}')")"
		if [ "$batch" = 64 ]; then
			for b in 1 64; do
				si=$(field "$OUT/swavd-b$batch-$i.json" "['inference_frames_per_s']['batch_$b']")
				pi=$(field "$OUT/peer-b$batch-$i.json" "['inference_center_view_32']['batch$b']['frames_per_s']")
				line="$line; inference batch $b: $(printf %.0f "$si") vs $(printf %.0f "$pi") frames/s"
			done
		fi
		echo "$line"
	done
done
