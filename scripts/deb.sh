#!/bin/sh
# deb.sh ARCH BINDIR VERSION OUTDIR: builds swavd_VERSION_ARCH.deb and
# swav-fleet_VERSION_ARCH.deb from the binaries in BINDIR with Debian's own
# dpkg-deb, from packaging/ (control files, maintainer scripts, man pages)
# and systemd/ (units, sysusers, default configs). Depends come from
# dpkg-shlibdeps, for the target architecture; the copyright file lists
# every Go module linked into the binaries with its licence text.
# `make deb ARCH=amd64|arm64` runs it.
set -eu
arch=$1 bindir=$2 version=$3 out=$4
maintainer=${DEB_MAINTAINER:-swavd developers <swavd@users.noreply.github.com>}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# unit SRC DEST NAME: a unit from systemd/, with Debian's paths.
unit() {
	sed -e 's|/usr/local/bin/|/usr/bin/|' -e "s|^Documentation=.*|Documentation=man:$3(8)|" "$1" > "$2"
	chmod 0644 "$2"
}

# copyright PKG BINARY...: the project's notice, then each Go module linked
# into the binaries with its licence, from the module cache.
copyright() {
	pkg=$1; shift
	modcache=$(go env GOMODCACHE)
	{
		cat <<EOT
$pkg is part of swavd.

Files: *
Copyright: 2026 the swavd developers
License: the swavd developers have not chosen a licence yet; until they do,
 all rights are reserved.

The binaries link the Go standard library and these Go modules, each under
the licence that follows its name.
EOT
		go version -m "$@" | awk '$1 == "dep" || $1 == "=>" { print $2 "@" $3 }' | sort -u | while read -r mod; do
			# The module cache writes capitals as '!' and the lower case letter.
			dir=$modcache/$(printf '%s' "$mod" | sed 's/[A-Z]/!&/g' | tr 'A-Z' 'a-z')
			lic=$(ls "$dir" 2>/dev/null | grep -iE '^(licen[cs]e|copying)(\.(md|txt))?$' | head -n 1 || true)
			[ -n "$lic" ] || { echo "deb.sh: no licence file for $mod in $dir (run go mod download)" >&2; exit 1; }
			printf '\n---------------------------------------------------------------------\n%s\n\n' "$mod"
			# Debian ships the Apache licence once, in common-licenses.
			if grep -q 'Apache License' "$dir/$lic" && grep -q 'Version 2.0, January 2004' "$dir/$lic"; then
				printf 'Licensed under the Apache License, Version 2.0. On Debian systems its\nfull text is in /usr/share/common-licenses/Apache-2.0.\n'
			else
				cat "$dir/$lic"
			fi
			[ ! -f "$dir/NOTICE" ] || { printf '\nNOTICE:\n'; cat "$dir/NOTICE"; }
		done
		printf '\n---------------------------------------------------------------------\nGo standard library: %s\n\n' "$(go env GOROOT)"
		cat "$(go env GOROOT)/LICENSE"
	}
}

# build PKG SOCKET BINARIES...: stages, checks and builds one package.
build() {
	pkg=$1 socket=$2; shift 2
	d=$work/$pkg
	mkdir -p "$d/DEBIAN" "$d/usr/bin" "$d/lib/systemd/system" "$d/usr/lib/sysusers.d" "$d/etc/$pkg" \
		"$d/usr/share/doc/$pkg"
	for b in "$@"; do
		install -m 0755 "$bindir/$b" "$d/usr/bin/$b"
		# As dh_strip does: the linker's .comment is of no use installed.
		"$(dpkg-architecture -a "$arch" -q DEB_HOST_GNU_TYPE 2>/dev/null)-strip" --remove-section=.comment --remove-section=.note "$d/usr/bin/$b"
	done
	unit "$root/systemd/$pkg.service" "$d/lib/systemd/system/$pkg.service" "$pkg"
	[ -z "$socket" ] || unit "$root/systemd/$socket" "$d/lib/systemd/system/$socket" "$pkg"
	install -m 0644 "$root/systemd/$pkg.sysusers" "$d/usr/lib/sysusers.d/$pkg.conf"
	install -m 0644 "$root/systemd/$pkg.yaml" "$d/etc/$pkg/$pkg.yaml"
	echo "/etc/$pkg/$pkg.yaml" > "$d/DEBIAN/conffiles"
	for b in "$@"; do
		for page in "$root/packaging/man/$b".[18]; do
			[ -e "$page" ] || continue
			mkdir -p "$d/usr/share/man/man${page##*.}"
			gzip -9n < "$page" > "$d/usr/share/man/man${page##*.}/$(basename "$page").gz"
		done
	done
	gzip -9n < "$root/README.md" > "$d/usr/share/doc/$pkg/README.md.gz"
	if [ "$pkg" = swavd ]; then
		install -d "$d/usr/share/doc/$pkg/examples"
		install -m 0644 "$root/systemd/swavd.service.d/example-camera.conf.example" "$d/usr/share/doc/$pkg/examples/camera.conf"
	fi
	(cd "$d/usr/bin" && copyright "$pkg" "$@") > "$d/usr/share/doc/$pkg/copyright"
	printf '%s (%s) unstable; urgency=medium\n\n  * Built from the swavd repository at %s.\n\n -- %s  %s\n' \
		"$pkg" "$version" "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$maintainer" \
		"$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}")" |
		gzip -9n > "$d/usr/share/doc/$pkg/changelog.gz"
	for s in postinst prerm postrm; do
		sed -e "s/@NAME@/$pkg/g" -e "s/@SOCKET@/$socket/g" "$root/packaging/deb/$s" > "$d/DEBIAN/$s"
		chmod 0755 "$d/DEBIAN/$s"
	done

	# Depends: the shared libraries the binaries link, as dpkg-shlibdeps
	# finds them for the target architecture (multiarch: libc6:arm64 etc.).
	mkdir -p "$work/src-$pkg/debian"
	printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$pkg" "$pkg" > "$work/src-$pkg/debian/control"
	shlibs=$(cd "$work/src-$pkg" && dpkg-architecture -a "$arch" -c dpkg-shlibdeps -O \
		$(for b in "$@"; do printf ' -e%s' "$d/usr/bin/$b"; done) 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
	[ -n "$shlibs" ] || { echo "deb.sh: dpkg-shlibdeps found no dependencies for $pkg" >&2; exit 1; }

	size=$(du -sk --exclude=DEBIAN "$d" | cut -f1)
	sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@MAINTAINER@/$maintainer/" \
		-e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" "$root/packaging/deb/$pkg.control" > "$d/DEBIAN/control"
	(cd "$d" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$d/DEBIAN/md5sums"
	find "$d" -type d -exec chmod 0755 {} +
	dpkg-deb --root-owner-group -Zxz --build "$d" "$out/${pkg}_${version}_$arch.deb"
}

build swavd swavd.socket swavd swavctl
build swav-fleet "" swav-fleet
