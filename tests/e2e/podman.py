"""podman.py - private Podman 4.3 / Buildah 1.28 / podman-compose 1.0.3 for the
e2e tests, with runm as the OCI runtime.

    import sys, os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from podman import *

    @ptest
    def runs(pm):                 # pm: this file's Podman environment, made on first use
        assert pm.podman("run", "--rm", IMAGE, "true").returncode == 0

    if __name__ == "__main__":
        pmain()

Everything is private: CONTAINERS_CONF and CONTAINERS_STORAGE_CONF point at
files under a temp dir (graphroot, runroot, tmp_dir, volumes, network configs,
events log, XDG_RUNTIME_DIR all below it). containers.conf names runm the
engine's runtime (`engine.runtime = "runm"`, `[engine.runtimes] runm =
[build/bin/runm]`), with `runtime_supports_json = ["runm"]` so that podman
passes --log-format=json --log, cgroup_manager cgroupfs, a file events logger
and default_ulimits within this shell's hard limits.

Nothing touches the machine's own network: podman, buildah and podman-compose
run inside a network namespace made here (runm-pm-<pid>), entered with
`nsenter --net=` (not `ip netns exec`, which remounts /sys). netavark's bridge,
its iptables rules and aardvark-dns live there; the containers' own
namespaces are netavark's /run/netns/netns-*.

One environment per test file. After each @ptest: no container, VMM, conmon,
runm monitor, aardvark-dns, runm state dir (/run/runm/<id> of a bundle under
the temp dir), new mount under the temp dir, new netavark netns or new
firewall rule naming an address or a per-network chain may be left (within
20 s), and everything is force-cleaned either way. pmain() adds a last test
that tears the environment down and checks that nothing at all is left.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import BIN, CmdError, log, run, test, wait_for  # noqa: E402,F401
import docker  # noqa: E402
from docker import rootfs_tarball, host_kernel  # noqa: E402
from bundle import guest_kernel  # noqa: E402

__all__ = ["IMAGE", "RUNM_BIN", "Podman", "ptest", "pmain", "env", "log", "run", "wait_for",
           "CmdError", "guest_kernel", "host_kernel", "ns_fetch"]

RUNM_BIN = os.path.join(BIN, "runm")
RUNM_ROOT = "/run/runm"   # podman passes no --root: runm's default root
IMAGE = "localhost/runm-busybox:test"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TOOLS = ("/usr/bin/podman", "/usr/bin/buildah", "/usr/bin/podman-compose", "/usr/bin/conmon",
         "/usr/lib/podman/netavark", "/usr/lib/podman/aardvark-dns")

CONTAINERS_CONF = """[containers]
# podman's defaults (nofile 1048576, a large nproc) exceed this shell's hard
# limits; they apply in the guest with runm, but keep them sane anyway.
default_ulimits = ["nofile=1024:1024"]

[engine]
runtime = "runm"
runtime_supports_json = ["runm"]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{t}/events.log"
tmp_dir = "{t}/tmp"
static_dir = "{t}/root/libpod"
volume_path = "{t}/root/volumes"

[engine.runtimes]
runm = ["{runm}"]

[network]
network_backend = "netavark"
network_config_dir = "{t}/net"
default_subnet = "10.214.0.0/24"
default_subnet_pools = [{{"base" = "10.215.0.0/16", "size" = 24}}]
"""

STORAGE_CONF = """[storage]
driver = "{driver}"
graphroot = "{t}/root"
runroot = "{t}/runroot"
"""


# The process and mount helpers of the Docker suite: conmon's double fork
# leaves zombies to pid 1, which docker._procs already skips.
_procs = docker._procs
_netns_ino = docker._netns_ino
_cwd = lib._proc_cwd
_mounts_under = lib._mounts_under


def _netavark_netns():
    try:
        return {e for e in os.listdir("/run/netns") if e.startswith("netns-")}
    except FileNotFoundError:
        return set()


# Rules that name an address, a port or a per-network chain (NETAVARK-<hash>)
# belong to a network or container; the NETAVARK_* skeleton netavark leaves
# after its last network is gone does not.
_RULE_OF_SOMETHING = re.compile(r"\d+\.\d+\.\d+\.\d+|NETAVARK-[0-9A-F]{6,}|--dport|--to-destination")


class Podman:
    """The private environment: temp dir, configs, netns, imported image."""

    def __init__(self):
        self.ns = "runm-pm-%d" % os.getpid()
        self.tmp = None

    def start(self):
        for exe in TOOLS:
            assert os.path.exists(exe), "%s missing: apt-get install podman buildah podman-compose " \
                "netavark aardvark-dns conmon (tools/deps.sh)" % exe
        assert os.access(RUNM_BIN, os.X_OK), "%s missing: build runm first (make)" % RUNM_BIN
        self.tmp = tempfile.mkdtemp(prefix="pm-", dir="/tmp")
        t = self.tmp
        for d in ("root", "runroot", "tmp", "net", "xdg", "w"):
            os.makedirs(os.path.join(t, d))
        self.work = os.path.join(t, "w")
        self.conf = os.path.join(t, "containers.conf")
        self.storage_conf = os.path.join(t, "storage.conf")
        with open(self.conf, "w") as f:
            f.write(CONTAINERS_CONF.format(t=t, runm=RUNM_BIN))
        with open(self.storage_conf, "w") as f:
            f.write(STORAGE_CONF.format(t=t, driver="overlay" if lib._overlay_works("/tmp") else "vfs"))
        run(["ip", "netns", "add", self.ns], timeout=20)
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"], timeout=20)
        self.podman("import", "--change", 'CMD ["sh"]', "--change", "ENV PATH=" + PATH,
                    rootfs_tarball(), IMAGE, timeout=120)
        self.base_mounts = set(_mounts_under(t))
        self.base_images = set(self.podman("images", "-q", "--no-trunc").stdout.split())
        self.mark()
        log("podman environment in %s, netns %s, runtime %s" % (t, self.ns, RUNM_BIN))
        return self

    def mark(self):
        """Start of a test: what exists now is not its leak."""
        self.base_netns = _netavark_netns()
        self.base_rules = set(self.rules())
        self.base_runm = set(os.listdir(RUNM_ROOT)) if os.path.isdir(RUNM_ROOT) else set()

    # -- clients
    def env(self):
        e = dict(os.environ)
        e["PATH"] = PATH
        e["CONTAINERS_CONF"] = self.conf
        e["CONTAINERS_STORAGE_CONF"] = self.storage_conf
        e["XDG_RUNTIME_DIR"] = os.path.join(self.tmp, "xdg")
        e["TMPDIR"] = os.path.join(self.tmp, "tmp")
        e["HOME"] = self.tmp   # no ~/.config/containers
        e.pop("NOTIFY_SOCKET", None)
        e.pop("BUILDAH_ISOLATION", None)
        return e

    def nsenter(self):
        return ["nsenter", "--net=/run/netns/" + self.ns]

    def _run(self, argv, timeout, check, cwd=None, env_extra=None, **kw):
        e = self.env()
        e.update(env_extra or {})
        return run(self.nsenter() + [str(a) for a in argv], timeout=timeout, check=check,
                   env=e, cwd=cwd or self.work, **kw)

    def podman(self, *args, timeout=180, check=True, **kw):
        return self._run(["/usr/bin/podman"] + list(args), timeout, check, **kw)

    def buildah(self, *args, timeout=300, check=True, **kw):
        return self._run(["/usr/bin/buildah"] + list(args), timeout, check, **kw)

    def compose(self, project, directory, *args, timeout=300, check=True, **kw):
        return self._run(["/usr/bin/podman-compose", "-p", project] + list(args), timeout, check,
                         cwd=directory, **kw)

    def in_ns(self, cmd, **kw):
        return run(self.nsenter() + list(cmd), **kw)

    def inspect(self, name, fmt):
        return self.podman("inspect", "--format", fmt, name, timeout=30).stdout.strip()

    # -- leaks
    def rules(self):
        out = run(self.nsenter() + ["iptables-save"], timeout=30, check=False).stdout or ""
        return [l for l in out.splitlines() if l.startswith(("-A", "-N", ":"))]

    def stray_procs(self):
        """[(pid, cmdline)]: VMMs, conmons, runm monitors, aardvark-dns and
        anything else that names or sits in the temp dir or lives in our netns
        or one of netavark's (apart from us), and their descendants."""
        procs = {pid: (ppid, cmd) for pid, ppid, cmd in _procs()}
        inos = set()
        for p in ["/run/netns/" + self.ns] + ["/run/netns/" + n for n in _netavark_netns() - self.base_netns]:
            try:
                inos.add(os.stat(p).st_ino)
            except OSError:
                pass
        mine = set()
        for pid, (ppid, cmd) in procs.items():
            if self.tmp in cmd or _cwd(pid).startswith(self.tmp + "/") or _netns_ino(pid) in inos:
                mine.add(pid)
        grew = True
        while grew:
            grew = False
            for pid, (ppid, _) in procs.items():
                if ppid in mine and pid not in mine:
                    mine.add(pid)
                    grew = True
        return sorted((p, procs[p][1]) for p in mine)

    def runm_dirs(self):
        """New /run/runm/<id> dirs whose state.json names a bundle of ours
        (runm keeps other things there too, e.g. accel-* verdicts)."""
        res = []
        if not os.path.isdir(RUNM_ROOT):
            return res
        for e in sorted(set(os.listdir(RUNM_ROOT)) - self.base_runm):
            try:
                with open(os.path.join(RUNM_ROOT, e, "state.json")) as f:
                    if not json.load(f).get("bundle", "").startswith(self.tmp + "/"):
                        continue
            except (OSError, ValueError, AttributeError):
                continue
            res.append(os.path.join(RUNM_ROOT, e))
        return res

    def leaks(self):
        res = []
        c = self.podman("ps", "-aq", timeout=30, check=False).stdout.split()
        res += ["container left: %s" % x for x in c]
        b = self.buildah("containers", "-q", timeout=30, check=False).stdout.split()
        res += ["buildah container left: %s" % x for x in b]
        res += ["process left: %d %s" % (p, cmd[:200]) for p, cmd in self.stray_procs()]
        res += ["runm state dir left: %s" % d for d in self.runm_dirs()]
        res += ["mount left: %s" % m for m in _mounts_under(self.tmp) if m not in self.base_mounts]
        res += ["netns left: /run/netns/%s" % n for n in sorted(_netavark_netns() - self.base_netns)]
        res += ["firewall rule left: %s" % r for r in self.rules()
                if r not in self.base_rules and _RULE_OF_SOMETHING.search(r)]
        nets = self.podman("network", "ls", "--format", "{{.Name}}", timeout=30, check=False).stdout.split()
        res += ["network left: %s" % n for n in nets if n != "podman"]
        return res

    def cleanup(self):
        """Force-remove what a test left; returns what it did."""
        done = []
        c = self.podman("ps", "-aq", timeout=30, check=False).stdout.split()
        if c:
            self.podman("rm", "-f", "-t", "0", *c, timeout=180, check=False)
            done.append("containers %s" % " ".join(c))
        b = self.buildah("containers", "-q", timeout=30, check=False).stdout.split()
        if b:
            self.buildah("rm", *b, timeout=120, check=False)
            done.append("buildah containers %s" % " ".join(b))
        self.podman("network", "prune", "-f", timeout=60, check=False)
        imgs = set(self.podman("images", "-q", "--no-trunc", timeout=30, check=False).stdout.split())
        if imgs - self.base_images:
            self.podman("rmi", "-f", *(imgs - self.base_images), timeout=120, check=False)
        for d in self.runm_dirs():
            run([RUNM_BIN, "delete", "--force", os.path.basename(d)], timeout=60, check=False)
            shutil.rmtree(d, ignore_errors=True)
            done.append("runm state %s" % d)
        for pid, cmd in self.stray_procs():
            try:
                os.kill(pid, signal.SIGKILL)
                done.append("killed %d %s" % (pid, cmd[:80]))
            except ProcessLookupError:
                pass
        for n in _netavark_netns() - self.base_netns:
            run(["ip", "netns", "del", n], timeout=20, check=False)
            done.append("netns %s" % n)
        return done

    def stop(self, check=True):
        """Tear down: storage unmounted, netns deleted, temp dir removed."""
        problems = []
        if self.tmp:
            self.podman("system", "reset", "-f", timeout=180, check=False)
            left = [m for m in _mounts_under(self.tmp)]
            for m in sorted(left, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
            procs = self.stray_procs()
            problems += ["process left: %d %s" % (p, c[:200]) for p, c in procs]
            for pid, _ in procs:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        run(["ip", "netns", "del", self.ns], timeout=20, check=False)
        if os.path.exists("/run/netns/" + self.ns):
            problems.append("netns %s left" % self.ns)
        if self.tmp:
            if os.environ.get("RUNM_TEST_KEEP"):
                log("kept %s" % self.tmp)
            elif not _mounts_under(self.tmp):
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                problems.append("mounts left under %s" % self.tmp)
        if check and problems:
            raise AssertionError("\n".join(problems))


def ns_fetch(pm, port, host="127.0.0.1", path="/", timeout=5):
    """HTTP GET from the test's netns (python, no curl); the body or ''."""
    code = ("import urllib.request,sys\n"
            "sys.stdout.write(urllib.request.urlopen('http://%s:%d%s', timeout=%d).read().decode())\n"
            % (host, port, path, timeout))
    r = pm.in_ns(["python3", "-c", code], timeout=timeout + 10, check=False)
    return r.stdout if r.returncode == 0 else ""


_ENV = None


def env():
    """This file's environment, made on first use."""
    global _ENV
    if _ENV is None:
        _ENV = Podman()
        try:
            _ENV.start()
        except BaseException:
            e, _ENV = _ENV, None
            e.stop(check=False)
            raise
    return _ENV


def ptest(fn=None, *, timeout=600):
    """Register a test that gets this file's Podman (lib.env_test), marked
    first so that its leftovers are told from earlier tests'."""
    return lib.env_test(env, fn, timeout=timeout, before=lambda pm: pm.mark())


def pmain():
    """lib.main() plus a last test, environment_stops_clean."""
    def environment_stops_clean():
        global _ENV
        e, _ENV = _ENV, None
        if e is None:
            log("no environment was made")
            return
        ns, tmp = e.ns, e.tmp
        e.stop(check=True)
        assert not os.path.exists("/run/netns/" + ns), "netns %s left" % ns
        assert not os.path.exists(tmp), "%s left" % tmp
        left = [p for p, _, c in _procs() if tmp in c]
        assert not left, "processes naming %s left: %s" % (tmp, left)
    test(environment_stops_clean, timeout=240)
    argv = sys.argv[1:]
    if argv and "environment_stops_clean" not in argv:
        argv = argv + ["environment_stops_clean"]
    try:
        lib.main(argv)
    finally:
        if _ENV is not None:
            _ENV.stop(check=False)
