"""docker.py - a private Docker 20.10 daemon for the Docker e2e tests and
bench/docker, with the runtime under test as a parameter.

    import sys, os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from docker import *

    @dtest
    def runs(dk):                 # dk: this file's Dockerd, started on first use
        assert dk.docker("run", "--rm", IMAGE, "true").returncode == 0

    if __name__ == "__main__":
        dmain()

RUNM_DOCKER_RUNTIME=runm (default) or runc picks the runtime under test. With
runm, dockerd gets `--add-runtime runm=build/bin/runm`; the runtime under test
is dockerd's `--default-runtime` (classic `docker build` and compose use it).

Nothing touches the machine's own network: dockerd (and its managed
containerd, its shims, the containers and docker-proxy) live in a network
namespace made here (runm-dk-<pid>), entered with `nsenter --net=` (not `ip
netns exec`: it remounts /sys and dockerd then finds no devices cgroup).
dockerd has its own --data-root, --exec-root, --pidfile, socket and config file
under a temp dir, so the host's /etc/docker/daemon.json is never read. The
image runm-busybox:test is `docker import`ed from a busybox-static rootfs
tarball cached under build/e2e-cache.

One dockerd per test file: each @dtest runs against it, then the test fails on
leftovers (containers, shims, runtime state dirs, bundles, new mounts, veths,
networks, volumes, VMs) and they are force-cleaned. dmain() registers a last
test that stops dockerd and checks that nothing at all is left (processes,
mounts, the netns).
"""
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import BIN, BUILD, CmdError, log, run, test, wait_for  # noqa: E402,F401

__all__ = ["RUNTIME", "IS_RUNM", "IMAGE", "UPSTREAM_DNS", "DOCKER", "COMPOSE", "Dockerd", "dtest", "runm_only",
           "dmain", "daemon", "host_kernel", "expected_kernel", "log", "run", "wait_for",
           "CmdError", "ns_fetch"]

RUNTIME = os.environ.get("RUNM_DOCKER_RUNTIME", "runm")
if RUNTIME not in ("runm", "runc"):
    raise SystemExit("RUNM_DOCKER_RUNTIME must be runm or runc, not %r" % RUNTIME)
IS_RUNM = RUNTIME == "runm"
RUNM_BIN = os.path.join(BIN, "runm")
IMAGE = "runm-busybox:test"
UPSTREAM_DNS = "10.201.0.1"
DOCKER = "/usr/bin/docker"          # Debian's docker.io client, not /usr/local/bin/docker
COMPOSE = "/usr/bin/docker-compose"  # Debian's docker-compose 1.29
CACHE = os.path.join(BUILD, "e2e-cache")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TASKS = os.path.join("containerd", "daemon", "io.containerd.runtime.v2.task", "moby")
VMM_NAMES = ("qemu-system",)


def host_kernel():
    return platform.release()


def expected_kernel():
    """What `uname -r` in a container must print: the guest kernel for runm."""
    if IS_RUNM:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bundle
        return bundle.guest_kernel()
    return host_kernel()


def rootfs_tarball():
    """A plain rootfs tar of busybox-static (for `docker import`), built once."""
    sys.path.insert(0, os.path.join(lib.REPO, "tests", "tools"))
    try:
        import mkimage
    finally:
        sys.path.pop(0)
    import hashlib
    h = hashlib.sha256()
    with open(mkimage.DEFAULT_BUSYBOX, "rb") as f:
        h.update(f.read())
    with open(mkimage.__file__, "rb") as f:
        h.update(f.read())
    out = os.path.join(CACHE, "docker-busybox-rootfs-%s.tar" % h.hexdigest()[:16])
    if not os.path.exists(out):
        os.makedirs(CACHE, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=CACHE, prefix=".rootfs-", suffix=".tar")
        with os.fdopen(fd, "wb") as f:
            f.write(mkimage.layer_tar(mkimage.DEFAULT_BUSYBOX))
        os.chmod(tmp, 0o644)
        os.rename(tmp, out)
    return out


# ---------------------------------------------------------------- processes

def _procs():
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        pid = int(d)
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read().rsplit(")", 1)[1].split()
            if st[0] == "Z":
                continue
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        if cmd:
            yield pid, int(st[1]), cmd


def _netns_ino(pid):
    try:
        return os.stat("/proc/%d/ns/net" % pid).st_ino
    except OSError:
        return None


_mounts_under = lib._mounts_under
_cwd = lib._proc_cwd


# ---------------------------------------------------------------- the daemon

class Dockerd:
    """dockerd in its own network namespace with everything under a temp dir.

    runtime: the runtime under test ("runm" or "runc"); default_runtime: make
    it dockerd's --default-runtime; add_runm: register runm even if the
    runtime is runc (bench/docker runs both)."""

    def __init__(self, runtime=RUNTIME, default_runtime=True, add_runm=None, start_timeout=60):
        self.runtime = runtime
        self.default_runtime = default_runtime
        self.add_runm = (runtime == "runm") if add_runm is None else add_runm
        self.start_timeout = start_timeout
        self.ns = "runm-dk-%d" % os.getpid()
        self.proc = None
        self.tmp = None
        self.cids = set()   # every container id seen (for runm's default-root check)
        self._logf = None

    # -- paths
    def _paths(self):
        self.tmp = tempfile.mkdtemp(prefix="dk-", dir="/tmp")
        self.data_root = os.path.join(self.tmp, "d")
        self.exec_root = os.path.join(self.tmp, "x")
        self.sock = os.path.join(self.tmp, "docker.sock")
        self.pidfile = os.path.join(self.tmp, "docker.pid")
        self.config = os.path.join(self.tmp, "daemon.json")
        self.log_path = os.path.join(self.tmp, "dockerd.log")
        self.work = os.path.join(self.tmp, "w")   # test files (bind sources, Dockerfiles)
        os.makedirs(self.work)

    @property
    def host(self):
        return "unix://" + self.sock

    def runtime_root(self):
        """Where dockerd tells the runtime to keep state (`--root`): moby
        hard-codes runtime-runc whatever the runtime is called."""
        return os.path.join(self.exec_root, "runtime-runc", "moby")

    def daemon_mounts(self):
        """Mounts dockerd makes for itself and keeps: the host-network sandbox
        (`--network host`) stays bind-mounted at exec-root/netns/default even
        after dockerd exits (moby behaviour, not the runtime's)."""
        return {os.path.join(self.exec_root, "netns", "default")}

    def bundle_root(self):
        return os.path.join(self.exec_root, TASKS)

    def nsenter(self):
        return ["nsenter", "--net=/run/netns/" + self.ns]

    def env(self):
        e = dict(os.environ)
        e["PATH"] = PATH
        e["DOCKER_HOST"] = self.host
        e["DOCKER_BUILDKIT"] = "0"        # the classic builder: RUN uses the default runtime
        e["COMPOSE_DOCKER_CLI_BUILD"] = "0"
        e["DOCKER_CONFIG"] = os.path.join(self.tmp, "client")   # no ~/.docker
        e.pop("NOTIFY_SOCKET", None)
        return e

    # -- lifecycle
    def start(self):
        t0 = time.monotonic()
        for exe in (DOCKER, "/usr/sbin/dockerd", "/usr/sbin/iptables"):
            assert os.path.exists(exe), "%s missing: apt-get install docker.io iptables (tools/deps.sh)" % exe
        if self.add_runm:
            assert os.access(RUNM_BIN, os.X_OK), "%s missing: build runm first (make)" % RUNM_BIN
        self._paths()
        run(["ip", "netns", "add", self.ns], timeout=20)
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"], timeout=20)
        cfg = {}
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        argv = self.nsenter() + [
            "/usr/sbin/dockerd", "--config-file", self.config,
            "--data-root", self.data_root, "--exec-root", self.exec_root,
            "--pidfile", self.pidfile, "-H", self.host,
            "--storage-driver", "overlay2" if lib._overlay_works("/tmp") else "vfs",
            "--iptables=true", "--ip-masq=true", "--bip", "10.201.0.1/24",
            # Containers' upstream DNS: docker0's address in dockerd's netns,
            # where a test may run a responder (UPSTREAM_DNS).
            "--dns", UPSTREAM_DNS,
            "--default-address-pool", "base=10.210.0.0/16,size=24",
            "--log-level", "debug"]
        if self.add_runm:
            argv += ["--add-runtime", "runm=" + RUNM_BIN]
        if self.default_runtime and self.runtime != "runc":
            argv += ["--default-runtime", self.runtime]
        self._logf = open(self.log_path, "ab")
        # Same process group as the test: the runner's timeout kill takes it too.
        # nsenter without --fork execs dockerd: proc.pid is dockerd's.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, env=self.env(), cwd=self.tmp)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("dockerd exited with status %s:\n%s" % (
                    self.proc.returncode, self.log()[-4000:]))
            if not os.path.exists(self.sock):
                return False
            return self.docker("version", timeout=10, check=False).returncode == 0
        try:
            wait_for(up, self.start_timeout, "dockerd to answer on " + self.sock, interval=0.05)
        except BaseException:
            log("dockerd log tail:\n" + self.log()[-4000:])
            self.stop(check=False)
            raise
        self.start_seconds = time.monotonic() - t0
        t1 = time.monotonic()
        self.docker("import", "--change", 'CMD ["sh"]', "--change", "ENV PATH=" + PATH,
                    rootfs_tarball(), IMAGE, timeout=120)
        self.import_seconds = time.monotonic() - t1
        self.base_mounts = set(_mounts_under(self.tmp))
        self.base_images = set(self.docker("images", "-q", "--no-trunc").stdout.split())
        log("dockerd (%s%s) up in %.2fs, image imported in %.2fs; tmp %s, netns %s" % (
            self.runtime, ", default" if self.default_runtime else "", self.start_seconds,
            self.import_seconds, self.tmp, self.ns))
        return self

    def stop(self, check=True, timeout=30):
        """Stop dockerd, force-clean what is left, delete the netns and the temp
        dir. With check, raise AssertionError listing anything that was left."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            if check:
                c = self.containers()
                if c:
                    problems.append("containers left at daemon stop: %s" % c)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                problems.append("dockerd ignored SIGTERM for %ss: SIGKILL" % timeout)
                self.proc.kill()
                self.proc.wait(10)
        if self._logf:
            self._logf.close()
            self._logf = None
        if self.tmp:
            try:
                wait_for(lambda: not self.stray_procs(), 10, "no process of this daemon left")
            except TimeoutError:
                problems += ["process left after dockerd stopped: %d %s" % (p, c[:200])
                             for p, c in self.stray_procs()]
            for pid, _ in self.stray_procs():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            left = _mounts_under(self.tmp)
            for m in left:
                if m in self.daemon_mounts():
                    subprocess.run(["umount", m], capture_output=True)
            left = _mounts_under(self.tmp)
            if left:
                problems.append("mounts left after dockerd stopped: %s" % left)
            for m in sorted(left, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
            if IS_RUNM or self.add_runm:
                d = self.runm_default_dirs()
                if d:
                    problems.append("runm state dirs of this daemon's containers left: %s" % d)
        if self.tmp and self.log():
            import re
            m = re.search(r"\bpanic: |^goroutine \d+ \[", self.log(), re.MULTILINE)
            if m:
                problems.append("dockerd log mentions a panic:\n" + self.log()[m.start():m.start() + 3000])
        if self.ns:
            run(["ip", "netns", "del", self.ns], timeout=20, check=False)
            if os.path.exists("/run/netns/" + self.ns):
                problems.append("netns %s left" % self.ns)
        if self.tmp and not _mounts_under(self.tmp):
            if os.environ.get("RUNM_TEST_KEEP") or (problems and os.environ.get("RUNM_TEST_KEEP_FAILED")):
                log("kept %s" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        self.proc = None
        if check and problems:
            raise AssertionError("\n".join(problems))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""

    # -- clients
    def docker(self, *args, input=None, timeout=120, check=True, env=None, **kw):
        e = self.env()
        if env:
            e.update(env)
        return run([DOCKER, "-H", self.host] + [str(a) for a in args], input=input,
                   timeout=timeout, check=check, env=e, **kw)

    def compose(self, project, directory, *args, timeout=300, check=True, **kw):
        return run([COMPOSE, "--no-ansi", "-p", project] + [str(a) for a in args], timeout=timeout,
                   check=check, env=self.env(), cwd=directory, **kw)

    def in_ns(self, cmd, **kw):
        """Run cmd (list) in the daemon's network namespace (e.g. to reach a published port)."""
        return run(self.nsenter() + list(cmd), **kw)

    def inspect(self, name, fmt="{{json .}}"):
        out = self.docker("inspect", "--format", fmt, name, timeout=30).stdout.strip()
        return json.loads(out) if fmt == "{{json .}}" else out

    def state(self, name):
        return json.loads(self.inspect(name, "{{json .State}}"))

    def containers(self):
        ids = self.docker("ps", "-aq", "--no-trunc", timeout=30, check=False).stdout.split()
        self.cids.update(ids)
        return ids

    def track(self, cid):
        self.cids.add(cid.strip())
        return cid.strip()

    # -- leaks
    def stray_procs(self):
        """[(pid, cmdline)] that belong to this daemon and should not outlive
        its containers: shims (their -address names our exec-root), runtime
        monitors, VMMs and anything else whose cmdline or cwd is under tmp or
        that is in our netns, apart from dockerd and its containerd; and every
        descendant of those."""
        procs = {pid: (ppid, cmd) for pid, ppid, cmd in _procs()}
        dpid = self.proc.pid if self.proc and self.proc.poll() is None else None
        ns_ino = None
        try:
            ns_ino = os.stat("/run/netns/" + self.ns).st_ino
        except OSError:
            pass
        keep = set()
        if dpid:
            keep.add(dpid)
            for pid, (ppid, cmd) in procs.items():
                if ppid == dpid and os.path.basename(cmd.split(" ", 1)[0]) == "containerd":
                    keep.add(pid)
        mine = set()
        for pid, (ppid, cmd) in procs.items():
            if pid in keep:
                continue
            if self.tmp in cmd or _cwd(pid).startswith(self.tmp + "/") or \
                    (ns_ino is not None and _netns_ino(pid) == ns_ino):
                mine.add(pid)
        grew = True
        while grew:   # descendants (a VMM a monitor forked, whatever its cmdline)
            grew = False
            for pid, (ppid, _) in procs.items():
                if ppid in mine and pid not in mine and pid not in keep:
                    mine.add(pid)
                    grew = True
        return sorted((p, procs[p][1]) for p in mine)

    def runm_default_dirs(self):
        """/run/runm/<id> dirs of this daemon's containers (runm's default
        root, should runm ignore dockerd's --root)."""
        import re
        ids = set(self.cids) | set(re.findall(r"\b[0-9a-f]{64}\b", self.log()))  # --rm ones too
        return [os.path.join("/run/runm", c) for c in sorted(ids)
                if os.path.exists(os.path.join("/run/runm", c))]

    def veths(self):
        out = run(["ip", "-n", self.ns, "-o", "link", "show", "type", "veth"], timeout=20,
                  check=False).stdout or ""
        return [l.split(":")[1].strip() for l in out.splitlines() if ":" in l]

    def leaks(self):
        """What a test left behind, as messages."""
        res = []
        c = self.containers()
        if c:
            res.append("containers left: %s" % " ".join(x[:12] for x in c))
        res += ["process left: %d %s" % (p, cmd[:200]) for p, cmd in self.stray_procs()]
        for d, what in ((self.runtime_root(), "runtime state dir"), (self.bundle_root(), "bundle")):
            if os.path.isdir(d):
                res += ["%s left: %s/%s" % (what, d, e) for e in sorted(os.listdir(d))]
        res += ["mount left: %s" % m for m in _mounts_under(self.tmp)
                if m not in self.base_mounts and m not in self.daemon_mounts()]
        res += ["veth left in %s: %s" % (self.ns, v) for v in self.veths()]
        nets = self.docker("network", "ls", "--format", "{{.Name}}", timeout=30, check=False).stdout.split()
        res += ["network left: %s" % n for n in nets if n not in ("bridge", "host", "none")]
        vols = self.docker("volume", "ls", "-q", timeout=30, check=False).stdout.split()
        res += ["volume left: %s" % v for v in vols]
        if IS_RUNM or self.add_runm:
            res += ["runm state dir left: %s" % d for d in self.runm_default_dirs()]
        return res

    def cleanup(self):
        """Force-remove containers, networks, volumes and images the test made."""
        done = []
        c = self.containers()
        if c:
            self.docker("rm", "-f", *c, timeout=120, check=False)
            done.append("containers %s" % " ".join(x[:12] for x in c))
        self.docker("network", "prune", "-f", timeout=60, check=False)
        vols = self.docker("volume", "ls", "-q", timeout=30, check=False).stdout.split()
        if vols:
            self.docker("volume", "rm", "-f", *vols, timeout=60, check=False)
            done.append("volumes %s" % " ".join(vols))
        imgs = set(self.docker("images", "-q", "--no-trunc", timeout=30, check=False).stdout.split())
        extra = imgs - self.base_images
        if extra:
            self.docker("rmi", "-f", *extra, timeout=60, check=False)
        # So that one test's leak does not fail the next ones too: whatever the
        # runtime left in its root goes (runtime's own delete --force first),
        # then stray shims/monitors/VMs are killed.
        rt_bin = RUNM_BIN if self.runtime == "runm" else "runc"
        root = self.runtime_root()
        if os.path.isdir(root):
            for e in os.listdir(root):
                run([rt_bin, "--root", root, "delete", "--force", e], timeout=60, check=False)
                shutil.rmtree(os.path.join(root, e), ignore_errors=True)
                done.append("runtime state %s" % e)
        try:
            wait_for(lambda: not self.stray_procs(), 10, "no stray process")
        except TimeoutError:
            for pid, cmd in self.stray_procs():
                try:
                    os.kill(pid, signal.SIGKILL)
                    done.append("killed %d %s" % (pid, cmd[:80]))
                except ProcessLookupError:
                    pass
        return done


def ns_fetch(dk, port, host="127.0.0.1", path="/", timeout=5):
    """HTTP GET http://host:port/path from dockerd's netns (python, no curl); body or ''."""
    code = ("import socket,sys\n"
            "s=socket.create_connection((%r,%d),timeout=%d)\n"
            "s.sendall(b'GET %s HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\n"
            "d=b''\n"
            "while True:\n"
            "  b=s.recv(65536)\n"
            "  if not b: break\n"
            "  d+=b\n"
            "sys.stdout.write(d.decode(errors='replace'))\n" % (host, port, timeout, path))
    r = dk.in_ns(["python3", "-c", code], timeout=timeout + 10, check=False)
    return r.stdout if r.returncode == 0 else ""


# ---------------------------------------------------------------- fixture + framework

_DAEMON = None
_DAEMON_KW = {}


def configure(**kw):
    """Set Dockerd(**kw) for this file's daemon (call before the first test)."""
    _DAEMON_KW.update(kw)


def daemon():
    """This file's dockerd, started on first use."""
    global _DAEMON
    if _DAEMON is None:
        _DAEMON = Dockerd(**_DAEMON_KW)
        try:
            _DAEMON.start()
        except BaseException:
            d, _DAEMON = _DAEMON, None
            d.stop(check=False)
            raise
    return _DAEMON


def _log_tail(dk):
    tail = dk.log().splitlines()[-30:]
    print("  --- dockerd log tail (%s):\n  | %s" % (dk.log_path, "\n  | ".join(tail)), flush=True)


def dtest(fn=None, *, timeout=600):
    """Register a test that gets this file's Dockerd (lib.env_test); a failed
    one prints the tail of dockerd's log."""
    return lib.env_test(daemon, fn, timeout=timeout, on_failure=_log_tail)


def runm_only(fn):
    """Register fn as a @dtest only when the runtime under test is runm."""
    if IS_RUNM:
        return dtest(fn)
    log("skipping %s: runm only (RUNM_DOCKER_RUNTIME=%s)" % (fn.__name__, RUNTIME))
    return fn


def dmain():
    """lib.main() plus a last test, daemon_stops_clean: dockerd stops and no
    process, mount, runtime state, netns or temp dir of it is left."""
    def daemon_stops_clean():
        global _DAEMON
        d, _DAEMON = _DAEMON, None
        if d is None:
            log("no daemon was started")
            return
        pid = d.proc.pid
        ns, tmp = d.ns, d.tmp
        d.stop(check=True)
        assert not os.path.exists("/proc/%d/cmdline" % pid) or not open(
            "/proc/%d/cmdline" % pid, "rb").read(), "dockerd %d still running" % pid
        assert not os.path.exists("/run/netns/" + ns), "netns %s left" % ns
        assert not _mounts_under(tmp), "mounts left under %s" % tmp
        left = [p for p, _, c in _procs() if tmp in c]
        assert not left, "processes naming %s left: %s" % (tmp, left)
    test(daemon_stops_clean, timeout=120)
    argv = sys.argv[1:]
    if argv and "daemon_stops_clean" not in argv:
        argv = argv + ["daemon_stops_clean"]
    log("runtime under test: %s (RUNM_DOCKER_RUNTIME)" % RUNTIME)
    try:
        lib.main(argv)
    finally:
        if _DAEMON is not None:
            _DAEMON.stop(check=False)
