#!/usr/bin/python3
"""test_jail.py - the VMM runs confined (src/vm/jail.h, README "VMM
confinement"): checked from the host on the running QEMU of a real
container. Its capabilities are the five the 9p server and slirp need, no
new privileges, QEMU's seccomp filter on; its root is the jail (a tmpfs with
/usr, the kernel and initrd, a few device nodes, /proc/self/fd and the VM's
shared directory), not the host's; binds staged after it started (a
container's rootfs and volumes, a pod's second container) reach it, read-only
where asked, and leave it when their container goes. And the containers
still work: a write through a bind mount shows up on the host.

Real runm CLI / containerd, shim, QEMU and guest (TCG here)."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import assert_no_leaks, import_busybox, main, test, wait_for  # noqa: E402
from pod import pod_args, stop, vmms  # noqa: E402
from bundle import Bundle, cli_test, runm  # noqa: E402

# CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_NET_BIND_SERVICE (jail.h: JAIL_CAPS)
KEPT_CAPS = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 10)
DEV_NODES = {"null", "zero", "full", "random", "urandom"}
PAUSE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


def status_fields(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")


def vmm_mounts(pid):
    """[(mount point, options, optional fields)] of the VMM's mount namespace."""
    res = []
    with open("/proc/%d/mountinfo" % pid) as f:
        for line in f:
            a = line.split()
            sep = a.index("-")
            res.append((a[4], a[5], a[6:sep]))
    return res


def share_of(pid):
    """The VM's shared directory: the path of -fsdev local,...,path=P."""
    argv = [a.decode() for a in cmdline(pid)]
    for i, a in enumerate(argv):
        if a == "-fsdev":
            for kv in argv[i + 1].split(","):
                if kv.startswith("path="):
                    return kv[5:]
    raise AssertionError("no -fsdev in %r" % argv)


def check_confined(pid, hidden=()):
    """Everything about the running VMM pid that says it is jailed; the
    host paths in hidden (the test's own dirs) must not be reachable."""
    argv = [a.decode() for a in cmdline(pid)]
    assert b"qemu" in cmdline(pid)[0], argv
    st = status_fields(pid)
    for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(st[k], 16) == KEPT_CAPS, "%s = %s, want %x" % (k, st[k], KEPT_CAPS)
    assert st["NoNewPrivs"] == "1", st["NoNewPrivs"]
    assert st["Seccomp"] == "2", st["Seccomp"]
    assert os.readlink("/proc/%d/ns/mnt" % pid) != os.readlink("/proc/self/ns/mnt"), "VMM in the host's mount namespace"

    root = "/proc/%d/root" % pid
    share = share_of(pid)
    kernel = argv[argv.index("-kernel") + 1]
    initrd = argv[argv.index("-initrd") + 1]
    # The host's secrets and the callers' state are not there.
    for p in ("/etc/shadow", "/etc/passwd", "/root", "/home", "/run/containerd", "/var/lib/containerd",
              "/work/shared", "/sys") + tuple(hidden):
        assert not os.path.lexists(root + p), "%s visible to the VMM" % p
    top = set(os.listdir(root))
    allowed = {"usr", "bin", "sbin", "lib", "lib64", "dev", "etc", "proc"}
    allowed |= {p.split("/")[1] for p in (share, kernel, initrd)}
    assert top <= allowed, "unexpected in the jail's /: %s" % sorted(top - allowed)
    assert os.path.islink(root + "/lib") == os.path.islink("/lib")
    assert set(os.listdir(root + "/dev")) - {"kvm"} == DEV_NODES, os.listdir(root + "/dev")
    assert ("kvm" in os.listdir(root + "/dev")) == ("kvm" in " ".join(argv)), "/dev/kvm without KVM"
    assert set(os.listdir(root + "/etc")) <= {"ld.so.cache", "resolv.conf"}, os.listdir(root + "/etc")
    assert os.listdir(root + "/proc") == ["self"] and os.listdir(root + "/proc/self") == ["fd"]
    # Outside /usr and the share: directories, the symlinks into /usr, and
    # only the files the VMM opens.
    files = set()
    for d, dirs, names in os.walk(root):
        rel = d[len(root):] or "/"
        if rel in ("/usr", share, "/proc/self/fd"):
            dirs[:] = []
            continue
        for n in names:
            p = os.path.join(rel, n)
            if not os.path.islink(os.path.join(d, n)):
                files.add(p)
    want = {kernel, initrd, "/etc/ld.so.cache"} | {"/dev/" + n for n in DEV_NODES}
    assert files - {"/dev/kvm", "/etc/resolv.conf"} == want, "files in the jail: %s" % sorted(files ^ want)
    # Read-only everywhere except the share (and what is bound into it) and the device nodes.
    for mp, opts, fields in vmm_mounts(pid):
        if mp == share:
            assert any(f.startswith("master:") for f in fields), "the share is not a slave: %s" % fields
        elif not mp.startswith(share + "/"):
            assert opts.split(",")[0] == "ro", "%s mounted %s in the jail" % (mp, opts)
    return share


@cli_test
def cli_container_runs_in_a_confined_vmm():
    with tempfile.TemporaryDirectory(prefix="runm-jail-vol-") as vol, \
            tempfile.TemporaryDirectory(prefix="runm-jail-ro-") as rodir:
        with open(os.path.join(rodir, "in.txt"), "w") as f:
            f.write("from the host\n")
        mounts = [{"destination": "/data", "type": "bind", "source": vol, "options": ["rbind", "rw"]},
                  {"destination": "/ro", "type": "bind", "source": rodir, "options": ["rbind", "ro"]}]
        script = ("cat /ro/in.txt > /data/copied; echo written > /data/out;"
                  " if echo x > /ro/nope 2>/dev/null; then echo RO-WRITABLE; fi;"
                  " while :; do sleep 1; done")
        with Bundle(["sh", "-c", script], mounts=mounts) as b:
            pidfile = os.path.join(b.path, "pid")
            with open(os.devnull, "wb") as null:
                runm("run", "--detach", "--pid-file", pidfile, "--bundle", b.path, "jailed", stdout=null,
                     stderr=null)
            try:
                vmm = int(open(pidfile).read())
                share = check_confined(vmm, hidden=(vol, rodir, b.path))
                # The container's work went through the VMM's 9p server to the host.
                wait_for(lambda: open(os.path.join(vol, "out")).read() == "written\n", 60, "/data/out on the host")
                assert open(os.path.join(vol, "copied")).read() == "from the host\n"
                assert not os.path.exists(os.path.join(rodir, "nope"))
                # The container's binds, staged after QEMU started, are in its
                # namespace: the read-only one read-only there too.
                mps = {mp: opts for mp, opts, _ in vmm_mounts(vmm)}
                ro = [mp for mp in mps if mp.startswith(share + "/jailed/") and mps[mp].startswith("ro")]
                assert len(ro) == 1, mps
                assert any(mp == share + "/jailed/rootfs" for mp in mps), mps
                r = runm("exec", "jailed", "--", "sh", "-c", "echo hi > /ro/x 2>&1; echo $?")
                assert r.stdout.strip() != "0", r
                # The jail's mount point on the host is an empty directory.
                jail = os.path.join(os.path.dirname(share), "jail")
                assert os.path.isdir(jail) and os.listdir(jail) == [], jail
            finally:
                runm("delete", "--force", "jailed", check=False)
            wait_for(lambda: not os.path.exists("/proc/%d" % vmm), 30, "VMM gone")


@test(timeout=600)
def pod_containers_bound_late_into_the_jail(cd):
    img = import_busybox(cd)
    vol = tempfile.mkdtemp(prefix="jail-vol-", dir=cd.tmp)
    ids = ["jp", "jc"]
    try:
        cd.ctr("run", "-d", *pod_args("jp", "sandbox"), img, "jp", *PAUSE, timeout=180)
        wait_for(lambda: cd.tasks().get("jp") == "RUNNING", 120, "sandbox jp running", interval=0.2)
        pids = vmms(cd)
        assert len(pids) == 1, pids
        vmm = pids[0]
        share = check_confined(vmm, hidden=(cd.tmp,))
        # A second container joins the running VM: its rootfs and volume are
        # bound on the host now, and must reach the jailed VMM.
        cd.ctr("run", "-d", *pod_args("jp", "container"), "--mount",
               "type=bind,src=%s,dst=/data,options=rbind:rw" % vol, img, "jc",
               "sh", "-c", "echo from the pod > /data/note; " + PAUSE[2], timeout=180)
        wait_for(lambda: cd.tasks().get("jc") == "RUNNING", 120, "jc running", interval=0.2)
        wait_for(lambda: os.path.exists(os.path.join(vol, "note")), 60, "the note on the host")
        assert open(os.path.join(vol, "note")).read() == "from the pod\n"
        assert vmms(cd) == [vmm]
        late = [mp for mp, _, _ in vmm_mounts(vmm) if mp.startswith(share + "/jc/")]
        assert late, "jc's binds not in the VMM's namespace"
        check_confined(vmm, hidden=(cd.tmp,))
        # Removed: its binds leave the VMM's namespace too (nothing pinned).
        stop(cd, "jc")
        wait_for(lambda: not [mp for mp, _, _ in vmm_mounts(vmm) if mp.startswith(share + "/jc")], 30,
                 "jc's binds gone from the VMM's namespace")
        assert cd.tasks().get("jp") == "RUNNING", cd.tasks()
    finally:
        for cid in reversed(ids):
            stop(cd, cid)
    assert_no_leaks(cd, ids=ids, timeout=30)


if __name__ == "__main__":
    main()
