#!/usr/bin/python3
"""test_sockets.py - host unix sockets bound into containers, end to end on
real VMs, through the runm CLI (and containerd + ctr).

A bind mount whose source is a unix socket on the host becomes a socket at
the same destination in the container, which the agent relays to the host
socket over the agent channel, one SocketProxy stream per connection
(proto/runm/agent.proto). Here a host echo server listens in a temp dir; a
small static client in the container (busybox's nc has no unix sockets)
opens several connections at once, writes more than the flow-control window
on each while reading the echo, half-closes, and checks every byte came back.
Also: the guest socket has the host socket's mode, a host socket nobody
listens on gets the guest client's connection closed with a log line naming
it, and nothing is left behind (cli_leaks)."""
import os
import re
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import RUNM, assert_no_leaks, import_busybox, main, test  # noqa: E402
import lib  # noqa: E402
from bundle import Bundle, cli_test, runm  # noqa: E402
from sockets import build_client, echo_server  # noqa: E402

def bind(src, dst):
    return {"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rw"]}


def add_client(b):
    build_client(os.path.join(b.path, "rootfs", "client"))


def run_client(mounts, script, cid, check=True, uid=0):
    with Bundle(["sh", "-c", script], mounts=mounts, uid=uid, gid=uid) as b:
        add_client(b)
        return runm("run", "--bundle", b.path, cid, check=check, timeout=240)


# ---------------------------------------------------------------- runm CLI

@cli_test
def cli_socket_echo_several_at_once():
    """Ten connections at once (more than the calls waiting in the agent),
    each 300 000 bytes both ways (more than the 256 KiB window), then one
    short one: every byte echoed, every connection half-closed cleanly."""
    with echo_server() as srv:
        # Named through a symlinked directory, as /var/run/docker.sock is on Debian.
        link = os.path.join(os.path.dirname(srv.path), "run")
        os.symlink(os.path.dirname(srv.path), link)
        script = ("stat -c '%F %a' /run/echo.sock; /client /run/echo.sock 10 300000 && "
                  "/client /run/echo.sock 1 5")
        try:
            r = run_client([bind(os.path.join(link, "echo.sock"), "/run/echo.sock")], script, "sock1")
        finally:
            os.unlink(link)
        out = r.stdout
        assert out.startswith("socket 660\n"), r
        assert out.count("ALL OK") == 2 and "WRONG" not in out, r
        for c in range(10):
            assert "conn %d sent 300000 got 300000\n" % c in out, r
        lib.wait_for(lambda: srv.clean == 11, 10, "11 clean closes on the host, got %d" % srv.clean)


@cli_test
def cli_socket_empty_connection_and_many_in_turn():
    """Connections that send nothing (EOF at once) and 30 short ones in a
    row: the waiting calls are replaced as they are used."""
    with echo_server() as srv:
        script = "/client /run/s 3 0 && i=0; while [ $i -lt 30 ]; do /client /run/s 1 100 >/dev/null || exit 1; i=$((i+1)); done; echo DONE"
        r = run_client([bind(srv.path, "/run/s")], script, "sock2")
        assert "conn 2 sent 0 got 0" in r.stdout and "DONE" in r.stdout, r
        lib.wait_for(lambda: srv.clean == 33, 10, "33 clean closes on the host, got %d" % srv.clean)


@cli_test
def cli_socket_keeps_owner_and_mode():
    """The guest socket has the host socket's owner and mode, so the same
    users may connect: uid 1000 to its 0600 socket, not uid 2000."""
    with echo_server() as srv:
        os.chown(srv.path, 1000, 1000)
        os.chmod(srv.path, 0o600)
        r = run_client([bind(srv.path, "/s")], "stat -c '%u %g %a' /s; /client /s 2 1000", "sock4", uid=1000)
        assert r.stdout.startswith("1000 1000 600\n") and "ALL OK" in r.stdout, r
        r = run_client([bind(srv.path, "/s")], "/client /s 1 10; echo rc=$?", "sock5", uid=2000)
        assert "Permission denied" in r.stdout + r.stderr and "rc=2" in r.stdout, r
        lib.wait_for(lambda: srv.clean == 2, 10, "2 clean closes on the host, got %d" % srv.clean)


@cli_test
def cli_socket_client_killed_with_its_connection_open():
    """A detached container's client holds a connection; killed, its close
    reaches the host server (EOF there), and nothing is left behind."""
    with echo_server() as srv, Bundle(["/client", "/s", "1", "-1"], mounts=[bind(srv.path, "/s")]) as b:
        add_client(b)
        with open(os.devnull, "wb") as null:
            runm("run", "--detach", "--bundle", b.path, "sock6", stdout=null, stderr=null)
        try:
            lib.wait_for(lambda: srv.received == 2, 60, "the client's hi on the host")
            assert srv.clean == 0
            runm("kill", "sock6", "KILL")
            lib.wait_for(lambda: srv.clean == 1, 30, "the connection closed on the host")
        finally:
            runm("delete", "--force", "sock6", check=False)


@cli_test
def cli_socket_nobody_listening():
    """A socket file on the host nobody listens on: the guest client's
    connection is closed (EOF, nothing echoed), the log names the socket."""
    d = tempfile.mkdtemp(prefix="runm-sock-")
    path = os.path.join(d, "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)  # bound, never listening: connect gets ECONNREFUSED
        r = run_client([bind(path, "/dead.sock")], "/client /dead.sock 1 10; echo rc=$?", "sock3")
        assert re.search(r"conn 0 sent \d+ got 0\n", r.stdout) and "rc=1" in r.stdout, r
        assert path in r.stderr and "closed" in r.stderr, r
    finally:
        s.close()
        os.unlink(path)
        os.rmdir(d)


# ---------------------------------------------------------------- containerd

@test(debug=False, timeout=400)
def ctr_socket_echo(cd):
    img = import_busybox(cd)
    with echo_server() as srv, tempfile.TemporaryDirectory(prefix="runm-sockc-") as tools:
        build_client(os.path.join(tools, "client"))
        r = cd.ctr("run", "--rm", "--runtime", RUNM,
                   "--mount", "type=bind,src=%s,dst=/run/echo.sock,options=rbind:rw" % srv.path,
                   "--mount", "type=bind,src=%s,dst=/tools,options=rbind:ro" % tools,
                   img, "sockctr", "/tools/client", "/run/echo.sock", "4", "100000", timeout=240)
        assert "ALL OK" in r.stdout, r
        lib.wait_for(lambda: srv.clean == 4, 10, "4 clean closes on the host, got %d" % srv.clean)
        assert_no_leaks(cd, ids=["sockctr"])


if __name__ == "__main__":
    main()
