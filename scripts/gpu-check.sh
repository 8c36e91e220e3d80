#!/bin/bash
# gpu-check.sh: the GL backend on a real GPU, from the bundle `make
# gpu-bundle` makes (prebuilt binaries, so the machine needs no Go): the
# GL parity tests and reference vectors on the GPU's driver, then `swavd
# bench` on GL and on the CPU side by side, the per-shader profile and the
# convolution benchmark. Results go to $OUT (default: BUNDLE/out).
#   usage: [STEPS=20] scripts/gpu-check.sh [BUNDLE]   (as root on the GPU machine)
set -u
B=$(cd "${1:-gpu-check}" && pwd) || exit 1
OUT=${OUT:-$B/out}
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

# GL loader libraries (glvnd); the NVIDIA driver supplies the vendor part.
if ! ldconfig -p | grep -q 'libEGL.so.1 '; then
	for p in libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2; do dpkg -x "$B"/debs/${p}_*.deb /; done
	ldconfig
fi
# The X11 client libraries libGLX links against, unpacked aside, not over /.
if ! ldconfig -p | grep -q 'libX11.so.6 '; then
	for p in libx11-6 libx11-data libxcb1 libxau6 libxdmcp6 libbsd0 libmd0; do dpkg -x "$B"/debs/${p}_*.deb /tmp/gpu-check-libs; done
	export LD_LIBRARY_PATH=/tmp/gpu-check-libs/usr/lib/x86_64-linux-gnu:/tmp/gpu-check-libs/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
nv=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ ! -e /usr/share/glvnd/egl_vendor.d/10_nvidia.json ] && [ -e $nv ]; then
	export __EGL_VENDOR_LIBRARY_FILENAMES=$nv
fi
# A Fashion-MNIST subset where the tests look for it, unless it is there.
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
	mkdir -p /usr/share/datasets/fashion-mnist && cp "$B"/fashion-mnist/* /usr/share/datasets/fashion-mnist/
fi
cd "$B" && for f in swavd gl.test train.test; do [ -x $f ] || { gunzip -kf $f.gz && chmod +x $f; }; done
export SWAVD_TESTDATA="$B/testdata"

log "GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$OUT/summary.txt"
log "compute/gl tests: context, shaders, parity with the CPU, reference vectors"
./gl.test -test.v >"$OUT/gl-tests.txt" 2>&1
echo "exit $?: $(grep -cE -- '^\s*--- PASS' "$OUT/gl-tests.txt") passed, $(grep -cE -- '^\s*--- FAIL' "$OUT/gl-tests.txt") failed, $(grep -cE -- '^\s*--- SKIP' "$OUT/gl-tests.txt") skipped" | tee -a "$OUT/summary.txt"
grep -m3 -E 'on NVIDIA|Core Profile|OpenGL ES' "$OUT/gl-tests.txt" | tee -a "$OUT/summary.txt"
log "GL training steps against the CPU (train)"
./train.test -test.v -test.run 'GL' >"$OUT/train-tests.txt" 2>&1
echo "exit $?: $(grep -cE -- '^\s*--- PASS' "$OUT/train-tests.txt") passed, $(grep -cE -- '^\s*--- FAIL' "$OUT/train-tests.txt") failed" | tee -a "$OUT/summary.txt"
for be in gl cpu; do
	log "swavd bench --backend $be --preset edge-small --steps ${STEPS:-20}"
	extra=()
	[ $be = gl ] && extra=(--gl-profile 2 --check)
	./swavd bench --backend $be --preset edge-small --steps ${STEPS:-20} "${extra[@]}" --json >"$OUT/bench-$be.json" 2>"$OUT/bench-$be.err"
	echo "exit $?" | tee -a "$OUT/summary.txt"
	grep -E '"(backend|samples_per_s|ms_per_step|renderer|version|loss_rel_error|weights_rel_error|passed)"' "$OUT/bench-$be.json" | tee -a "$OUT/summary.txt"
done
log "convolution products (go test -bench Conv ./compute/gl)"
./gl.test -test.run X -test.bench Conv -test.benchtime 20x 2>&1 | grep -E 'GFLOP|FAIL' | tee -a "$OUT/summary.txt"
