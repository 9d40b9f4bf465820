#!/usr/bin/python3
"""test_net.py - networking of runm VMs (user-mode NAT, passt by default):
published ports (`runm run -p`, ranges, random host ports, a server that
speaks first, the
io.runm.ports and nerdctl/ports annotations through containerd), the host's
loopback reached through the gateway 10.0.2.2 only when asked
(--host-loopback, io.runm.host-loopback), the container's resolv.conf.
Traffic stays on the host's loopback: published ports listen on 127.0.0.1
only, and without the opt-in the host refuses passt's connections to its
own addresses. Outbound traffic to the world is test_netiso.py's, inside
network namespaces it makes. No lookup leaves the machine."""
import http.server
import json
import os
import socket
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import RUNM, free_port, import_busybox, main, port_is_free, test, wait_for  # noqa: E402
from bundle import Bundle, cli_cleanup, cli_leaks, cli_test, runm  # noqa: E402


def udp_port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def run_detached(*args):
    """runm run --detach: the container keeps our stdio, so give it files."""
    with open(os.devnull, "wb") as null:
        return runm("run", "--detach", *args, stdout=null, stderr=null)


def www_bundle(text, args=("httpd", "-f", "-p", "80", "-h", "/www")):
    """A bundle running busybox httpd (on port 80 unless args say otherwise),
    serving /www/index.html = text."""
    b = Bundle(args)
    www = os.path.join(b.path, "rootfs", "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write(text)
    return b


@cli_test
def published_port_serves_http():
    hp = free_port()
    with www_bundle("hello through a published port\n") as b:
        run_detached("-p", "127.0.0.1:%d:80" % hp, "--bundle", b.path, "web1")
        # slirp accepts at once and resets until httpd listens in the guest: retry.
        body = wait_for(lambda: fetch("http://127.0.0.1:%d/" % hp), 60, "http://127.0.0.1:%d/" % hp)
        assert body == "hello through a published port\n", body
        assert not port_is_free(hp), "port %d should be held by the VM" % hp
        # the port closes when the container ends, before its delete
        runm("kill", "web1", "KILL")
        wait_for(lambda: json.loads(runm("state", "web1").stdout)["status"] == "stopped", 30, "web1 stopped")
        wait_for(lambda: port_is_free(hp), 10, "port %d free once web1 stopped" % hp)
        runm("delete", "web1")


@cli_test
def published_udp_port_is_held():
    # busybox has no UDP server applet (its nc has no -u): check that the VMM
    # holds the host port while the container runs and frees it after.
    hp = free_port(socket.SOCK_DGRAM)
    with Bundle(["sleep", "1000"]) as b:
        run_detached("-p", "127.0.0.1:%d:53/udp" % hp, "--bundle", b.path, "udp1")
        assert not udp_port_is_free(hp), "udp port %d should be held by the VM" % hp
        runm("delete", "--force", "udp1")
    wait_for(lambda: udp_port_is_free(hp), 10, "udp port %d free after delete" % hp)


class _Server:
    """An HTTP server on the host's loopback serving `text` at /file, counting hits."""

    def __init__(self, text):
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.hits += 1
                data = text.encode() if self.path == "/file" else b"wrong path\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()


@cli_test
def host_loopback_only_when_asked():
    text = "from the host's loopback\n"
    with _Server(text) as srv:
        url = "http://10.0.2.2:%d/file" % srv.port
        # By default the host's loopback is out of reach: passt's connection
        # is rejected on the host (this passt then leaves the guest's SYN
        # unanswered: wget waits, hence the timeout).
        with Bundle(["timeout", "3", "wget", "-q", "-O", "-", url]) as b:
            r = runm("run", "--bundle", b.path, "wget0", check=False)
            assert r.returncode != 0 and r.stdout == "", r
            assert srv.hits == 0, "the host's loopback was reached without --host-loopback"
        with Bundle(["wget", "-q", "-O", "-", url]) as b:
            # Opted in (the CLI flag, or the annotation), it is.
            r = runm("run", "--host-loopback", "--bundle", b.path, "wget1", check=False)
            assert r.returncode == 0 and r.stdout == text, r
            cfg = b.read()
            cfg["annotations"] = {"io.runm.host-loopback": "true"}
            b.write(cfg)
            r = runm("run", "--bundle", b.path, "wget2", check=False)
            assert r.returncode == 0 and r.stdout == text, r
            assert srv.hits == 2, srv.hits
            cfg["annotations"] = {"io.runm.host-loopback": "yes"}
            b.write(cfg)
            r = runm("run", "--bundle", b.path, "wget3", check=False)
            assert r.returncode != 0 and "io.runm.host-loopback" in r.stderr, r


@cli_test
def published_ranges_and_random_ports():
    hp = free_port()
    while not port_is_free(hp + 1):
        hp = free_port()
    hp6 = free_port()
    with www_bundle("ranged\n", ["sh", "-c", "httpd -p 80 -h /www && httpd -p 81 -h /www && "
                                  "exec httpd -f -p 82 -h /www"]) as b:
        run_detached("-p", "127.0.0.1:%d-%d:80-81" % (hp, hp + 1), "-p", "127.0.0.1::82",
                     "--bundle", b.path, "ranges")
        st = json.loads(runm("state", "ranges").stdout)
        published = st["annotations"]["io.runm.published-ports"].split(",")
        assert published[0] == "127.0.0.1:%d-%d->80-81/tcp" % (hp, hp + 1), published
        rnd = int(published[1].split("->")[0].rsplit(":", 1)[1])
        assert published[1] == "127.0.0.1:%d->82/tcp" % rnd and rnd > 0, published
        for url in ("http://127.0.0.1:%d/" % hp, "http://127.0.0.1:%d/" % (hp + 1),
                    "http://127.0.0.1:%d/" % rnd):
            body = wait_for(lambda: fetch(url), 60, url)
            assert body == "ranged\n", (url, body)
        runm("delete", "--force", "ranges")
    wait_for(lambda: port_is_free(hp) and port_is_free(hp + 1) and port_is_free(rnd), 10, "ports free")
    # a range of unequal length, and a random port for a range, name the option
    with Bundle(["true"]) as b:
        for bad in ("8000-8002:80-81", "80-81"):
            r = runm("run", "-p", bad, "--bundle", b.path, "bad", check=False)
            assert r.returncode != 0 and "--publish" in r.stderr and bad in r.stderr, r
        # an IPv6 host address is refused clearly (QEMU 7.2 forwards IPv4 only)
        r = runm("run", "-p", "[::1]:%d:80" % hp6, "--bundle", b.path, "bad6", check=False)
        assert r.returncode != 0 and "::1" in r.stderr and "IPv4" in r.stderr, r


@cli_test
def server_speaking_first_through_a_published_port():
    """A server that greets first (MySQL, SMTP): the client sends nothing."""
    hp = free_port()
    with Bundle(["sh", "-c", "while :; do echo hello-first | nc -l -p 25; done"]) as b:
        run_detached("-p", "127.0.0.1:%d:25" % hp, "--bundle", b.path, "greet")

        def greeting():
            with socket.create_connection(("127.0.0.1", hp), timeout=5) as s:
                s.settimeout(3)
                try:
                    return s.recv(64) or None  # b"" before nc listens: retry
                except socket.timeout:
                    return None
        assert wait_for(greeting, 60, "the greeting") == b"hello-first\n"
        runm("delete", "--force", "greet")


@cli_test
def port_in_use_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        hp = busy.getsockname()[1]
        with Bundle(["true"]) as b:
            r = runm("run", "-p", "127.0.0.1:%d:80" % hp, "--bundle", b.path, "busy1", check=False)
            assert r.returncode != 0, r
            assert str(hp) in r.stderr and "in use" in r.stderr, r
            assert not cli_leaks(), cli_leaks()
            # the same port twice in one container is caught too
            p2 = free_port()
            r = runm("run", "-p", "127.0.0.1:%d:80" % p2, "-p", "127.0.0.1:%d:81" % p2, "--bundle", b.path,
                     "busy2", check=False)
            assert r.returncode != 0 and str(p2) in r.stderr and "in use" in r.stderr, r
            # malformed values name the option
            r = runm("run", "-p", "99999:80", "--bundle", b.path, "bad1", check=False)
            assert r.returncode != 0 and "--publish" in r.stderr and "99999" in r.stderr, r
            # and annotations name the annotation
            cfg = b.read()
            cfg["annotations"] = {"io.runm.ports": "127.0.0.1:80"}
            b.write(cfg)
            r = runm("run", "--bundle", b.path, "bad2", check=False)
            assert r.returncode != 0 and "io.runm.ports" in r.stderr, r


@cli_test
def resolv_conf_and_loopback():
    with Bundle(["sh", "-c", "cat /etc/resolv.conf; ip -4 addr show dev lo | grep -c 'inet 127.0.0.1'; "
                 "ip -4 addr show dev eth0 | grep -o 'inet [0-9./]*'; ip route | grep default"]) as b:
        r = runm("run", "--bundle", b.path, "dns1", check=False)
        assert r.returncode == 0, r
        lines = r.stdout.splitlines()
        assert lines[0] == "nameserver 10.0.2.3", r
        assert lines[1] == "1", r
        assert lines[2] == "inet 10.0.2.15/24", r
        assert lines[3].startswith("default via 10.0.2.2"), r
        # the host's rootfs holds only the empty mount point, never the generated file
        assert os.path.getsize(os.path.join(b.path, "rootfs", "etc", "resolv.conf")) == 0


@cli_test
def network_none_annotation():
    with Bundle(["sh", "-c", "ls /sys/class/net; ip -4 addr show dev lo | grep -c 'inet 127.0.0.1'"]) as b:
        cfg = b.read()
        cfg["annotations"] = {"io.runm.network": "none"}
        b.write(cfg)
        r = runm("run", "--bundle", b.path, "nonet1", check=False)
        assert r.returncode == 0 and r.stdout.split() == ["lo", "1"], r
        r = runm("run", "-p", "%d:80" % free_port(), "--bundle", b.path, "nonet2", check=False)
        assert r.returncode != 0 and "io.runm.network" in r.stderr, r


@test(debug=False)  # the VMM command line in debug logs says "panic=-1", which the harness flags
def ports_from_annotations_through_containerd(cd):
    img = import_busybox(cd)
    hp1, hp2 = free_port(), free_port()
    nerdctl = '[{"HostPort":%d,"ContainerPort":80,"Protocol":"tcp","HostIP":"127.0.0.1"}]' % hp2
    cd.ctr("run", "-d", "--runtime", RUNM, "--annotation", "io.runm.ports=127.0.0.1:%d:80" % hp1,
           "--annotation", "nerdctl/ports=" + nerdctl, img, "web",
           "sh", "-c", "mkdir -p /tmp/www && echo hello-ctr > /tmp/www/index.html && "
           "exec httpd -f -p 80 -h /tmp/www", timeout=120)
    for hp in (hp1, hp2):
        body = wait_for(lambda: fetch("http://127.0.0.1:%d/" % hp), 60, "http://127.0.0.1:%d/" % hp)
        assert body == "hello-ctr\n", body
    r = cd.ctr("task", "exec", "--exec-id", "r", "web", "cat", "/etc/resolv.conf", timeout=60)
    assert r.stdout == "nameserver 10.0.2.3\n", r
    cd.ctr("task", "kill", "-s", "SIGKILL", "web", timeout=30)
    wait_for(lambda: cd.tasks().get("web") == "STOPPED", 20, "task web stopped")
    # closed with the task's end, not at its delete
    wait_for(lambda: port_is_free(hp1) and port_is_free(hp2), 10, "ports free once the task stopped")
    cd.ctr("task", "delete", "web", timeout=30)
    cd.ctr("container", "rm", "web", timeout=30)


if __name__ == "__main__":
    main()
