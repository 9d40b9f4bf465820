#!/bin/bash
# guest/crun/build.sh - build a STATIC crun for the guest from Debian's crun
# source package (the version of the crun package installed here), into a
# cache outside the clone; print the binary's path on stdout.
#
#   guest/crun/build.sh            -> <cache>/crun/<key>/crun
#
# Why: under TCG, Debian's crun takes ~230 ms to run at all (`crun --version`
# in the guest), nearly all of it the dynamic loader binding crun's ten
# libraries (libsystemd pulls in libgcrypt, lz4, zstd, lzma, gpg-error);
# linked statically it takes ~80 ms, and the agent runs crun for every
# create, delete and exec. Same source, same Debian patches; built without
# systemd (the guest has no systemd: cgroupfs) and without CRIU (runm does
# not checkpoint), with crun's embedded yajl.
#
# The source comes through apt-get from the same Debian archive the binary
# packages come from (a deb-src twin of this host's apt sources, in a private
# list directory: the host's apt configuration is not changed).
# Cache root (guest/cache.sh, as the kernel's): $RUNM_CACHE, else
# /var/cache/runm, else ~/.cache/runm:
#   crun/<key>/{crun,key.txt}   finished binaries; key = sha256 of RECIPE,
#                               crun's source version, the static
#                               libraries' package versions and gcc's
#   crun/src/<version>/         the downloaded source package
# Builds are serialised by a lock (flock) on crun/.lock.
set -euo pipefail

RECIPE=1 # bump when this script changes what it builds

die() {
	echo "guest/crun/build.sh: $*" >&2
	exit 1
}
note() { echo "guest/crun/build.sh: $*" >&2; }

for c in gcc:gcc make:make flock:util-linux patch:patch apt-get:apt; do
	command -v "${c%%:*}" >/dev/null 2>&1 || die "${c%%:*} not found: install the Debian package ${c#*:} (make deps)"
done
MULTIARCH=$(gcc -print-multiarch)
for l in libseccomp:libseccomp-dev libcap:libcap-dev libgcrypt:libgcrypt20-dev libgpg-error:libgpg-error-dev; do
	[ -r "/usr/lib/$MULTIARCH/${l%%:*}.a" ] ||
		die "/usr/lib/$MULTIARCH/${l%%:*}.a not found: install the Debian package ${l#*:} (make deps)"
done
VERSION=$(dpkg-query -W -f='${Version}' crun 2>/dev/null || true)
[ -n "$VERSION" ] || die "the Debian package crun is not installed: its version names the source to build (make deps)"

. "$(dirname "$0")/../cache.sh"
ROOT=$(runm_cache_root crun)

KEY=$( (
	echo "recipe $RECIPE"
	echo "crun $VERSION"
	dpkg-query -W -f='${Package} ${Version}\n' libseccomp-dev libcap-dev libgcrypt20-dev libgpg-error-dev libc6-dev
	gcc --version | head -n1
) | sha256sum | cut -c1-16)
OUT=$ROOT/crun/$KEY
found() {
	note "static crun $VERSION from the cache ($OUT)"
	echo "$OUT/crun"
	exit 0
}
[ -x "$OUT/crun" ] && found
exec 9>"$ROOT/crun/.lock"
flock 9
[ -x "$OUT/crun" ] && found
start=$(date +%s)

# ---- the source package, through apt ----
SRC=$ROOT/crun/src/$VERSION
if [ ! -e "$SRC/.downloaded" ]; then
	note "downloading Debian's crun source $VERSION"
	rm -rf "$SRC"
	mkdir -p "$SRC/apt/lists/partial"
	# deb-src twins of this host's sources, one-line and deb822 forms alike.
	if [ -r /etc/apt/sources.list ]; then
		sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list >"$SRC/apt/sources.list"
	else
		: >"$SRC/apt/sources.list"
	fi
	mkdir -p "$SRC/apt/sources.list.d"
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		case "$f" in
		*.sources) sed 's/^Types:.*/Types: deb-src/' "$f" >"$SRC/apt/sources.list.d/$(basename "$f")" ;;
		*.list) sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >"$SRC/apt/sources.list.d/$(basename "$f")" ;;
		esac
	done
	APT=(-o Dir::Etc::SourceList="$SRC/apt/sources.list" -o Dir::Etc::SourceParts="$SRC/apt/sources.list.d"
		-o Dir::State::Lists="$SRC/apt/lists" -o APT::Sandbox::User=root)
	apt-get "${APT[@]}" update -qq >"$SRC/apt.log" 2>&1 || { tail -n 20 "$SRC/apt.log" >&2; die "apt-get update (deb-src) failed"; }
	(cd "$SRC" && apt-get "${APT[@]}" source --download-only -qq "crun=$VERSION") >>"$SRC/apt.log" 2>&1 ||
		{ tail -n 20 "$SRC/apt.log" >&2; die "apt-get source crun=$VERSION failed"; }
	touch "$SRC/.downloaded"
fi

# ---- unpack, Debian's patches, build ----
UPSTREAM=${VERSION%%-*}
UPSTREAM=${UPSTREAM#*:}
BUILD=$ROOT/crun/build-$KEY
rm -rf "$BUILD"
mkdir -p "$BUILD"
for t in "$SRC"/crun_"$UPSTREAM".orig.tar.?z* "$SRC"/crun_"${VERSION#*:}".debian.tar.?z*; do
	case "$t" in *.asc) continue ;; esac
	tar -xf "$t" -C "$BUILD"
done
TREE=$BUILD/crun-$UPSTREAM
[ -d "$TREE" ] || die "unexpected source layout in $SRC"
if [ -r "$BUILD/debian/patches/series" ]; then
	while read -r p _; do
		case "$p" in "" | \#*) continue ;; esac
		patch -d "$TREE" -p1 -s <"$BUILD/debian/patches/$p" || die "Debian patch $p does not apply"
	done <"$BUILD/debian/patches/series"
fi
# The release tarball's git-version.h is generated from git, absent here.
echo "#define GIT_VERSION \"debian-$VERSION\"" >"$TREE/git-version.h"
LOG=$BUILD/build.log
CC=gcc
command -v ccache >/dev/null 2>&1 && CC="ccache gcc" && export CCACHE_DIR=$ROOT/ccache
note "building static crun $VERSION (key $KEY, log $LOG)"
(
	cd "$TREE"
	./configure --disable-systemd --disable-criu --disable-dl --enable-embedded-yajl --disable-shared \
		CC="$CC" CFLAGS="-O2 -g0"
	make -C libocispec -j"$(nproc)"
	# libtool's -all-static; gcrypt (seccomp's BPF cache key) needs gpg-error.
	make -j"$(nproc)" crun LDFLAGS=-all-static LIBS=-lgpg-error
) >"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "crun build failed (log: $LOG)"; }
file_out=$(LC_ALL=C readelf -d "$TREE/crun" 2>&1 || true)
case "$file_out" in *NEEDED*) die "the built crun is not static (log: $LOG)" ;; esac
"$TREE/crun" --version >/dev/null || die "the built crun does not run"

TMP=$OUT.tmp.$$
rm -rf "$TMP"
mkdir -p "$TMP"
strip -o "$TMP/crun" "$TREE/crun"
printf 'recipe %s\ncrun %s\n%s\n' "$RECIPE" "$VERSION" "$("$TMP/crun" --version | tr '\n' ' ')" >"$TMP/key.txt"
rm -rf "$OUT"
mv "$TMP" "$OUT"
rm -rf "$BUILD"
note "built static crun $VERSION in $(($(date +%s) - start)) s ($OUT)"
echo "$OUT/crun"
