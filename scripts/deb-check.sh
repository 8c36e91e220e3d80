#!/bin/sh
# deb-check.sh SWAVD_DEB SWAV_FLEET_DEB: installs the two packages on this
# machine (as root) and checks what a Debian administrator relies on:
# files in place, the users, swavd.socket enabled and no service enabled,
# `systemd-analyze verify` of the installed units clean, the binaries run;
# then that an upgrade keeps an edited conffile, `dpkg -r` keeps the
# configuration and /var/lib/swavd, and `dpkg -P` removes both. Where
# either package is already installed it says so and leaves it alone.
# `make deb-check`.
set -eu
swavd_deb=$1 fleet_deb=$2
fail() { echo "deb-check: FAIL: $*" >&2; exit 1; }
ok() { echo "deb-check: ok: $*"; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
known() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -qv "not-installed"; }

[ "$(id -u)" = 0 ] || fail "run as root (it installs packages)"
for p in swavd swav-fleet; do
	if known "$p"; then
		# A machine that runs swavd from its package: leave it alone.
		echo "deb-check: SKIPPED: $p is already installed here (dpkg -P it to run this check)"
		exit 0
	fi
done
cleanup() { dpkg -P swavd swav-fleet >/dev/null 2>&1 || true; }
trap cleanup EXIT

dpkg -i "$swavd_deb" "$fleet_deb" >/dev/null
installed swavd && installed swav-fleet || fail "packages not installed"
ok "dpkg -i"

for f in /usr/bin/swavd /usr/bin/swavctl /usr/bin/swav-fleet; do
	[ -x "$f" ] || fail "$f missing or not executable"
done
for f in /lib/systemd/system/swavd.service /lib/systemd/system/swavd.socket /lib/systemd/system/swav-fleet.service \
	/usr/lib/sysusers.d/swavd.conf /usr/lib/sysusers.d/swav-fleet.conf /etc/swavd/swavd.yaml /etc/swav-fleet/swav-fleet.yaml \
	/usr/share/man/man8/swavd.8.gz /usr/share/man/man1/swavctl.1.gz /usr/share/man/man8/swav-fleet.8.gz \
	/usr/share/doc/swavd/copyright /usr/share/doc/swavd/changelog.gz /usr/share/doc/swavd/README.md.gz /usr/share/doc/swav-fleet/copyright; do
	[ -f "$f" ] || fail "$f missing"
done
dpkg-query -W -f='${Conffiles}\n' swavd | grep -q '^ /etc/swavd/swavd.yaml ' || fail "/etc/swavd/swavd.yaml is not a conffile"
ok "files in place; /etc/swavd/swavd.yaml is a conffile"

getent passwd swavd >/dev/null && getent passwd swav-fleet >/dev/null || fail "system users missing"
id -nG swavd | tr ' ' '\n' | grep -qx video || fail "swavd is not in the video group"
id -nG swavd | tr ' ' '\n' | grep -qx render || fail "swavd is not in the render group"
ok "users swavd (video, render) and swav-fleet"

[ -L /etc/systemd/system/sockets.target.wants/swavd.socket ] || fail "swavd.socket not enabled"
for s in swavd swav-fleet; do
	[ ! -e /etc/systemd/system/multi-user.target.wants/$s.service ] || fail "$s.service enabled with nothing configured"
done
ok "swavd.socket enabled; swavd.service and swav-fleet.service not enabled"

out=$(systemd-analyze verify /lib/systemd/system/swavd.socket /lib/systemd/system/swavd.service /lib/systemd/system/swav-fleet.service 2>&1) ||
	fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify says: $out"
ok "systemd-analyze verify of the installed units: clean"

version=$(dpkg-query -W -f='${Version}' swavd)
swavd version | grep -qF "$version" || fail "swavd version does not say $version: $(swavd version)"
swav-fleet version | grep -qF "$version" || fail "swav-fleet version does not say $version"
swavctl --help 2>&1 | grep -q '^usage: swavctl' || fail "swavctl --help"
ok "swavd version: $(swavd version | head -n 1)"

# What a device learns, and an administrator's edit of the configuration.
mkdir -p /var/lib/swavd/checkpoints/step-000010
echo learned > /var/lib/swavd/checkpoints/step-000010/checkpoint.safetensors
echo "# edited by the administrator" >> /etc/swavd/swavd.yaml

dpkg -i "$swavd_deb" >/dev/null
grep -q "edited by the administrator" /etc/swavd/swavd.yaml || fail "reinstalling replaced an edited conffile"
[ -L /etc/systemd/system/sockets.target.wants/swavd.socket ] || fail "reinstalling disabled swavd.socket"
ok "reinstall (upgrade path) keeps the edited conffile and the socket enabled"

dpkg -r swavd swav-fleet >/dev/null
[ ! -e /usr/bin/swavd ] && [ ! -e /lib/systemd/system/swavd.service ] || fail "dpkg -r left the binaries or units"
dpkg-query -W -f='${Status}' swavd | grep -q "config-files" || fail "swavd not in config-files state after dpkg -r"
grep -q "edited by the administrator" /etc/swavd/swavd.yaml || fail "dpkg -r removed the configuration"
[ -f /var/lib/swavd/checkpoints/step-000010/checkpoint.safetensors ] || fail "dpkg -r removed /var/lib/swavd"
ok "dpkg -r: binaries and units gone, /etc/swavd and /var/lib/swavd kept"

dpkg -P swavd swav-fleet >/dev/null
! known swavd || fail "swavd still known to dpkg after purge"
for p in /etc/swavd /var/lib/swavd /etc/swav-fleet /etc/systemd/system/sockets.target.wants/swavd.socket /etc/systemd/system/swavd.socket; do
	[ ! -e "$p" ] && [ ! -L "$p" ] || fail "dpkg -P left $p"
done
ok "dpkg -P: configuration, state and unit links gone (the system users stay, as Debian's do)"
