#!/usr/bin/python3
"""test_docker.py - Docker 20.10 (Debian's docker.io) driving the runtime under
test through containerd-shim-runc-v2, as it drives runc: `docker run` and its
options, stdio and ttys, volumes (and the daemon's own socket), lifecycle
commands, restart policies, published ports, user-defined networks with the
embedded DNS, and the options runm refuses.

RUNM_DOCKER_RUNTIME=runm (default) or runc. One dockerd for the file (see
docker.py); it runs in a network namespace of its own, with the runtime
under test as its default runtime. Needs root, docker.io, iptables and, for
runm, build/bin/runm (runc-compatible) and the guest kernel."""
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker import (DOCKER, IMAGE, IS_RUNM, RUNTIME, UPSTREAM_DNS, dmain, dtest,  # noqa: E402
                    expected_kernel, host_kernel, log, ns_fetch, runm_only, wait_for)
from dnsresponder import ANSWER, start_responder, stop_responder  # noqa: E402
from sockets import build_sockcat  # noqa: E402

HTTPD = "mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p 80 -h /www"


def out_err(r):
    return "status %s\n--- stdout:\n%s--- stderr:\n%s" % (r.returncode, r.stdout, r.stderr)


@dtest
def run_status_and_errors(dk):
    """uname -r (the guest kernel for runm), the runtime dockerd used, exit
    statuses 42 / 127 / 126 and their messages."""
    r = dk.docker("run", "--name", "basics", IMAGE, "uname", "-r", timeout=180)
    dk.track(dk.inspect("basics", "{{.Id}}"))
    kernel = r.stdout.strip()
    assert kernel == expected_kernel(), "uname -r: %r, expected %r" % (kernel, expected_kernel())
    if IS_RUNM:
        assert kernel != host_kernel(), "uname -r is the host's kernel %r: not in a VM" % kernel
    rt = dk.inspect("basics", "{{.HostConfig.Runtime}}")
    assert rt == RUNTIME, "container ran with runtime %r, not %r" % (rt, RUNTIME)
    assert dk.state("basics")["ExitCode"] == 0
    dk.docker("rm", "basics")

    r = dk.docker("run", "--rm", IMAGE, "sh", "-c", "exit 42", check=False, timeout=180)
    assert r.returncode == 42, out_err(r)

    r = dk.docker("run", "--rm", IMAGE, "/no/such/binary", check=False, timeout=180)
    assert r.returncode == 127, out_err(r)
    assert "executable file not found" in r.stderr or "no such file" in r.stderr, out_err(r)

    r = dk.docker("run", "--rm", IMAGE, "/etc/passwd", check=False, timeout=180)
    assert r.returncode == 126, out_err(r)
    assert "permission denied" in r.stderr.lower(), out_err(r)


@dtest
def stdin_and_tty(dk):
    """-i with piped stdin; -t gives a pty whose size follows the client's
    terminal, also after a resize."""
    r = dk.docker("run", "--rm", "-i", IMAGE, "cat", input="hi from stdin\n", timeout=180)
    assert r.stdout == "hi from stdin\n", out_err(r)
    r = dk.docker("run", "--rm", "-i", IMAGE, "sh", "-c", "wc -c", input="x" * 100000, timeout=180)
    assert r.stdout.strip() == "100000", out_err(r)

    script = ("tty; i=0; while [ \"$(stty size)\" != '40 100' ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
              "echo init=$(stty size); echo ready; i=0; "
              "while [ \"$(stty size)\" != '50 120' ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; "
              "echo resized=$(stty size)")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    p = subprocess.Popen([DOCKER, "-H", dk.host, "run", "--rm", "-t", IMAGE, "sh", "-c", script],
                         stdin=slave, stdout=slave, stderr=slave, env=dk.env(), start_new_session=True)
    os.close(slave)
    buf = b""
    resized = False
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            rl, _, _ = select.select([master], [], [], 0.5)
            if rl:
                try:
                    chunk = os.read(master, 4096)
                except OSError:      # EIO: every slave fd closed
                    break
                if not chunk:
                    break
                buf += chunk
            if not resized and b"ready" in buf:
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
                p.send_signal(__import__("signal").SIGWINCH)   # as the kernel would for a real terminal
                resized = True
            if p.poll() is not None and not rl:
                break
        rc = p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    text = buf.decode(errors="replace")
    assert rc == 0, "docker run -t: status %s, output %r" % (rc, text)
    assert "/dev/pts/" in text, "tty printed no /dev/pts/N: %r" % text
    assert "init=40 100" in text, "pty size is not the client's 40x100: %r" % text
    assert "resized=50 120" in text, "resize to 50x120 did not reach the container: %r" % text


@dtest
def env_workdir_user(dk):
    """-e, -w and -u 1000:1000 in one container."""
    r = dk.docker("run", "--rm", "-e", "RUNM_A=b c", "-w", "/tmp", "-u", "1000:1000", IMAGE,
                  "sh", "-c", 'echo "A=$RUNM_A"; pwd; id -u; id -g; touch /tmp/f && echo wrote',
                  timeout=180)
    assert r.stdout.split("\n") == ["A=b c", "/tmp", "1000", "1000", "wrote", ""], out_err(r)


@dtest
def volumes_and_read_only(dk):
    """-v hostdir:/data both ways; a named volume outlives its container;
    --read-only root with a writable --tmpfs."""
    host = os.path.join(dk.work, "vol")
    os.makedirs(host)
    with open(os.path.join(host, "from-host"), "w") as f:
        f.write("host-data\n")
    vol = "runm-dk-vol"
    r = dk.docker("run", "--rm", "-v", host + ":/data", "-v", vol + ":/named", IMAGE, "sh", "-c",
                  "cat /data/from-host && echo guest-data > /data/from-guest && echo persisted > /named/f",
                  timeout=180)
    assert r.stdout == "host-data\n", out_err(r)
    with open(os.path.join(host, "from-guest")) as f:
        assert f.read() == "guest-data\n", "write through -v did not reach the host"
    r = dk.docker("run", "--rm", "-v", vol + ":/named", "--read-only", "--tmpfs", "/scratch", IMAGE, "sh", "-c",
                  "cat /named/f; if touch /rootfile 2>/dev/null; then echo root-writable; else echo root-ro; fi; "
                  "echo t > /scratch/t && cat /scratch/t; grep ' /scratch ' /proc/mounts",
                  timeout=180)
    lines = r.stdout.splitlines()
    assert lines[:3] == ["persisted", "root-ro", "t"], out_err(r)
    assert len(lines) == 4 and lines[3].split()[2] == "tmpfs", "/scratch is not a tmpfs: " + out_err(r)
    dk.docker("volume", "rm", vol)


@dtest
def docker_socket_into_container(dk):
    """-v of the daemon's own socket (the docker-in-docker pattern, as with
    /var/run/docker.sock): the container asks dockerd's API through it."""
    tools = os.path.join(dk.work, "socktools")
    os.makedirs(tools)
    build_sockcat(os.path.join(tools, "sockcat"))
    r = dk.docker("run", "--rm", "-v", dk.sock + ":/var/run/docker.sock", "-v", tools + ":/tools:ro", IMAGE,
                  "sh", "-c", "printf 'GET /_ping HTTP/1.0\\r\\n\\r\\n' | /tools/sockcat /var/run/docker.sock",
                  timeout=180)
    # (Text mode: the CRLFs read as newlines.)
    assert r.stdout.startswith("HTTP/1.0 200 OK") and "Api-Version:" in r.stdout, out_err(r)
    assert r.stdout.endswith("\n\nOK"), out_err(r)


@dtest
def memory_and_cpus(dk):
    """--memory 256m and --cpus 1: runm's VM has about 256 MiB; runc's
    cgroup has the limit."""
    r = dk.docker("run", "--name", "res", "--memory", "256m", "--cpus", "1", IMAGE, "sh", "-c",
                  "grep MemTotal /proc/meminfo; nproc; cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                  "/sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null; true", timeout=180)
    dk.track(dk.inspect("res", "{{.Id}}"))
    hc = dk.inspect("res", "{{json .HostConfig}}")
    hc = json.loads(hc)
    assert hc["Memory"] == 256 << 20 and hc["NanoCpus"] == 10 ** 9, hc
    lines = r.stdout.split()
    mem_kb = int(lines[1])
    nproc = int(lines[3])
    if IS_RUNM:
        # The VM is the limit plus runm's 96 MiB for the guest (SPEC_VM_OVERHEAD_MIB),
        # of which the guest kernel keeps some for itself.
        assert 200 * 1024 <= mem_kb <= (256 + 96) * 1024, "VM MemTotal %d kB for --memory 256m" % mem_kb
        assert nproc >= 1
    else:
        assert lines[4:6] == [str(256 << 20), "100000"], "cgroup limits: " + out_err(r)
    log("MemTotal %d kB, nproc %d" % (mem_kb, nproc))
    dk.docker("rm", "res")


@dtest
def detached_exec_logs_top_pause_kill(dk):
    """-d + logs, exec (output, status, -i), top, pause/unpause, kill."""
    cid = dk.track(dk.docker("run", "-d", "--name", "bg", IMAGE, "sh", "-c",
                             "echo started-bg; exec sleep 100000", timeout=180).stdout)
    wait_for(lambda: "started-bg" in dk.docker("logs", "bg", timeout=30).stdout, 60, "started-bg in docker logs")
    assert dk.state("bg")["Running"] is True

    r = dk.docker("exec", "bg", "sh", "-c", "echo out-exec; echo err-exec >&2; exit 3", check=False, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out-exec\n", "err-exec\n"), out_err(r)
    r = dk.docker("exec", "-i", "bg", "sh", "-c", "cat; echo done", input="via-exec-i\n", timeout=120)
    assert r.stdout == "via-exec-i\ndone\n", out_err(r)
    r = dk.docker("exec", "bg", "uname", "-r", timeout=120)
    assert r.stdout.strip() == expected_kernel(), out_err(r)

    r = dk.docker("top", "bg", timeout=60)
    rows = r.stdout.splitlines()
    # dockerd runs the host's ps on the pids `RUNTIME ps --format json` gives:
    # for runc the container's own processes; for runm host pids (its monitor).
    assert len(rows) >= 2 and rows[0].split()[:2] == ["UID", "PID"], "docker top lists nothing: " + out_err(r)
    if not IS_RUNM:
        assert "sleep" in r.stdout, "docker top lists no sleep: " + out_err(r)

    dk.docker("pause", "bg", timeout=60)
    assert dk.state("bg")["Status"] == "paused", dk.state("bg")
    dk.docker("unpause", "bg", timeout=60)
    st = dk.state("bg")
    assert st["Status"] == "running" and not st["Paused"], st
    r = dk.docker("exec", "bg", "echo", "alive", timeout=120)
    assert r.stdout == "alive\n", out_err(r)

    dk.docker("kill", "bg", timeout=60)
    wait_for(lambda: dk.state("bg")["Status"] == "exited", 60, "bg to exit after docker kill")
    assert dk.state("bg")["ExitCode"] == 137, dk.state("bg")
    dk.docker("rm", "bg")
    assert cid not in dk.containers()


@dtest
def stop_graceful_and_forced(dk):
    """docker stop: a TERM trap exits 0 at once; an ignored TERM gets SIGKILL
    after -t 2 (137)."""
    dk.docker("run", "-d", "--name", "trap", IMAGE, "sh", "-c",
              "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.2; done", timeout=180)
    dk.docker("run", "-d", "--name", "deaf", IMAGE, "sh", "-c",
              "trap '' TERM; echo ready; while :; do sleep 0.2; done", timeout=180)
    for n in ("trap", "deaf"):
        dk.track(dk.inspect(n, "{{.Id}}"))
        wait_for(lambda n=n: "ready" in dk.docker("logs", n, timeout=30).stdout, 60, "%s ready" % n)

    t0 = time.monotonic()
    dk.docker("stop", "-t", "30", "trap", timeout=60)
    took_trap = time.monotonic() - t0
    st = dk.state("trap")
    assert st["ExitCode"] == 0 and st["Status"] == "exited", st
    assert took_trap < 15, "docker stop of a container that exits on TERM took %.1fs" % took_trap
    assert "got-term" in dk.docker("logs", "trap").stdout

    t0 = time.monotonic()
    dk.docker("stop", "-t", "2", "deaf", timeout=60)
    took = time.monotonic() - t0
    st = dk.state("deaf")
    assert st["ExitCode"] == 137, st
    assert 1.5 <= took < 20, "docker stop -t 2 of a TERM-ignoring container took %.1fs" % took
    log("stop: trap %.1fs, forced after -t 2: %.1fs" % (took_trap, took))
    dk.docker("rm", "trap", "deaf")


@dtest
def rm_force_autoremove_restart(dk):
    """rm -f of a running container; --rm removes it; --restart on-failure:2."""
    cid = dk.track(dk.docker("run", "-d", IMAGE, "sleep", "100000", timeout=180).stdout)
    dk.docker("rm", "-f", cid, timeout=60)
    assert cid not in dk.containers(), "rm -f left %s" % cid

    dk.docker("run", "--rm", "--name", "auto", IMAGE, "true", timeout=180)
    wait_for(lambda: dk.docker("ps", "-aq", "--filter", "name=^auto$", timeout=30).stdout.strip() == "",
             20, "--rm container to be removed")

    cid = dk.track(dk.docker("run", "-d", "--restart", "on-failure:2", IMAGE, "sh", "-c",
                             "echo run; exit 1", timeout=180).stdout)

    def done():
        st = dk.state(cid)
        return st["Status"] == "exited" and dk.inspect(cid, "{{.RestartCount}}") == "2" and st
    st = wait_for(done, 180, "RestartCount 2 and exited", interval=0.2)
    assert st["ExitCode"] == 1, st
    runs = dk.docker("logs", cid).stdout.count("run")
    assert runs == 3, "on-failure:2 ran the container %d times, not 3" % runs
    dk.docker("rm", cid)


@dtest
def published_port(dk):
    """-p 127.0.0.1:18080:80 to busybox httpd, fetched from dockerd's netns."""
    cid = dk.track(dk.docker("run", "-d", "-p", "127.0.0.1:18080:80", IMAGE, "sh", "-c",
                             HTTPD % "hello-port", timeout=180).stdout)
    body = wait_for(lambda: "hello-port" in ns_fetch(dk, 18080) and ns_fetch(dk, 18080), 60,
                    "http://127.0.0.1:18080/ in the netns", interval=0.2)
    assert body.startswith("HTTP/1."), body
    ip = dk.inspect(cid, "{{.NetworkSettings.IPAddress}}")
    assert ip.startswith("10.201.0."), ip
    assert "hello-port" in ns_fetch(dk, 80, host=ip), "container IP %s:80 not reachable from the netns" % ip
    dk.docker("rm", "-f", cid, timeout=60)


@dtest
def user_network_dns(dk):
    """Two containers on a user-defined network: the client finds the server
    by name through Docker's embedded DNS (127.0.0.11) and fetches from it."""
    dk.docker("network", "create", "--subnet", "10.202.0.0/24", "n1", timeout=60)
    dk.track(dk.docker("run", "-d", "--network", "n1", "--name", "srv", IMAGE, "sh", "-c",
                       HTTPD % "hello-n1", timeout=180).stdout)
    srv_ip = dk.inspect("srv", '{{(index .NetworkSettings.Networks "n1").IPAddress}}')
    # Names dockerd does not know go upstream from inside the container's
    # namespace: the answer must reach dockerd, not be redirected into the VM.
    upstream = start_responder(dk.ns, UPSTREAM_DNS)
    script = ("grep nameserver /etc/resolv.conf; nslookup -type=a svc.test 127.0.0.11; i=0; "
              "until ip=$(nslookup srv 127.0.0.11 | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | tail -1) "
              "&& [ -n \"$ip\" ]; do i=$((i+1)); [ $i -gt 50 ] && exit 7; sleep 0.2; done; echo ip=$ip; i=0; "
              "until timeout 10 wget -qO- http://$ip/; do i=$((i+1)); [ $i -gt 50 ] && exit 8; sleep 0.2; done")
    try:
        r = dk.docker("run", "--rm", "--network", "n1", "--name", "cli", IMAGE, "sh", "-c", script,
                      check=False, timeout=300)
    finally:
        queries = stop_responder(upstream)
    assert r.returncode == 0, out_err(r)
    assert "query svc.test 1" in queries, "dockerd forwarded nothing upstream: " + queries
    assert ANSWER in r.stdout, "the upstream answer did not come back: " + out_err(r)
    assert "nameserver 127.0.0.11" in r.stdout, "not Docker's embedded DNS: " + out_err(r)
    assert "ip=%s\n" % srv_ip in r.stdout, "srv resolved wrong (it is %s): %s" % (srv_ip, out_err(r))
    assert "hello-n1" in r.stdout, out_err(r)
    dk.docker("rm", "-f", "srv", timeout=60)
    dk.docker("network", "rm", "n1", timeout=60)


if not IS_RUNM:
    @dtest
    def host_namespaces_runc(dk):
        """(runc) --network host sees dockerd's netns (docker0); --pid host sees dockerd."""
        r = dk.docker("run", "--rm", "--network", "host", IMAGE, "ip", "-o", "link", timeout=180)
        assert "docker0" in r.stdout, out_err(r)
        r = dk.docker("run", "--rm", "--pid", "host", IMAGE, "ps", "-o", "comm", timeout=180)
        assert "dockerd" in r.stdout, out_err(r)


@runm_only
def host_namespaces_refused(dk):
    """(runm) --network host and --pid host fail at once with a message naming
    what is not supported, leaving nothing behind."""
    for opt in ("--network", "--pid"):
        t0 = time.monotonic()
        r = dk.docker("run", "--rm", opt, "host", IMAGE, "true", check=False, timeout=120)
        took = time.monotonic() - t0
        assert r.returncode != 0, "%s host was accepted: %s" % (opt, out_err(r))
        err = r.stderr.lower()
        assert "host" in err and ("network" in err or "pid" in err), "unclear error: " + out_err(r)
        assert took < 60, "%s host took %.1fs to fail" % (opt, took)


if __name__ == "__main__":
    dmain()
