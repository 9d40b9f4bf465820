#!/usr/bin/python3
"""mkimage.py - build a tiny OCI image tarball (busybox-static) for the e2e tests.

    mkimage.py OUT.tar [--ref REF] [--busybox PATH]
    mkimage.py --cache DIR [--ref REF] [--busybox PATH]   # build once, print the path

The image holds /bin/busybox (from Debian's busybox-static), a symlink for every
applet it lists (busybox --list-full, i.e. `busybox --install -s` style),
/etc/passwd and /etc/group with root and user 1000 `user`, /tmp (1777), /root and
/home/user. Written with tarfile + hashlib only; the output is deterministic
(fixed mtimes, sorted entries, gzip mtime 0), so the same busybox gives the same
digests. The OCI layout (oci-layout, index.json, blobs/sha256/...) carries both
org.opencontainers.image.ref.name and io.containerd.image.name, so
`ctr image import OUT.tar` names the image REF as is.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile

DEFAULT_REF = "docker.io/runm/busybox:test"
DEFAULT_BUSYBOX = "/bin/busybox"
MTIME = 1700000000  # fixed, for reproducible digests

# Applets the tests rely on; checked against the busybox binary so a missing one
# is a clear error here rather than a puzzling "not found" inside a container.
REQUIRED = ["sh", "echo", "cat", "sleep", "true", "false", "id", "pwd", "env", "uname",
            "ls", "tty", "stty", "httpd", "wget", "nc", "ip", "ifconfig", "ps", "kill", "head", "dd",
            "sha256sum", "md5sum", "seq"]

PASSWD = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n" \
         "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"


def oci_arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


def applets(busybox):
    """Paths (relative, e.g. 'bin/sh', 'usr/bin/wget') of every applet."""
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True,
                         text=True).stdout
    paths = sorted({p.strip().lstrip("/") for p in out.splitlines() if p.strip()})
    names = {os.path.basename(p) for p in paths}
    missing = [a for a in REQUIRED if a not in names]
    if missing:
        raise SystemExit("mkimage: %s lacks applets: %s" % (busybox, " ".join(missing)))
    return [p for p in paths if p != "bin/busybox"]


def layer_tar(busybox):
    """The uncompressed layer tar as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, type_=tarfile.DIRTYPE, mode=0o755, data=None, link=None):
            ti = tarfile.TarInfo(name)
            ti.type = type_
            ti.mode = mode
            ti.mtime = MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            if link is not None:
                ti.linkname = link
            if data is not None:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)

        dirs = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home",
                "home/user", "dev", "proc", "sys", "run", "var", "var/tmp"]
        paths = applets(busybox)
        for p in paths:
            d = os.path.dirname(p)
            while d and d not in dirs:
                dirs.append(d)
                d = os.path.dirname(d)
        for d in sorted(set(dirs)):
            add(d, mode=0o700 if d == "root" else 0o755)
        add("tmp", mode=0o1777)
        with open(busybox, "rb") as f:
            add("bin/busybox", tarfile.REGTYPE, 0o755, f.read())
        for p in paths:
            add(p, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, PASSWD.encode())
        add("etc/group", tarfile.REGTYPE, 0o644, GROUP.encode())
        add("etc/hostname", tarfile.REGTYPE, 0o644, b"runm\n")
        add("etc/hosts", tarfile.REGTYPE, 0o644, b"127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    return buf.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(out, ref=DEFAULT_REF, busybox=DEFAULT_BUSYBOX, entrypoint=None):
    """Write the image tarball to out. entrypoint: the image's Entrypoint (a
    list), or None for none (then Cmd ["sh"])."""
    layer = layer_tar(busybox)
    gzbuf = io.BytesIO()
    with gzip.GzipFile(fileobj=gzbuf, mode="wb", mtime=0, filename="") as gz:
        gz.write(layer)
    layer_gz = gzbuf.getvalue()
    arch = oci_arch()
    config = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "tests/tools/mkimage.py"}],
    }
    if entrypoint is not None:
        config["config"]["Entrypoint"] = list(entrypoint)
        config["config"]["Cmd"] = []
    config_b = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config_b), "size": len(config_b)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(layer_gz), "size": len(layer_gz)}],
    }
    manifest_b = json.dumps(manifest, sort_keys=True).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(manifest_b), "size": len(manifest_b),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": ref,
                            "io.containerd.image.name": ref},
        }],
    }
    index_b = json.dumps(index, sort_keys=True).encode()
    layout_b = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()

    d = os.path.dirname(os.path.abspath(out))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".mkimage-", suffix=".tar")
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w",
                                                    format=tarfile.PAX_FORMAT) as tar:
            def put(name, data, type_=tarfile.REGTYPE):
                ti = tarfile.TarInfo(name)
                ti.type = type_
                ti.mtime = MTIME
                ti.mode = 0o755 if type_ == tarfile.DIRTYPE else 0o644
                if type_ == tarfile.REGTYPE:
                    ti.size = len(data)
                    tar.addfile(ti, io.BytesIO(data))
                else:
                    tar.addfile(ti)
            put("blobs", None, tarfile.DIRTYPE)
            put("blobs/sha256", None, tarfile.DIRTYPE)
            for blob in (layer_gz, config_b, manifest_b):
                put("blobs/sha256/" + sha(blob)[7:], blob)
            put("oci-layout", layout_b)
            put("index.json", index_b)
        os.chmod(tmp, 0o644)
        os.rename(tmp, out)  # atomic: concurrent builders never see a partial file
    except BaseException:
        os.unlink(tmp)
        raise
    return out


def cached(cache_dir, ref=DEFAULT_REF, busybox=DEFAULT_BUSYBOX, entrypoint=None):
    """Path of the image tarball in cache_dir, built if missing. The name carries
    a hash of busybox, this script, the ref and the entrypoint, so any change rebuilds."""
    h = hashlib.sha256()
    with open(busybox, "rb") as f:
        h.update(f.read())
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    h.update(ref.encode())
    if entrypoint is not None:
        h.update(json.dumps(list(entrypoint)).encode())
    out = os.path.join(cache_dir, "busybox-%s.tar" % h.hexdigest()[:16])
    if not os.path.exists(out):
        build(out, ref, busybox, entrypoint)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", help="output tarball")
    ap.add_argument("--cache", metavar="DIR", help="build once into DIR, print the path")
    ap.add_argument("--ref", default=DEFAULT_REF)
    ap.add_argument("--busybox", default=DEFAULT_BUSYBOX)
    a = ap.parse_args()
    if bool(a.out) == bool(a.cache):
        ap.error("give exactly one of OUT or --cache DIR")
    print(cached(a.cache, a.ref, a.busybox) if a.cache else build(a.out, a.ref, a.busybox))


if __name__ == "__main__":
    sys.exit(main())
