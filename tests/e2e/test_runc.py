#!/usr/bin/python3
"""test_runc.py - runm as a runc-compatible binary, driven the way
containerd's runc shim, conmon and buildah drive runc (shared/runc-contract.md):
create leaves a monitor behind whose pid (no newline) is in --pid-file, start
returns once the process runs, OCI hooks run on the host with runc's state
JSON, errors are JSON lines in --log, runc's words for missing containers.
Real VMs; after every test no VMM, container dir or mount is left."""
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import main, wait_for  # noqa: E402
from bundle import ROOT, RUNM_BIN, Bundle, cli_test, guest_kernel, runm  # noqa: E402


def with_netns(b, hooks=None):
    """A new network namespace (as Docker and Podman ask for) and hooks."""
    with open(os.path.join(b.path, "config.json")) as f:
        cfg = json.load(f)
    cfg["linux"]["namespaces"].append({"type": "network"})
    if hooks:
        cfg["hooks"] = hooks
    b.write(cfg)


def hook(b, name):
    """A hook that appends its phase and the state it got to hooks.log."""
    out = os.path.join(b.path, "hooks.log")
    return {"path": "/bin/sh", "args": ["sh", "-c", "read s; echo %s \"$s\" >> %s" % (name, out)]}


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def state(cid):
    return json.loads(runm("state", cid).stdout)


@cli_test
def create_start_hooks_state_delete():
    with Bundle(["sh", "-c", "read x; echo got $x; uname -r; exit 7"]) as b:
        with_netns(b, {"prestart": [hook(b, "prestart")], "createRuntime": [hook(b, "createRuntime")],
                       "poststart": [hook(b, "poststart")], "poststop": [hook(b, "poststop")]})
        pidfile = os.path.join(b.path, "init.pid")
        r, w = os.pipe()
        out = open(os.path.join(b.path, "out"), "wb")
        err = open(os.path.join(b.path, "err"), "w+")
        # As the runc shim does: the container's stdio are create's fds
        # (files here: the container holds them as runc's init would).
        p = subprocess.run([RUNM_BIN, "--root", ROOT, "create", "--bundle", b.path, "--pid-file", pidfile,
                            "--no-pivot", "--no-new-keyring", "c1"],
                           stdin=r, stdout=out, stderr=err, timeout=180)
        os.close(r)
        err.seek(0)
        assert p.returncode == 0, err.read()
        raw = open(pidfile).read()
        assert raw.isdigit(), "pid file must be a bare number: %r" % raw
        pid = int(raw)
        assert pid_alive(pid)
        st = state("c1")
        assert st["status"] == "created" and st["pid"] == pid, st
        log = open(os.path.join(b.path, "hooks.log")).read().splitlines()
        assert [l.split()[0] for l in log] == ["prestart", "createRuntime"], log
        hs = json.loads(log[0].split(" ", 1)[1])
        assert hs["id"] == "c1" and hs["pid"] == pid and hs["bundle"] == b.path and hs["status"] == "creating", hs
        # The monitor is in a network namespace of its own (hooks configure it).
        assert os.readlink("/proc/%d/ns/net" % pid) != os.readlink("/proc/self/ns/net")

        runm("start", "c1")
        assert state("c1")["status"] == "running"
        assert open(os.path.join(b.path, "hooks.log")).read().splitlines()[2].startswith("poststart ")
        os.write(w, b"hello\n")
        os.close(w)
        # The monitor is our child's child: it exits with the container's status.
        wait_for(lambda: not pid_alive(pid), 60, "the monitor to exit")
        out.close()
        assert open(os.path.join(b.path, "out")).read().splitlines() == ["got hello", guest_kernel()]
        st = state("c1")
        assert st["status"] == "stopped" and st["exitStatus"] == 7, st
        runm("delete", "c1")
        assert open(os.path.join(b.path, "hooks.log")).read().splitlines()[3].startswith("poststop ")
        r = runm("state", "c1", check=False)
        assert r.returncode != 0 and "does not exist" in r.stderr, r


@cli_test
def kill_and_delete_created():
    """buildah deletes created-but-never-started containers; kill works on them too."""
    with Bundle(["sleep", "100"]) as b:
        with_netns(b)
        with open(os.devnull, "wb") as null:
            runm("create", "--bundle", b.path, "k1", stdout=null, stderr=null)
            runm("create", "--bundle", b.path, "k2", stdout=null, stderr=null)
        pid = state("k1")["pid"]
        runm("kill", "k1", "KILL")
        wait_for(lambda: not pid_alive(pid), 30, "the monitor to go on kill")
        runm("delete", "k1")
        runm("delete", "k2")   # created, not started: no --force needed


@cli_test
def errors_as_runc_reports_them():
    with Bundle(["/no/such/binary"]) as b:
        with_netns(b)
        log = os.path.join(b.path, "log.json")
        r = runm("--log", log, "--log-format", "json", "create", "--bundle", b.path, "e1", check=False)
        assert r.returncode != 0 and "no such file or directory" in r.stderr, r
        lines = [json.loads(l) for l in open(log)]
        assert lines[-1]["level"] == "error" and "/no/such/binary" in lines[-1]["msg"], lines
    with Bundle(["nonexist"]) as b:
        with_netns(b)
        r = runm("create", "--bundle", b.path, "e2", check=False)
        assert "executable file not found in $PATH" in r.stderr, r
    with Bundle(["/etc/passwd"]) as b:
        with_netns(b)
        r = runm("create", "--bundle", b.path, "e3", check=False)
        assert "permission denied" in r.stderr, r
    with Bundle(["true"]) as b:   # no network namespace: runc's host network
        r = runm("create", "--bundle", b.path, "e4", check=False)
        assert r.returncode != 0 and "host networking" in r.stderr, r
    with Bundle(["true"]) as b:   # --device / --privileged: host device nodes
        with_netns(b)
        with open(os.path.join(b.path, "config.json")) as f:
            cfg = json.load(f)
        cfg["linux"]["devices"] = [{"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232}]
        b.write(cfg)
        r = runm("create", "--bundle", b.path, "e5", check=False)
        assert r.returncode != 0 and "host devices" in r.stderr, r
    for cmd in (["kill", "nope", "9"], ["delete", "nope"], ["start", "nope"], ["state", "nope"]):
        r = runm(*cmd, check=False)
        assert r.returncode != 0 and "does not exist" in r.stderr, (cmd, r)
    r = runm("--version")
    assert r.stdout.startswith("runm version ") and "\ncommit: " in r.stdout and "spec: " in r.stdout, r
    assert json.loads(runm("features").stdout)["hooks"]


@cli_test
def exec_detach_pid_file():
    with Bundle(["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]) as b:
        with_netns(b)
        with open(os.devnull, "wb") as null:
            runm("create", "--bundle", b.path, "x1", stdout=null, stderr=null)
        runm("start", "x1")
        proc = os.path.join(b.path, "proc.json")
        with open(proc, "w") as f:
            json.dump({"args": ["sh", "-c", "echo from-exec; exit 4"], "cwd": "/", "env": ["PATH=/bin"],
                       "user": {"uid": 0, "gid": 0}, "terminal": False}, f)
        pidf = os.path.join(b.path, "exec.pid")
        outp = os.path.join(b.path, "exec.out")
        with open(outp, "wb") as out:
            runm("exec", "--process", proc, "--detach", "--pid-file", pidf, "x1", stdout=out)
        epid = int(open(pidf).read())
        wait_for(lambda: not pid_alive(epid), 60, "the exec monitor to exit")
        assert open(outp).read() == "from-exec\n"
        assert json.loads(runm("ps", "--format", "json", "x1").stdout)[0] == state("x1")["pid"]
        runm("pause", "x1")
        assert state("x1")["status"] == "paused"
        runm("resume", "x1")
        assert state("x1")["status"] == "running"
        ev = json.loads(runm("events", "--stats", "x1").stdout)
        assert ev["type"] == "stats" and ev["data"]["memory"]["usage"]["usage"] > 0, ev
        pid = state("x1")["pid"]
        runm("kill", "x1", "TERM")
        wait_for(lambda: not pid_alive(pid), 60, "the container to stop on TERM")
        r = runm("kill", "x1", "9", check=False)
        assert r.returncode != 0 and "not running" in r.stderr, r
        runm("delete", "x1")


if __name__ == "__main__":
    main()
