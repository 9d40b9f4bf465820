#!/usr/bin/python3
"""test_mounts.py - bind mounts from config.json, end to end on real VMs,
through the runm CLI and through containerd + ctr.

Each VM has one 9p share (<state>/shared), into which the host bind-mounts
the container's rootfs and bind sources at create (late binding; a file
alone in a directory of its own). Checked here: writes land on
the host with the writer's owner, read-only binds refuse writes, the container
reaches nothing but what was bound (no sibling, no symlink out of the share,
not the agent's /run/runm/mounts, not even after a chroot escape), single-file
binds, clear errors at create for bad sources with nothing left behind, and a
named volume (a host directory) shared by two containers one after the other.
After every test: no VMM, no container dir, no mount under the test dirs."""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import RUNM, assert_no_leaks, import_busybox, main, test, wait_for  # noqa: E402
import lib  # noqa: E402
from bundle import Bundle, cli_cleanup, cli_leaks, cli_test, runm  # noqa: E402

MARKER = "SIBLING-SECRET-7f3a"  # only in files the container must not reach
EXTRA_APPLETS = ["find", "grep", "cp"]
# containerd's default capability set: enough for a chroot escape attempt
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

# A classic chroot(2) escape: chroot into a subdirectory without chdir, climb
# "..", chroot("."), then list what the escaped root holds.
ESCAPE_C = r"""
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
static void ls(const char *p)
{
	DIR *d = opendir(p);
	struct dirent *e;
	if (!d) { printf("%s: unreachable\n", p); return; }
	printf("%s:", p);
	while ((e = readdir(d))) printf(" %s", e->d_name);
	printf("\n");
	closedir(d);
}
int main(void)
{
	mkdir("/tmp/esc", 0755);
	if (chroot("/tmp/esc") < 0) { perror("chroot"); return 1; }
	for (int i = 0; i < 64; i++) if (chdir("..") < 0) break;
	if (chroot(".") < 0) { perror("chroot ."); return 1; }
	ls("/");
	ls("/run/runm/mounts");
	return 0;
}
"""


def bind(src, dst, ro=False):
    return {"destination": dst, "type": "bind", "source": src, "options": ["rbind", "ro" if ro else "rw"]}


def host_mounts_under(path):
    return lib._mounts_under(path)


@contextlib.contextmanager
def hostdir():
    """A temp dir on the host holding the bind sources: `share/` (what gets
    bound, with a.txt), a sibling file and dir next to it holding MARKER, and
    symlinks inside share/ pointing out at them. After the block: nothing is
    mounted under it (runm never mounts on the host for binds), then removed."""
    d = tempfile.mkdtemp(prefix="runm-mnt-")
    try:
        share = os.path.join(d, "share")
        os.makedirs(share)
        os.makedirs(os.path.join(d, "sibdir"))
        for p in ("sibling.txt", "sibdir/inner.txt"):
            with open(os.path.join(d, p), "w") as f:
                f.write(MARKER + "\n")
        with open(os.path.join(share, "a.txt"), "w") as f:
            f.write("from the host\n")
        os.symlink(os.path.join(d, "sibling.txt"), os.path.join(share, "abs-link"))
        os.symlink("../sibling.txt", os.path.join(share, "rel-link"))
        os.symlink(os.path.join(d, "sibdir"), os.path.join(share, "dir-link"))
        yield d
        left = host_mounts_under(d)
        assert not left, "mounts left under %s: %s" % (d, left)
    finally:
        if not host_mounts_under(d):
            shutil.rmtree(d, ignore_errors=True)


def snapshot(d):
    """{relative path: (mode, uid, gid, content)} of every file under d."""
    res = {}
    for top, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(top, n)
            st = os.lstat(p)
            data = None
            if os.path.islink(p):
                data = os.readlink(p)
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    data = f.read()
            res[os.path.relpath(p, d)] = (st.st_mode, st.st_uid, st.st_gid, data)
    return res


def add_applets(b, names=EXTRA_APPLETS):
    for a in names:
        p = os.path.join(b.path, "rootfs", "bin", a)
        if not os.path.lexists(p):
            os.symlink("busybox", p)


def with_caps(b, caps=DEFAULT_CAPS):
    path = os.path.join(b.path, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    b.write(cfg)


def add_escape_tool(b):
    """Compile the chroot escape into the bundle's rootfs as /escape."""
    src = os.path.join(b.path, "escape.c")
    with open(src, "w") as f:
        f.write(ESCAPE_C)
    lib.run(["cc", "-static", "-O2", "-o", os.path.join(b.path, "rootfs", "escape"), src], timeout=60)


# A search of everything the container can reach (not /proc, /sys, /dev) for
# the marker, by content and by name; prints "FOUND ..." lines if any.
SEARCH = ('find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -type f -print 2>/dev/null'
          ' | while read -r f; do grep -q %s "$f" 2>/dev/null && echo "FOUND content $f"; done;'
          ' find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o'
          ' \\( -name sibling.txt -o -name sibdir -o -name inner.txt \\) -print 2>/dev/null'
          ' | sed "s/^/FOUND name /"; echo search done') % MARKER


def run_in(mounts, script, cid, uid=0, gid=0, check=True, prep=None):
    with Bundle(["sh", "-c", script], mounts=mounts, uid=uid, gid=gid) as b:
        add_applets(b)
        if prep:
            prep(b)
        return runm("run", "--bundle", b.path, cid, check=check)


# ---------------------------------------------------------------- runm CLI

@cli_test
def cli_write_appears_on_host():
    with hostdir() as d:
        share = os.path.join(d, "share")
        r = run_in([bind(share, "/data")],
                   "cat /data/a.txt; printf 'written inside\\n' > /data/out.txt; mkdir /data/sub;"
                   " echo deep > /data/sub/f; dd if=/dev/zero of=/data/zero bs=64k count=16 2>/dev/null;"
                   " echo more >> /data/a.txt; id -u", "wr-root")
        assert r.stdout == "from the host\n0\n", r
        with open(os.path.join(share, "out.txt")) as f:
            assert f.read() == "written inside\n"
        with open(os.path.join(share, "sub", "f")) as f:
            assert f.read() == "deep\n"
        with open(os.path.join(share, "a.txt")) as f:
            assert f.read() == "from the host\nmore\n"
        assert os.path.getsize(os.path.join(share, "zero")) == 1 << 20
        st = os.stat(os.path.join(share, "out.txt"))
        assert (st.st_uid, st.st_gid) == (0, 0), "root inside should own as root on the host: %s" % (st,)
        assert os.path.isdir(os.path.join(share, "sub"))

        # a non-root user inside: the host file belongs to that uid/gid
        os.chmod(share, 0o777)
        r = run_in([bind(share, "/data")], "echo by-user > /data/user.txt; id -u; id -g", "wr-user",
                   uid=1000, gid=1000)
        assert r.stdout == "1000\n1000\n", r
        st = os.stat(os.path.join(share, "user.txt"))
        assert (st.st_uid, st.st_gid) == (1000, 1000), "owner on the host: %d:%d" % (st.st_uid, st.st_gid)
        with open(os.path.join(share, "user.txt")) as f:
            assert f.read() == "by-user\n"

        # and a file the host changes between runs is seen fresh
        with open(os.path.join(share, "a.txt"), "w") as f:
            f.write("changed on the host\n")
        r = run_in([bind(share, "/data")], "cat /data/a.txt", "wr-again")
        assert r.stdout == "changed on the host\n", r


@cli_test
def cli_readonly_bind_refuses_writes():
    with hostdir() as d:
        share = os.path.join(d, "share")
        before = snapshot(d)
        script = ("cat /data/a.txt;"
                  " echo x > /data/a.txt || echo WRITE-FAILED;"
                  " touch /data/new || echo CREATE-FAILED;"
                  " rm /data/a.txt || echo RM-FAILED;"
                  " mkdir /data/dir || echo MKDIR-FAILED;"
                  " grep ' /data ' /proc/mounts")
        r = run_in([bind(share, "/data", ro=True)], script, "ro1")
        out = r.stdout.splitlines()
        assert out[:5] == ["from the host", "WRITE-FAILED", "CREATE-FAILED", "RM-FAILED", "MKDIR-FAILED"], r
        assert out[5].split()[3].split(",")[0] == "ro", r
        assert "Read-only file system" in r.stderr, r
        assert r.stderr.count("Read-only file system") == 4, r
        assert snapshot(d) == before, "the host dir changed under a read-only bind"

        # ro and rw binds of two dirs side by side in one container
        os.makedirs(os.path.join(d, "rw"))
        r = run_in([bind(share, "/ro", ro=True), bind(os.path.join(d, "rw"), "/rw")],
                   "cp /ro/a.txt /rw/copy && echo x > /ro/a.txt", "ro2", check=False)
        assert r.returncode != 0 and "Read-only file system" in r.stderr, r
        with open(os.path.join(d, "rw", "copy")) as f:
            assert f.read() == "from the host\n"
        with open(os.path.join(share, "a.txt")) as f:
            assert f.read() == "from the host\n"


@cli_test
def cli_only_the_bound_dir_is_visible():
    with hostdir() as d:
        share = os.path.join(d, "share")
        script = ("ls -a /data | tr '\\n' ' '; echo;"
                  " cat /data/abs-link 2>&1; cat /data/rel-link 2>&1; ls /data/dir-link/ 2>&1;"
                  " ls /data/.. | tr '\\n' ' '; echo;"
                  " ls /run/runm/mounts 2>&1;"
                  " cat /proc/mounts | grep -c runm;" + SEARCH)
        r = run_in([bind(share, "/data")], script, "vis1")
        out = r.stdout
        lines = out.splitlines()
        assert lines[0].split() == [".", "..", "a.txt", "abs-link", "dir-link", "rel-link"], r
        # symlinks are resolved inside the container: they lead nowhere, not to the host
        assert MARKER not in out, r
        assert "FOUND" not in out and "search done" in out, r
        # /data/.. is the container's root, not the host dir's parent
        assert "bin" in lines[4].split() and "sibling.txt" not in lines[4], r
        assert "No such file or directory" in lines[5], r  # the agent's share dir is not visible
        assert lines[6] == "0", r                       # nor named in the container's mount table

        # a chroot escape (with CAP_SYS_CHROOT) lands on the container's rootfs,
        # not on the VM's root where the shares are mounted
        def prep(b):
            with_caps(b)
            add_escape_tool(b)
        r = run_in([bind(share, "/data")], "/escape", "vis2", prep=prep)
        assert "/run/runm/mounts: unreachable" in r.stdout, r
        assert "escape" in r.stdout.splitlines()[0], r  # the escaped root is still the rootfs


@cli_test
def cli_single_file_bind():
    with hostdir() as d:
        conf = os.path.join(d, "app.conf")
        with open(conf, "w") as f:
            f.write("key=value\n")
        script = ("cat /etc/app.conf; echo appended >> /etc/app.conf;"
                  " ls -a /etc | tr '\\n' ' '; echo;"
                  " ls /etc/app.conf/.. 2>&1; ls /run/runm/mounts 2>&1;"
                  " stat -c %F /etc/app.conf;" + SEARCH)
        r = run_in([bind(conf, "/etc/app.conf")], script, "file1")
        lines = r.stdout.splitlines()
        assert lines[0] == "key=value", r
        etc = lines[1].split()
        assert "app.conf" in etc and "passwd" in etc, r
        assert not {"sibling.txt", "sibdir", "share"} & set(etc), \
            "the bound file's siblings are visible: %r" % lines[1]
        assert "Not a directory" in lines[2], r
        assert "No such file or directory" in lines[3], r
        assert lines[4] == "regular file", r
        assert MARKER not in r.stdout and "FOUND" not in r.stdout and "search done" in r.stdout, r
        with open(conf) as f:
            assert f.read() == "key=value\nappended\n"

        # read-only single file: refused, host unchanged
        before = snapshot(d)
        r = run_in([bind(conf, "/etc/app.conf", ro=True)],
                   "cat /etc/app.conf; echo x >> /etc/app.conf", "file2", check=False)
        assert r.returncode != 0 and r.stdout == "key=value\nappended\n", r
        assert "Read-only file system" in r.stderr, r
        assert snapshot(d) == before

        # a file and its own directory bound at once, one ro one rw: independent shares
        r = run_in([bind(conf, "/ro.conf", ro=True), bind(os.path.join(d, "share"), "/data")],
                   "echo ok > /data/w && cat /ro.conf && ls / | grep -c sibling", "file3", check=False)
        assert r.stdout.startswith("key=value\nappended\n0"), r
        with open(os.path.join(d, "share", "w")) as f:
            assert f.read() == "ok\n"

        # the chroot escape does not reach the shared parent directory either
        def prep(b):
            with_caps(b)
            add_escape_tool(b)
        r = run_in([bind(conf, "/etc/app.conf")], "/escape", "file4", prep=prep)
        assert "/run/runm/mounts: unreachable" in r.stdout and MARKER not in r.stdout, r


def mount_options(mp):
    """The per-mount options (mountinfo's 6th field) of the mount on top at mp, or None."""
    res = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].encode().decode("unicode_escape") == mp:
                res = fields[5].split(",")
    return res


@cli_test
def cli_vm_shares_one_dir_with_the_binds_late():
    """Late binding: the VM has one 9p share, <state>/shared, into which the
    host bind-mounts the container's rootfs and bind sources at create. A
    single file is bound alone in a directory of its own (never the file's
    own directory); read-only binds are read-only on the host side too (the
    VMM cannot write them); after delete nothing stays mounted under the
    state dir."""
    with hostdir() as d:
        src = os.path.join(d, "share", "a.txt")
        ro_dir = os.path.join(d, "sibdir")
        with Bundle(["sleep", "1000"], mounts=[bind(src, "/etc/a.txt", ro=True), bind(ro_dir, "/ro", ro=True),
                                             bind(os.path.join(d, "share"), "/rw")]) as b:
            pidfile = os.path.join(b.path, "vmm.pid")
            with open(os.devnull, "wb") as null:
                runm("run", "--detach", "--pid-file", pidfile, "--bundle", b.path, "fileshare",
                     stdout=null, stderr=null)
            with open("/proc/%s/cmdline" % open(pidfile).read().strip(), "rb") as f:
                args = f.read().decode().split("\0")
            paths = [a.split("path=", 1)[1].split(",")[0] for a in args if a.startswith("local,") and "path=" in a]
            assert len(paths) == 1 and paths[0].endswith("/shared"), paths
            shared = paths[0]
            state = os.path.dirname(shared)
            cdir = os.path.join(shared, "fileshare")
            assert sorted(os.listdir(cdir)) == ["m0", "m1", "m2", "rootfs"], os.listdir(cdir)
            assert os.listdir(os.path.join(cdir, "m0")) == ["a.txt"], os.listdir(os.path.join(cdir, "m0"))
            # read-only on the host side: mountinfo says so, and writes get EROFS
            for mp in (os.path.join(cdir, "m0", "a.txt"), os.path.join(cdir, "m1")):
                opts = mount_options(mp)
                assert opts and opts[0] == "ro", (mp, opts)
            for target in (os.path.join(cdir, "m0", "a.txt"), os.path.join(cdir, "m1", "new")):
                try:
                    with open(target, "a") as f:
                        f.write("x")
                    raise AssertionError("host-side write to %s went through" % target)
                except OSError as e:
                    assert e.errno == 30, (target, e)  # EROFS
            assert mount_options(os.path.join(cdir, "m2"))[0] == "rw"
            assert mount_options(os.path.join(cdir, "rootfs"))[0] == "rw"  # crun makes mount points in it
            assert runm("exec", "fileshare", "cat", "/etc/a.txt").stdout == open(src).read()
            assert runm("exec", "fileshare", "cat", "/ro/inner.txt").stdout == MARKER + "\n"
            runm("delete", "--force", "fileshare")
            assert not host_mounts_under(state), "mounts left: %s" % host_mounts_under(state)
            assert not os.path.exists(state), os.listdir(state)


@cli_test
def cli_crash_leaves_nothing_mounted():
    """The monitor and its VMM killed (a crash): `runm delete` unmounts what
    was bound into the VM's shared dir (stage_release_all) before removing
    the state dir, and the host's files are untouched."""
    with hostdir() as d:
        share = os.path.join(d, "share")
        before = snapshot(d)
        with Bundle(["sleep", "1000"], mounts=[bind(share, "/data", ro=True),
                                             bind(os.path.join(share, "a.txt"), "/a.txt")]) as b:
            pidfile = os.path.join(b.path, "vmm.pid")
            with open(os.devnull, "wb") as null:
                runm("run", "--detach", "--pid-file", pidfile, "--bundle", b.path, "crash1",
                     stdout=null, stderr=null)
            vmm = int(open(pidfile).read().strip())
            with open("/proc/%d/cmdline" % vmm, "rb") as f:
                args = f.read().decode().split("\0")
            shared = [a.split("path=", 1)[1].split(",")[0] for a in args if a.startswith("local,")][0]
            state = os.path.dirname(shared)
            assert len(host_mounts_under(state)) >= 4, host_mounts_under(state)
            with open("/proc/%d/stat" % vmm) as f:
                monitor = int(f.read().rsplit(")", 1)[1].split()[1])
            os.kill(monitor, 9)
            os.kill(vmm, 9)
            wait_for(lambda: not os.path.exists("/proc/%d" % vmm) or
                     open("/proc/%d/stat" % vmm).read().rsplit(")", 1)[1].split()[0] == "Z", 30, "the VMM to die")
            assert host_mounts_under(state), "nothing mounted before delete: the crash was not one"
            runm("delete", "--force", "crash1", check=False)
            assert not host_mounts_under(state), "mounts left: %s" % host_mounts_under(state)
            assert not os.path.exists(state), os.listdir(state)
        assert snapshot(d) == before


def assert_cli_clean(cid):
    assert not cli_leaks(), cli_leaks()
    assert cid not in runm("list").stdout


@cli_test
def cli_bad_sources_fail_at_create():
    with hostdir() as d:
        share = os.path.join(d, "share")
        os.symlink(share, os.path.join(d, "link-to-share"))
        os.symlink("/etc", os.path.join(d, "link-out"))
        os.symlink("/etc/hostname", os.path.join(d, "file-link-out"))
        cases = [
            ("missing", os.path.join(d, "no-such-dir"), ["no-such-dir", "No such file or directory"]),
            ("relative", "share", ["`share`", "not an absolute path"]),
            ("dotdot", share + "/../sibdir", ["resolves to", d + "/sibdir"]),
            ("symlink", os.path.join(d, "link-out"), ["link-out", "resolves to `/etc`"]),
            ("filelink", os.path.join(d, "file-link-out"), ["file-link-out", "resolves to"]),
            ("inner", os.path.join(d, "link-to-share", "a.txt"), ["link-to-share/a.txt", "resolves to"]),
            ("nosrc", None, ["has no source"]),
        ]
        for i, (name, src, needles) in enumerate(cases):
            m = bind(src or "/", "/data")
            if src is None:
                del m["source"]
            cid = "bad-" + name
            with Bundle(["sh", "-c", "echo STARTED"], mounts=[m]) as b:
                r = runm("run", "--bundle", b.path, cid, check=False, timeout=60)
            assert r.returncode != 0 and "STARTED" not in r.stdout, (name, r)
            for n in needles:
                assert n in r.stderr, (name, n, r.stderr)
            assert len(r.stderr.strip().splitlines()) <= 2, (name, r.stderr)  # one clear message
            assert_cli_clean(cid)


@cli_test
def cli_spelled_differently_but_no_symlink_is_accepted():
    """A trailing slash, "//" or "/./" name the same directory: not refused as
    if a symlink were on the way ("resolves to ...: give the real path")."""
    with hostdir() as d:
        r = run_in([bind(d + "/share/", "/a"), bind(d + "//share/./", "/b", ro=True)],
                   "cat /a/a.txt /b/a.txt", "spelled")
        assert r.stdout == "from the host\nfrom the host\n", r


# ---------------------------------------------------------------- volumes

@test(debug=False, timeout=400)
def volume_shared_by_two_containers(cd):
    """A named volume is a host directory (say /var/lib/runm/volumes/NAME, here
    under a temp dir) bind-mounted: what one container writes, the next reads,
    through runm and through ctr."""
    img = import_busybox(cd)
    with hostdir() as d:
        vol = os.path.join(d, "volumes", "pgdata")
        os.makedirs(vol)
        try:
            # container 1 writes and stays up; container 2 reads while it runs
            with Bundle(["sh", "-c", "echo row1 > /vol/table; sync; echo ready > /vol/flag; sleep 1000"],
                        mounts=[bind(vol, "/vol")]) as b1:
                with open(os.devnull, "wb") as null:
                    runm("run", "--detach", "--bundle", b1.path, "vol-writer", stdout=null, stderr=null)
                wait_for(lambda: os.path.exists(os.path.join(vol, "flag")), 120, "writer's flag")
                with Bundle(["sh", "-c", "cat /var/db/table; echo row2 >> /var/db/table"],
                            mounts=[bind(vol, "/var/db")]) as b2:
                    r = runm("run", "--bundle", b2.path, "vol-reader")
                assert r.stdout == "row1\n", r
                # the running writer sees the second container's write
                r = runm("exec", "vol-writer", "cat", "/vol/table")
                assert r.stdout == "row1\nrow2\n", r
                runm("delete", "--force", "vol-writer")
            # a third container, through containerd, after both are gone
            r = cd.ctr("run", "--rm", "--runtime", RUNM, "--mount",
                       "type=bind,src=%s,dst=/data,options=rbind:ro" % vol, img, "vol-ctr",
                       "cat", "/data/table", timeout=120)
            assert r.stdout == "row1\nrow2\n", r
            wait_for(lambda: not cli_leaks(), 10, "no CLI leftovers: %s" % cli_leaks())
            assert_no_leaks(cd, ids=["vol-ctr"])
        finally:
            cli_cleanup()


# ---------------------------------------------------------------- containerd

@test(debug=False, timeout=400)
def ctr_bind_mounts(cd):
    img = import_busybox(cd)
    with hostdir() as d:
        share = os.path.join(d, "share")
        ro = os.path.join(d, "sibdir")
        conf = os.path.join(d, "app.conf")
        with open(conf, "w") as f:
            f.write("key=value\n")
        before_ro = snapshot(ro)
        script = ("cat /data/a.txt; echo from-ctr > /data/out.txt; id -u;"
                  " echo x > /ro/inner.txt || echo RO-REFUSED;"
                  " cat /etc/app.conf; ls -a /etc | grep -c sibling;"
                  " cat /data/abs-link /data/rel-link 2>&1 | grep -c SIBLING;"
                  " ls /data/.. | grep -c -e sibling -e share;"
                  " ls /run/runm/mounts 2>&1")
        r = cd.ctr("run", "--rm", "--runtime", RUNM,
                   "--mount", "type=bind,src=%s,dst=/data,options=rbind:rw" % share,
                   "--mount", "type=bind,src=%s,dst=/ro,options=rbind:ro" % ro,
                   "--mount", "type=bind,src=%s,dst=/etc/app.conf,options=rbind:ro" % conf,
                   img, "bind1", "sh", "-c", script, timeout=120, check=False)
        lines = r.stdout.splitlines()
        assert lines[:3] == ["from the host", "0", "RO-REFUSED"], r
        assert "Read-only file system" in r.stderr, r
        assert lines[3:7] == ["key=value", "0", "0", "0"], r
        assert "No such file or directory" in lines[7], r
        with open(os.path.join(share, "out.txt")) as f:
            assert f.read() == "from-ctr\n"
        st = os.stat(os.path.join(share, "out.txt"))
        assert (st.st_uid, st.st_gid) == (0, 0), st
        assert snapshot(ro) == before_ro
        assert not host_mounts_under(d)
        assert_no_leaks(cd, ids=["bind1"])


@test(debug=False, timeout=400)
def ctr_missing_source_fails_cleanly(cd):
    img = import_busybox(cd)
    with hostdir() as d:
        missing = os.path.join(d, "no-such-dir")
        r = cd.ctr("run", "--rm", "--runtime", RUNM,
                   "--mount", "type=bind,src=%s,dst=/data,options=rbind:rw" % missing,
                   img, "badm", "echo", "STARTED", timeout=120, check=False)
        assert r.returncode != 0 and "STARTED" not in r.stdout, r
        assert missing in r.stderr and "No such file or directory" in r.stderr, r
        assert "badm" not in cd.tasks(), cd.tasks()
        cd.ctr("container", "rm", "badm", timeout=30, check=False)
        assert_no_leaks(cd, ids=["badm"], timeout=10)
        # a symlink source pointing outside, too
        os.symlink("/etc", os.path.join(d, "link-out"))
        r = cd.ctr("run", "--rm", "--runtime", RUNM,
                   "--mount", "type=bind,src=%s,dst=/data,options=rbind:rw" % os.path.join(d, "link-out"),
                   img, "badl", "echo", "STARTED", timeout=120, check=False)
        assert r.returncode != 0 and "STARTED" not in r.stdout and "resolves to `/etc`" in r.stderr, r
        cd.ctr("container", "rm", "badl", timeout=30, check=False)
        assert_no_leaks(cd, ids=["badl"], timeout=10)


if __name__ == "__main__":
    main()
