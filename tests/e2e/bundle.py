"""bundle.py - OCI bundles for the runm CLI tests, built from busybox-static.

    with Bundle(args=["echo", "hi"], env=["A=B"]) as b:
        runm("run", "--bundle", b.path, "id")

Also `runm(...)`: the CLI with a private --root, and `cli_leaks()`.
"""
import json
import os
import shutil
import subprocess
import tempfile

from lib import BIN, BUILD, run, test, wait_for

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "cat", "echo", "uname", "id", "pwd", "env", "sleep", "true", "false", "ls", "head",
           "wc", "sha256sum", "touch", "mkdir", "rm", "stat", "tty", "stty", "ps", "kill", "dd",
           "httpd", "wget", "nc", "ip", "ifconfig"]
# Per test process: test files running side by side must not clean up each other's containers.
ROOT = os.environ.get("RUNM_TEST_ROOT") or os.path.join(tempfile.gettempdir(), "runm-test-root-%d" % os.getpid())
RUNM_BIN = os.path.join(BIN, "runm")


def config(args, env=None, cwd="/", uid=0, gid=0, terminal=False, mounts=(), readonly=False):
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": uid, "gid": gid},
            "args": list(args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + list(env or []),
            "cwd": cwd,
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": readonly},
        "hostname": "runm",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
        ] + list(mounts),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys"],
            "readonlyPaths": ["/proc/sys"],
        },
    }


class Bundle:
    """A temp dir with rootfs/ (busybox-static and its applets) and config.json."""

    def __init__(self, args=("true",), **kw):
        self.path = tempfile.mkdtemp(prefix="runm-bundle-")
        rootfs = os.path.join(self.path, "rootfs")
        for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "root"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        shutil.copy(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
        for a in APPLETS:
            os.symlink("busybox", os.path.join(rootfs, "bin", a))
        with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n")
        with open(os.path.join(rootfs, "etc", "group"), "w") as f:
            f.write("root:x:0:\nuser:x:1000:\n")
        self.write(config(args, **kw))

    def read(self):
        """config.json as it is now, to change and write() back."""
        with open(os.path.join(self.path, "config.json")) as f:
            return json.load(f)

    def write(self, cfg):
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def runm(*args, input=None, timeout=120, check=True, **kw):
    """Run the runm CLI with the tests' --root."""
    return run([RUNM_BIN, "--root", ROOT] + list(args), input=input, timeout=timeout, check=check, **kw)


def runm_popen(*args, **kw):
    return subprocess.Popen([RUNM_BIN, "--root", ROOT] + list(args), **kw)


def _qemus_of_root():
    res = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        exe = cmd.split(" ", 1)[0]
        # passt beside each VMM: its log is in the container's dir under ROOT
        if ("qemu-system" in exe or "passt" in exe) and ROOT in cmd:
            res.append("VMM pid %s left: %s" % (d, cmd[:200]))
    return res


def cli_leaks():
    """Leftovers of the CLI tests: VMMs under ROOT, container dirs, mounts."""
    res = _qemus_of_root()
    if os.path.isdir(ROOT):
        res += ["container dir left: %s/%s" % (ROOT, e) for e in os.listdir(ROOT)]
    with open("/proc/self/mountinfo") as f:
        res += ["mount left: " + l.split()[4] for l in f if ROOT in l.split()[4]]
    return res


def cli_cleanup():
    """Force-delete whatever a failed test left under ROOT."""
    if os.path.isdir(ROOT):
        for e in os.listdir(ROOT):
            runm("delete", "--force", e, check=False, timeout=30)
        shutil.rmtree(ROOT, ignore_errors=True)


def guest_kernel():
    with open(os.path.join(BUILD, "guest", "x86_64", "kernel-release")) as f:
        return f.read().strip()


def cli_test(fn):
    """Register a CLI test: it fails on leftovers, and cleans them up either way."""
    def wrapper():
        try:
            fn()
            wait_for(lambda: not cli_leaks(), 10, "no leftovers: %s" % cli_leaks())
        finally:
            cli_cleanup()
    wrapper.__name__ = fn.__name__
    return test(wrapper, timeout=300)
