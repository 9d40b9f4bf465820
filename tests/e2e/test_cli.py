#!/usr/bin/python3
"""test_cli.py - the runm CLI on real VMs (TCG here): bundles built from
busybox-static, each container in its own VM; after every test no VMM,
container directory or mount is left."""
import os
import platform
import select
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import main, test, wait_for  # noqa: E402
import lib  # noqa: E402
from bundle import Bundle, cli_cleanup, cli_leaks, cli_test, guest_kernel, runm, runm_popen  # noqa: E402


def read_until(proc, needle, timeout):
    """Read proc.stdout until needle appears (a deadline, no sleeps)."""
    buf = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no %r from the container within %ss; got %r" % (needle, timeout, buf))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError("stdout closed before %r; got %r" % (needle, buf))
            buf += chunk
    return buf


def run_detached(*args):
    """runm run --detach: the container keeps our stdio (as with runc), so
    give it files, not pipes a test would wait on."""
    with open(os.devnull, "wb") as null:
        return runm("run", "--detach", *args, stdout=null, stderr=null)


def state(cid):
    import json
    return json.loads(runm("state", cid).stdout)


@cli_test
def uname_shows_guest_kernel():
    with Bundle(["uname", "-r"]) as b:
        r = runm("run", "--bundle", b.path, "uname")
    assert r.stdout.strip() == guest_kernel(), r
    assert r.stdout.strip() != platform.release() or "cloud" in guest_kernel(), "host kernel inside?"


@cli_test
def exit_status_comes_back():
    with Bundle(["sh", "-c", "echo out; echo err >&2; exit 42"]) as b:
        r = runm("run", "--bundle", b.path, "exit42", check=False)
    assert r.returncode == 42, r
    assert r.stdout == "out\n" and r.stderr == "err\n", r


@cli_test
def ten_mib_through_cat_byte_exact():
    data = os.urandom(10 << 20)
    with Bundle(["cat"]) as b:
        r = runm("run", "--bundle", b.path, "cat10", input=data)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == len(data) and r.stdout == data, "got %d bytes, differing" % len(r.stdout)


@cli_test
def env_cwd_and_user_honoured():
    with Bundle(["sh", "-c", 'echo "$GREETING"; pwd; id -u; id -g'], env=["GREETING=hello runm"],
                cwd="/tmp", uid=1000, gid=1000) as b:
        r = runm("run", "--bundle", b.path, "envcwd")
    assert r.stdout.splitlines() == ["hello runm", "/tmp", "1000", "1000"], r


@cli_test
def sigterm_reaches_the_container():
    script = 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.1; done'
    with Bundle(["sh", "-c", script]) as b:
        p = runm_popen("run", "--bundle", b.path, "term", stdin=lib.subprocess.DEVNULL,
                       stdout=lib.subprocess.PIPE, stderr=lib.subprocess.PIPE)
        try:
            read_until(p, b"ready", 120)
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 7, (p.returncode, out, err)
    assert b"got TERM" in out, out


@cli_test
def kill_9_ends_a_process_ignoring_term():
    with Bundle(["sh", "-c", 'trap "" TERM; while :; do sleep 0.1; done']) as b:
        run_detached("--bundle", b.path, "stubborn")
        assert state("stubborn")["status"] == "running"
        runm("kill", "stubborn", "TERM")
        # TERM is ignored: it is still running once a State round trip later.
        assert state("stubborn")["status"] == "running"
        runm("kill", "stubborn", "KILL")
        wait_for(lambda: state("stubborn")["status"] == "stopped", 60, "stopped after KILL")
        assert state("stubborn")["exitStatus"] == 137
        runm("delete", "stubborn")


@cli_test
def detached_exec_list_delete():
    with Bundle(["sleep", "1000"]) as b:
        pidfile = os.path.join(b.path, "pid")
        run_detached("--pid-file", pidfile, "--bundle", b.path, "det")
        vmm = int(open(pidfile).read())
        assert "qemu" in open("/proc/%d/cmdline" % vmm).read()
        # The VMM runs confined by QEMU's seccomp filter (mode 2: filter).
        status = open("/proc/%d/status" % vmm).read()
        assert "\nSeccomp:\t2\n" in status, "VMM not under seccomp: %r" % [
            line for line in status.splitlines() if line.startswith("Seccomp")]
        r = runm("exec", "det", "--", "sh", "-c", "echo hi from exec; exit 3", check=False)
        assert r.returncode == 3 and r.stdout == "hi from exec\n", r
        r = runm("exec", "-e", "X=1", "--cwd", "/tmp", "det", "sh", "-c", 'echo "$X $(pwd)"')
        assert r.stdout == "1 /tmp\n", r
        assert "det" in runm("list").stdout
        r = runm("delete", "det", check=False)
        assert r.returncode != 0 and "running" in r.stderr, r
        runm("delete", "--force", "det")
        wait_for(lambda: not os.path.exists("/proc/%d" % vmm), 10, "VMM gone")


def read_pty(fd, timeout):
    """Everything from a pty master until its slave side is gone (EIO)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not r:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def set_size(fd, rows, cols):
    import fcntl
    import struct
    import termios
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@cli_test
def exec_with_a_tty():
    import pty
    with Bundle(["sleep", "1000"]) as b:
        run_detached("--bundle", b.path, "ttyx")
        master, slave = pty.openpty()
        set_size(slave, 40, 120)
        p = runm_popen("exec", "-t", "ttyx", "sh", "-c", "tty; stty size; exit 6",
                       stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        try:
            out = read_pty(master, 60)
            assert p.wait(timeout=60) == 6, p.returncode
        finally:
            os.close(master)
            if p.poll() is None:
                p.kill()
                p.wait()
        assert b"/dev/pts/" in out and b"40 120" in out, out
        runm("delete", "--force", "ttyx")


@cli_test
def console_socket_hands_over_a_pty():
    """runc's --console-socket: the pty master arrives over the socket,
    drives the container's shell, follows a resize; the exit is recorded."""
    import array
    import socket
    with Bundle(["sh"], terminal=True) as b:
        path = os.path.join(b.path, "console.sock")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(120)
        with open(os.devnull, "wb") as null:
            p = runm_popen("run", "--detach", "--console-socket", path, "--bundle", b.path, "cons",
                           stdin=lib.subprocess.DEVNULL, stdout=null, stderr=null)
            conn, _ = srv.accept()
            _, anc, _, _ = conn.recvmsg(1, socket.CMSG_LEN(4))
            fds = array.array("i")
            fds.frombytes(anc[0][2][:4])
            master = fds[0]
            assert p.wait(timeout=120) == 0
        try:
            set_size(master, 33, 111)
            os.write(master, b"stty size; tty; exit 5\n")
            out = read_pty(master, 60)
        finally:
            os.close(master)
            conn.close()
            srv.close()
        assert b"33 111" in out and b"/dev/pts/" in out, out
        wait_for(lambda: state("cons")["status"] == "stopped", 30, "stopped")
        assert state("cons")["exitStatus"] == 5
        runm("delete", "cons")


@cli_test
def clear_errors_on_bad_input():
    with Bundle(["true"]) as b:
        r = runm("run", "--bundle", b.path + "/nope", "bad1", check=False)
        assert r.returncode != 0 and "nope" in r.stderr, r
        with open(os.path.join(b.path, "config.json"), "w") as f:
            f.write("{ not json")
        r = runm("run", "--bundle", b.path, "bad2", check=False)
        assert r.returncode != 0 and "config.json" in r.stderr, r
    r = runm("run", "--bundle", "/", "../x", check=False)
    assert r.returncode != 0 and "invalid container id" in r.stderr, r
    r = runm("exec", "ghost", "true", check=False)
    assert r.returncode != 0 and "not running" in r.stderr, r
    r = runm("kill", "ghost", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr, r


if __name__ == "__main__":
    main()
