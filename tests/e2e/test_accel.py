#!/usr/bin/python3
"""test_accel.py - the accelerator choice on this host, with nothing set:
`runm check` names the accelerator and exits 0; forcing one this host cannot
run (RUNM_ACCEL=kvm where KVM is kvm_pvm or absent) fails fast with the cause
and leaves no VMM and no container directory; an unproven KVM (nested, faked
here with RUNM_FACTS_ROOT) that cannot boot the guest is retried under TCG in
the same `runm run`, and the verdict is remembered."""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import main, test  # noqa: E402
from bundle import ROOT, Bundle, cli_leaks, cli_test, runm  # noqa: E402


def host_kvm_usable():
    """What the facts say here (the test expects what runm must decide)."""
    if not os.path.exists("/dev/kvm") or os.path.isdir("/sys/module/kvm_pvm"):
        return False
    with open("/proc/cpuinfo") as f:
        flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    return "vmx" in flags or "svm" in flags


def no_accel_env():
    env = dict(os.environ)
    env.pop("RUNM_ACCEL", None)
    env.pop("RUNM_FACTS_ROOT", None)
    return env


@test
def check_names_the_accelerator():
    r = runm("check", check=False, env=no_accel_env())
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    accel = [l for l in lines if l.startswith("accel: ")]
    assert len(accel) == 1, r
    want = "kvm" if host_kvm_usable() else "tcg"
    assert accel[0].startswith("accel: %s " % want), r
    if os.path.isdir("/sys/module/kvm_pvm"):
        assert "kvm_pvm" in accel[0], r
    for key in ("qemu: ", "guest kernel: ", "guest initrd: ", "network: slirp"):
        assert any(l.startswith(key) for l in lines), (key, r)
    assert lines[-1] == "runm check: runm can run containers here", r
    r = runm("check", "--accel", env=no_accel_env())
    assert r.stdout == want + "\n", r


@cli_test
def forced_kvm_fails_fast_with_the_cause():
    if host_kvm_usable():
        print("  (KVM usable here: nothing to refuse)")
        return
    env = no_accel_env()
    env["RUNM_ACCEL"] = "kvm"
    with Bundle(["echo", "never"]) as b:
        t0 = time.monotonic()
        r = runm("run", "--bundle", b.path, "forcedkvm", check=False, env=env, timeout=30)
        took = time.monotonic() - t0
    assert r.returncode != 0 and "never" not in r.stdout, r
    assert "accel=kvm" in r.stderr and "use accel=tcg" in r.stderr, r
    if os.path.isdir("/sys/module/kvm_pvm"):
        assert "provided by kvm_pvm, which cannot run a standard guest kernel" in r.stderr.replace(
            " (a software PVM hypervisor)", ""), r
    assert took < 5, "not fast: %.1fs" % took
    assert not os.path.exists(os.path.join(ROOT, "forcedkvm")), "state dir left"
    assert cli_leaks() == [], cli_leaks()
    # The same through `runm check`: non-zero, the cause named.
    r = runm("check", check=False, env=env)
    assert r.returncode != 0 and "missing: accel: accel=kvm" in r.stdout, r


@cli_test
def unproven_kvm_that_fails_is_retried_under_tcg():
    if not os.path.exists("/dev/kvm") or host_kvm_usable():
        print("  (needs a /dev/kvm that cannot boot the guest)")
        return
    # A fake host whose facts say nested KVM (vmx + hypervisor, kvm_intel),
    # with the real /dev/kvm behind it: QEMU gets a KVM that cannot boot.
    fake = tempfile.mkdtemp(prefix="runm-facts-")
    state = tempfile.mkdtemp(prefix="runm-state-")
    try:
        os.makedirs(os.path.join(fake, "proc"))
        os.makedirs(os.path.join(fake, "sys", "module", "kvm_intel"))
        os.makedirs(os.path.join(fake, "dev"))
        os.symlink("/dev/kvm", os.path.join(fake, "dev", "kvm"))
        with open(os.path.join(fake, "proc", "cpuinfo"), "w") as f:
            f.write("processor\t: 0\nflags\t\t: fpu vmx cx8 apic hypervisor\n")
        env = no_accel_env()
        env["RUNM_FACTS_ROOT"] = fake
        env["RUNM_STATE_ROOT"] = state
        with Bundle(["echo", "booted"]) as b:
            r = runm("run", "--bundle", b.path, "fallback", check=False, env=env, timeout=150)
            assert r.returncode == 0 and r.stdout == "booted\n", r
            warn = [l for l in r.stderr.splitlines() if "KVM skipped" in l]
            assert len(warn) == 1 and "retrying under TCG" in warn[0], r
            assert any(n.startswith("accel-") for n in os.listdir(state)), os.listdir(state)
            # Remembered: the next start goes to TCG at once, quietly.
            t0 = time.monotonic()
            r = runm("run", "--bundle", b.path, "fallback2", check=False, env=env, timeout=150)
            assert r.returncode == 0 and r.stdout == "booted\n" and "KVM skipped" not in r.stderr, r
            r = runm("check", "--accel", env=env)
            assert r.stdout == "tcg\n", r
    finally:
        shutil.rmtree(fake, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
