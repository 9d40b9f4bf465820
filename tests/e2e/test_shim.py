#!/usr/bin/python3
"""test_shim.py - containerd-shim-runm-v1 through a real containerd and ctr:
every container runs in its own micro-VM (TCG emulation when there is no KVM,
so each VM costs a few seconds: the tests share VMs where they can)."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F401,F403


def ctr_tty(cd, *args, timeout=60):
    """Run ctr with a pseudo-terminal as its stdio (ctr -t needs a console);
    returns (status, output with CRs removed)."""
    import pty
    import select
    import subprocess
    import fcntl
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # ctr passes it on (ResizePty)
    cmd = ["ctr", "--address", cd.address, "--namespace", cd.namespace] + list(args)
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=cd.env(), start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every slave fd is closed
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    try:
        status = p.wait(max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    return status, out.decode(errors="replace").replace("\r", "")


@test
def run_rm_echo(cd):
    img = import_busybox(cd)
    t0 = time.monotonic()
    r = cd.ctr("run", "--rm", "--runtime", RUNM, img, "echo1", "echo", "hello", timeout=120)
    log("ctr run --rm echo (runm): %.2fs" % (time.monotonic() - t0))
    assert r.stdout == "hello\n", r
    assert_no_leaks(cd, ids=["echo1"])


@test
def exit_status_and_stdio(cd):
    img = import_busybox(cd)
    r = cd.ctr("run", "--rm", "--runtime", RUNM, img, "ex3", "sh", "-c", "echo out; echo err >&2; exit 3",
               check=False, timeout=120)
    assert r.returncode == 3, r
    assert r.stdout == "out\n", r
    assert "err" in r.stderr, r
    # environment and working directory from the OCI spec (ctr 1.6 `run` has no --user: see exec below)
    r = cd.ctr("run", "--rm", "--runtime", RUNM, "--env", "A=B", "--cwd", "/tmp", img,
               "envs", "sh", "-c", "echo $A; pwd; id -u", timeout=120)
    assert r.stdout.split() == ["B", "/tmp", "0"], r
    # stdin reaches the process (ctr 1.6 never closes it: read one line only)
    r = cd.ctr("run", "--rm", "--runtime", RUNM, img, "in1", "head", "-n1", input="from stdin\nmore\n", timeout=120)
    assert r.stdout == "from stdin\n", r
    # a few MB of output arrive whole, through the relay's flow control
    r = cd.ctr("run", "--rm", "--runtime", RUNM, img, "big", "sh", "-c", "yes 0123456789 | head -c 3000000",
               timeout=180)
    assert len(r.stdout) == 3000000 and r.stdout[:22] == "0123456789\n0123456789\n", (len(r.stdout), r.stdout[:100])
    # a terminal init: one stream (the pty), its size from ctr's console, exit status through
    status, out = ctr_tty(cd, "run", "-t", "--rm", "--runtime", RUNM, img, "tty1", "sh", "-c",
                          "test -t 0 && test -t 1 && sleep 0.5 && stty size && exit 4", timeout=120)
    assert status == 4 and out.split() == ["30", "100"], (status, out)
    assert_no_leaks(cd, ids=["ex3", "envs", "in1", "big", "tty1"])


@test
def detached_lifecycle(cd):
    img = import_busybox(cd)
    # pid 1 ignores signals it has no handler for: give it one for SIGTERM
    cd.ctr("run", "-d", "--runtime", RUNM, img, "bg", "sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait",
           timeout=120)
    wait_for(lambda: cd.tasks().get("bg") == "RUNNING", 20, "task bg running")
    # The task's pid is a host process outside the host's network namespace
    # (ctr --cni would configure /proc/<pid>/ns/net).
    pid = int([l.split()[1] for l in cd.ctr("task", "ls").stdout.splitlines() if l.split()[0] == "bg"][0])
    assert os.readlink("/proc/%d/ns/net" % pid) != os.readlink("/proc/self/ns/net"), pid
    r = cd.ctr("task", "exec", "--exec-id", "e1", "bg", "echo", "hi", timeout=60)
    assert r.stdout == "hi\n", r
    r = cd.ctr("task", "exec", "--exec-id", "e2", "bg", "sh", "-c", "exit 5", check=False, timeout=60)
    assert r.returncode == 5, r
    r = cd.ctr("task", "exec", "--exec-id", "u1", "--user", "1000:1000", "--cwd", "/tmp", "bg",
               "sh", "-c", "id -u; id -g; pwd", timeout=60)
    assert r.stdout.split() == ["1000", "1000", "/tmp"], r
    status, out = ctr_tty(cd, "task", "exec", "-t", "--exec-id", "t1", "bg", "sh", "-c",
                          "test -t 0 && test -t 1 && sleep 0.5 && stty size && exit 7")
    assert status == 7 and out.split() == ["30", "100"], (status, out)
    r = cd.ctr("task", "ps", "bg", timeout=30)
    lines = r.stdout.split("\n")
    assert lines[0].split()[0] == "PID" and len([x for x in lines[1:] if x.strip()]) >= 1, r
    cd.ctr("task", "pause", "bg", timeout=30)
    assert cd.tasks().get("bg") == "PAUSED", cd.tasks()
    cd.ctr("task", "resume", "bg", timeout=30)
    assert cd.tasks().get("bg") == "RUNNING", cd.tasks()
    r = cd.ctr("task", "exec", "--exec-id", "e3", "bg", "echo", "after resume", timeout=60)
    assert r.stdout == "after resume\n", r
    r = cd.ctr("task", "metrics", "bg", timeout=30)
    assert "memory" in r.stdout.lower(), r
    cd.ctr("task", "kill", "bg", timeout=30)  # SIGTERM
    wait_for(lambda: cd.tasks().get("bg") == "STOPPED", 20, "task bg stopped")
    cd.ctr("task", "delete", "bg", timeout=30)
    cd.ctr("container", "rm", "bg", timeout=30)
    assert_no_leaks(cd, ids=["bg"])


@test
def create_failure_leaves_nothing(cd):
    img = import_busybox(cd)
    r = cd.ctr("run", "--rm", "--runtime", RUNM, img, "bad", "/no/such/binary", check=False, timeout=120)
    assert r.returncode != 0, r
    assert "bad" not in cd.tasks(), cd.tasks()
    cd.ctr("container", "rm", "bad", timeout=30, check=False)
    assert_no_leaks(cd, ids=["bad"], timeout=10)


@test
def two_containers_at_once(cd):
    img = import_busybox(cd)
    cd.ctr("run", "-d", "--runtime", RUNM, img, "c1", "sleep", "1000", timeout=120)
    cd.ctr("run", "-d", "--runtime", RUNM, img, "c2", "sleep", "1000", timeout=120)
    wait_for(lambda: cd.tasks().get("c1") == "RUNNING" and cd.tasks().get("c2") == "RUNNING", 20,
             "both tasks running")
    assert shim_pid(cd, "c1") != shim_pid(cd, "c2")
    assert vmm_pid(cd, "c1") != vmm_pid(cd, "c2")
    r1 = cd.ctr("task", "exec", "--exec-id", "x", "c1", "hostname", timeout=60)
    r2 = cd.ctr("task", "exec", "--exec-id", "x", "c2", "hostname", timeout=60)
    assert r1.stdout.strip() and r2.stdout.strip(), (r1, r2)
    for cid in ("c1", "c2"):
        cd.ctr("task", "kill", "-s", "SIGKILL", cid, timeout=30)
    wait_for(lambda: cd.tasks().get("c1") == "STOPPED" and cd.tasks().get("c2") == "STOPPED", 20,
             "both tasks stopped")
    for cid in ("c1", "c2"):
        cd.ctr("task", "delete", cid, timeout=30)
        cd.ctr("container", "rm", cid, timeout=30)
    assert_no_leaks(cd, ids=["c1", "c2"])


@test
def grouped_containers_share_a_shim(cd):
    # containerd's grouping annotation (CRI: io.kubernetes.cri.sandbox-id): one shim, one VM per container
    img = import_busybox(cd)
    for cid in ("g1", "g2"):
        cd.ctr("run", "-d", "--runtime", RUNM, "--annotation", "io.kubernetes.cri.sandbox-id=grp", img, cid,
               "sleep", "1000", timeout=120)
    wait_for(lambda: cd.tasks().get("g1") == "RUNNING" and cd.tasks().get("g2") == "RUNNING", 20,
             "both tasks running")
    addr = [open(os.path.join(cd.bundle(c), "address")).read() for c in ("g1", "g2")]
    assert addr[0] == addr[1], addr
    assert vmm_pid(cd, "g1") != vmm_pid(cd, "g2")
    r = cd.ctr("task", "exec", "--exec-id", "x", "g2", "echo", "from g2", timeout=60)
    assert r.stdout == "from g2\n", r
    cd.ctr("task", "kill", "-s", "SIGKILL", "g1", timeout=30)
    wait_for(lambda: cd.tasks().get("g1") == "STOPPED", 20, "g1 stopped")
    cd.ctr("task", "delete", "g1", timeout=30)
    assert cd.tasks().get("g2") == "RUNNING", cd.tasks()  # the shared shim lives on
    cd.ctr("task", "kill", "-s", "SIGKILL", "g2", timeout=30)
    wait_for(lambda: cd.tasks().get("g2") == "STOPPED", 20, "g2 stopped")
    cd.ctr("task", "delete", "g2", timeout=30)
    for cid in ("g1", "g2"):
        cd.ctr("container", "rm", cid, timeout=30)
    assert_no_leaks(cd, ids=["grp"])


@test
def vmm_killed_mid_run(cd):
    img = import_busybox(cd)
    cd.ctr("run", "-d", "--runtime", RUNM, img, "vk", "sleep", "1000", timeout=120)
    wait_for(lambda: cd.tasks().get("vk") == "RUNNING", 20, "task vk running")
    os.kill(vmm_pid(cd, "vk"), signal.SIGKILL)
    wait_for(lambda: cd.tasks().get("vk") == "STOPPED", 20, "task vk stopped after its VMM died")
    r = cd.ctr("task", "delete", "vk", timeout=30)
    assert "137" in r.stdout or r.returncode == 0, r
    cd.ctr("container", "rm", "vk", timeout=30)
    assert_no_leaks(cd, ids=["vk"])


@test
def shim_killed_is_cleaned_up(cd):
    img = import_busybox(cd)
    # with a read-only bind: it and the rootfs are bound into the VM's shared
    # dir on the host, which the shim's `delete` must unmount (assert_no_leaks)
    vol = os.path.join(cd.tmp, "sk-vol")
    os.makedirs(vol, exist_ok=True)
    cd.ctr("run", "-d", "--runtime", RUNM, "--mount", "type=bind,src=%s,dst=/vol,options=rbind:ro" % vol,
           img, "sk", "sleep", "1000", timeout=120)
    wait_for(lambda: cd.tasks().get("sk") == "RUNNING", 20, "task sk running")
    os.kill(shim_pid(cd, "sk"), signal.SIGKILL)
    # containerd sees the shim's connection drop, runs `delete`, and the task is gone or stopped
    wait_for(lambda: cd.tasks().get("sk") in (None, "STOPPED"), 30, "task sk stopped after its shim died")
    cd.ctr("task", "delete", "sk", timeout=30, check=False)
    cd.ctr("container", "rm", "sk", timeout=30)
    assert_no_leaks(cd, ids=["sk"], timeout=15)



def mem_total_mib(out):
    for line in out.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in %r" % out)


@test
def resources_size_the_vm(cd):
    """--memory-limit and --cpus shape the VM; a runtime config file
    (ctr --runtime-config-path) sets the defaults; a bad one is a clear error."""
    img = import_busybox(cd)
    show = ["sh", "-c", "grep MemTotal /proc/meminfo; grep -c ^processor /proc/cpuinfo"]
    r = cd.ctr("run", "--rm", "--runtime", RUNM, "--memory-limit", str(128 << 20), "--cpus", "2",
               img, "res1", *show, timeout=180)
    # 128 MiB for the container + 96 MiB overhead; the kernel keeps some.
    assert 150 <= mem_total_mib(r.stdout) <= 224, r.stdout
    assert r.stdout.split()[-1] == "2", r.stdout
    conf = os.path.join(cd.tmp, "runm.toml")
    with open(conf, "w") as f:
        f.write("# test\ndefault_memory_mib = 400\n")
    r = cd.ctr("run", "--rm", "--runtime", RUNM, "--runtime-config-path", conf, img, "res2", *show, timeout=180)
    assert 330 <= mem_total_mib(r.stdout) <= 400, r.stdout
    assert r.stdout.split()[-1] == "1", r.stdout
    with open(conf, "w") as f:
        f.write("default_memory = 400\n")
    r = cd.ctr("run", "--rm", "--runtime", RUNM, "--runtime-config-path", conf, img, "res3", "true",
               check=False, timeout=180)
    assert r.returncode != 0 and "unknown key `default_memory`" in r.stderr, r
    cd.ctr("c", "rm", "res3", check=False)
    assert_no_leaks(cd, ids=["res1", "res2", "res3"])

if __name__ == "__main__":
    main()
