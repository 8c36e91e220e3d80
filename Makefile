# swavd: build, test and run. `make run` and `make test` are all a fresh
# Debian 12 machine with Go 1.26 needs: both install the system packages
# first (idempotently, with apt-get).

GO      ?= go
PREFIX  ?= /usr/local
BIN     := bin
STEPS   ?= 1500
OUT     ?= runs/default
RUNDIR  ?= run

# Debian packages: gcc, libc6-dev and pkg-config for cgo (the SGEMM kernel,
# the EGL context); EGL/GL/GLES headers and Mesa (llvmpipe) so the GL
# backend builds everywhere and its tests run without a GPU; Fashion-MNIST
# for the default replay source and the tests; systemd for
# `systemd-analyze verify` of the unit files in the tests; chromium, the
# headless browser the fleet page's test loads it in; python3 for the
# codebook experiment script; mesa-vulkan-drivers (zink over lavapipe) and
# virgl-server (virgl), independent GL drivers the GL tests also run on.
DEB_PACKAGES := gcc libc6-dev pkg-config libegl-dev libgl-dev libgles-dev libegl-mesa0 libgl1-mesa-dri \
	dataset-fashion-mnist systemd chromium python3 mesa-vulkan-drivers virgl-server

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test run train bench cross-deps cross test-arm64 cross-env-test deb deb-check peer-deps peer-ratio peer-layers install clean testframes gpu-bundle

all: build

# apt-install PACKAGES installs, with apt-get, those not installed yet.
define apt-install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi
endef

deps:
	$(call apt-install,$(DEB_PACKAGES))
	$(GO) mod download

build:
	$(GO) build -o $(BIN)/ ./cmd/...

test: deps
	$(GO) vet ./...
	$(GO) test ./...
	# Which GL drivers the GL tests ran on, by renderer: llvmpipe (the run
	# above) and virgl (TestOnVirgl, which starts its own virgl_test_server).
	$(GO) test -count=1 -v -run 'TestContextReportsRendererAndLimits|TestOnVirgl' ./compute/gl
	# The GL backend again on softpipe, Mesa's other software driver (its own
	# shader compiler, no LLVM), as a GLES-only device: it has no GL 4.3, so
	# those parts skip and say why; every GLES part runs. About 25 s.
	GALLIUM_DRIVER=softpipe $(GO) test -count=1 -v -run 'Parity|Vectors|SelfTest$$|Surfaceless|Context|Compile' ./compute/gl
	# And on zink over lavapipe (GLSL to SPIR-V to Vulkan on the CPU), with
	# Mesa 22.3's uniform inlining off: with it on, zink computes wrong
	# results after other dispatches, which TestSelfTestCatchesZinkOrderFault
	# checks the self-test catches. About 6 s, and the whole GLES training
	# step against the CPU there too, about 50 s.
	ZINK_INLINE_UNIFORMS=false GALLIUM_DRIVER=zink LIBGL_ALWAYS_SOFTWARE=1 $(GO) test -count=1 -v -run 'Parity|Vectors|SelfTest$$|Context|Compile' ./compute/gl
	ZINK_INLINE_UNIFORMS=false GALLIUM_DRIVER=zink LIBGL_ALWAYS_SOFTWARE=1 $(GO) test -count=1 -v -run 'TestGLStepMatchesCPU/OpenGL_ES' ./train
	# arm64, for Jetson-class boards: the release cross-build with its
	# Debian packages (linted), then the CPU-side tests under qemu with the
	# NEON kernel. About 6 min from nothing, 2 min again.
	$(MAKE) deb ARCH=arm64
	$(MAKE) test-arm64
	# The amd64 packages, installed here, removed and purged (as root).
	$(MAKE) deb-check

# The built-in default: the daemon on a Fashion-MNIST replay at 30 fps
# (this machine has no camera), its socket and state under $(RUNDIR).
# In another terminal: bin/swavctl --socket $(RUNDIR)/swavd.sock status
# Ctrl-C writes a checkpoint and stops; the next run resumes from it.
run: deps build
	@echo "swavd: in another terminal: $(BIN)/swavctl --socket $(RUNDIR)/swavd.sock status"
	$(BIN)/swavd run --socket $(RUNDIR)/swavd.sock --state-dir $(RUNDIR)/state

# Offline training of edge-small for STEPS steps into OUT (resumes).
train: deps build
	$(BIN)/swavd train --steps $(STEPS) --out $(OUT)

bench: deps build
	$(BIN)/swavd bench --preset edge-small --steps 20 --json
	$(BIN)/swavd bench --pipeline --preset edge-small --json

# Release builds for a board: `make cross ARCH=arm64` builds
# bin/linux-arm64/ with cgo (the C SGEMM kernel, the EGL context) through
# Debian's cross compiler and the board's EGL/GL headers (multiarch), then
# runs the arm64 swavd under qemu-user-static as a smoke test; ARCH=amd64
# builds bin/linux-amd64/ here. Stripped, position-independent, versioned.
ARCH ?= arm64
ifndef VERSION
VERSION := 0.1.0~git$(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null).$(shell git rev-parse --short HEAD 2>/dev/null)
endif
# Debian's hardening: the C parts with fortified functions and a stack
# protector, the binaries linked with full RELRO and immediate binding.
RELEASE_FLAGS = -trimpath -buildmode=pie \
	-ldflags='-s -w -X main.version=$(VERSION) -linkmode=external -extldflags "-Wl,-z,relro,-z,now"'
RELEASE_CFLAGS = -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong
CROSS_PACKAGES_arm64 := gcc-aarch64-linux-gnu libc6-dev-arm64-cross pkg-config libegl-dev:arm64 libgl-dev:arm64 libgles-dev:arm64 \
	qemu-user-static
CROSS_CC_arm64 := aarch64-linux-gnu-gcc
CROSS_TRIPLET_arm64 := aarch64-linux-gnu
CROSS_RUN_arm64 := qemu-aarch64-static
CROSS_PACKAGES_amd64 := gcc libc6-dev pkg-config libegl-dev libgl-dev libgles-dev
CROSS_CC_amd64 := x86_64-linux-gnu-gcc
CROSS_TRIPLET_amd64 := x86_64-linux-gnu
CROSS_ENV = CGO_ENABLED=1 GOOS=linux GOARCH=$(ARCH) CC=$(CROSS_CC_$(ARCH)) CGO_CFLAGS='$(RELEASE_CFLAGS)' \
	PKG_CONFIG_LIBDIR=/usr/lib/$(CROSS_TRIPLET_$(ARCH))/pkgconfig:/usr/share/pkgconfig
cross-deps:
	@[ -n "$(CROSS_CC_$(ARCH))" ] || { echo "cross: ARCH=$(ARCH) is not supported (amd64 and arm64 are)"; exit 1; }
	@[ "$$(dpkg --print-architecture)" = $(ARCH) ] || dpkg --print-foreign-architectures | grep -qx $(ARCH) || $(SUDO) dpkg --add-architecture $(ARCH)
	$(call apt-install,$(CROSS_PACKAGES_$(ARCH)))

cross: cross-deps
	$(CROSS_ENV) $(GO) build $(RELEASE_FLAGS) -o $(BIN)/linux-$(ARCH)/ ./cmd/...
	$(CROSS_RUN_$(ARCH)) $(BIN)/linux-$(ARCH)/swavd version

# The CPU-side tests as arm64 binaries under qemu-user-static, the NEON
# SGEMM kernel among them (TestGemmKernelIsTheBestThisProcessorRuns checks
# it is the one that runs). GL stays out: Mesa under emulation is too slow.
# -short skips the one test that trains the camera preset (over a minute
# emulated); the daemon's tests that start client processes as another
# user skip too (the test binary cannot exec an arm64 copy of itself).
QEMU_TEST_PKGS := ./compute/cpu ./model ./augment ./capture ./config ./api ./safetensors ./evaluate ./daemon ./internal/...
test-arm64:
	$(MAKE) cross-deps ARCH=arm64
	$(MAKE) cross-env-test ARCH=arm64
cross-env-test:
	$(CROSS_ENV) $(GO) test -short -exec $(CROSS_RUN_$(ARCH)) $(QEMU_TEST_PKGS)

# Debian packages: `make deb ARCH=amd64|arm64` writes swavd_VERSION_ARCH.deb
# and swav-fleet_VERSION_ARCH.deb to dist/ with dpkg-deb (scripts/deb.sh)
# and checks them with lintian (what it still reports is explained in the
# README). `make deb-check` installs the amd64 ones here, as root, and
# checks installation, removal and purge (scripts/deb-check.sh).
DIST ?= dist
deb: cross
	$(call apt-install,lintian dpkg-dev)
	scripts/deb.sh $(ARCH) $(BIN)/linux-$(ARCH) '$(VERSION)' $(DIST)
	lintian --fail-on error,warning $(DIST)/swavd_$(VERSION)_$(ARCH).deb $(DIST)/swav-fleet_$(VERSION)_$(ARCH).deb

deb-check:
	$(MAKE) deb ARCH=amd64
	$(SUDO) scripts/deb-check.sh $(DIST)/swavd_$(VERSION)_amd64.deb $(DIST)/swav-fleet_$(VERSION)_amd64.deb

# The PyTorch reference (../shared/peer/swav_ref.py) and what it needs, for
# speed ratios measured side by side: `make peer-ratio` (PEER, PAIRS).
PEER_PACKAGES := python3-torch python3-torchvision python3-sklearn python3-numpy
PEER ?= ../shared/peer/swav_ref.py
PAIRS ?= 3
peer-deps: deps
	$(call apt-install,$(PEER_PACKAGES))

peer-ratio: peer-deps build
	PEER=$(PEER) PAIRS=$(PAIRS) scripts/peer-ratio.sh

# each convolution of edge-small against PyTorch's: `make peer-layers` (ROUNDS).
ROUNDS ?= 2
peer-layers: peer-deps
	/usr/bin/python3 scripts/peer-layers.py $(ROUNDS)

# Binaries, units (swavd's service + socket, swav-fleet's service), the
# swavd and swav-fleet users, and commented default configs (kept if they
# exist). Then: systemctl enable --now swavd.socket swavd; on the fleet
# server, swav-fleet.service.
UNITDIR ?= /etc/systemd/system
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)/etc/swavd $(DESTDIR)/etc/sysusers.d $(DESTDIR)$(PREFIX)/share/doc/swavd
	install -d $(DESTDIR)/etc/swav-fleet
	install -m 0755 $(BIN)/swavd $(BIN)/swavctl $(BIN)/swav-fleet $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/local/bin/swavd|$(PREFIX)/bin/swavd|' systemd/swavd.service > $(DESTDIR)$(UNITDIR)/swavd.service
	install -m 0644 systemd/swavd.socket $(DESTDIR)$(UNITDIR)/swavd.socket
	install -m 0644 systemd/swavd.sysusers $(DESTDIR)/etc/sysusers.d/swavd.conf
	sed 's|/usr/local/bin/swav-fleet|$(PREFIX)/bin/swav-fleet|' systemd/swav-fleet.service > $(DESTDIR)$(UNITDIR)/swav-fleet.service
	install -m 0644 systemd/swav-fleet.sysusers $(DESTDIR)/etc/sysusers.d/swav-fleet.conf
	[ -e $(DESTDIR)/etc/swav-fleet/swav-fleet.yaml ] || install -m 0644 systemd/swav-fleet.yaml $(DESTDIR)/etc/swav-fleet/swav-fleet.yaml
	[ -e $(DESTDIR)/etc/swavd/swavd.yaml ] || install -m 0644 systemd/swavd.yaml $(DESTDIR)/etc/swavd/swavd.yaml
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/swavd/README.md
	[ -n "$(DESTDIR)" ] || (systemd-sysusers /etc/sysusers.d/swavd.conf /etc/sysusers.d/swav-fleet.conf && systemctl daemon-reload) || true

clean:
	rm -rf $(BIN) $(GPU_BUNDLE) $(DIST)

# A bundle to check the GL backend on a machine with a GPU and no Go
# toolchain: stripped swavd and test binaries (gzipped, for size), the
# reference vectors, 1,000 Fashion-MNIST images, and the glvnd GL loader
# packages. There: scripts/gpu-check.sh $(GPU_BUNDLE)
GPU_BUNDLE ?= gpu-check
TESTDATA   ?= ../shared/testdata
FMNIST     := /usr/share/datasets/fashion-mnist
GL_DEBS    := libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 libx11-6 libx11-data libxcb1 libxau6 libxdmcp6 libbsd0 libmd0
gpu-bundle: deps
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)/debs $(GPU_BUNDLE)/testdata $(GPU_BUNDLE)/fashion-mnist
	$(GO) build -ldflags='-s -w' -o $(GPU_BUNDLE)/swavd ./cmd/swavd
	$(GO) test -c -ldflags='-s -w' -o $(GPU_BUNDLE)/gl.test ./compute/gl
	$(GO) test -c -ldflags='-s -w' -o $(GPU_BUNDLE)/train.test ./train
	gzip -9 $(GPU_BUNDLE)/swavd $(GPU_BUNDLE)/gl.test $(GPU_BUNDLE)/train.test
	cp $${SWAVD_TESTDATA:-$(TESTDATA)}/swav_vectors.json $(GPU_BUNDLE)/testdata/
	{ printf '\000\000\010\003\000\000\003\350'; zcat $(FMNIST)/train-images-idx3-ubyte.gz | tail -c +9 | head -c 784008; } | gzip > $(GPU_BUNDLE)/fashion-mnist/train-images-idx3-ubyte.gz
	{ printf '\000\000\010\001\000\000\003\350'; zcat $(FMNIST)/train-labels-idx1-ubyte.gz | tail -c +9 | head -c 1000; } | gzip > $(GPU_BUNDLE)/fashion-mnist/train-labels-idx1-ubyte.gz
	cd $(GPU_BUNDLE)/debs && apt-get download $(GL_DEBS)
	du -sh $(GPU_BUNDLE)

# Regenerates the real camera frames the capture tests decode (committed
# under capture/testdata/frames): ffmpeg's test pattern as MJPEG (standard
# Huffman tables, as UVC cameras use) and YUYV, with ffmpeg's own RGB
# decoding of each to compare against.
FRAMES := capture/testdata/frames
testframes:
	@dpkg-query -W -f='$${Status}' ffmpeg 2>/dev/null | grep -q "install ok installed" || \
	  ($(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q ffmpeg)
	ffmpeg -loglevel error -y -f lavfi -i testsrc=size=64x48:rate=1 -frames:v 1 -c:v mjpeg -huffman default -q:v 3 -f mjpeg $(FRAMES)/testsrc-64x48.mjpeg
	ffmpeg -loglevel error -y -f lavfi -i testsrc=size=64x48:rate=1 -frames:v 1 -pix_fmt yuyv422 -f rawvideo $(FRAMES)/testsrc-64x48.yuyv
	ffmpeg -loglevel error -y -i $(FRAMES)/testsrc-64x48.mjpeg -pix_fmt rgb24 -f rawvideo $(FRAMES)/testsrc-64x48.mjpeg.rgb
	ffmpeg -loglevel error -y -f rawvideo -pix_fmt yuyv422 -s 64x48 -i $(FRAMES)/testsrc-64x48.yuyv -pix_fmt rgb24 -f rawvideo $(FRAMES)/testsrc-64x48.yuyv.rgb
