"""lib.py - the e2e harness: a private real containerd, the busybox test image,
leak checks and a tiny test framework.

    import sys, os; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from lib import *

    @test
    def echo_works(cd):                       # takes `cd`: gets a fresh Containerd
        img = import_busybox(cd)
        r = cd.ctr("run", "--rm", "--runtime", RUNM, img, "t1", "echo", "hi")
        assert r.stdout == "hi\\n", r

    if __name__ == "__main__":
        main()

Every test that takes `cd` runs against its own containerd (temp dir under /tmp,
own socket, own root/state), which finds containerd-shim-runm-v1 in build/bin.
After the test the framework checks leaks(cd) (a leak fails the test unless
@test(leaks_ok=True)), then force-cleans: kills and deletes tasks, kills leftover
VMs/shims of that containerd, unmounts, stops containerd, fails on a Go panic in
its log and removes the temp dir (kept when RUNM_TEST_KEEP=1 or when something is
still mounted there).
"""
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

__all__ = ["REPO", "BUILD", "BIN", "RUNM", "RUNC", "BUSYBOX_REF", "Containerd", "NetnsContainerd",
           "CmdError", "import_busybox", "busybox_tarball", "image_tarball", "bridge_conflist", "ip", "netns_path",
           "wait_for", "run", "leaks", "assert_no_leaks",
           "kill_leftovers", "test", "main", "log", "free_port", "port_is_free", "proc_mem_kib", "settled", "env_test",
           "shim_state_dir", "runm_temp_leftovers", "mem_available_kib", "shim_pid", "vmm_pid"]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, os.environ.get("BUILD", "build"))
BIN = os.path.join(BUILD, "bin")
RUNM = "io.containerd.runm.v1"
RUNC = "io.containerd.runc.v2"
BUSYBOX_REF = "docker.io/runm/busybox:test"
CACHE = os.path.join(BUILD, "e2e-cache")
TASK_DIR = "io.containerd.runtime.v2.task"


def log(*a):
    """Print a harness message (stdout, flushed, so it interleaves with ctr's output)."""
    print("#", *a, flush=True)


# ---------------------------------------------------------------- helpers

class CmdError(subprocess.CalledProcessError):
    """A command failed; str() includes the command, status, stdout and stderr."""

    def __str__(self):
        def s(x):
            if x is None:
                return ""
            if isinstance(x, bytes):
                x = x.decode(errors="replace")
            return x if len(x) < 4000 else x[:1000] + "\n...\n" + x[-3000:]
        cmd = self.cmd if isinstance(self.cmd, str) else " ".join(map(str, self.cmd))
        return "command failed (status %s): %s\n--- stdout:\n%s--- stderr:\n%s" % (
            self.returncode, cmd, s(self.stdout), s(self.stderr))


def wait_for(predicate, timeout=10.0, what="condition", interval=0.02):
    """Poll predicate() until it returns a truthy value (which is returned) or
    timeout seconds pass (TimeoutError naming `what`). Exceptions from the
    predicate count as "not yet"; the last one is reported on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - "not yet"
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise TimeoutError(msg)
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


def run(cmd, input=None, timeout=60, check=True, text=None, env=None, cwd=None, **kw):
    """subprocess.run with captured output and a timeout. cmd: list, or str (run
    by /bin/sh). Text mode unless input is bytes or text=False. Raises CmdError
    on non-zero exit when check, subprocess.TimeoutExpired on timeout."""
    if text is None:
        text = not isinstance(input, (bytes, bytearray))
    shell = isinstance(cmd, str)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    if input is None and "stdin" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    r = subprocess.run(cmd, input=input, timeout=timeout, text=text, env=env, cwd=cwd,
                       shell=shell, **kw)
    if check and r.returncode != 0:
        raise CmdError(r.returncode, cmd, r.stdout, r.stderr)
    return r


def _overlay_works(d):
    """Can we mount overlayfs with upper/work dirs on d's filesystem?"""
    t = tempfile.mkdtemp(prefix="ovl-", dir=d)
    try:
        for s in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(t, s))
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            "lowerdir=%s/l,upperdir=%s/u,workdir=%s/w" % (t, t, t),
                            os.path.join(t, "m")], capture_output=True, text=True)
        if r.returncode != 0:
            return False
        subprocess.run(["umount", os.path.join(t, "m")], capture_output=True)
        return True
    finally:
        shutil.rmtree(t, ignore_errors=True)


_snapshotter = None


def default_snapshotter():
    """'overlayfs' if overlay mounts work under /tmp, else 'native' (said once).
    RUNM_TEST_SNAPSHOTTER overrides."""
    global _snapshotter
    if _snapshotter is None:
        _snapshotter = os.environ.get("RUNM_TEST_SNAPSHOTTER") or (
            "overlayfs" if _overlay_works("/tmp") else "native")
        if _snapshotter != "overlayfs":
            log("note: snapshotter %s (overlayfs unavailable under /tmp)" % _snapshotter)
    return _snapshotter


# ---------------------------------------------------------------- containerd

CRI_PLUGIN = "io.containerd.grpc.v1.cri"
DISABLED_PLUGINS = [CRI_PLUGIN, "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]

CONFIG = """version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  level = "{level}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{tmp}/opt"
"""


class Containerd:
    """A private containerd. Use as a context manager (or start()/stop()).

    Attributes: tmp (temp dir), address (grpc socket), root, state, namespace,
    snapshotter, config, log_path, proc (Popen). Bundles live under
    bundle_root() = state/io.containerd.runtime.v2.task/NAMESPACE/<id>.
    Subclasses may change disabled_plugins (e.g. to enable CRI).
    private_state_root: the shims get RUNM_STATE_ROOT=tmp/runm (their own
    templates and verdicts, checked by leaks for runm's temp files).
    """
    disabled_plugins = DISABLED_PLUGINS

    def __init__(self, namespace="runm-test", debug=True, extra_config="", env=None,
                 start_timeout=30, base="/tmp", private_state_root=False):
        self.base = base  # parent of the temp dir (socket paths must stay short)
        self.private_state_root = private_state_root
        self.namespace = namespace
        self.debug = debug
        self.extra_config = extra_config
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self.proc = None
        self.tmp = None
        self.snapshotter = default_snapshotter()
        self._logf = None

    # paths are short on purpose: unix socket paths (bundle + id + socket name)
    # must stay under 108 bytes.
    def _setup(self):
        os.makedirs(self.base, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="rt-", dir=self.base)
        self.root = os.path.join(self.tmp, "r")
        self.state = os.path.join(self.tmp, "s")
        self.address = os.path.join(self.tmp, "c.sock")
        self.fifo_dir = os.path.join(self.tmp, "fifo")  # for `ctr run --fifo-dir` (checked by leaks)
        self.config = os.path.join(self.tmp, "config.toml")
        self.log_path = os.path.join(self.tmp, "containerd.log")
        os.makedirs(self.root)
        os.makedirs(self.state)
        if self.private_state_root:
            # runm's verdicts and templates (RUNM_STATE_ROOT) of this
            # containerd's shims alone, under tmp
            self.extra_env["RUNM_STATE_ROOT"] = os.path.join(self.tmp, "runm")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(root=self.root, state=self.state, sock=self.address,
                                  tmp=self.tmp, level="debug" if self.debug else "info",
                                  disabled=", ".join('"%s"' % p for p in self.disabled_plugins)))
            f.write(self.extra_config)

    def env(self):
        """Environment for containerd and ctr: PATH starts with build/bin."""
        e = dict(os.environ)
        e["PATH"] = BIN + ":" + e.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        e["CONTAINERD_SNAPSHOTTER"] = self.snapshotter
        e.pop("NOTIFY_SOCKET", None)
        e.update(self.extra_env)
        return e

    def start(self):
        self._setup()
        return self._launch()

    def restart(self, check=True):
        """Stop containerd (SIGTERM: its shims and their VMs live on) and
        start it again on the same root, state, socket and config, as after
        an upgrade or a crash of the daemon. With check, fail on a panic
        in its log."""
        self.stop(check=check)
        return self._launch()

    def _launch(self):
        self._logf = open(self.log_path, "ab")
        t0 = time.monotonic()
        # Same process group as the test: the runner's timeout kill takes it too.
        self.proc = subprocess.Popen(["containerd", "--config", self.config],
                                     stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, env=self.env(), cwd=self.tmp)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("containerd exited with status %s:\n%s" % (
                    self.proc.returncode, self.log()[-4000:]))
            if not os.path.exists(self.address):
                return False
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(self.address)
            return True

        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                if up():
                    break
            except RuntimeError:
                raise
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop(check=False)
                raise TimeoutError("containerd did not listen on %s within %ss:\n%s" % (
                    self.address, self.start_timeout, self.log()[-4000:]))
            time.sleep(0.02)
        # The socket accepts before every plugin is ready; a real request settles it.
        wait_for(lambda: self.ctr("version", timeout=10, check=False).returncode == 0,
                 max(1, deadline - time.monotonic()), "containerd to answer `ctr version`")
        self.start_seconds = time.monotonic() - t0
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def ctr(self, *args, input=None, timeout=60, check=True, text=None, env=None, **kw):
        """Run `ctr --address SOCK --namespace NS ARGS...`; CompletedProcess with
        captured stdout/stderr (text unless input is bytes or text=False)."""
        e = self.env()
        if env:
            e.update(env)
        cmd = ["ctr", "--address", self.address, "--namespace", self.namespace] + [str(a) for a in args]
        return run(cmd, input=input, timeout=timeout, check=check, text=text, env=e, **kw)

    def log(self):
        """containerd's log so far (text)."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""

    def bundle_root(self):
        return os.path.join(self.state, TASK_DIR, self.namespace)

    def bundle(self, cid):
        return os.path.join(self.bundle_root(), cid)

    def tasks(self):
        """{id: status} of this namespace's tasks."""
        out = self.ctr("task", "ls", timeout=20, check=False).stdout or ""
        res = {}
        for line in out.splitlines()[1:]:
            f = line.split()
            if len(f) >= 3:
                res[f[0]] = f[2]
        return res

    def cleanup_containers(self, timeout=30):
        """Kill (SIGKILL) and delete every task, then delete every container.
        Returns the list of what it had to clean."""
        cleaned = []
        if not self.proc or self.proc.poll() is not None:
            return cleaned
        for tid, status in self.tasks().items():
            cleaned.append("task %s (%s)" % (tid, status))
            if status != "STOPPED":
                self.ctr("task", "kill", "-a", "-s", "SIGKILL", tid, timeout=timeout, check=False)
                try:
                    wait_for(lambda: self.tasks().get(tid) in (None, "STOPPED"), timeout,
                             "task %s to stop" % tid)
                except TimeoutError as e:
                    log("cleanup:", e)
            self.ctr("task", "delete", "-f", tid, timeout=timeout, check=False)
        out = self.ctr("container", "ls", "-q", timeout=20, check=False).stdout or ""
        for cid in out.split():
            cleaned.append("container %s" % cid)
            self.ctr("container", "rm", cid, timeout=timeout, check=False)
        return cleaned

    def stop(self, check=True, timeout=15):
        """SIGTERM containerd, wait up to timeout, then SIGKILL. With check,
        raise if its log mentions a panic."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log("containerd ignored SIGTERM for %ss: SIGKILL" % timeout)
                self.proc.kill()
                self.proc.wait(10)
        if self._logf:
            self._logf.close()
            self._logf = None
        if check:
            text = self.log()
            # A Go panic ("panic: ..." / "goroutine N [running]"), not any
            # mention of the word: the guest kernel's "panic=-1" is logged too.
            m = re.search(r"\bpanic: |^goroutine \d+ \[", text, re.MULTILINE)
            if m:
                i = m.start()
                raise AssertionError("containerd log mentions a panic:\n" + text[max(0, i - 500):i + 3000])

    def remove(self):
        """Remove the temp dir unless something is still mounted there."""
        if not self.tmp or not os.path.isdir(self.tmp):
            return
        if _mounts_under(self.tmp):
            log("not removing %s: still mounted: %s" % (self.tmp, _mounts_under(self.tmp)))
            return
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- namespaces

def ip(*args, check=True):
    """Run `ip ARGS...` (iproute2)."""
    return run(["ip"] + list(args), timeout=20, check=check, text=True)


def bridge_conflist(name, bridge, subnet):
    """A CNI conflist: Debian's bridge plugin with host-local addresses in subnet,
    no masquerading (nothing leaves the test's namespaces anyway)."""
    return {
        "cniVersion": "0.4.0",
        "name": name,
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": True,
            "ipMasq": False,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                     "routes": [{"dst": "0.0.0.0/0"}]},
        }],
    }


# In the private mount namespace, before containerd: a sysfs of the network
# namespace (what `ip netns exec` does) that keeps the machine's cgroup
# mounts (which `ip netns exec` hides: runc needs them); overlays on a tmpfs
# so that CNI's files never reach the host's /etc and /var/lib; then
# $T/setup.sh.
NETNS_SETUP = r"""set -e
mount -t tmpfs -o mode=0755 runm-ns "$T/ov"
mkdir "$T/ov/cgroup"
mount --rbind /sys/fs/cgroup "$T/ov/cgroup"
mount -t sysfs sysfs /sys
mount --move "$T/ov/cgroup" /sys/fs/cgroup
for d in etc var/lib; do
  n=$(echo $d | tr / _)
  mkdir -p "$T/ov/$n/u" "$T/ov/$n/w"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/ov/$n/u,workdir=$T/ov/$n/w" "/$d"
done
mkdir -p /etc/cni/net.d /var/lib/cni
for f in "$T"/cni/*; do [ -e "$f" ] && cp "$f" /etc/cni/net.d/; done
. "$T/setup.sh"
exec containerd --config "$T/config.toml"
"""


class NetnsContainerd(Containerd):
    """containerd in network namespace netns (created here unless it exists,
    deleted by stop() if created here) and in a private mount namespace where
    /etc and /var/lib are overlays on a tmpfs; conflists ({file name: dict})
    go to its /etc/cni/net.d, setup (shell) runs there just before containerd.
    ctr runs in both namespaces too (ctr --cni runs the CNI plugins)."""

    def __init__(self, netns, conflists=None, setup="", **kw):
        super().__init__(**kw)
        self.netns = netns
        self.conflists = dict(conflists or {})
        self.setup_sh = setup
        self.made_netns = False

    def start(self):
        if not os.path.exists(netns_path(self.netns)):
            ip("netns", "add", self.netns)
            self.made_netns = True
            ip("-n", self.netns, "link", "set", "lo", "up")
        try:
            self._setup()
            os.makedirs(os.path.join(self.tmp, "ov"))
            os.makedirs(os.path.join(self.tmp, "cni"))
            for name, conf in self.conflists.items():
                with open(os.path.join(self.tmp, "cni", name), "w") as f:
                    json.dump(conf, f)
            with open(os.path.join(self.tmp, "setup.sh"), "w") as f:
                f.write(self.setup_sh + "\n")
            self._logf = open(self.log_path, "ab")
            env = self.env()
            env["T"] = self.tmp
            self.proc = subprocess.Popen(
                ["nsenter", "--net=" + netns_path(self.netns), "unshare", "-m", "--propagation",
                 "private", "sh", "-c", NETNS_SETUP],
                stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT, env=env,
                cwd=self.tmp)

            def up():
                if self.proc.poll() is not None:
                    raise RuntimeError("containerd exited with status %s:\n%s" % (
                        self.proc.returncode, self.log()[-4000:]))
                return os.path.exists(self.address) and \
                    self.ctr("version", timeout=10, check=False).returncode == 0
            wait_for(up, self.start_timeout, "containerd to answer in " + self.netns, interval=0.2)
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def stop(self, check=True, timeout=15):
        try:
            super().stop(check=check, timeout=timeout)
        finally:
            if self.made_netns:
                ip("netns", "del", self.netns, check=False)
                self.made_netns = False

    def nsenter(self):
        """The command prefix that enters containerd's network and mount
        namespaces (nsenter, unshare and sh all exec: the pid is containerd's)."""
        return ["nsenter", "--net=" + netns_path(self.netns), "--mount=/proc/%d/ns/mnt" % self.proc.pid]

    def ctr(self, *args, input=None, timeout=60, check=True, text=None, env=None, **kw):
        e = self.env()
        if env:
            e.update(env)
        cmd = self.nsenter() + ["ctr", "--address", self.address, "--namespace", self.namespace] + \
            [str(a) for a in args]
        return run(cmd, input=input, timeout=timeout, check=check, text=text, env=e, **kw)

    def private_mounts(self):
        """Mounts under tmp in containerd's mount namespace (the shim's rootfs
        mounts live there, invisible to lib.leaks) other than the overlays' tmpfs."""
        res = []
        try:
            with open("/proc/%d/mountinfo" % self.proc.pid) as f:
                for line in f:
                    mp = line.split()[4]
                    if mp.startswith(self.tmp + "/") and mp != os.path.join(self.tmp, "ov"):
                        res.append(mp)
        except OSError:
            pass
        return res

    def mntns(self):
        """containerd's mount namespace (the readlink of /proc/PID/ns/mnt)."""
        return os.readlink("/proc/%d/ns/mnt" % self.proc.pid)

    def procs_in_mntns(self):
        """[(pid, cmdline)] of the processes other than containerd in its
        private mount namespace: its shims, runc, and their descendants in
        mount namespaces of their own (the VMMs, each in its jail)."""
        try:
            ns = self.mntns()
        except OSError:
            return []
        procs = dict(_procs())
        inside = set()
        for pid in procs:
            try:
                if pid != self.proc.pid and os.readlink("/proc/%d/ns/mnt" % pid) == ns:
                    inside.add(pid)
            except OSError:
                pass
        res = []
        for pid, cmd in procs.items():
            p, seen = pid, set()
            while p > 1 and p not in seen and p != self.proc.pid:
                if p in inside:
                    res.append((pid, cmd))
                    break
                seen.add(p)
                p = _ppid(p)
        return sorted(res)


def netns_path(name):
    return "/run/netns/" + name


# ---------------------------------------------------------------- image

def image_tarball(ref=BUSYBOX_REF, entrypoint=None):
    """Path of a busybox OCI tarball named ref, with that Entrypoint (a list) if
    given (built once into build/e2e-cache by tests/tools/mkimage.py)."""
    sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
    try:
        import mkimage
    finally:
        sys.path.pop(0)
    return mkimage.cached(CACHE, ref, entrypoint=entrypoint)


def busybox_tarball():
    """Path of the busybox OCI tarball (built once into build/e2e-cache)."""
    return image_tarball(BUSYBOX_REF)


def import_busybox(cd):
    """Import the busybox test image into cd; returns its ref."""
    t0 = time.monotonic()
    cd.ctr("image", "import", busybox_tarball(), timeout=120)
    cd.import_seconds = time.monotonic() - t0
    return BUSYBOX_REF


# ---------------------------------------------------------------- leaks

def _proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def _proc_cwd(pid):
    try:
        return os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return ""


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _procs():
    me = os.getpid()
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != me:
            cmd = _proc_cmdline(int(d))
            if cmd:
                yield int(d), cmd


def _mounts_under(path):
    path = path.rstrip("/") + "/"
    res = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if (mp + "/").startswith(path):
                    res.append(mp)
    except OSError:
        pass
    return res


def _stray_procs(cd=None):
    """[(pid, kind, cmdline)] of runm shims and runm/test VMs.

    With cd: only those that belong to it: cmdline or cwd under cd.tmp, cmdline
    naming its socket, or a parent chain reaching such a process. Without cd:
    every containerd-shim-runm-v1 and every qemu-system or passt mentioning runm."""
    procs = dict(_procs())
    mine = set()

    def ours(pid):
        cmd = procs.get(pid, "")
        if cd is None:
            return True
        return cd.tmp in cmd or _proc_cwd(pid).startswith(cd.tmp + "/") or cd.address in cmd

    for pid, cmd in procs.items():
        exe = os.path.basename(cmd.split(" ", 1)[0])
        if exe.startswith("containerd-shim-runm-v1"):
            kind = "shim"
        elif exe.startswith("qemu-system") or exe.startswith("passt"):
            kind = "qemu" if exe.startswith("qemu") else "passt"
            if cd is None and "runm" not in cmd:
                continue
        else:
            continue
        belongs, p, seen = False, pid, set()
        while p > 1 and p not in seen:  # the VM's shim may be ours even if the VM names no path of ours
            seen.add(p)
            if ours(p):
                belongs = True
                break
            p = _ppid(p)
        if belongs:
            mine.add((pid, kind, cmd))
    return sorted(mine)


def shim_pid(cd, cid):
    """The pid of container cid's shim, from its bundle."""
    with open(os.path.join(cd.bundle(cid), "shim.pid")) as f:
        return int(f.read())


def vmm_pid(cd, cid):
    """The pid of container cid's VMM, from its bundle."""
    with open(os.path.join(cd.bundle(cid), "vmm.pid")) as f:
        return int(f.read())


def shim_state_dir(bundle):
    """The shim's state dir of a bundle: /run/runm/shim/<sha256(bundle)[:20]>."""
    import hashlib
    return os.path.join("/run/runm/shim", hashlib.sha256(bundle.encode()).hexdigest()[:20])


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# runm's temp names, each with the pid of its writer: a template being saved
# (<root>/templates/.tmp-<key>-<pid>), one being dropped (<key>.bad-<pid>),
# a file written atomically (<name>.<pid>.tmp: verdicts, bundle files).
_RUNM_TEMP = re.compile(r"^(?:\.tmp-[0-9a-f]{16}-(\d+)|[0-9a-f]{16}\.bad-(\d+)|.+\.(\d+)\.tmp)$")


def runm_temp_leftovers(state_root):
    """Temp files and dirs of runm under state_root (its verdicts) and
    state_root/templates whose writer is dead: a crash's leftovers."""
    res = []
    for d in (state_root, os.path.join(state_root, "templates")):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            m = _RUNM_TEMP.match(n)
            if m and not _pid_alive(int(next(g for g in m.groups() if g))):
                res.append(os.path.join(d, n))
    return sorted(res)


def _special_files(top):
    """FIFOs and unix sockets under top."""
    import stat
    res = []
    for root, _, files in os.walk(top):
        for n in files:
            p = os.path.join(root, n)
            try:
                m = os.lstat(p).st_mode
            except OSError:
                continue
            if stat.S_ISFIFO(m) or stat.S_ISSOCK(m):
                res.append(p)
    return res


def leaks(cd=None, ids=()):
    """Human-readable leftovers: runm VMs (qemu-system) and shims of cd (or of
    anyone if cd is None), mounts under cd.tmp, entries left in the bundle dir,
    FIFOs and sockets in containerd's state dir and in cd.fifo_dir, runm's
    temp files of dead writers under a private RUNM_STATE_ROOT of cd's, and,
    for the container ids given, shim sockets /run/containerd/s/<hash> and the
    shims' state dirs /run/runm/shim/<hash> (with their mounts)."""
    res = ["%s process pid %d still running: %s" % (k, pid, c[:300])
           for pid, k, c in _stray_procs(cd)]
    if cd is not None:
        res += ["mount left: %s" % m for m in _mounts_under(cd.tmp)]
        # (not cd.root: the snapshots there hold what containers made)
        for top in (cd.state, getattr(cd, "fifo_dir", None)):
            if top:
                res += ["fifo or socket left: %s" % p for p in _special_files(top)]
        if cd.extra_env.get("RUNM_STATE_ROOT"):
            res += ["runm temp file left: %s" % p for p in runm_temp_leftovers(cd.extra_env["RUNM_STATE_ROOT"])]
        br = cd.bundle_root()
        if os.path.isdir(br):
            for cid in sorted(os.listdir(br)):
                d = os.path.join(br, cid)
                files = sorted(os.listdir(d)) if os.path.isdir(d) else []
                res.append("bundle left: %s (%s)" % (d, ", ".join(files) or "empty"))
        if ids:
            import hashlib
            for cid in ids:
                h = hashlib.sha256(os.path.join(cd.address, cd.namespace, cid).encode()).hexdigest()
                s = os.path.join("/run/containerd/s", h)
                if os.path.exists(s):
                    res.append("shim socket left for %s: %s" % (cid, s))
                # the shim's state dir (src/shim/paths.c): the VM's shared dir
                # and the binds in it must be gone with the container
                sd = shim_state_dir(os.path.join(br, cid))
                res += ["mount left for %s: %s" % (cid, m) for m in _mounts_under(sd)]
                if os.path.exists(sd):
                    res.append("shim state dir left for %s: %s" % (cid, sd))
    return res


def assert_no_leaks(cd=None, ids=(), timeout=5):
    """Fail unless leaks(cd) becomes empty within timeout (teardown is async)."""
    try:
        wait_for(lambda: not leaks(cd, ids), timeout, "no leftovers")
    except TimeoutError:
        raise AssertionError("leftovers after %ss:\n  %s" % (timeout, "\n  ".join(leaks(cd, ids))))


def kill_leftovers(cd=None):
    """SIGKILL cd's stray shims/VMs and lazily unmount what is left under cd.tmp.
    Returns what it did."""
    done = []
    for pid, kind, cmd in _stray_procs(cd):
        try:
            os.kill(pid, signal.SIGKILL)
            done.append("killed %s %d" % (kind, pid))
        except ProcessLookupError:
            pass
    if cd is not None:
        for m in sorted(_mounts_under(cd.tmp), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
            done.append("unmounted %s" % m)
    return done


# ---------------------------------------------------------------- framework

_TESTS = []


def test(fn=None, *, leaks_ok=False, timeout=None, containerd=None, **cd_kwargs):
    """Register a test. `@test` or `@test(leaks_ok=True, namespace=..., ...)`.
    A test taking a parameter `cd` gets a fresh started Containerd(**cd_kwargs)
    (or containerd(**cd_kwargs): a Containerd subclass).
    (timeout: seconds; on expiry SIGALRM raises TimeoutError in the test.)"""
    def reg(f):
        f._runm_test = dict(leaks_ok=leaks_ok, timeout=timeout, cd_kwargs=cd_kwargs,
                            cls=containerd or Containerd)
        _TESTS.append(f)
        return f
    return reg(fn) if fn is not None else reg


def env_test(get_env, fn=None, *, timeout=600, before=None, on_failure=None):
    """Register a test that gets a file-wide environment from get_env() (a
    dockerd, a podman: anything with leaks() and cleanup()). Afterwards it
    fails if anything of its own is left (within 20 s: teardown is
    asynchronous), and everything is force-cleaned either way. before(env)
    runs first; on_failure(env) adds diagnostics after a failed test."""
    def reg(f):
        def wrapper():
            env = get_env()
            if before:
                before(env)
            ok = False
            try:
                f(env)
                ok = True
            finally:
                try:
                    if ok:
                        try:
                            wait_for(lambda: not env.leaks(), 20, "no leftovers")
                        except TimeoutError:
                            raise AssertionError("leftovers after the test:\n  " + "\n  ".join(env.leaks()))
                finally:
                    done = env.cleanup()
                    if done:
                        log("cleanup removed: " + ", ".join(done))
                    if not ok and on_failure:
                        on_failure(env)
        wrapper.__name__ = f.__name__
        wrapper.__doc__ = f.__doc__
        return test(wrapper, timeout=timeout)
    return reg(fn) if fn is not None else reg


def _run_one(f):
    """Run one test; returns (ok, seconds)."""
    opts = f._runm_test
    t0 = time.monotonic()
    ok = True
    cd = None
    params = inspect.signature(f).parameters

    def fail(what):
        nonlocal ok
        ok = False
        print("  %s" % what.replace("\n", "\n  "), flush=True)

    def on_alarm(signum, frame):
        raise TimeoutError("test %s timed out after %ss" % (f.__name__, opts["timeout"]))

    try:
        if opts["timeout"]:
            signal.signal(signal.SIGALRM, on_alarm)
            signal.alarm(int(opts["timeout"]))
        try:
            if "cd" in params:
                cd = opts["cls"](**opts["cd_kwargs"]).start()
                f(cd)
            else:
                f()
        finally:
            if opts["timeout"]:
                signal.alarm(0)
    except Exception:  # noqa: BLE001 - a test failure
        ok = False
        print(traceback.format_exc().rstrip(), flush=True)

    if cd is not None:
        try:
            if not opts["leaks_ok"]:
                found = leaks(cd)
                if found:
                    # teardown is asynchronous (shim exit, delete binary): give it a moment
                    try:
                        wait_for(lambda: not leaks(cd), 5, "no leftovers")
                    except TimeoutError:
                        fail("leftovers after the test:\n" + "\n".join(leaks(cd)))
            cleaned = cd.cleanup_containers()
            if cleaned and ok is False:
                log("cleanup removed: " + ", ".join(cleaned))
            did = kill_leftovers(cd)
            if did:
                log("cleanup: " + ", ".join(did))
            cd.stop(check=True)
        except Exception:  # noqa: BLE001
            ok = False
            print(traceback.format_exc().rstrip(), flush=True)
        finally:
            if cd.proc and cd.proc.poll() is None:
                cd.stop(check=False)
            if not ok:
                tail = cd.log().splitlines()[-40:]
                if tail:
                    print("  --- containerd log tail (%s):" % cd.log_path, flush=True)
                    for line in tail:
                        print("  | " + line, flush=True)
            if os.environ.get("RUNM_TEST_KEEP") or (not ok and os.environ.get("RUNM_TEST_KEEP_FAILED")):
                log("kept %s" % cd.tmp)
            else:
                cd.remove()
    return ok, time.monotonic() - t0


def main(argv=None):
    """Run the registered tests (all, or those named in argv) in order, print
    `ok NAME (1.2s)` / `FAIL NAME (1.2s)`, then `N passed, N failed` as the last
    line; exit 1 if any failed (or none ran)."""
    argv = sys.argv[1:] if argv is None else argv
    names = [f.__name__ for f in _TESTS]
    unknown = [a for a in argv if a not in names]
    if unknown:
        print("unknown test(s): %s (have: %s)" % (" ".join(unknown), " ".join(names)), flush=True)
        print("0 passed, %d failed" % len(unknown), flush=True)
        sys.exit(1)
    selected = [f for f in _TESTS if not argv or f.__name__ in argv]
    passed = failed = 0
    for f in selected:
        print("-- %s" % f.__name__, flush=True)
        ok, secs = _run_one(f)
        if ok:
            passed += 1
            print("ok %s (%.1fs)" % (f.__name__, secs), flush=True)
        else:
            failed += 1
            print("FAIL %s (%.1fs)" % (f.__name__, secs), flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(0 if failed == 0 and passed > 0 else 1)


def free_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 that nothing uses right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    """Whether a server could listen on 127.0.0.1:port (SO_REUSEADDR as servers
    do: a TIME_WAIT of the last connection does not count, a listener does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
            return True
        except OSError:
            return False


def proc_mem_kib(pid):
    """Rss and Anonymous KiB of pid, from smaps_rollup (Anonymous is what a
    VM alone costs: the kernel and initrd files are page cache shared by
    every VM). Raises OSError once pid is gone."""
    res = {"Rss": 0, "Anonymous": 0}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in res:
                res[k] = int(v.split()[0])
    return res


def mem_available_kib():
    """The host's MemAvailable (KiB)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise OSError("no MemAvailable in /proc/meminfo")


def settled(measure, tolerance_kib, interval, timeout=30):
    """measure() (a tuple whose first item is KiB) once two readings interval
    seconds apart differ by less than tolerance_kib: a guest touches pages for
    a while after it starts. The last reading if it never settles."""
    last = [measure()]

    def stable():
        now = measure()
        done = now[0] > 0 and abs(now[0] - last[0][0]) < tolerance_kib
        last[0] = now
        return done
    try:
        wait_for(stable, timeout, "memory to settle", interval=interval)
    except TimeoutError:
        pass
    return last[0]


def accel_used():
    """The accelerator runm chooses on this host (`runm check --accel`): what
    benchmarks print, instead of guessing from /dev/kvm."""
    try:
        r = subprocess.run([os.path.join(BIN, "runm"), "check", "--accel"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=30)
        return r.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"
