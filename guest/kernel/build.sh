#!/bin/bash
# guest/kernel/build.sh - build runm's guest kernel from Debian's linux-source-6.1
# with the config fragment beside this script, into a cache OUTSIDE the clone;
# print the path of the bootable kernel on stdout.
#
#   guest/kernel/build.sh --arch x86_64     -> .../kernel/<key>/vmlinux
#   guest/kernel/build.sh --arch aarch64    -> .../kernel/<key>/Image
#
# Cache root: $RUNM_CACHE, else /var/cache/runm if it can be written, else
# ${XDG_CACHE_HOME:-~/.cache}/runm:
#   kernel/<key>/{vmlinux|Image,config,kernel-release,key.txt}
#                        finished kernels; key = sha256 of this recipe's
#                        version, the arch, the fragment, the linux-source
#                        package version and `gcc --version`: a second clone
#                        or CI run with the same key builds nothing
#   kernel/src/<version>/ the extracted /usr/src/linux-source-6.1.tar.xz
#   kernel/obj/<arch>-<version>/  the object tree (O=): a config change only
#                        recompiles the files that use the changed options
#   ccache/              CCACHE_DIR, for a lost or fresh object tree
# Builds are serialised by a lock (flock) on kernel/.lock.
#
# The config: `make tinyconfig` (ARCH=x86_64 or arm64), the fragment merged on
# top, `make olddefconfig`; every option the fragment sets must survive.
set -euo pipefail

RECIPE=1 # bump when this script changes what it builds

die() {
	echo "guest/kernel/build.sh: $*" >&2
	exit 1
}
note() { echo "guest/kernel/build.sh: $*" >&2; }

ARCH=
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) ARCH=$2; shift 2 ;;
	*) echo "usage: $0 --arch x86_64|aarch64" >&2; exit 2 ;;
	esac
done
HERE=$(cd "$(dirname "$0")" && pwd)

SRCPKG=linux-source-6.1
TARBALL=/usr/src/$SRCPKG.tar.xz
case "$ARCH" in
x86_64) KARCH=x86_64 FRAG=$HERE/x86_64.config TARGET=vmlinux IMAGE=vmlinux CROSS= ;;
aarch64)
	# Untested: written on an x86_64 host without an arm64 one to boot it on.
	KARCH=arm64 FRAG=$HERE/arm64.config TARGET=Image IMAGE=arch/arm64/boot/Image CROSS=
	[ "$(uname -m)" = aarch64 ] || CROSS=aarch64-linux-gnu-
	;;
*) die "unsupported --arch $ARCH (x86_64 or aarch64)" ;;
esac
[ -r "$FRAG" ] || die "$FRAG missing"
GCC=${CROSS}gcc
for c in "$GCC":gcc make:make flex:flex bison:bison bc:bc perl:perl xz:xz-utils flock:util-linux patch:patch \
	ccache:ccache; do
	command -v "${c%%:*}" >/dev/null 2>&1 || die "${c%%:*} not found: install the Debian package ${c#*:} (make deps)"
done
[ -r /usr/include/libelf.h ] || die "libelf.h not found: install the Debian package libelf-dev (make deps)"
[ -r /usr/include/openssl/ssl.h ] || die "openssl headers not found: install libssl-dev (make deps)"
VERSION=$(dpkg-query -W -f='${Version}' "$SRCPKG" 2>/dev/null || true)
[ -n "$VERSION" ] && [ -r "$TARBALL" ] || die "$TARBALL missing: install the Debian package $SRCPKG (make deps)"

# ---- the cache root ----
. "$HERE/../cache.sh"
ROOT=$(runm_cache_root kernel)

# runm's patches on Debian's source (guest/kernel/patches/*.patch, applied
# in name order with patch -p1), part of the key like the config.
PATCHES=$(find "$HERE/patches" -maxdepth 1 -name '*.patch' 2>/dev/null | sort)
PATCHSUM=none
[ -z "$PATCHES" ] || PATCHSUM=$(cat $PATCHES | sha256sum | cut -c1-16)
KEY=$( (
	echo "recipe $RECIPE arch $ARCH"
	echo "$SRCPKG $VERSION"
	"$GCC" --version | head -n1
	cat "$FRAG"
	[ "$PATCHSUM" = none ] || echo "patches $PATCHSUM"
) | sha256sum | cut -c1-16)
OUT=$ROOT/kernel/$KEY
if [ -s "$OUT/$(basename "$IMAGE")" ]; then
	note "kernel $(cat "$OUT/kernel-release") from the cache ($OUT)"
	echo "$OUT/$(basename "$IMAGE")"
	exit 0
fi

exec 9>"$ROOT/kernel/.lock"
flock 9
# Another build may have produced it while we waited.
if [ -s "$OUT/$(basename "$IMAGE")" ]; then
	note "kernel $(cat "$OUT/kernel-release") from the cache ($OUT)"
	echo "$OUT/$(basename "$IMAGE")"
	exit 0
fi
start=$(date +%s)

SRC=$ROOT/kernel/src/$VERSION
# The tree says which patches it carries (.patches): another set means a
# fresh extraction. tar keeps the archive's mtimes, so the object tree then
# recompiles only what the patches touch.
if [ ! -e "$SRC/.extracted" ] || [ "$(cat "$SRC/.patches" 2>/dev/null || echo none)" != "$PATCHSUM" ]; then
	note "extracting $TARBALL ($SRCPKG $VERSION, patches: $PATCHSUM)"
	rm -rf "$SRC"
	mkdir -p "$SRC"
	tar -xf "$TARBALL" -C "$SRC" --strip-components=1
	for p in $PATCHES; do
		patch -d "$SRC" -p1 -s --no-backup-if-mismatch <"$p" || die "$(basename "$p") does not apply to $SRCPKG $VERSION"
	done
	echo "$PATCHSUM" >"$SRC/.patches"
	touch "$SRC/.extracted"
fi
OBJ=$ROOT/kernel/obj/$ARCH-$VERSION
mkdir -p "$OBJ"

export CCACHE_DIR=$ROOT/ccache CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-3G}
# Fixed build identity: the same sources give the same objects (ccache hits)
# and the same kernel, whoever builds it and when.
export KBUILD_BUILD_TIMESTAMP="$(date -u -R -r "$TARBALL")" KBUILD_BUILD_USER=runm KBUILD_BUILD_HOST=runm
MK=(make -s -C "$SRC" O="$OBJ" ARCH="$KARCH" CROSS_COMPILE="$CROSS" CC="ccache ${GCC}" HOSTCC="ccache gcc"
	-j"$(nproc)")
LOG=$OBJ/build.log
: >"$LOG"
run() { "$@" >>"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; die "failed: $* (log: $LOG)"; }; }

note "building $SRCPKG $VERSION for $ARCH (key $KEY, $(nproc) jobs, log $LOG)"
run "${MK[@]}" tinyconfig
run env -C "$OBJ" "$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" "$OBJ/.config" "$FRAG"
run "${MK[@]}" olddefconfig
# Every option the fragment sets must have survived olddefconfig (an unmet
# dependency silently drops it).
bad=
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) grep -qxF "$line" "$OBJ/.config" || bad="$bad ${line}" ;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }
		opt=${opt%% *}
		! grep -q "^$opt=" "$OBJ/.config" || bad="$bad $opt=n" ;;
	esac
done <"$FRAG"
[ -z "$bad" ] || die "options from $(basename "$FRAG") lost in olddefconfig (unmet dependencies?):$bad"
run "${MK[@]}" "$TARGET"
REL=$("${MK[@]}" kernelrelease 2>/dev/null)

TMP=$OUT.tmp.$$
rm -rf "$TMP"
mkdir -p "$TMP"
cp "$OBJ/$IMAGE" "$TMP/"
cp "$OBJ/.config" "$TMP/config"
echo "$REL" >"$TMP/kernel-release"
printf 'recipe %s\narch %s\n%s %s\n%s\nfragment sha256 %s\npatches %s\n' "$RECIPE" "$ARCH" "$SRCPKG" "$VERSION" \
	"$("$GCC" --version | head -n1)" "$(sha256sum <"$FRAG" | cut -d' ' -f1)" "$PATCHSUM" >"$TMP/key.txt"
rm -rf "$OUT"
mv "$TMP" "$OUT"
note "built kernel $REL in $(($(date +%s) - start)) s ($OUT; ccache: $(ccache -s 2>/dev/null | sed -n 's/^ *Hits: *\([0-9]* \/ *[0-9]*\).*/\1/p' | head -n1) hits)"
echo "$OUT/$(basename "$IMAGE")"
