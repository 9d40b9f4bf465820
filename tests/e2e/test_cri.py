#!/usr/bin/python3
"""test_cri.py - Kubernetes pods through containerd's CRI plugin, the way a
kubelet makes them, with runm as the RuntimeClass handler.

The handler is $RUNM_CRI_HANDLER (default runm; runc checks the harness
itself). containerd, its CNI bridge and the pods' network namespaces live in
namespaces the test creates (cri.CriContainerd): nothing reaches the machine.

A pod of two containers: A serves HTTP on 127.0.0.1:8080 and B fetches it
over the pod's loopback; both share a host directory at /data (an emptyDir);
ExecSync gives stdout and exit codes; a container that exits shows
CONTAINER_EXITED with its code; a third container comes and goes while the
others keep answering; with runm, one VMM serves the whole pod; StopPodSandbox
and RemovePodSandbox leave no process, mount, bundle or network namespace.

Needs root, containerd 1.6, containernetworking-plugins, protobuf-compiler,
python3-protobuf and python3-grpcio (tools/deps.sh); runs with /usr/bin/python3.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import BUSYBOX_REF, leaks, log, main, test, wait_for  # noqa: E402
from cri import PAUSE_REF, CriContainerd, api  # noqa: E402

HANDLER = os.environ.get("RUNM_CRI_HANDLER", "runm")
# Under TCG a VM boots in several seconds, more with other tests running.
START = 240 if HANDLER == "runm" else 60
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
PAGE = "hello from container a"


def out(r):
    return r.stdout.decode(errors="replace")


def exec_ok(cd, cid, cmd, timeout=60):
    """ExecSync that must exit 0; returns its stdout (text)."""
    r = cd.exec_sync(cid, cmd, timeout=timeout)
    assert r.exit_code == 0, "exec %s in %s: exit %d, stdout %r, stderr %r" % (
        cmd, cid[:12], r.exit_code, r.stdout, r.stderr)
    return out(r)


def spec_summary(cd, cid):
    """The annotations and namespaces of cid's OCI spec (its bundle's config.json)."""
    with open(os.path.join(cd.bundle(cid), "config.json")) as f:
        spec = json.load(f)
    return {"annotations": spec.get("annotations", {}),
            "namespaces": spec.get("linux", {}).get("namespaces", [])}


def log_spec(cd, what, cid):
    """Log what CRI gives the shim in cid's spec (annotations, namespaces)."""
    log("%s %s config.json:\n%s" % (what, cid[:12], json.dumps(spec_summary(cd, cid), indent=1,
                                                             sort_keys=True)))


def nothing_left(cd):
    """What is left of pods after StopPodSandbox + RemovePodSandbox (empty: nothing)."""
    res = list(leaks(cd))
    res += ["process in containerd's mount namespace: %d %s" % (p, c[:200]) for p, c in cd.procs_in_mntns()]
    res += ["netns left: /run/netns/%s" % n for n in cd.netns_left()]
    res += ["private mount left: %s" % m for m in cd.private_mounts()]
    res += ["pod left: %s" % p.id for p in cd.list_pods()]
    res += ["container left: %s" % c.id for c in cd.list_containers()]
    return res


@test(containerd=CriContainerd, timeout=300)
def cri_version_and_images(cd):
    v = cd.cri.rt("Version", version="v1")
    log("CRI: %s %s, API %s" % (v.runtime_name, v.runtime_version, v.runtime_api_version))
    assert v.runtime_name == "containerd" and v.runtime_api_version == "v1", v
    tags = {t for i in cd.list_images() for t in i.repo_tags}
    assert {PAUSE_REF, BUSYBOX_REF} <= tags, "CRI's images: %s" % sorted(tags)
    assert cd.image_status("docker.io/runm/not-there:1") is None


@test(containerd=CriContainerd, timeout=1500)
def cri_pod_two_containers(cd):
    a = api()
    vol = os.path.join(cd.tmp, "vol")
    os.makedirs(vol)
    pod = cd.run_pod(HANDLER, "web", timeout=START)
    st = cd.pod_status(pod)
    assert st.state == a.SANDBOX_READY, st
    log("pod IP %s" % st.network.ip)
    log_spec(cd, "sandbox", pod)
    mounts = [(vol, "/data")]
    ca = cd.run_container(pod, "a", BUSYBOX_REF, [
        "sh", "-c", "mkdir -p /www && echo '%s' > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"
        % PAGE], mounts=mounts, timeout=START)
    cb = cd.run_container(pod, "b", BUSYBOX_REF, SLEEPER, mounts=mounts, timeout=START)

    log_spec(cd, "container a", ca)

    # (a) B reaches A on the pod's loopback.
    body = wait_for(lambda: exec_ok(cd, cb, ["wget", "-qO-", "http://127.0.0.1:8080/index.html"],
                                    timeout=30), 60, "b to fetch a's page")
    assert body == PAGE + "\n", "b got %r" % body
    # ... and both see the same /data.
    exec_ok(cd, ca, ["sh", "-c", "echo written-by-a > /data/a.txt"])
    assert exec_ok(cd, cb, ["cat", "/data/a.txt"]) == "written-by-a\n"
    exec_ok(cd, cb, ["sh", "-c", "echo written-by-b > /data/b.txt"])
    assert exec_ok(cd, ca, ["cat", "/data/b.txt"]) == "written-by-b\n"
    with open(os.path.join(vol, "b.txt")) as f:
        assert f.read() == "written-by-b\n"

    # (b) ExecSync: stdout and exit code.
    r = cd.exec_sync(cb, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (out(r), r.stderr, r.exit_code) == ("out\n", b"err\n", 3), r

    # (e) one VMM for the pod.
    if HANDLER == "runm":
        vmms = cd.vmms()
        assert len(vmms) == 1, "%d VMMs for one pod: %s" % (len(vmms), vmms)

    # (c) a container that exits; a third one that comes and goes.
    cx = cd.create_container(pod, "exits", BUSYBOX_REF, ["sh", "-c", "exit 7"], timeout=START)
    cd.start_container(cx, timeout=START)
    sx = wait_for(lambda: (lambda s: s if s.state == a.CONTAINER_EXITED else None)(cd.status(cx)),
                  START, "container 'exits' to exit")
    assert sx.exit_code == 7, sx
    log("exited container: state %s exit_code %d reason %r" % (
        a.ContainerState.Name(sx.state), sx.exit_code, sx.reason))
    cd.remove_container(cx)

    cc = cd.run_container(pod, "c", BUSYBOX_REF, SLEEPER, timeout=START)
    assert exec_ok(cd, cc, ["wget", "-qO-", "http://127.0.0.1:8080/index.html"]) == PAGE + "\n"
    if HANDLER == "runm":
        vmms = cd.vmms()
        assert len(vmms) == 1, "%d VMMs for one pod of three containers: %s" % (len(vmms), vmms)
    cd.stop_container(cc, timeout=5)
    assert cd.status(cc).state == a.CONTAINER_EXITED
    cd.remove_container(cc)
    ids = {c.id for c in cd.list_containers(pod)}
    assert ids == {ca, cb}, "containers after removing c: %s" % ids
    assert exec_ok(cd, cb, ["wget", "-qO-", "http://127.0.0.1:8080/index.html"]) == PAGE + "\n"
    assert exec_ok(cd, ca, ["cat", "/data/b.txt"]) == "written-by-b\n"

    # (d) StopPodSandbox (containers still running) + RemovePodSandbox: nothing left.
    cd.stop_pod(pod)
    assert cd.pod_status(pod).state == a.SANDBOX_NOTREADY
    for cid in (ca, cb):
        assert cd.status(cid).state == a.CONTAINER_EXITED, cd.status(cid)
    cd.remove_pod(pod)
    try:
        wait_for(lambda: not nothing_left(cd), 30, "nothing left of the pod")
    except TimeoutError:
        raise AssertionError("left after RemovePodSandbox:\n  " + "\n  ".join(nothing_left(cd)))



@test(containerd=CriContainerd, timeout=900)
def cri_container_oom_killed(cd):
    """A container over its own memory limit is killed by the OOM killer of
    its cgroup (in the guest, under runm), reported as OOMKilled, while the
    pod and its other container keep running."""
    a = api()
    pod = cd.run_pod(HANDLER, "oom", timeout=START)
    keep = cd.run_container(pod, "keep", BUSYBOX_REF, SLEEPER, timeout=START)
    # tail keeps the current line of /dev/zero, which never ends: it grows until killed.
    hog = cd.create_container(pod, "hog", BUSYBOX_REF, ["tail", "-n", "1", "/dev/zero"],
                              memory_limit=48 << 20, timeout=START)
    cd.start_container(hog, timeout=START)
    st = wait_for(lambda: (lambda x: x if x.state == a.CONTAINER_EXITED else None)(cd.status(hog)),
                  START, "the memory hog to be killed")
    log("hog: exit_code %d reason %r" % (st.exit_code, st.reason))
    assert st.exit_code == 137 and st.reason == "OOMKilled", st
    assert exec_ok(cd, keep, ["echo", "still here"]) == "still here\n"
    cd.stop_pod(pod)
    cd.remove_pod(pod)
    try:
        wait_for(lambda: not nothing_left(cd), 30, "nothing left of the pod")
    except TimeoutError:
        raise AssertionError("left after RemovePodSandbox:\n  " + "\n  ".join(nothing_left(cd)))


if __name__ == "__main__":
    main()
