#!/usr/bin/python3
"""test_podman.py - Podman 4.3 (Debian bookworm) with runm as its OCI runtime:
`--runtime /path/runm` and `engine.runtime = "runm"` in containers.conf; run
with -i/-t, -d, -e, -w, -u, -v, -p, --rm; exec, logs, stop, kill, rm -f,
pause/unpause, top, wait and exit statuses; netavark's namespace mirrored into
the VM and aardvark-dns resolving container names; --memory sizing the VM; a
host unix socket given with -v.
Every container proves it is a VM: `uname -r` is the guest kernel, not the
host's. See podman.py for the private environment and the leak checks."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from podman import IMAGE, RUNM_BIN, guest_kernel, host_kernel, log, ns_fetch, pmain, ptest, run, wait_for  # noqa: E402
from sockets import build_client, echo_server  # noqa: E402


def assert_vm_kernel(k):
    assert k == guest_kernel() and k != host_kernel(), "uname -r %r: guest %r, host %r" % (
        k, guest_kernel(), host_kernel())


@ptest
def run_foreground_flags(pm):
    """--runtime /path/runm: -i feeds stdin, -e/-w/-u apply, -v is shared
    both ways, --rm removes, the exit status comes back."""
    vol = os.path.join(pm.work, "vol")
    os.makedirs(vol)
    os.chmod(vol, 0o777)
    with open(os.path.join(vol, "in"), "w") as f:
        f.write("from-host\n")
    r = pm.podman("--runtime", RUNM_BIN, "run", "--rm", "-i", "-e", "GREETING=hello", "-w", "/tmp",
                  "-u", "1000", "-v", vol + ":/v", IMAGE, "sh", "-c",
                  "read line; echo got $line; echo $GREETING; pwd; id -u; cat /v/in; uname -r;"
                  " echo from-guest > /v/out; exit 3", input="piped\n", check=False)
    assert r.returncode == 3, r
    lines = r.stdout.splitlines()
    assert lines[:5] == ["got piped", "hello", "/tmp", "1000", "from-host"], r
    assert_vm_kernel(lines[5])
    assert open(os.path.join(vol, "out")).read() == "from-guest\n"
    assert pm.podman("ps", "-aq").stdout.strip() == "", "--rm left the container"


@ptest
def run_interactive_tty(pm):
    """-it through a real terminal (script(1)): the shell in the guest reads
    what we type and its exit status is podman's."""
    cmd = " ".join(pm.nsenter() + ["/usr/bin/podman", "run", "--rm", "-it", IMAGE, "sh"])
    r = run(["script", "-qec", cmd, "/dev/null"], input="tty\necho typed-$((6*7))\nexit 4\n",
            env=pm.env(), cwd=pm.work, timeout=180, check=False)
    out = r.stdout.replace("\r", "")
    assert r.returncode == 4, r
    assert re.search(r"^/dev/pts/\d+$", out, re.M), out
    assert "typed-42" in out, out


@ptest
def detached_lifecycle(pm):
    """engine.runtime = "runm": run -d -p, exec (status too), the published
    port, logs, top, pause/unpause, stop (SIGTERM reaches the guest), wait."""
    script = ("echo page > /tmp/index.html; trap 'echo bye; exit 42' TERM; httpd -p 80 -h /tmp;"
              " echo started; while true; do sleep 1; done")
    cid = pm.podman("run", "-d", "--name", "web", "-p", "18080:80", IMAGE, "sh", "-c", script).stdout.strip()
    assert pm.inspect("web", "{{.State.Status}}") == "running"
    assert pm.inspect("web", "{{.OCIRuntime}}") == "runm"
    assert_vm_kernel(pm.podman("exec", "web", "uname", "-r").stdout.strip())
    assert pm.podman("exec", "web", "sh", "-c", "exit 5", check=False).returncode == 5
    # The namespace netavark made before create is the VM's: its address is eth0 in the guest.
    ip = pm.inspect("web", "{{.NetworkSettings.IPAddress}}")
    assert ip and ("inet %s/" % ip) in pm.podman("exec", "web", "ip", "-4", "addr", "show", "eth0").stdout
    assert wait_for(lambda: ns_fetch(pm, 18080, path="/index.html"), 30, "the published port") == "page\n"
    wait_for(lambda: "started" in pm.podman("logs", "web").stdout, 30, "the log line")
    # ps(1)-style arguments make podman run ps in the container: the guest's processes.
    top = pm.podman("top", "web", "-o", "pid,args").stdout
    assert "httpd -p 80" in top and "sleep 1" in top, top
    pm.podman("pause", "web")
    assert pm.inspect("web", "{{.State.Status}}") == "paused"
    pm.podman("unpause", "web")
    assert pm.inspect("web", "{{.State.Status}}") == "running"
    assert pm.podman("exec", "web", "echo", "alive").stdout == "alive\n"
    pm.podman("stop", "-t", "30", "web")
    assert pm.podman("wait", "web").stdout.strip() == "42"
    assert pm.inspect("web", "{{.State.ExitCode}}") == "42"
    assert "bye" in pm.podman("logs", "web").stdout
    pm.podman("rm", cid)


@ptest
def kill_and_rm_force(pm):
    """kill -s KILL: exit 137; rm -f of a running container leaves no VM."""
    pm.podman("run", "-d", "--name", "k1", IMAGE, "sleep", "300")
    pm.podman("run", "-d", "--name", "k2", IMAGE, "sleep", "300")
    pm.podman("kill", "-s", "KILL", "k1")
    assert pm.podman("wait", "k1").stdout.strip() == "137"
    pm.podman("rm", "-f", "-t", "0", "k1", "k2")
    assert pm.podman("ps", "-aq").stdout.strip() == ""


@ptest
def network_names_resolve(pm):
    """Two containers on a `podman network create` network: aardvark-dns on the
    bridge gateway (reached over the mirrored veth) resolves the server's name
    and the client fetches from it across the bridge."""
    pm.podman("network", "create", "--subnet", "10.216.0.0/24", "rt-net")
    pm.podman("run", "-d", "--name", "srv", "--network", "rt-net", IMAGE, "sh", "-c",
              "echo pong > /tmp/index.html; trap 'exit 0' TERM; httpd -p 80 -h /tmp;"
              " while true; do sleep 1; done")
    srv_ip = pm.inspect("srv", "{{(index .NetworkSettings.Networks \"rt-net\").IPAddress}}")
    # busybox-static's wget cannot resolve (no NSS): nslookup asks aardvark itself.
    r = pm.podman("run", "--rm", "--network", "rt-net", IMAGE, "sh", "-c",
                  "grep nameserver /etc/resolv.conf; uname -r; nslookup srv;"
                  " a=$(nslookup srv | awk '/^Address/ && !/:53/ {print $NF}' | tail -1);"
                  " timeout 15 wget -qO- http://$a/index.html")
    assert "nameserver 10.216.0.1" in r.stdout, r.stdout
    assert guest_kernel() in r.stdout and srv_ip in r.stdout, r.stdout
    assert r.stdout.rstrip().endswith("pong"), r.stdout
    pm.podman("rm", "-f", "-t", "10", "srv")
    pm.podman("network", "rm", "rt-net")


@ptest
def memory_limit_sizes_the_vm(pm):
    """--memory 256m: the guest cgroup's memory.max says so, and the VM is
    sized from it (MemTotal above 256 MiB, below 256 + runm's overhead), where
    runc cannot even start podman's containers on this host."""
    r = pm.podman("run", "--rm", "--memory", "256m", IMAGE, "sh", "-c",
                  "cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max;"
                  " awk '/MemTotal/ {print $2}' /proc/meminfo; uname -r")
    limit, memtotal_kb, kernel = r.stdout.split()
    assert limit == str(256 << 20), r.stdout
    assert 256 * 1024 < int(memtotal_kb) < (256 + 96) * 1024, "MemTotal %s kB" % memtotal_kb
    assert_vm_kernel(kernel)
    # What runm lifts: podman's rlimits/cgroups are the host runtime's problem with runc
    # (EPERM setting nproc above this shell's hard limit; crun refuses hybrid cgroups).
    for rt in ("/usr/sbin/runc", "/usr/bin/crun"):
        if os.path.exists(rt):
            x = pm.podman("--runtime", rt, "run", "--rm", "--memory", "256m", IMAGE, "true", check=False)
            log("for comparison, %s: status %d %s" % (rt, x.returncode, x.stderr.strip()[-200:]))


@ptest
def errors_as_podman_reports_them(pm):
    """runm's create error (JSON --log, runtime_supports_json) becomes podman's
    127 for a missing entrypoint; host networking is refused in words."""
    r = pm.podman("run", "--rm", IMAGE, "/no/such/binary", check=False)
    assert r.returncode == 127, r
    assert "/no/such/binary" in r.stderr, r.stderr
    # Without runtime_supports_json podman passes no --log: conmon relays
    # runm's stderr as the error instead.
    conf = os.path.join(pm.tmp, "containers-nojson.conf")
    with open(pm.conf) as f, open(conf, "w") as g:
        g.write(f.read().replace('runtime_supports_json = ["runm"]\n', ""))
    r = pm.podman("run", "--rm", IMAGE, "/no/such/binary", check=False, env_extra={"CONTAINERS_CONF": conf})
    assert r.returncode == 127, r
    assert "/no/such/binary" in r.stderr, r.stderr
    r = pm.podman("run", "--rm", "--network", "host", IMAGE, "true", check=False)
    assert r.returncode != 0 and "host networking" in r.stderr and "not supported" in r.stderr, r


@ptest
def host_socket_volume(pm):
    """-v of a host unix socket (as `-v /var/run/docker.sock:...`): a socket
    in the container whose connections reach the host's echo server."""
    tools = os.path.join(pm.work, "tools")
    os.makedirs(tools)
    build_client(os.path.join(tools, "client"))
    with echo_server() as srv:
        # Through sh: runm's entrypoint check looks in the rootfs, not in binds.
        r = pm.podman("run", "--rm", "-v", srv.path + ":/run/echo.sock", "-v", tools + ":/tools:ro", IMAGE,
                      "sh", "-c", "/tools/client /run/echo.sock 3 100000")
        assert "ALL OK" in r.stdout, r
        wait_for(lambda: srv.clean == 3, 10, "3 clean closes on the host, got %d" % srv.clean)


if __name__ == "__main__":
    pmain()
