#!/usr/bin/python3
"""test_harness.py - sanity tests of the e2e harness itself, with runc
(containerd's default runtime io.containerd.runc.v2): no runm involved."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F401,F403
import lib  # noqa: E402


@test
def containerd_starts_and_stops():
    t0 = time.monotonic()
    cd = Containerd()
    try:
        _start_stop(cd, t0)
    finally:
        cd.stop(check=False)
        cd.remove()
    assert not os.path.exists(cd.tmp)


def _start_stop(cd, t0):
    with cd:
        log("containerd up in %.2fs at %s (snapshotter %s)" % (time.monotonic() - t0, cd.address,
                                                               cd.snapshotter))
        assert len(cd.address) < 100, cd.address
        assert cd.proc.poll() is None
        r = cd.ctr("version")
        assert "Server:" in r.stdout, r.stdout
        plugins = [line.split() for line in cd.ctr("plugins", "ls").stdout.splitlines()]
        assert ["io.containerd.snapshotter.v1", cd.snapshotter, "linux/amd64", "ok"] in plugins \
            or any(p[:2] == ["io.containerd.snapshotter.v1", cd.snapshotter] and p[-1] == "ok"
                   for p in plugins), plugins
    assert cd.proc.returncode is not None, "containerd still running after stop()"
    assert not os.path.exists(cd.address) or cd.proc.returncode == 0
    assert "panic" not in cd.log().lower()


@test
def wait_for_and_run():
    assert wait_for(lambda: 42, 1, "a value") == 42
    try:
        wait_for(lambda: False, 0.2, "never")
        raise AssertionError("wait_for did not time out")
    except TimeoutError as e:
        assert "never" in str(e)
    assert run(["echo", "hi"]).stdout == "hi\n"
    assert run("printf 'a\\0b'", text=False).stdout == b"a\0b"
    assert run(["cat"], input=b"\x00\xff").stdout == b"\x00\xff"
    try:
        run(["sh", "-c", "echo out; echo err >&2; exit 4"])
        raise AssertionError("no CmdError")
    except CmdError as e:
        assert e.returncode == 4 and "out" in str(e) and "err" in str(e), str(e)


@test
def busybox_image_imports(cd):
    t0 = time.monotonic()
    path = busybox_tarball()
    t1 = time.monotonic()
    ref = import_busybox(cd)
    log("image tarball ready in %.2fs, ctr import %.2fs" % (t1 - t0, time.monotonic() - t1))
    assert ref == BUSYBOX_REF
    assert ref in cd.ctr("image", "ls", "-q").stdout
    assert os.path.getsize(path) > 500000
    # importing twice is harmless
    import_busybox(cd)


@test
def runc_echo_hello(cd):
    img = import_busybox(cd)
    t0 = time.monotonic()
    r = cd.ctr("run", "--rm", img, "id1", "echo", "hello")
    log("ctr run --rm echo (runc): %.2fs" % (time.monotonic() - t0))
    assert r.stdout == "hello\n", r
    r = cd.ctr("run", "--rm", img, "id2", "sh", "-c", "id; ls /bin/sh; cat /etc/passwd | head -1")
    assert "uid=0(root)" in r.stdout and "/bin/sh" in r.stdout and "root:x:0:0" in r.stdout, r
    r = cd.ctr("run", "--rm", img, "id3", "sh", "-c", "grep ^user: /etc/passwd; ls -ld /tmp")
    assert "user:x:1000:1000:" in r.stdout and "drwxrwxrwt" in r.stdout, r
    # ctr 1.6 `run` forwards stdin but never closes it on EOF: `cat` would hang.
    r = cd.ctr("run", "--rm", img, "id4", "head", "-n1", input="from stdin\nmore\n")
    assert r.stdout == "from stdin\n", r


@test
def runc_exit_status(cd):
    img = import_busybox(cd)
    r = cd.ctr("run", "--rm", img, "ex3", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3, r
    r = cd.ctr("run", "--rm", img, "ex0", "true", check=False)
    assert r.returncode == 0, r


@test
def no_leaks_after_runc(cd):
    img = import_busybox(cd)
    cd.ctr("run", "-d", img, "bg", "sleep", "1000")
    wait_for(lambda: cd.tasks().get("bg") == "RUNNING", 10, "task bg running")
    assert any("bundle left" in x for x in leaks(cd)), leaks(cd)
    cd.ctr("task", "kill", "-s", "SIGKILL", "bg")
    wait_for(lambda: cd.tasks().get("bg") == "STOPPED", 10, "task bg stopped")
    cd.ctr("task", "rm", "bg")
    cd.ctr("container", "rm", "bg")
    assert_no_leaks(cd, ids=["bg"])
    assert leaks(cd) == []


@test(leaks_ok=True)
def cleanup_after_untidy_test(cd):
    # Leaves a running task behind on purpose: the framework must clean it up.
    img = import_busybox(cd)
    cd.ctr("run", "-d", img, "left", "sleep", "1000")
    wait_for(lambda: cd.tasks().get("left") == "RUNNING", 10, "task left running")


if __name__ == "__main__":
    main()
