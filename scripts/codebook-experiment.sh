#!/usr/bin/env bash
# The fleet codebook experiment (README: "The fleet codebook"), with the
# real binaries:
#   1. a base: swavd train on all of Fashion-MNIST (resumed if $OUT/base has it);
#   2. swav-fleet serve (embedded NATS), the base published;
#   3. three devices (swavd run) start from the base and adapt on their own
#      classes (A: 0-3, B: 3-6, C: 6-9) for ADAPT_STEPS steps, learning only
#      their prototypes (fleet.adapt: prototypes, the default); the fleet
#      pulls them (they share their model, so it can be scored);
#   4. three more from the base that adapt everything (fleet.adapt: all);
#   5. three more from different random weights, on the same classes;
#   6. swav-fleet evaluate on the test images of each device's classes.
# Usage: scripts/codebook-experiment.sh   (OUT, PRESET, BASE_STEPS,
# ADAPT_STEPS, DATA override the defaults; DEVICE_ENV adds settings of
# every device, e.g. DEVICE_ENV=SWAVD_OPTIM_LR=0.01; ALL_GROUP=0 and
# RANDOM_GROUP=0 skip steps 4 and 5; results in $OUT/results.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/codebook-experiment}
PRESET=${PRESET:-edge-small}
BASE_STEPS=${BASE_STEPS:-1500}
ADAPT_STEPS=${ADAPT_STEPS:-600}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
DEVICE_ENV=${DEVICE_ENV:-}
ALL_GROUP=${ALL_GROUP:-1}
RANDOM_GROUP=${RANDOM_GROUP:-1}
BIN=bin
make build >/dev/null
mkdir -p "$OUT"
log() { echo "$(date +%T) $*" | tee -a "$OUT/results.txt"; }
: > "$OUT/results.txt"

log "1. base: swavd train --preset $PRESET --steps $BASE_STEPS on idx:$DATA/train"
$BIN/swavd train --preset "$PRESET" --steps "$BASE_STEPS" --source "idx:$DATA/train" --out "$OUT/base" >> "$OUT/base-train.log" 2>&1

CERTS=$OUT/certs
[ -e "$CERTS/ca.pem" ] || $BIN/swav-fleet certs init --dir "$CERTS" > /dev/null
DEVICES="base-a base-b base-c all-a all-b all-c rand-a rand-b rand-c"
for id in $DEVICES; do
  [ -e "$CERTS/$id.pem" ] || $BIN/swav-fleet certs issue --dir "$CERTS" "$id" > /dev/null
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NATS=127.0.0.1:$(free_port)
HTTP=127.0.0.1:$(free_port)
rm -rf "$OUT/fleet"
SWAV_FLEET_PULL_INTERVAL=1h $BIN/swav-fleet serve --state-dir "$OUT/fleet" --certs "$CERTS" \
  --nats-listen "$NATS" --http "$HTTP" > "$OUT/fleet.log" 2>&1 &
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
export SWAV_FLEET_SERVER=http://$HTTP
until $BIN/swav-fleet devices > /dev/null 2>&1; do sleep 0.2; done
log "2. $($BIN/swav-fleet base set "$OUT/base")"

# device ID LABELS BASE(true|false) SEED ADAPT: a swavd run on those classes only.
device() {
  local id=$1 labels=$2 base=$3 seed=$4 adapt=$5
  rm -rf "${OUT:?}/$id"
  SWAVD_SEED=$seed SWAVD_DAEMON_FPS=30 SWAVD_DAEMON_CHECKPOINT_STEPS=0 SWAVD_DAEMON_CHECKPOINT_INTERVAL=0 \
  SWAVD_FLEET_URL=tls://$NATS SWAVD_FLEET_DEVICE_ID=$id SWAVD_FLEET_CA=$CERTS/ca.pem \
  SWAVD_FLEET_CERT=$CERTS/$id.pem SWAVD_FLEET_KEY=$CERTS/$id-key.pem SWAVD_FLEET_SHARE=model SWAVD_FLEET_SHARE_EXEMPLARS=true \
  SWAVD_FLEET_BASE=$base SWAVD_FLEET_ADAPT=$adapt SWAVD_FLEET_ANNOUNCE_EVERY=2s SWAVD_FLEET_SNAPSHOT_EVERY=0s \
    env $DEVICE_ENV $BIN/swavd run --preset "$PRESET" --source "idx:$DATA/train?labels=$labels" \
    --socket "$OUT/$id.sock" --state-dir "$OUT/$id" > "$OUT/$id.log" 2>&1 &
  echo $! > "$OUT/$id.pid"
}
step() { $BIN/swavctl --socket "$OUT/$1.sock" --json status 2> /dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["training"]["assigner_step"])' 2> /dev/null || echo -1; }
# adapt FROM ID...: wait until each device's weights are ADAPT_STEPS past FROM,
# have the fleet pull it, and stop it.
adapt() {
  local from=$1; shift
  local pending="$*"
  while [ -n "$pending" ]; do
    local still=""
    for id in $pending; do
      if [ "$(step "$id")" -ge $((from + ADAPT_STEPS)) ]; then
        log "   $id at step $(step "$id"): $($BIN/swav-fleet pull "$id")"
        kill -TERM "$(cat "$OUT/$id.pid")"
      else
        still="$still $id"
      fi
    done
    pending=${still# }
    sleep 2
  done
}

log "3. three devices start from the base and adapt their prototypes on their classes for $ADAPT_STEPS steps"
device base-a 0,1,2,3 true 11 prototypes
device base-b 3,4,5,6 true 12 prototypes
device base-c 6,7,8,9 true 13 prototypes
adapt "$BASE_STEPS" base-a base-b base-c
if [ "$ALL_GROUP" = 1 ]; then
  log "4. three devices start from the base and adapt everything (fleet.adapt: all)"
  device all-a 0,1,2,3 true 31 all
  device all-b 3,4,5,6 true 32 all
  device all-c 6,7,8,9 true 33 all
  adapt "$BASE_STEPS" all-a all-b all-c
fi
if [ "$RANDOM_GROUP" = 1 ]; then
  log "5. three devices from different random weights, the same classes and steps"
  device rand-a 0,1,2,3 false 21 all
  device rand-b 3,4,5,6 false 22 all
  device rand-c 6,7,8,9 false 23 all
  adapt 0 rand-a rand-b rand-c
fi
for id in $DEVICES; do
  [ -e "$OUT/$id.pid" ] && while kill -0 "$(cat "$OUT/$id.pid")" 2> /dev/null; do sleep 0.5; done
done

log "6. the codebook, and the test images of each device's classes through it"
$BIN/swav-fleet codebook > "$OUT/codebook.txt"
$BIN/swav-fleet codebook --mosaic "$OUT/mosaic.png" > /dev/null
if command -v chromium > /dev/null; then
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2400 \
    --screenshot="$PWD/$OUT/fleet-page.png" "$SWAV_FLEET_SERVER/" 2> /dev/null || true
fi
# score NAME PREFIX [FLAG]: the group PREFIX-a/b/c through the codebook,
# with codebook.clusters and with 16 fleet clusters; JSON in $OUT/NAME.json.
score() {
  local name=$1 p=$2; shift 2
  local devs="$p-a=0,1,2,3 $p-b=3,4,5,6 $p-c=6,7,8,9"
  $BIN/swav-fleet evaluate "$@" --test "idx:$DATA/t10k" $devs | tee -a "$OUT/results.txt"
  $BIN/swav-fleet evaluate "$@" --json --test "idx:$DATA/t10k" $devs > "$OUT/$name.json"
  log "   with 16 fleet clusters instead of codebook.clusters:"
  $BIN/swav-fleet evaluate "$@" --clusters 16 --test "idx:$DATA/t10k" $devs | tee -a "$OUT/results.txt"
}
score base base
if [ "$ALL_GROUP" = 1 ]; then
  log "   devices on the base that adapted everything:"
  score all all
fi
if [ "$RANDOM_GROUP" = 1 ]; then
  log "   devices from random weights, merged anyway:"
  score random rand --force-merge
fi
log "done: $OUT/results.txt, codebook.txt, base.json, all.json, random.json, mosaic.png, fleet-page.png"
