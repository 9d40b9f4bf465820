#!/usr/bin/python3
"""test_hostile.py - a hostile guest cannot hurt the host (issue 14, item 3).

The guest console is a socket the host reads into a log capped at 1 MiB
(src/engine/console.h: console.log, rotated to console.log.1): a container
given the guest's UART (/dev/ttyS0) writes to it as fast as it can, and
neither file ever passes the cap. A container flooding its stdout with no
reader (the CLI's stdout a pipe nobody reads; ctr run -d, whose FIFO nobody
reads once ctr is gone) leaves the monitor's / shim's and QEMU's RSS bounded
(relay.c's ACK window: the guest writer waits), and the container can still
be killed and deleted. The RSS figures are printed (`# rss ...`) to quote."""
import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import BUILD, RUNM, import_busybox, log, proc_mem_kib, shim_pid, test, vmm_pid, wait_for  # noqa: E402
from bundle import ROOT, Bundle, cli_test, config, runm, runm_popen  # noqa: E402

CAP = 1 << 20  # CONSOLE_LOG_MAX
RSS_BOUND_KIB = 20 * 1024  # growth allowed over the baseline during a flood
FLOOD_SECONDS = 20  # how long RSS is sampled during a flood
LINE = "hostile guest flooding its console " * 3


def uart_bundle(script):
    """A bundle whose container may write to the guest's serial console, the
    UART the kernel and the agent write to (console=ttyS0): runm refuses
    linux.devices (host devices), so the container makes the node itself
    (CAP_MKNOD, the device cgroup allowing 4:64) and runs script."""
    args = ["sh", "-c", "mknod /dev/ttyS0 c 4 64 && " + script]
    b = Bundle(args)
    cfg = config(args)
    caps = ["CAP_MKNOD"]
    cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    cfg["linux"]["resources"] = {"devices": [{"allow": True, "type": "c", "major": 4, "minor": 64,
                                              "access": "rwm"}]}
    b.write(cfg)
    add_applet(b, "mknod")
    return b


def add_applet(b, name):
    os.symlink("busybox", os.path.join(b.path, "rootfs", "bin", name))


def state(cid):
    with open(os.path.join(ROOT, cid, "state.json")) as f:
        return json.load(f)


def fsize(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return -1


def rss_kib(pid):
    return proc_mem_kib(pid)["Rss"]


def sample_rss(pids, seconds, check=None):
    """Peak RSS (KiB) of each of pids over `seconds` of a flood, and check()
    run at each sample. A measurement window, not a synchronisation."""
    peak = {p: rss_kib(p) for p in pids}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for p in pids:
            peak[p] = max(peak[p], rss_kib(p))
        if check:
            check()
        time.sleep(0.2)
    return peak


@cli_test
def console_flood_stays_under_the_cap():
    log_path = os.path.join(ROOT, "flood1", "console.log")
    old_path = log_path + ".1"
    sizes = {"max": 0, "max_old": 0, "last": 0, "rotations": 0}

    def within_cap():
        cur, old = fsize(log_path), fsize(old_path)
        # The log shrank: it was rotated (at least once) since the last look.
        sizes["rotations"] += cur < sizes["last"]
        sizes["last"] = cur
        sizes["max"] = max(sizes["max"], cur)
        sizes["max_old"] = max(sizes["max_old"], old)
        assert cur <= CAP and old <= CAP, (cur, old)
        return old >= 0

    with uart_bundle("yes '%s' >/dev/ttyS0" % LINE) as b, open(os.devnull, "wb") as null:
        add_applet(b, "yes")
        t0 = time.monotonic()
        runm("run", "--detach", "--bundle", b.path, "flood1", stdout=null, stderr=null, timeout=180)
        st = state("flood1")
        monitor, vmm = st["monitor_pid"], st["vmm_pid"]
        base = {monitor: rss_kib(monitor), vmm: rss_kib(vmm)}
        # Past the cap: the log rotated (console.log.1 exists), checked at each poll.
        wait_for(within_cap, 240, "console.log rotated to console.log.1", interval=0.1)
        rotated_s = time.monotonic() - t0
        # Then it starts again and stays under the cap while the guest writes on.
        peak = sample_rss([monitor, vmm], 10, check=within_cap)
        grown = fsize(log_path)
        log("console: first rotation %.1fs after `runm run` (boot included), %d more rotations seen in 10 s; "
            "console.log %d bytes, console.log.1 %d, largest seen %d / %d, cap %d"
            % (rotated_s, sizes["rotations"], grown, fsize(old_path), sizes["max"], sizes["max_old"], CAP))
        log("rss during console flood: monitor %d -> peak %d KiB, qemu %d -> peak %d KiB"
            % (base[monitor], peak[monitor], base[vmm], peak[vmm]))
        assert sizes["max"] <= CAP and sizes["max_old"] <= CAP, sizes
        assert fsize(old_path) == CAP, fsize(old_path)
        # What the guest wrote is there (the tail reaches error messages too).
        with open(log_path, "rb") as f:
            f.seek(max(0, grown - 4096))
            assert LINE.encode() in f.read(), "flood not in console.log"
        assert peak[monitor] - base[monitor] < RSS_BOUND_KIB, (base, peak)
        runm("kill", "flood1", "KILL")
        runm("delete", "--force", "flood1", timeout=60)
    assert not os.path.exists(log_path) and not os.path.exists(old_path)


@cli_test
def vmm_output_still_reaches_error_messages():
    """QEMU's stderr is a pipe now (vmm.log, capped like the console): what
    it says before dying must still be in runm's error."""
    with Bundle(["true"]) as b:
        bogus = os.path.join(b.path, "not-a-kernel")
        with open(bogus, "wb") as f:
            f.write(b"\0" * 4096)
        env = dict(os.environ, RUNM_KERNEL=bogus, RUNM_WARM_START="0",
                   RUNM_INITRD=os.path.join(BUILD, "guest", "x86_64", "initrd.img"))
        r = runm("run", "--bundle", b.path, "badvmm", check=False, timeout=120, env=env)
        log("runm's error: %s" % r.stderr.strip().replace("\n", " | ")[-300:])
        assert r.returncode != 0, r
        assert "[qemu: qemu: " in r.stderr and "kernel" in r.stderr, r.stderr
        runm("delete", "--force", "badvmm", check=False, timeout=60)


@cli_test
def console_of_a_restored_vm():
    """The console chardev is a socket in the template's VM and in the VM
    restored from it: the restored guest's console reaches its own log."""
    tpl = tempfile.mkdtemp(prefix="runm-tpl-")
    env = dict(os.environ, RUNM_TEMPLATE_DIR=tpl, RUNM_WARM_START="1", RUNM_DEBUG="1")
    marker = "console after restore %d" % os.getpid()
    try:
        with uart_bundle("echo '%s' >/dev/ttyS0; sleep 600" % marker) as b, open(os.devnull, "wb") as null:
            for cid in ("tpl1", "tpl2"):
                with open(os.path.join(tpl, cid + ".err"), "wb") as f:
                    runm("run", "--detach", "--bundle", b.path, cid, stdout=null, stderr=f, env=env, timeout=180)
                with open(os.path.join(tpl, cid + ".err")) as f:
                    how = f.read()
                path = os.path.join(ROOT, cid, "console.log")
                wait_for(lambda: marker.encode() in open(path, "rb").read(), 60, "marker in %s" % path)
                runm("delete", "--force", cid, timeout=60)
            assert "saved in" not in how and "(restored from a template)" in how, how
    finally:
        shutil.rmtree(tpl, ignore_errors=True)


def pipe_fill(fd):
    """Bytes waiting in the pipe whose read end is fd."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


@cli_test
def cli_stdout_flood_without_reader_keeps_rss_bounded():
    with Bundle(["yes", LINE]) as b, open(os.devnull, "wb") as null:
        add_applet(b, "yes")
        p = runm_popen("run", "--bundle", b.path, "flood2", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=null)
        try:
            # Nobody reads: the pipe fills, then the relay stops acknowledging.
            wait_for(lambda: pipe_fill(p.stdout.fileno()) >= 65536, 180, "stdout pipe full")
            st = wait_for(lambda: state("flood2").get("vmm_pid") and state("flood2"), 30, "vmm pid")
            monitor, vmm = p.pid, st["vmm_pid"]
            base = {monitor: rss_kib(monitor), vmm: rss_kib(vmm)}
            peak = sample_rss([monitor, vmm], FLOOD_SECONDS)
            log("rss during stdout flood, no reader (CLI): monitor %d -> peak %d KiB (+%d), qemu %d -> peak %d "
                "KiB (+%d); pipe holds %d bytes" % (base[monitor], peak[monitor], peak[monitor] - base[monitor],
                                                    base[vmm], peak[vmm], peak[vmm] - base[vmm],
                                                    pipe_fill(p.stdout.fileno())))
            assert peak[monitor] - base[monitor] < RSS_BOUND_KIB, (base, peak)
            assert peak[vmm] - base[vmm] < RSS_BOUND_KIB, (base, peak)
            # Still under control: killed, then the monitor ends once its
            # stdout goes (the reader closes), and the container is deleted.
            runm("kill", "flood2", "KILL")
            p.stdout.close()
            p.wait(timeout=60)
            log("CLI exited with status %d after kill" % p.returncode)
            assert p.returncode == 128 + 9, p.returncode
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        runm("delete", "--force", "flood2", check=False, timeout=60)


def stdout_fifo(pid):
    """The FIFO among pid's fds whose name ends in -stdout (ctr's naming)."""
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            target = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if target.endswith("-stdout") and os.path.exists(target):
            return target
    return None


@test(timeout=400)
def shim_stdout_flood_without_reader_keeps_rss_bounded(cd):
    img = import_busybox(cd)
    # -d: ctr exits once the task started, and nobody reads its stdout FIFO.
    cd.ctr("run", "-d", "--runtime", RUNM, img, "flood3", "yes", LINE, timeout=180)
    wait_for(lambda: cd.tasks().get("flood3") == "RUNNING", 30, "task flood3 running")
    shim, vmm = shim_pid(cd, "flood3"), vmm_pid(cd, "flood3")
    # The shim's stdout FIFO, which only the shim holds (as containerd's shims
    # do): opened here without reading, to see it fill up.
    fifo = wait_for(lambda: stdout_fifo(shim), 30, "the shim's stdout FIFO")
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        wait_for(lambda: pipe_fill(fd) >= 65536, 120, "stdout FIFO full")
    finally:
        os.close(fd)
    base = {shim: rss_kib(shim), vmm: rss_kib(vmm)}
    peak = sample_rss([shim, vmm], FLOOD_SECONDS)
    log("rss during stdout flood, no reader (shim): shim %d -> peak %d KiB (+%d), qemu %d -> peak %d KiB (+%d)"
        % (base[shim], peak[shim], peak[shim] - base[shim], base[vmm], peak[vmm], peak[vmm] - base[vmm]))
    assert peak[shim] - base[shim] < RSS_BOUND_KIB, (base, peak)
    assert peak[vmm] - base[vmm] < RSS_BOUND_KIB, (base, peak)
    assert cd.tasks().get("flood3") == "RUNNING", cd.tasks()
    cd.ctr("task", "kill", "-s", "SIGKILL", "flood3")
    wait_for(lambda: cd.tasks().get("flood3") == "STOPPED", 30, "task flood3 stopped")
    cd.ctr("task", "delete", "flood3", timeout=60)
    cd.ctr("container", "delete", "flood3")
    wait_for(lambda: not os.path.exists("/proc/%d" % vmm), 30, "VMM gone")


if __name__ == "__main__":
    from lib import main
    main()
