#!/bin/bash
# guest/build.sh - build runm's guest image (kernel + initramfs) from Debian
# packages, at build time, into --out. Nothing here is committed.
#
#   guest/build.sh --arch x86_64 --agent build/bin/runm-agent --out build/guest/x86_64 [--kernel source|debian]
#
# Outputs:
#   vmlinuz           the kernel QEMU boots. On x86_64 this is the UNCOMPRESSED
#                     ELF vmlinux (PVH entry point), not a bzImage: under TCG
#                     in-guest decompression is slow, and even against an LZ4
#                     bzImage the PVH ELF boots 14% faster.
#   initrd.img        /init = the agent, /usr/bin/crun (+ its libraries); with
#                     --kernel debian also the kernel modules and
#                     /etc/runm/modules (load order).
#   floor-initrd.img  /init powers off at once: the boot floor for benchmarks.
#   kernel-release    the kernel's `uname -r`, for information.
#
# Kernels (--kernel, or $GUEST_KERNEL):
#   source (default)  built from Debian's linux-source-6.1 with the config in
#                     guest/kernel/ARCH.config, everything built in, no modules
#                     (guest/kernel/build.sh; cached outside the clone, under
#                     $RUNM_CACHE or /var/cache/runm, keyed by config, source
#                     version and compiler: a matching key builds nothing).
#   debian            Debian's packaged kernel (linux-image-amd64), its virtio,
#                     9p, overlay and vsock modules in the initramfs: the
#                     fallback, slower to boot (2.5 s against 1.1 s for `runm
#                     run true` under TCG) and twice the memory.
#
# crun (--crun, or $GUEST_CRUN):
#   auto (default)    static, or Debian's if the static build fails (a
#                     warning says so)
#   static            built statically from Debian's crun source package by
#                     guest/crun/build.sh (cached like the kernel): starts in
#                     ~80 ms under TCG against ~230 ms for the dynamic one
#   debian            Debian's packaged /usr/bin/crun and its ten libraries
#
# Debian flavour: Debian's `cloud-amd64` kernel has no 9p at all
# (# CONFIG_NET_9P is not set), and runm shares rootfs and binds over
# virtio-9p, so x86_64 uses the generic `amd64` flavour (9p, 9pnet_virtio as
# modules). Override with RUNM_GUEST_FLAVOUR (the build fails if a needed
# module is then missing).
#
# Cache for --kernel debian (default: build/guest-cache/ARCH, or --cache DIR):
# the downloaded .deb, its extraction, the depmod output and the extracted
# vmlinux. A second run only rebuilds the two initramfs images (about a second).
set -euo pipefail

die() {
	echo "guest/build.sh: $*" >&2
	exit 1
}
need() { # need COMMAND DEBIAN_PACKAGE
	command -v "$1" >/dev/null 2>&1 || die "$1 not found: install the Debian package $2"
}

usage() {
	echo "usage: $0 --arch x86_64|aarch64 --agent STATIC_AGENT --out DIR [--kernel source|debian] [--cache DIR] [--compress none|gzip|lz4]" >&2
	exit 2
}

ARCH=
AGENT=
OUT=
CACHE=
KSOURCE=${GUEST_KERNEL:-source}
CRUN_FROM=${GUEST_CRUN:-auto}
# Measured on the TCG test machine (see the end of this file): an uncompressed
# initramfs boots fastest; gzip/lz4 only save disk.
COMPRESS=${RUNM_GUEST_COMPRESS:-none}
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) ARCH=$2; shift 2 ;;
	--agent) AGENT=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--cache) CACHE=$2; shift 2 ;;
	--kernel) KSOURCE=$2; shift 2 ;;
	--crun) CRUN_FROM=$2; shift 2 ;;
	--compress) COMPRESS=$2; shift 2 ;;
	-h | --help) usage ;;
	*) usage ;;
	esac
done
[ -n "$ARCH" ] && [ -n "$AGENT" ] && [ -n "$OUT" ] || usage
[ -f "$AGENT" ] || die "agent \`$AGENT\` not found: run \`make\` first"
case "$COMPRESS" in none | gzip | lz4) ;; *) die "--compress: none, gzip or lz4" ;; esac
case "$KSOURCE" in source | debian) ;; *) die "--kernel (GUEST_KERNEL): source or debian, not \`$KSOURCE\`" ;; esac
case "$CRUN_FROM" in auto | static | debian) ;; *) die "--crun (GUEST_CRUN): auto, static or debian, not \`$CRUN_FROM\`" ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: "${CACHE:=$(dirname "$(dirname "$OUT")")/guest-cache/$ARCH}"
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

need cpio cpio
if [ "$KSOURCE" = debian ]; then
	for c in apt-get:apt dpkg-deb:dpkg depmod:kmod modprobe:kmod readelf:binutils; do
		need "${c%%:*}" "${c#*:}"
	done
fi

# Modules the guest needs; their dependencies are added by modprobe in load
# order. Only modules (=m) are listed: built-ins are reported as "builtin" by
# modprobe and skipped.
case "$ARCH" in
x86_64)
	DEB_ARCH=amd64
	FLAVOUR=${RUNM_GUEST_FLAVOUR:-amd64}
	# -M microvm has virtio-mmio only (no PCI bus): no virtio_pci.
	MODULES="virtio_mmio virtio_console virtio_balloon 9p 9pnet_virtio virtio_net overlay vsock vmw_vsock_virtio_transport"
	GCC=gcc
	;;
aarch64)
	# Written but NOT booted on the x86_64 TCG test machine (no arm64 host, no
	# arm64 apt lists). -M virt puts virtio on PCI (virtio-*-pci), hence
	# virtio_pci. Cross-building needs `dpkg --add-architecture arm64 &&
	# apt-get update` for the kernel, and gcc-aarch64-linux-gnu for floor-init;
	# crun and its libraries are only taken from a native arm64 host.
	DEB_ARCH=arm64
	FLAVOUR=${RUNM_GUEST_FLAVOUR:-arm64}
	MODULES="virtio_pci virtio_mmio virtio_console 9p 9pnet_virtio virtio_net overlay vsock vmw_vsock_virtio_transport"
	GCC=gcc
	[ "$(uname -m)" = aarch64 ] || GCC=aarch64-linux-gnu-gcc
	;;
*) die "unsupported --arch $ARCH (x86_64 or aarch64)" ;;
esac
NATIVE=0
[ "$(uname -m)" = "$ARCH" ] && NATIVE=1

# ---- the kernel ----
if [ "$KSOURCE" = source ]; then
	# Built (or found in the cache) by guest/kernel/build.sh; it says which.
	KERNEL=$("$HERE/kernel/build.sh" --arch "$ARCH")
	KREL=$(cat "$(dirname "$KERNEL")/kernel-release")
	FLAVOUR="linux-source, $(basename "$(dirname "$KERNEL")")"
	MODULES=
else
# ---- kernel package: download + extract once ----
META=linux-image-$FLAVOUR
# The meta package depends on the concrete one (linux-image-6.1.0-56-amd64).
kernel_pkg() {
	apt-cache depends "$META" 2>/dev/null | sed -n "s/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p" | head -n1 || true
}
PKG=$(kernel_pkg)
if [ -z "$PKG" ] && [ "$(id -u)" = 0 ] && [ ! -e "$CACHE/.apt-updated" ]; then
	apt-get update -qq >&2 || true # empty package lists on a fresh machine
	touch "$CACHE/.apt-updated"
	PKG=$(kernel_pkg)
fi
[ "$DEB_ARCH" = "$(dpkg --print-architecture)" ] || PKG=${PKG:+$PKG:$DEB_ARCH}
KROOT=
if [ -n "$PKG" ]; then
	KROOT=$CACHE/${PKG%%:*}
	if [ ! -e "$KROOT/.extracted" ]; then
		DEB=$(ls "$CACHE"/"${PKG%%:*}"_*.deb 2>/dev/null | head -n1 || true)
		if [ -z "$DEB" ]; then
			echo "guest/build.sh: downloading $PKG" >&2
			# apt drops privileges to _apt for downloads into a directory it
			# cannot write; its warning about that is harmless.
			(cd "$CACHE" && apt-get download -q "$PKG" 2>&1 | grep -v "unsandboxed" >&2) || true
			DEB=$(ls "$CACHE"/"${PKG%%:*}"_*.deb 2>/dev/null | head -n1 || true)
			if [ -z "$DEB" ] && [ "$(id -u)" = 0 ]; then
				# Stale or empty package lists (a fresh machine): refresh once.
				apt-get update -qq >&2 || true
				(cd "$CACHE" && apt-get download -q "$PKG" 2>&1 | grep -v "unsandboxed" >&2) || true
				DEB=$(ls "$CACHE"/"${PKG%%:*}"_*.deb 2>/dev/null | head -n1 || true)
			fi
		fi
		if [ -n "$DEB" ]; then
			rm -rf "$KROOT"
			mkdir -p "$KROOT/root"
			dpkg-deb -x "$DEB" "$KROOT/root"
			touch "$KROOT/.extracted"
		else
			echo "guest/build.sh: cannot download $PKG; falling back to the host's /boot and /lib/modules" >&2
			KROOT=
		fi
	fi
fi
if [ -n "$KROOT" ]; then
	KREL=$(ls "$KROOT/root/lib/modules" | head -n1)
	VMLINUZ=$KROOT/root/boot/vmlinuz-$KREL
	MODROOT=$KROOT/root
	WORK=$KROOT
else
	# Fallback: the host's own kernel, when it is of the guest's architecture.
	[ "$NATIVE" = 1 ] || die "cannot download $META for $ARCH: run \`apt-get update\` (and \`dpkg --add-architecture $DEB_ARCH\`)"
	KREL=$(uname -r)
	VMLINUZ=/boot/vmlinuz-$KREL
	[ -r "$VMLINUZ" ] || die "no kernel: install the Debian package $META"
	MODROOT=/
	WORK=$CACHE/host-$KREL
	mkdir -p "$WORK"
fi
[ -r "$VMLINUZ" ] || die "kernel $VMLINUZ missing: install the Debian package $META"
KMODDIR=$MODROOT/lib/modules/$KREL
[ -d "$KMODDIR" ] || die "$KMODDIR missing: install the Debian package $META"

# The .deb ships no modules.dep (its postinst runs depmod): run it once.
if [ "$MODROOT" != / ] && [ ! -e "$KMODDIR/modules.dep" ]; then
	depmod -b "$MODROOT" "$KREL"
fi

# ---- the bootable kernel ----
# x86_64: extract the vmlinux ELF from the bzImage (extract-vmlinux style: find
# the compressed payload by its magic) and boot it through its PVH note.
extract_vmlinux() { # SRC DST
	local src=$1 dst=$2 tmp=$2.tmp magic off tool
	for magic in 'xz:\xfd\x37\x7a\x58\x5a\x00:xz -dc --single-stream' 'lz4:\x02\x21\x4c\x18:lz4 -dc' \
		'zstd:\x28\xb5\x2f\xfd:zstd -dc' 'gzip:\x1f\x8b\x08:gzip -dc'; do
		IFS=: read -r _ m tool <<<"$magic"
		off=$(LC_ALL=C grep -obUaP "$m" "$src" 2>/dev/null | head -n1 | cut -d: -f1 || true)
		[ -n "$off" ] || continue
		command -v "${tool%% *}" >/dev/null || continue
		tail -c +$((off + 1)) "$src" | $tool >"$tmp" 2>/dev/null || true
		if [ -s "$tmp" ] && readelf -h "$tmp" >/dev/null 2>&1; then
			mv "$tmp" "$dst"
			return 0
		fi
	done
	rm -f "$tmp"
	return 1
}
if [ "$ARCH" = x86_64 ]; then
	if [ ! -s "$WORK/vmlinux" ]; then
		if ! extract_vmlinux "$VMLINUZ" "$WORK/vmlinux"; then
			echo "guest/build.sh: cannot extract vmlinux (install xz-utils); using the bzImage (slower boot)" >&2
			cp "$VMLINUZ" "$WORK/vmlinux"
		fi
	fi
	# XEN_ELFNOTE_PHYS32_ENTRY (type 18) is what QEMU needs to boot an ELF
	# kernel directly; without it the ELF is useless: fall back to bzImage.
	if readelf -h "$WORK/vmlinux" >/dev/null 2>&1 && ! readelf -n "$WORK/vmlinux" | grep -q 'Unknown note type: (0x00000012)'; then
		echo "guest/build.sh: vmlinux has no PVH entry; using the bzImage" >&2
		cp "$VMLINUZ" "$WORK/vmlinux"
	fi
	KERNEL=$WORK/vmlinux
else
	# arm64 vmlinuz is a gzip'd Image, which QEMU's -kernel loads directly.
	KERNEL=$VMLINUZ
fi
fi

# ---- staging helpers ----
STAGE=$(mktemp -d "$OUT/.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

write_cpio() { # DIR OUTPUT
	local dir=$1 out=$2
	(
		cd "$dir"
		find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet
	) >"$out.cpio"
	case "$COMPRESS" in
	none) mv "$out.cpio" "$out.tmp" ;;
	gzip) gzip -n -6 <"$out.cpio" >"$out.tmp" && rm -f "$out.cpio" ;;
	# The kernel only understands the legacy lz4 frame format (-l).
	lz4) need lz4 lz4 && lz4 -l -q -9 -f "$out.cpio" "$out.tmp" && rm -f "$out.cpio" ;;
	esac
	mv "$out.tmp" "$out"
}

# ---- floor initramfs ----
command -v "$GCC" >/dev/null || die "$GCC not found: install the Debian package ${GCC%gcc}gcc"
FLOOR=$STAGE/floor
mkdir -p "$FLOOR"
"$GCC" -static -Os -s -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables \
	-o "$FLOOR/init" "$HERE/floor-init.c"

# ---- agent initramfs ----
ROOT=$STAGE/root
mkdir -p "$ROOT"/{proc,sys,dev,run,tmp,mnt,etc/runm,usr/bin}
chmod 1777 "$ROOT/tmp"
install -m 0755 "$AGENT" "$ROOT/init"

# crun and every shared library it needs, at the paths the loader will look
# them up (ldd's paths; the dynamic loader at its absolute path).
copy_with_libs() { # BINARY
	local bin=$1 lib
	for lib in $(ldd "$bin" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p'); do
		mkdir -p "$ROOT$(dirname "$lib")"
		cp -L "$lib" "$ROOT$lib"
	done
}
if [ "$NATIVE" = 1 ]; then
	need crun crun
	CRUN=
	if [ "$CRUN_FROM" != debian ]; then
		if CRUN=$("$HERE/crun/build.sh"); then
			install -m 0755 "$CRUN" "$ROOT/usr/bin/crun"
		elif [ "$CRUN_FROM" = static ]; then
			die "no static crun (GUEST_CRUN=static); GUEST_CRUN=debian takes Debian's"
		else
			echo "guest/build.sh: WARNING: no static crun, using Debian's dynamic one (slower to start under TCG)" >&2
			CRUN=
		fi
	fi
	if [ -z "$CRUN" ]; then
		CRUN=$(dpkg -L crun 2>/dev/null | grep -m1 '/bin/crun$' || command -v crun)
		install -m 0755 "$CRUN" "$ROOT/usr/bin/crun"
		copy_with_libs "$CRUN"
	fi
else
	die "the $ARCH initramfs needs crun for $ARCH: build it on an $ARCH host"
fi

# Kernel modules, uncompressed, in load order (none with --kernel source: the
# agent then finds no /etc/runm/modules and loads nothing).
[ -z "$MODULES" ] || : >"$ROOT/etc/runm/modules"
declare -A seen=()
for m in $MODULES; do
	out=$(modprobe -d "$MODROOT" -S "$KREL" --show-depends "$m" 2>&1) ||
		die "kernel module $m missing from $KREL (flavour $FLAVOUR): install a kernel with it (e.g. the Debian package linux-image-$([ "$ARCH" = x86_64 ] && echo amd64 || echo arm64))"
	while read -r verb path _; do
		[ "$verb" = insmod ] || continue # "builtin NAME": nothing to load
		rel=${path#"$KMODDIR"/}
		[ -z "${seen[$rel]:-}" ] || continue
		seen[$rel]=1
		dst=${rel%.xz}
		dst=${dst%.zst}
		dst=${dst%.gz}
		mkdir -p "$ROOT/lib/modules/$KREL/$(dirname "$rel")"
		# The agent loads them with finit_module(2) and no decompression.
		case "$rel" in
		*.xz) xz -dc "$path" >"$ROOT/lib/modules/$KREL/$dst" ;;
		*.zst) zstd -qdc "$path" >"$ROOT/lib/modules/$KREL/$dst" ;;
		*.gz) gzip -dc "$path" >"$ROOT/lib/modules/$KREL/$dst" ;;
		*) cp "$path" "$ROOT/lib/modules/$KREL/$dst" ;;
		esac
		echo "$dst" >>"$ROOT/etc/runm/modules"
	done <<<"$out"
done

# ---- outputs ----
write_cpio "$ROOT" "$OUT/initrd.img"
write_cpio "$FLOOR" "$OUT/floor-initrd.img"
if ! cmp -s "$KERNEL" "$OUT/vmlinuz" 2>/dev/null; then
	cp "$KERNEL" "$OUT/vmlinuz.tmp"
	mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
fi
echo "$KREL" >"$OUT/kernel-release"
echo "guest/build.sh: $OUT: kernel $KREL ($FLAVOUR), initrd $(du -h "$OUT/initrd.img" | cut -f1) ($COMPRESS), $(cat "$ROOT/etc/runm/modules" 2>/dev/null | wc -l) modules, crun $(readelf -d "$ROOT/usr/bin/crun" 2>/dev/null | grep -q NEEDED && echo dynamic || echo static)" >&2
