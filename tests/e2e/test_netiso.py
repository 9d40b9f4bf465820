#!/usr/bin/python3
"""test_netiso.py - what a container reaches under passt, proven inside two
network namespaces this test makes: "h" stands for the host (runm, its VMM
and passt run there: `ip netns exec h runm run ...`), "o" for the world
beyond it, joined by a veth pair (198.51.100.0/24, fd51::/64; h's default
routes lead to o, whose IPv6 address fd52::2 is beyond h's link). In h,
HTTP servers on 127.0.0.1 (the host's loopback) and on 198.51.100.1 (one of
the host's own addresses); in o, one on all addresses (the outside world).
A container reaches o over IPv4 and IPv6, and neither of h's own servers
unless it opts in with --host-loopback. No packet leaves the namespaces the
test made."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import free_port, ip, main, run, wait_for  # noqa: E402
from bundle import BUSYBOX, ROOT, RUNM_BIN, Bundle, cli_test  # noqa: E402

H, O = "runm-h-%d" % os.getpid(), "runm-o-%d" % os.getpid()


class Netns:
    """The two namespaces, their servers, and their removal."""

    def __enter__(self):
        self.procs = []
        self.www = tempfile.mkdtemp(prefix="runm-netiso-")
        ip("netns", "add", H)
        ip("netns", "add", O)
        try:
            for ns in (H, O):
                ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", H, "link", "add", "h0", "type", "veth", "peer", "name", "o0", "netns", O)
            for ns, dev, v4, v6 in ((H, "h0", "198.51.100.1/24", "fd51::1/64"),
                                    (O, "o0", "198.51.100.2/24", "fd51::2/64")):
                ip("-n", ns, "addr", "add", v4, "dev", dev)
                ip("-n", ns, "-6", "addr", "add", v6, "dev", dev, "nodad")
                ip("-n", ns, "link", "set", dev, "up")
            # o's own IPv6 address is beyond h's link (a prefix of its own):
            # one on h's prefix would be on the guest's link too, as passt
            # advertises h's prefix to the guest.
            ip("-n", O, "-6", "addr", "add", "fd52::2/128", "dev", "lo")
            ip("-n", H, "route", "add", "default", "via", "198.51.100.2")
            ip("-n", H, "-6", "route", "add", "default", "via", "fd51::2")
            self.port = free_port()
            for name, ns, addr in (("loopback", H, "127.0.0.1"), ("own", H, "198.51.100.1"),
                                   ("outside", O, None)):
                d = os.path.join(self.www, name)
                os.makedirs(d)
                with open(os.path.join(d, "index.html"), "w") as f:
                    f.write(name + "\n")
                listen = "%s:%d" % (addr, self.port) if addr else str(self.port)
                self.procs.append(subprocess.Popen(["ip", "netns", "exec", ns, BUSYBOX, "httpd", "-f", "-p", listen,
                                                    "-h", d], stdin=subprocess.DEVNULL))
            for ns, url in ((H, "http://127.0.0.1:%d/"), (H, "http://198.51.100.1:%d/"),
                            (H, "http://198.51.100.2:%d/"), (H, "http://[fd52::2]:%d/")):
                wait_for(lambda: run(["ip", "netns", "exec", ns, BUSYBOX, "wget", "-q", "-O", "-",
                                      url % self.port], check=False, timeout=10).returncode == 0,
                         20, "server at " + url % self.port)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        # A namespace's processes outlive its removal: stop them first.
        for p in self.procs:
            p.kill()
            p.wait()
        ip("netns", "del", H, check=False)
        ip("netns", "del", O, check=False)
        shutil.rmtree(self.www, ignore_errors=True)

    def runm(self, *args, timeout=120):
        return run(["ip", "netns", "exec", H, RUNM_BIN, "--root", ROOT] + list(args), timeout=timeout,
                   check=False, text=True)


# The guest's IPv6 address comes from passt's router advertisement, which
# may land just after the container starts: wait for it (at most 10 s).
WAIT_V6 = ("i=0; until ip -6 addr show dev eth0 scope global | grep -q inet6 || [ $i -ge 100 ]; "
           "do i=$((i+1)); usleep 100000; done; ")


def fetches(port, *urls):
    """A shell line fetching each url (at most 4 s each), printing `name` or `-`."""
    return WAIT_V6 + "; ".join("timeout 4 wget -q -O - %s || echo -" % (u % port) for u in urls)


@cli_test
def isolated_by_default_outbound_works():
    with Netns() as n:
        script = fetches(n.port, "http://198.51.100.2:%d/", "http://[fd52::2]:%d/",
                         "http://10.0.2.2:%d/", "http://198.51.100.1:%d/")
        with Bundle(["sh", "-c", script]) as b:
            r = n.runm("run", "--bundle", b.path, "iso1")
            assert r.returncode == 0, r
            # the world over IPv4 and IPv6; neither the loopback nor an own address of h
            assert r.stdout.split() == ["outside", "outside", "-", "-"], r
            r = n.runm("run", "--host-loopback", "--bundle", b.path, "iso2")
            assert r.returncode == 0, r
            # opted in: the gateway is h's loopback, and h's own address is open too
            assert r.stdout.split() == ["outside", "outside", "loopback", "own"], r


if __name__ == "__main__":
    main()
