#!/usr/bin/python3
"""test_dns.py - Docker's embedded DNS (127.0.0.11 in the container's network
namespace, named by a bind-mounted resolv.conf) answers a runm container: the
agent listens on 127.0.0.11:53 in the VM and the host relays each query to the
resolver inside the namespace (engine/dnsrelay.c, agent/dns.c).

The test makes the network namespace Docker would (runm-dns-<pid>, with an
eth0 that has an address, its veth peer in a second namespace so nothing
touches the machine's own network), runs a tiny DNS responder on
127.0.0.11:53 in it (svc.test -> 10.9.8.7, NXDOMAIN for the rest), then
`runm run` with that namespace's path and the resolv.conf. Both namespaces
and the responder go at the end, also on failure."""
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import log, main, run  # noqa: E402
from bundle import Bundle, cli_test, runm  # noqa: E402
from dnsresponder import ANSWER, start_responder, stop_responder  # noqa: E402

NS = "runm-dns-%d" % os.getpid()
PEER = NS + "-peer"
LISTENER = "0B00007F:0035"  # 127.0.0.11:53 as /proc/net/udp spells it

def ip(*args, check=True):
    return run(["ip"] + list(args), timeout=20, check=check, text=True)


def our_netns():
    out = ip("netns", "list").stdout
    return [l.split()[0] for l in out.splitlines() if l.split() and l.split()[0] in (NS, PEER)]


def make_netns():
    for ns in (NS, PEER):
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", NS, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0", "netns", PEER)
    ip("-n", NS, "addr", "add", "10.251.0.2/24", "dev", "eth0")
    ip("-n", PEER, "addr", "add", "10.251.0.1/24", "dev", "peer0")
    ip("-n", NS, "link", "set", "eth0", "up")
    ip("-n", PEER, "link", "set", "peer0", "up")


def dns_bundle(script, resolv):
    b = Bundle(["sh", "-c", script],
               mounts=[{"destination": "/etc/resolv.conf", "type": "bind", "source": resolv,
                        "options": ["rbind", "ro"]}])
    os.symlink("busybox", os.path.join(b.path, "rootfs", "bin", "nslookup"))
    with open(os.path.join(b.path, "config.json")) as f:
        cfg = json.load(f)
    cfg["linux"]["namespaces"].append({"type": "network", "path": "/run/netns/" + NS})
    b.write(cfg)
    return b


# Inside the container: the plain lookup, an A lookup that resolves, one that
# must fail (and not hang), then twenty more, timed to give a round trip
# under this accelerator (busybox's date has no %N: /proc/uptime, in 10 ms).
#
# Why -type=a for the checks: busybox's nslookup asks A and AAAA at once and
# matches answers by DNS id alone. In the guest both queries often carry the
# same id (seen on most plain lookups after a VM's first; the ids come from
# glibc's res_mkquery, which derives them from the clock), so busybox takes
# the second answer for a duplicate of the first and waits out its 5 s
# timeout for the other ("Can't find ...: No answer", exit 0). The relay
# gives every answer back under the id its query had, as it must: the client
# cannot tell them apart. One type per lookup has no such ambiguity.
SCRIPT = r"""
cat /proc/net/udp
cat /sys/devices/system/clocksource/clocksource0/current_clocksource
nslookup svc.test; echo "rc-plain=$?"
read u idle < /proc/uptime; echo "up=$u"
nslookup -type=a svc.test; echo "rc-known=$?"
read u idle < /proc/uptime; echo "up=$u"
nslookup -type=a nosuch.test; echo "rc-unknown=$?"
read u idle < /proc/uptime; echo "up=$u"
read t0 idle < /proc/uptime
i=0; while [ $i -lt 20 ]; do nslookup -type=a svc.test >/dev/null 2>&1 || echo lookup-failed; i=$((i+1)); done
read t1 idle < /proc/uptime
echo "t0=$t0 t1=$t1"
"""


@cli_test
def embedded_dns_answers_in_the_vm():
    responder = None
    tmp = tempfile.mkdtemp(prefix="runm-dns-")
    resolv = os.path.join(tmp, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("# as Docker writes it for user-defined networks\nnameserver 127.0.0.11\noptions ndots:0\n")
    log_text = ""
    try:
        make_netns()
        responder = start_responder(NS)
        with dns_bundle(SCRIPT, resolv) as b:
            start = time.monotonic()
            r = runm("run", "--bundle", b.path, "dns1", check=False, timeout=240)
            took = time.monotonic() - start
        log_text = stop_responder(responder)
        responder = None
        out = r.stdout
        assert r.returncode == 0, "runm run: %s\n%s\nresponder: %s" % (out, r.stderr, log_text)
        assert LISTENER in out, "no listener on 127.0.0.11:53 in the VM: %s" % out
        # Each lookup's output ends at its "rc-...=" line.
        plain, rest = out.split("rc-plain=", 1)
        known, rest = rest.split("rc-known=", 1)
        unknown = rest.split("rc-unknown=", 1)[0]
        # The plain lookup (A and AAAA) prints the address: the relay keeps the answers' order.
        assert out.count("rc-plain=0") == 1 and ANSWER in plain, out
        assert "rc-known=0" in out and ANSWER in known, \
            "svc.test: %s\nresponder: %s" % (out, log_text)
        assert "query svc.test 1" in log_text, log_text
        # The unknown name fails (NXDOMAIN) at once, not after busybox's 5 s timeout.
        assert "rc-unknown=1" in out and "NXDOMAIN" in unknown and ANSWER not in unknown, out
        assert "query nosuch.test 1" in log_text, log_text
        assert "lookup-failed" not in out, out
        ups = [float(u) for u in re.findall(r"up=([\d.]+)", out)]
        assert len(ups) == 3 and ups[2] - ups[1] < 2.5, "the failing lookup took too long: %s" % out
        clock = re.search(r"^(tsc|hpet|acpi_pm|kvm-clock|jiffies|refined-jiffies)$", out, re.M)
        log("guest uptime after each lookup: %s; guest clocksource %s" % (
            " ".join("%.2f" % u for u in ups), clock.group(1) if clock else "?"))
        m = re.search(r"t0=([\d.]+) t1=([\d.]+)", out)
        if m:
            per = (float(m.group(2)) - float(m.group(1))) / 20 * 1000
            log("nslookup -type=a in the VM through the relay: %.1f ms each (20 runs, including the fork and "
                "exec of nslookup); runm run took %.1f s" % (per, took))
    finally:
        rest = stop_responder(responder)
        if rest:
            log("responder: " + rest[-2000:])
        for ns in our_netns():
            ip("netns", "del", ns, check=False)
        os.unlink(resolv)
        os.rmdir(tmp)
    assert not our_netns(), "network namespaces left: %s" % our_netns()


@cli_test
def no_relay_without_dockers_resolv_conf():
    """A namespace whose resolv.conf names another server: no relay, so
    nothing listens on 127.0.0.11:53 in the VM (/proc/net/udp shows it in
    little-endian hex: 0B00007F:0035)."""
    responder = None
    tmp = tempfile.mkdtemp(prefix="runm-dns-")
    resolv = os.path.join(tmp, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 10.251.0.1\n")
    try:
        make_netns()
        responder = start_responder(NS)
        with dns_bundle("cat /proc/net/udp", resolv) as b:
            r = runm("run", "--bundle", b.path, "dns2", check=False, timeout=240)
        stop_responder(responder)
        responder = None
        assert r.returncode == 0 and "local_address" in r.stdout, r
        assert LISTENER not in r.stdout, "a DNS listener without Docker's resolv.conf: %s" % r.stdout
    finally:
        stop_responder(responder)
        for ns in our_netns():
            ip("netns", "del", ns, check=False)
        os.unlink(resolv)
        os.rmdir(tmp)
    assert not our_netns(), "network namespaces left: %s" % our_netns()


if __name__ == "__main__":
    main()
