#!/usr/bin/python3
"""test_pod.py - a pod without Kubernetes: the annotations containerd's CRI
plugin gives the shim (io.kubernetes.cri.container-type / sandbox-id), set
with `ctr run --annotation`. The sandbox boots the VM; each container of the
pod joins it (one shim, one VMM), shares its network (localhost) and a bind
mounted volume, and has its own exit status, exec and stats; containers come
and go while the pod runs; removing the sandbox leaves nothing.

Real containerd, shim, QEMU and guest; the image is built from busybox-static."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import assert_no_leaks, import_busybox, log, main, test, wait_for  # noqa: E402
from pod import pod_args, stop, vmms  # noqa: E402

# What a pause container does: nothing, until told to stop.
PAUSE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


@test(timeout=600)
def pod_of_two_containers(cd):
    img = import_busybox(cd)
    vol = tempfile.mkdtemp(prefix="pod-vol-", dir=cd.tmp)
    mount = ["--mount", "type=bind,src=%s,dst=/data,options=rbind:rw" % vol]
    cd.ctr("run", "-d", *pod_args("p1", "sandbox"), img, "p1", *PAUSE, timeout=180)
    wait_for(lambda: cd.tasks().get("p1") == "RUNNING", 120, "sandbox p1 running", interval=0.2)
    assert len(vmms(cd)) == 1, vmms(cd)

    # web serves on the pod's localhost from the shared volume.
    cd.ctr("run", "-d", *pod_args("p1", "container"), *mount, img, "web",
           "sh", "-c", "mkdir -p /data/www && echo hello from web > /data/www/index.html && "
           "exec httpd -f -p 127.0.0.1:8080 -h /data/www", timeout=180)
    wait_for(lambda: cd.tasks().get("web") == "RUNNING", 120, "web running", interval=0.2)
    cd.ctr("run", "-d", *pod_args("p1", "container"), *mount, img, "cli", *PAUSE, timeout=180)
    wait_for(lambda: cd.tasks().get("cli") == "RUNNING", 120, "cli running", interval=0.2)
    assert len(vmms(cd)) == 1, "a pod must have one VM: %s" % vmms(cd)

    def fetch():
        r = cd.ctr("task", "exec", "--exec-id", "w%d" % fetch.n, "cli", "wget", "-qO-",
                   "http://127.0.0.1:8080/index.html", timeout=60, check=False)
        fetch.n += 1
        return r.returncode == 0 and r.stdout == "hello from web\n"
    fetch.n = 0
    wait_for(fetch, 60, "cli to fetch web's page on localhost", interval=0.5)

    # The volume is shared both ways, and with the host.
    cd.ctr("task", "exec", "--exec-id", "wr", "cli", "sh", "-c", "echo from cli > /data/note", timeout=60)
    r = cd.ctr("task", "exec", "--exec-id", "rd", "web", "cat", "/data/note", timeout=60)
    assert r.stdout == "from cli\n", r
    assert open(os.path.join(vol, "note")).read() == "from cli\n"

    # Each container is its own: its own pid namespace and rootfs.
    comms = "for p in /proc/[0-9]*; do cat $p/comm; done"
    r = cd.ctr("task", "exec", "--exec-id", "ps1", "web", "sh", "-c", comms, timeout=60)
    assert "httpd" in r.stdout.split(), r
    r = cd.ctr("task", "exec", "--exec-id", "ps2", "cli", "sh", "-c", comms, timeout=60)
    assert "httpd" not in r.stdout.split(), "cli sees web's processes: %r" % r.stdout
    cd.ctr("task", "exec", "--exec-id", "t1", "web", "touch", "/only-in-web", timeout=60)
    r = cd.ctr("task", "exec", "--exec-id", "t2", "cli", "ls", "/only-in-web", timeout=60, check=False)
    assert r.returncode != 0, "the rootfs of web leaked into cli: %s" % r

    # Exit codes of an exec and of a short-lived container of the pod.
    r = cd.ctr("task", "exec", "--exec-id", "ex", "web", "sh", "-c", "echo out; exit 3", timeout=60, check=False)
    assert r.returncode == 3 and r.stdout == "out\n", r
    r = cd.ctr("run", "--rm", *pod_args("p1", "container"), img, "once", "sh", "-c", "echo once; exit 7",
               timeout=180, check=False)
    assert r.returncode == 7 and r.stdout == "once\n", r
    assert len(vmms(cd)) == 1, vmms(cd)
    r = cd.ctr("task", "metrics", "web", timeout=30)
    assert "memory" in r.stdout.lower(), r

    # Removing a container leaves the pod running.
    stop(cd, "web")
    r = cd.ctr("task", "exec", "--exec-id", "after", "cli", "cat", "/data/note", timeout=60)
    assert r.stdout == "from cli\n", r
    assert cd.tasks().get("p1") == "RUNNING", cd.tasks()
    stop(cd, "cli")
    stop(cd, "p1")
    assert_no_leaks(cd, ids=["p1", "web", "cli", "once"], timeout=30)
    log("pod p1: 1 VMM for 4 containers, localhost and volume shared, nothing left")


@test(timeout=600)
def sandbox_removed_under_its_container(cd):
    """Not what CRI does (it removes the containers first), but a user can:
    the container's processes end as if SIGKILLed, nothing is left."""
    img = import_busybox(cd)
    cd.ctr("run", "-d", *pod_args("p2", "sandbox"), img, "p2", *PAUSE, timeout=180)
    wait_for(lambda: cd.tasks().get("p2") == "RUNNING", 120, "sandbox p2 running", interval=0.2)
    cd.ctr("run", "-d", *pod_args("p2", "container"), img, "m1", *PAUSE, timeout=180)
    wait_for(lambda: cd.tasks().get("m1") == "RUNNING", 120, "m1 running", interval=0.2)
    stop(cd, "p2")
    wait_for(lambda: cd.tasks().get("m1") in (None, "STOPPED"), 60, "m1 to stop with its VM", interval=0.2)
    assert not vmms(cd), vmms(cd)
    stop(cd, "m1")
    assert_no_leaks(cd, ids=["p2", "m1"], timeout=30)


@test(timeout=300)
def container_without_its_sandbox(cd):
    img = import_busybox(cd)
    r = cd.ctr("run", "--rm", *pod_args("nosuch", "container"), img, "orphan", "true", timeout=120, check=False)
    assert r.returncode != 0, r
    assert "pod sandbox nosuch" in (r.stderr + r.stdout), r
    cd.ctr("container", "rm", "orphan", timeout=30, check=False)
    assert_no_leaks(cd, ids=["orphan"], timeout=30)


if __name__ == "__main__":
    main()
