#!/bin/sh
# Install the Debian packages runm needs to build, test and run, if missing.
# Idempotent and quiet when nothing is missing.
set -e
PKGS="build-essential clang libclang-rt-14-dev protobuf-c-compiler libprotobuf-c-dev
python3-grpcio protobuf-compiler python3-protobuf
golang-github-containerd-containerd-dev qemu-system-x86 containerd crun busybox-static
linux-image-cloud-amd64 runc kmod cpio libjson-c-dev e2fsprogs python3 iproute2 util-linux
containernetworking-plugins docker.io docker-compose iptables
podman buildah podman-compose netavark aardvark-dns conmon
linux-source-6.1 ccache bc bison flex libelf-dev libssl-dev xz-utils perl passt
libseccomp-dev libcap-dev libgcrypt20-dev libgpg-error-dev patch"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "runm: missing Debian packages:$missing (run 'make deps' as root)" >&2
	exit 1
fi
echo "runm: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Daemons in these packages (dockerd, containerd) must not start on the
# host: the tests start their own, inside network namespaces they make.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	made_policy=1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null || { [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
exit 0
