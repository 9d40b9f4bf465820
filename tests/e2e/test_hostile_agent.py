#!/usr/bin/python3
"""test_hostile_agent.py - a hostile guest agent cannot hurt the host
(issue 14, item 3; test_hostile.py has the console and stdout floods).

A real VM (the guest kernel, QEMU) whose initramfs holds, as /init, not
runm-agent but tests/tools/hostile_agent, which opens the agent's channel
as the agent does and then misbehaves (its header says how, per mode). For
each mode `runm run` must fail within a deadline with an error that names
what the guest did, the host side's RSS stays bounded while it tries, and
nothing is left afterwards (no VMM, no container dir, no mount: cli_test's
and lib.assert_no_leaks' checks). Three modes go through containerd and the
shim too, one of them (mute: Ping answered, then nothing) only there, as it
costs Create's whole deadline. The RSS figures are printed (`# rss ...`)."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (BUILD, RUNM, assert_no_leaks, import_busybox, log, proc_mem_kib, shim_pid,  # noqa: E402
                 test, vmm_pid)
from bundle import ROOT, Bundle, cli_test, runm_popen  # noqa: E402

HOSTILE = os.path.join(BUILD, "tests", "tools", "hostile_agent")
KERNEL = os.path.join(BUILD, "guest", "x86_64", "vmlinuz")
FAIL_WITHIN = 150  # seconds to give up on a hostile guest (Create's 120 s deadline, a boot under a loaded TCG)
# Peak RSS allowed: the host side (runm, the shim) normally stays under
# 10 MiB; a host that believed a 64 MiB frame header, or kept what a flood
# sends, would pass this at once. QEMU: its guest's 256 MiB, plus its own.
HOST_RSS_MAX_KIB = 32 * 1024
QEMU_RSS_MAX_KIB = 512 * 1024
# What the host must say about each mode (the error's own words).
EXPECT = {
    "garbage": "garbage instead of the agent's hello on the channel",
    "oversized": "the peer sent a frame of 67108864 bytes on stream 1, over the 4 MiB limit",
    "wrong-id": "the peer answered on stream 1001, which was never asked",
    "silent": "the agent did not answer Ping within 10 s",
    "flood": "the peer sent over 16 MiB of data for streams not open for it",
    # Through the shim only (the same engine_create as the CLI's): Create's deadline, 120 s.
    "mute": "agent Create: ttrpc: deadline exceeded: no answer within 120 s",
}
CLI_MODES = ("garbage", "oversized", "wrong-id", "silent", "flood")

_TMP = tempfile.mkdtemp(prefix="runm-hostile-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def _cpio_entry(name, mode, data=b"", rdev=(0, 0)):
    """One cpio "newc" member (the format the kernel unpacks as initramfs)."""
    fields = [0, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
    hdr += b"\0" * (-len(hdr) % 4)
    return hdr + data + b"\0" * (-len(data) % 4)


def hostile_initrd(mode):
    """An initramfs: /init = the hostile agent, /hostile-mode = mode, and the
    mount points it needs; written once per mode into the test's temp dir."""
    path = os.path.join(_TMP, "hostile-%s.img" % mode)
    if not os.path.exists(path):
        with open(HOSTILE, "rb") as f:
            init = f.read()
        out = b"".join([
            _cpio_entry("dev", 0o040755), _cpio_entry("dev/console", 0o020600, rdev=(5, 1)),
            _cpio_entry("sys", 0o040755), _cpio_entry("proc", 0o040755),
            _cpio_entry("init", 0o100755, init), _cpio_entry("hostile-mode", 0o100644, mode.encode() + b"\n"),
            _cpio_entry("TRAILER!!!", 0)])
        with open(path + ".tmp", "wb") as f:
            f.write(out)
        os.rename(path + ".tmp", path)
    return path


def hostile_env(mode):
    # No warm start: no template of a hostile guest, every run a cold boot.
    return {"RUNM_KERNEL": KERNEL, "RUNM_INITRD": hostile_initrd(mode), "RUNM_WARM_START": "0"}


def rss_kib(pid):
    try:
        return proc_mem_kib(pid)["Rss"]
    except (OSError, KeyError):
        return None


class RssWatch:
    """Peak RSS (KiB) and sample count of each pid named, sampled while a
    hostile run lasts: a measurement, not a synchronisation."""

    def __init__(self):
        self.peak, self.n = {}, {}

    def sample(self, name, pid):
        v = rss_kib(pid) if pid else None
        if v is not None:
            self.peak[name] = max(self.peak.get(name, 0), v)
            self.n[name] = self.n.get(name, 0) + 1

    def report(self, what):
        log("rss during %s: " % what + ", ".join("%s peak %d KiB (%d samples)" % (n, self.peak[n], self.n[n])
                                                 for n in sorted(self.peak)))

    def check(self, name, limit):
        assert name in self.peak, "no RSS sample of %s" % name
        assert self.peak[name] < limit, (name, self.peak[name], limit)


def vmm_of(cid):
    """The pid of the VMM of CLI container cid (its command line names the
    container's dir: the state.json that names it comes only once the agent
    answered, which a hostile one never does)."""
    mark = os.path.join(ROOT, cid) + "/"
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmd.split("\0", 1)[0] and mark in cmd:
            return int(d)
    return None


def cli_run_fails(mode):
    """`runm run` on a guest whose agent is hostile in this way: it fails
    within FAIL_WITHIN s, naming the problem; the monitor (runm itself) and
    QEMU keep a bounded RSS meanwhile."""
    cid = "hostile-" + mode
    watch = RssWatch()
    with Bundle(["true"]) as b, open(os.path.join(_TMP, cid + ".err"), "w+") as err:
        t0 = time.monotonic()
        p = runm_popen("run", "--bundle", b.path, cid, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=err, env=dict(os.environ, **hostile_env(mode)))
        try:
            vmm = None
            while p.poll() is None and time.monotonic() - t0 < FAIL_WITHIN:
                if os.readlink("/proc/%d/exe" % p.pid).endswith("/runm"):  # exec'd (not python's fork)
                    watch.sample("runm", p.pid)
                vmm = vmm or vmm_of(cid)
                watch.sample("qemu", vmm)
                time.sleep(0.05)
            took = time.monotonic() - t0
            assert p.poll() is not None, "runm run still running after %d s on a %s guest" % (FAIL_WITHIN, mode)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        err.seek(0)
        msg = err.read()
    log("%s: runm run exited %d after %.1f s: %s" % (mode, p.returncode, took,
                                                     msg.strip().replace("\n", " | ")[-400:]))
    watch.report("a %s agent (CLI)" % mode)
    assert p.returncode != 0, (p.returncode, msg)
    assert EXPECT[mode] in msg, msg
    watch.check("runm", HOST_RSS_MAX_KIB)
    if mode in ("silent", "flood"):  # (the others end before QEMU is sure to be seen)
        watch.check("qemu", QEMU_RSS_MAX_KIB)


for _mode in CLI_MODES:
    def _t(mode=_mode):
        cli_run_fails(mode)
    _t.__name__ = "cli_run_fails_on_a_%s_agent" % _mode.replace("-", "_")
    cli_test(_t)


def shim_create_fails(cd, mode):
    """The same through containerd: the shim's task create fails with the
    reason, ctr says it, the shim's RSS stays bounded meanwhile, and nothing
    of the container is left (shim, VM, bundle, state dir, mounts)."""
    img = import_busybox(cd)
    watch = RssWatch()
    out = open(os.path.join(cd.tmp, "ctr.out"), "w+")
    t0 = time.monotonic()
    p = subprocess.Popen(["ctr", "--address", cd.address, "--namespace", cd.namespace, "run", "--rm",
                          "--runtime", RUNM, img, "hfl", "true"], stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, env=cd.env())
    try:
        while p.poll() is None and time.monotonic() - t0 < FAIL_WITHIN:
            for name, get in (("shim", shim_pid), ("qemu", vmm_pid)):
                try:
                    watch.sample(name, get(cd, "hfl"))
                except (OSError, ValueError):
                    pass
            time.sleep(0.05)
        assert p.poll() is not None, "ctr run still running after %d s" % FAIL_WITHIN
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out.seek(0)
    msg = out.read()
    out.close()
    log("%s via ctr: exited %d after %.1f s: %s" % (mode, p.returncode, time.monotonic() - t0,
                                                   msg.strip().replace("\n", " | ")[-400:]))
    watch.report("a %s agent (shim)" % mode)
    assert p.returncode != 0, msg
    assert EXPECT[mode] in msg, msg
    watch.check("shim", HOST_RSS_MAX_KIB)
    cd.ctr("container", "rm", "hfl", check=False)
    assert_no_leaks(cd, ids=["hfl"], timeout=30)


@test(timeout=300, env=hostile_env("flood"))
def shim_create_fails_on_a_flood_agent(cd):
    shim_create_fails(cd, "flood")


@test(timeout=300, env=hostile_env("silent"))
def shim_create_fails_on_a_silent_agent(cd):
    shim_create_fails(cd, "silent")


@test(timeout=300, env=hostile_env("mute"))
def shim_create_fails_on_a_mute_agent(cd):
    """Ping answered, then nothing: the shim's Create gives up at its deadline."""
    shim_create_fails(cd, "mute")


if __name__ == "__main__":
    from lib import main
    main()
