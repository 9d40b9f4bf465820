#!/usr/bin/python3
"""test_faults.py - what the user sees when something goes wrong around a
runm container, and that nothing is left afterwards: containerd restarted
under a running container, a task deleted twice, the guest kernel
panicking, stale state of a crashed host in /run/runm, a VM whose memory
cannot be allocated, the state directory's filesystem full. (A VMM or a
shim killed mid-run: test_shim.py; a hung or hostile agent:
test_hostile_agent.py.)"""
import os
import signal
import socket
import subprocess
import tempfile
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F401,F403
from lib import _mounts_under, _procs, _stray_procs  # noqa: E402
from bundle import RUNM_BIN, Bundle, cli_test  # noqa: E402


def pid_file(cd, cid, name):
    with open(os.path.join(cd.bundle(cid), name)) as f:
        return int(f.read())


def alive(pid):
    """pid runs (a zombie does not: its parent may not have reaped it yet)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def dead_pid():
    """A pid no process has now (one that just exited)."""
    p = subprocess.Popen(["true"])
    p.wait()
    assert not alive(p.pid)
    return p.pid


def run_sleeper(cd, img, cid, *extra):
    # pid 1 ignores signals it has no handler for: exit 7 on SIGTERM
    cd.ctr("run", "-d", "--runtime", RUNM, *extra, img, cid, "sh", "-c",
           "trap 'exit 7' TERM; sleep 1000 & wait", timeout=120)
    wait_for(lambda: cd.tasks().get(cid) == "RUNNING", 30, "task %s running" % cid)


@test
def containerd_restart_keeps_task(cd):
    """containerd stops and starts again (an upgrade, a crash): the
    container keeps running in its VM, and containerd, reconnecting to the
    shim through the bundle's address file, can exec in it, kill and delete it."""
    img = import_busybox(cd)
    run_sleeper(cd, img, "cr1")
    shim, vmm = pid_file(cd, "cr1", "shim.pid"), pid_file(cd, "cr1", "vmm.pid")
    r = cd.ctr("task", "exec", "--exec-id", "before", "cr1", "sh", "-c", "echo up > /tmp/mark", timeout=60)
    cd.restart()
    assert alive(shim) and alive(vmm), "the shim or the VMM died with containerd"
    assert cd.tasks().get("cr1") == "RUNNING", cd.tasks()
    # the same VM: what was written before the restart is there
    r = cd.ctr("task", "exec", "--exec-id", "after", "cr1", "cat", "/tmp/mark", timeout=60)
    assert r.stdout == "up\n", r
    r = cd.ctr("task", "exec", "--exec-id", "st", "cr1", "sh", "-c", "exit 3", check=False, timeout=60)
    assert r.returncode == 3, r
    # the shim's events reach the new containerd (its publisher reconnects)
    evlog = os.path.join(cd.tmp, "events.log")
    with open(evlog, "w") as f:
        events = subprocess.Popen(["ctr", "--address", cd.address, "events"], stdout=f,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=cd.env())
    try:
        # subscribed once it sees one: the exec's
        wait_for(lambda: cd.ctr("task", "exec", "--exec-id", "ev%d" % time.monotonic_ns(), "cr1", "true",
                                timeout=60) and "/tasks/exec-started" in open(evlog).read(), 60,
                 "ctr events to see an exec")
        cd.ctr("task", "kill", "cr1", timeout=30)  # SIGTERM
        wait_for(lambda: cd.tasks().get("cr1") == "STOPPED", 30, "task cr1 stopped")
        wait_for(lambda: any("/tasks/exit" in line and "cr1" in line for line in open(evlog)), 30,
                 "the exit event of cr1")
    finally:
        events.kill()
        events.wait()
    r = cd.ctr("task", "delete", "cr1", timeout=30)
    assert "exit code 7" in r.stderr, r
    cd.ctr("container", "rm", "cr1", timeout=30)
    assert_no_leaks(cd, ids=["cr1"], timeout=15)
    wait_for(lambda: not alive(shim), 10, "shim %d to exit" % shim)


@test
def task_deleted_twice(cd):
    """delete of a running task is refused; a second delete of a deleted
    task is a clear `not found`, as are two deletes at once for one of
    them; containerd and the next container are unharmed."""
    img = import_busybox(cd)
    run_sleeper(cd, img, "dd1")
    r = cd.ctr("task", "delete", "dd1", check=False, timeout=30)
    assert r.returncode != 0 and "running" in r.stderr, r
    assert cd.tasks().get("dd1") == "RUNNING", cd.tasks()
    cd.ctr("task", "kill", "-s", "SIGKILL", "dd1", timeout=30)
    wait_for(lambda: cd.tasks().get("dd1") == "STOPPED", 30, "task dd1 stopped")
    cd.ctr("task", "delete", "dd1", timeout=30)
    r = cd.ctr("task", "delete", "dd1", check=False, timeout=30)
    assert r.returncode != 0 and "not found" in r.stderr, r
    cd.ctr("container", "rm", "dd1", timeout=30)

    # two at once: one deletes, the other finds nothing (or both report the delete)
    run_sleeper(cd, img, "dd2")
    cd.ctr("task", "kill", "-s", "SIGKILL", "dd2", timeout=30)
    wait_for(lambda: cd.tasks().get("dd2") == "STOPPED", 30, "task dd2 stopped")
    res = [None, None]

    def delete(i):
        res[i] = cd.ctr("task", "delete", "dd2", check=False, timeout=60)
    threads = [threading.Thread(target=delete, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any(r.returncode == 0 for r in res), res
    for r in res:
        assert r.returncode == 0 or "not found" in r.stderr, res
    assert "dd2" not in cd.tasks(), cd.tasks()
    cd.ctr("container", "rm", "dd2", timeout=30)
    r = cd.ctr("run", "--rm", "--runtime", RUNM, img, "dd3", "echo", "still fine", timeout=120)
    assert r.stdout == "still fine\n", r
    assert_no_leaks(cd, ids=["dd1", "dd2", "dd3"], timeout=15)


@test
def guest_kernel_panic(cd):
    """The guest kernel panics under a running container (the guest kernel
    has no sysrq: a privileged container asks for a panic on OOM, then
    exhausts the VM's memory). The VM ends (panic=-1, -no-reboot), the task
    exits as if SIGKILLed (137), the shim logs the panic from the guest
    console, and --rm's delete leaves nothing."""
    img = import_busybox(cd)
    r = cd.ctr("run", "--rm", "--privileged", "--runtime", RUNM, img, "kp", "sh", "-c",
               "echo 1 > /proc/sys/vm/overcommit_memory && echo 2 > /proc/sys/vm/panic_on_oom && "
               "echo armed && dd if=/dev/zero of=/dev/null bs=1G count=1; echo survived",
               check=False, timeout=180)
    assert r.returncode == 137, r
    assert "armed" in r.stdout and "survived" not in r.stdout, r
    wait_for(lambda: "Kernel panic" in cd.log(), 10, "the shim to log the guest's panic")
    assert "kp" not in cd.tasks(), cd.tasks()
    assert_no_leaks(cd, ids=["kp"], timeout=15)


@test(private_state_root=True)
def stale_state_is_cleaned_or_ignored(cd):
    """A host that went down hard: runm's state root holds half-written
    and half-dropped templates of dead shims, the shim state dir of the
    next container's bundle exists with an old VM's files (console log,
    shared dir, a socket), and then everything of a running container is
    SIGKILLed at once (containerd, shim, VMM, passt: a power loss, but the
    mounts stay). The container still starts over the stale state dir;
    containerd, started again, has the dead shim's `delete` clean up the
    bundle, its mounts and state dir; the same id runs again; the dead
    shims' temp templates are gone (lib.leaks checks them)."""
    img = import_busybox(cd)
    root = cd.extra_env["RUNM_STATE_ROOT"]
    tpl = os.path.join(root, "templates")
    stale = [os.path.join(tpl, ".tmp-0123456789abcdef-%d" % dead_pid()),
             os.path.join(tpl, "fedcba9876543210.bad-%d" % dead_pid())]
    for d in stale:
        os.makedirs(d)
        with open(os.path.join(d, "snapshot"), "wb") as f:
            f.write(b"\0" * 65536)
    assert runm_temp_leftovers(root) == sorted(stale), runm_temp_leftovers(root)
    # an old VM's files in the state dir the next container's shim uses
    sd = shim_state_dir(cd.bundle("ss1"))
    os.makedirs(os.path.join(sd, "shared", "ss1", "rootfs", "etc"))
    with open(os.path.join(sd, "console.log"), "w") as f:
        f.write("stale console of a VM before the reboot\n")
    with open(os.path.join(sd, "vmm.log"), "w") as f:
        f.write("stale\n")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(os.path.join(sd, "stale.sock"))

    run_sleeper(cd, img, "ss1")
    r = cd.ctr("task", "exec", "--exec-id", "x", "ss1", "cat", "/etc/hostname", timeout=60)
    assert r.stdout.strip(), r
    # power loss: everything of it at once
    procs = _stray_procs(cd)
    assert {k for _, k, _ in procs} >= {"shim", "qemu"}, procs
    cd.proc.kill()
    for pid, _, _ in procs:
        os.kill(pid, signal.SIGKILL)
    cd.proc.wait(10)
    wait_for(lambda: not _stray_procs(cd), 10, "the shim and VM to be gone")

    cd.restart()
    # containerd finds the shim dead at startup and has its binary's `delete` clean up
    wait_for(lambda: cd.tasks().get("ss1") in (None, "STOPPED"), 30, "task ss1 cleaned up")
    cd.ctr("task", "delete", "ss1", check=False, timeout=30)
    cd.ctr("container", "rm", "ss1", timeout=30)
    assert_no_leaks(cd, ids=["ss1"], timeout=15)
    r = cd.ctr("run", "--rm", "--runtime", RUNM, img, "ss1", "echo", "again", timeout=120)
    assert r.stdout == "again\n", r
    assert not os.path.exists(sd), os.listdir(sd)
    assert runm_temp_leftovers(root) == [], runm_temp_leftovers(root)


def mem_total_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    raise AssertionError("no MemTotal")


@test
def vm_memory_cannot_be_allocated(cd):
    """A memory limit four times the host's RAM: QEMU cannot allocate the
    guest's memory (the kernel's overcommit heuristic refuses it), create
    fails with QEMU's own words, and nothing is left."""
    img = import_busybox(cd)
    limit = (mem_total_kib() * 4) << 10
    r = cd.ctr("run", "--rm", "--runtime", RUNM, "--memory-limit", str(limit), img, "om1", "true",
               check=False, timeout=120)
    assert r.returncode != 0, r
    assert "did not come up" in r.stderr and "cannot set up guest memory" in r.stderr and \
        "Cannot allocate memory" in r.stderr, r
    assert "om1" not in cd.tasks(), cd.tasks()
    cd.ctr("container", "rm", "om1", timeout=30, check=False)  # --rm removed it
    assert_no_leaks(cd, ids=["om1"], timeout=15)
    # and the next container is unharmed
    r = cd.ctr("run", "--rm", "--runtime", RUNM, img, "om2", "echo", "fine", timeout=120)
    assert r.stdout == "fine\n", r
    assert_no_leaks(cd, ids=["om2"], timeout=15)


@cli_test
def state_dir_disk_full():
    """The filesystem of runm's state directory is full: `runm run` fails at
    once with the file it could not write and ENOSPC's words, and leaves no
    VMM, mount or directory; once there is room again the same container
    runs. (A tmpfs of 512 KiB, filled by a file, stands for the full disk.)"""
    top = tempfile.mkdtemp(prefix="runm-full-")
    root = os.path.join(top, "root")
    filler = os.path.join(top, "filler")
    run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "runm-full", top])
    try:
        os.mkdir(root)
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass  # ENOSPC: full
        finally:
            os.close(fd)
        with Bundle(["echo", "room"]) as b:
            r = run([RUNM_BIN, "--root", root, "run", "--bundle", b.path, "full1"], check=False, timeout=120)
            assert r.returncode != 0, r
            assert "No space left on device" in r.stderr and root in r.stderr, r.stderr
            assert os.listdir(root) == [], os.listdir(root)
            left = [(pid, cmd) for pid, cmd in _procs() if root in cmd]  # a VMM or passt of this root
            assert not left, left
            assert not _mounts_under(root), _mounts_under(root)
            os.unlink(filler)
            r = run([RUNM_BIN, "--root", root, "run", "--bundle", b.path, "full2"], timeout=120)
            assert r.stdout == "room\n", r
            assert os.listdir(root) == [], os.listdir(root)
    finally:
        for e in os.listdir(root) if os.path.isdir(root) else ():
            run([RUNM_BIN, "--root", root, "delete", "--force", e], check=False, timeout=30)
        run(["umount", "-l", top], check=False)
        os.rmdir(top)


if __name__ == "__main__":
    main()
