#!/usr/bin/python3
"""test_cni.py - a container's CNI network namespace mirrored into its VM
(Kata's tc-redirect model): `ctr run --cni` with Debian's bridge + host-local
plugins, two runm containers reaching each other at the addresses CNI gave them.

Nothing touches the machine's own network or files: containerd, its shims, the
VMs and ctr (which runs the CNI plugins) all live in a network namespace the
test creates (runm-cni-<pid>), and in a private mount namespace where /etc and
/var/lib are overlays on a tmpfs (for /etc/cni/net.d and host-local's
/var/lib/cni). Each container's network namespace is created by the test too
(runm-cni-<pid>-c1, ...), given to ctr with --with-ns: ctr 1.6's --cni runs
CNI in the namespace of the task's pid, the VMM's, which joins the namespace
of the spec. The bridge cni-runm0 and 10.250.0.0/24 exist only in the test's
namespaces, all deleted at the end, also on failure.

Needs root, iproute2 and containernetworking-plugins (tools/deps.sh)."""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (RUNM, NetnsContainerd, bridge_conflist, import_busybox, ip, kill_leftovers,  # noqa: E402
                 leaks, log, main, netns_path, run, test, wait_for)
from dnsresponder import start_responder, stop_responder  # noqa: E402

PLUGINS = "/usr/lib/cni"
NS = "runm-cni-%d" % os.getpid()
SUBNET = "10.250.0.0/24"
TAP = "tap0_runm"
CONFLIST = bridge_conflist("runm-cni-test", "cni-runm0", SUBNET)


class CniContainerd(NetnsContainerd):
    """containerd in network namespace NS (made by the test) and a private mount
    namespace whose /etc/cni/net.d holds CONFLIST; ctr runs in both too (it
    runs the CNI plugins)."""

    def __init__(self, **kw):
        super().__init__(NS, conflists={"10-runm.conflist": CONFLIST}, **kw)


def addr_in(ns, dev="eth0"):
    """The IPv4 address/prefix of dev in network namespace ns, or None."""
    r = ip("-n", ns, "-4", "-o", "addr", "show", "dev", dev, check=False)
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+/\d+)", r.stdout or "")
    return m.group(1) if m else None


def our_netns():
    out = ip("netns", "list").stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.split() and
                  line.split()[0].startswith(NS))


def host_has(dev):
    return ip("link", "show", "dev", dev, check=False).returncode == 0


def run_cni(cd, ref, name, *cmd, detach=True, mounts=()):
    args = ["run"] + (["-d"] if detach else ["--rm"]) + ["--mount=" + m for m in mounts] + [
        "--cni", "--with-ns", "network:" + netns_path(NS + "-" + name), "--runtime", RUNM, ref, name] + list(cmd)
    return cd.ctr(*args, timeout=240, check=False)


def delete_task(cd, name):
    cd.ctr("task", "kill", "-s", "SIGKILL", name, check=False, timeout=30)
    wait_for(lambda: cd.tasks().get(name) in (None, "STOPPED"), 60, "task %s to stop" % name)
    cd.ctr("task", "delete", name, check=False, timeout=60)
    cd.ctr("container", "rm", name, check=False, timeout=30)


@test(timeout=900)
def cni_two_containers_reach_each_other():
    assert os.path.isfile(os.path.join(PLUGINS, "bridge")), \
        "no CNI plugins in %s: apt-get install containernetworking-plugins" % PLUGINS
    names = ["c1", "c2"]
    cd = None
    ok = False
    responder = None
    tpl = None
    resolv = os.path.join(tempfile.mkdtemp(prefix="runm-cni-dns-"), "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.11\noptions ndots:0\n")
    try:
        for ns in [NS] + ["%s-%s" % (NS, n) for n in names]:
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        # A private template dir: c1 boots cold and saves the tap VM's
        # template, c2 (same size) is restored from it (a warm start on a tap).
        tpl = tempfile.mkdtemp(prefix="runm-cni-tpl-")
        cd = CniContainerd(namespace="runm-cni", env={"RUNM_TEMPLATE_DIR": tpl, "RUNM_WARM_START": "1"})
        cd.start()
        ref = import_busybox(cd)

        # c1 echoes what it gets on port 7777.
        r = run_cni(cd, ref, "c1", "nc", "-ll", "-p", "7777", "-e", "cat")
        assert r.returncode == 0, "ctr run c1: %s%s" % (r.stdout, r.stderr)
        c1_addr = addr_in(NS + "-c1")
        assert c1_addr and c1_addr.startswith("10.250.0."), "CNI gave c1 no address: %s" % c1_addr
        c1_ip = c1_addr.split("/")[0]
        log("CNI gave c1 %s" % c1_addr)

        # (b) The container's eth0 has the address CNI assigned, and the default
        # route goes through the bridge.
        out = cd.ctr("task", "exec", "--exec-id", "ipaddr", "c1", "ip", "-4", "-o", "addr", "show", "eth0",
                     timeout=60).stdout
        assert "inet %s " % c1_addr in out, "c1's eth0 in the VM: %r, CNI gave %s" % (out, c1_addr)
        out = cd.ctr("task", "exec", "--exec-id", "route", "c1", "ip", "route", timeout=60).stdout
        assert "default via 10.250.0.1" in out, "c1's routes: %r" % out
        # The redirect exists in c1's namespace, and nothing in the machine's own.
        qd = run(["tc", "-n", NS + "-c1", "qdisc", "show", "dev", "eth0"], text=True).stdout
        assert "ingress" in qd, "no ingress qdisc on c1's eth0: %r" % qd
        assert ip("-n", NS + "-c1", "link", "show", TAP, check=False).returncode == 0, "no tap in c1's netns"
        assert not host_has(TAP) and not host_has("cni-runm0"), "a test device in the machine's namespace"

        # (a) c2, at the address CNI gives it, gets c1's echo. (d) Through the
        # shim too, Docker's embedded DNS: a resolver on 127.0.0.11:53 in c2's
        # namespace answers c2 when its resolv.conf (a bind) names it.
        responder = start_responder(NS + "-c2")
        script = ("nslookup -type=a svc.test | grep -q 10.9.8.7 && echo dns-ok; "
                  "for i in 1 2 3 4 5 6 7 8 9 10; do r=$(echo hello-runm | nc -w 5 %s 7777) && "
                  "[ -n \"$r\" ] && echo \"got:$r\" && ip -4 -o addr show eth0 && exit 0; sleep 1; done; exit 1"
                  % c1_ip)
        r = run_cni(cd, ref, "c2", "sh", "-c", script, detach=False,
                    mounts=["type=bind,src=%s,dst=/etc/resolv.conf,options=rbind:ro" % resolv])
        assert r.returncode == 0 and "got:hello-runm" in r.stdout, \
            "c2 -> c1:7777: status %d: %s%s" % (r.returncode, r.stdout, r.stderr)
        dns_log = stop_responder(responder)
        responder = None
        assert "dns-ok" in r.stdout and "query svc.test 1" in dns_log, \
            "c2's lookup through the relay: %s\nresponder: %s" % (r.stdout, dns_log)
        c2_addr = addr_in(NS + "-c2")
        assert c2_addr and "inet %s " % c2_addr in r.stdout, "c2's eth0: %r, CNI gave %s" % (r.stdout, c2_addr)
        assert c2_addr != c1_addr
        assert re.search(r"VM of c1: agent answered \d+ ms after the VMM started \(cold boot\)", cd.log()), \
            "c1 did not boot cold"
        assert re.search(r"VM of c2: agent answered \d+ ms after the VMM started \(restored from a template\)",
                         cd.log()), "c2 was not restored from c1's template"

        # (c) Teardown: the VMs, the taps and the redirects go with the tasks.
        delete_task(cd, "c1")
        cd.ctr("container", "rm", "c2", check=False, timeout=30)
        for n in names:
            wait_for(lambda n=n: ip("-n", NS + "-" + n, "link", "show", TAP, check=False).returncode != 0, 10,
                     "the tap in %s to go" % n)
        qd = run(["tc", "-n", NS + "-c1", "qdisc", "show", "dev", "eth0"], text=True).stdout
        assert "ingress" not in qd, "the redirect on c1's eth0 is left: %r" % qd
        wait_for(lambda: not leaks(cd) and not cd.private_mounts(), 15, "no VMM, shim or mount left")
        assert cd.tasks() == {}, "tasks left: %s" % cd.tasks()
        extra = [n for n in our_netns() if n not in [NS] + ["%s-%s" % (NS, m) for m in names]]
        assert not extra, "network namespaces left: %s" % extra
        ok = True
    finally:
        if tpl:
            shutil.rmtree(tpl, ignore_errors=True)
        stop_responder(responder)
        os.unlink(resolv)
        os.rmdir(os.path.dirname(resolv))
        if cd is not None:
            if not ok:
                log("containerd log tail:\n" + cd.log()[-3000:])
            if cd.proc:
                cd.cleanup_containers()
            did = kill_leftovers(cd)
            if did:
                log("cleanup: " + ", ".join(did))
            if cd.proc:
                cd.stop(check=ok)
            cd.remove()
        for ns in reversed(our_netns()):
            ip("netns", "del", ns, check=False)
        # Deleting a namespace is asynchronous in the kernel, its name is not.
        assert not our_netns(), "network namespaces left: %s" % our_netns()


if __name__ == "__main__":
    main()
