#!/usr/bin/python3
"""tests/soak.py - many containers through a private containerd, then check
that nothing of them is left (`make soak`; a short one runs in `make test`:
tests/e2e/test_soak.py).

    RUNM_SOAK_RUNS=1000 RUNM_SOAK_CONCURRENT=20 tests/soak.py

N sequential `ctr run --rm --runtime io.containerd.runm.v1 IMG sqN true`
(RUNM_SOAK_RUNS, default 1000), then M containers started at once and held
running (`ctr run -d ... sleep 1000`, RUNM_SOAK_CONCURRENT, default 20),
then all killed and deleted. Afterwards: no VMM, passt or shim left, no
mount, FIFO, socket, bundle, shim state dir or runm temp file (lib.leaks),
containerd still answers, the host's MemAvailable back within 5% of where
it started. Prints the throughput and p50/p99 start-to-exit time of the
sequential runs, the time to start the concurrent ones and the peak RSS of
all runm processes (shims + VMMs + passt). Exit 1 on a failed check."""
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e"))
import lib  # noqa: E402

# MemAvailable must come back within this fraction of its starting value.
MEM_TOLERANCE = 0.05


def percentile(xs, p):
    """Nearest-rank percentile p (0-100) of xs."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


class RssSampler:
    """Samples, in a thread, the summed Rss and anonymous memory of cd's
    shims, VMMs and passt processes; keeps the peaks (KiB) and the most
    processes seen at once."""

    def __init__(self, cd, interval=0.5):
        self.cd = cd
        self.interval = interval
        self.peak_rss = self.peak_anon = self.peak_procs = 0
        self.peak_kinds = {}  # {kind: count} when the most were running
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        rss = anon = 0
        kinds = {}
        for pid, kind, _ in lib._stray_procs(self.cd):
            try:
                m = lib.proc_mem_kib(pid)
            except OSError:  # gone meanwhile
                continue
            rss += m["Rss"]
            anon += m["Anonymous"]
            kinds[kind] = kinds.get(kind, 0) + 1
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_anon = max(self.peak_anon, anon)
        if sum(kinds.values()) > self.peak_procs:
            self.peak_procs = sum(kinds.values())
            self.peak_kinds = kinds

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def sequential(cd, img, runs, prefix):
    """runs x `ctr run --rm ... true`; returns (the seconds of each, ids)."""
    secs, ids = [], []
    for i in range(runs):
        cid = "%ssq%d" % (prefix, i)
        ids.append(cid)
        t0 = time.monotonic()
        r = cd.ctr("run", "--rm", "--fifo-dir", cd.fifo_dir, "--runtime", lib.RUNM, img, cid, "true",
                   timeout=300, check=False)
        secs.append(time.monotonic() - t0)
        if r.returncode != 0:
            raise AssertionError("sequential run %d of %d failed: %s" % (i + 1, runs, lib.CmdError(
                r.returncode, r.args, r.stdout, r.stderr)))
    return secs, ids


def concurrent(cd, img, n, prefix):
    """n `ctr run -d ... sleep 1000` at once; returns (seconds until all
    run, ids). The ones that started are left running for the caller."""
    ids = ["%scc%d" % (prefix, i) for i in range(n)]
    errors = []

    def start(cid):
        r = cd.ctr("run", "-d", "--fifo-dir", cd.fifo_dir, "--runtime", lib.RUNM, img, cid, "sleep", "1000",
                   timeout=600, check=False)
        if r.returncode != 0:
            errors.append("%s: %s" % (cid, (r.stderr or r.stdout).strip()))

    t0 = time.monotonic()
    threads = [threading.Thread(target=start, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError("%d of %d concurrent starts failed:\n  %s" % (len(errors), n, "\n  ".join(errors)))
    lib.wait_for(lambda: all(cd.tasks().get(c) == "RUNNING" for c in ids), 60, "all %d tasks running" % n)
    return time.monotonic() - t0, ids


def kill_and_delete(cd, ids):
    for cid in ids:
        cd.ctr("task", "kill", "-s", "SIGKILL", cid, timeout=60)
    lib.wait_for(lambda: all(cd.tasks().get(c) == "STOPPED" for c in ids), 60, "all tasks stopped")
    for cid in ids:
        cd.ctr("task", "delete", cid, timeout=60)
        cd.ctr("container", "rm", cid, timeout=60)


def soak(cd, img, runs, n_concurrent, prefix=""):
    """The soak against cd (started, img imported): returns its figures (a
    dict), raises AssertionError on a failed check."""
    mem0 = lib.mem_available_kib()
    ids = []
    figures = {"runs": runs, "concurrent": n_concurrent}
    with RssSampler(cd) as rss:
        t0 = time.monotonic()
        secs, seq_ids = sequential(cd, img, runs, prefix)
        ids += seq_ids
        if runs:
            wall = time.monotonic() - t0
            figures.update(seq_wall=wall, per_min=runs * 60.0 / wall, p50=percentile(secs, 50),
                           p99=percentile(secs, 99), mean=statistics.mean(secs), max=max(secs))
        cc_ids = ["%scc%d" % (prefix, i) for i in range(n_concurrent)]
        ids += cc_ids
        try:
            if n_concurrent:
                figures["concurrent_start"], _ = concurrent(cd, img, n_concurrent, prefix)
                rss.sample()  # all of them up at once: the peak
        finally:
            started = [c for c in cc_ids if c in cd.tasks()]
            kill_and_delete(cd, started)
    figures.update(peak_rss_kib=rss.peak_rss, peak_anon_kib=rss.peak_anon, peak_procs=rss.peak_procs,
                   peak_kinds=rss.peak_kinds)

    # Teardown is asynchronous (a shim exits after its last delete).
    lib.assert_no_leaks(cd, ids=ids, timeout=30)
    r = cd.ctr("version", timeout=20, check=False)
    assert r.returncode == 0, "containerd does not answer after the soak: %s" % r
    assert cd.proc.poll() is None, "containerd exited"
    # Guest memory is given back as the VMMs exit; page cache may take a moment.
    try:
        lib.wait_for(lambda: lib.mem_available_kib() >= mem0 * (1 - MEM_TOLERANCE), 30,
                     "MemAvailable back within %d%%" % (MEM_TOLERANCE * 100), interval=0.5)
    finally:
        figures.update(mem0_kib=mem0, mem1_kib=lib.mem_available_kib())
    return figures


def report(f):
    """The figures as lines of text."""
    out = ["soak: %d sequential `ctr run --rm ... true`, %d concurrent `ctr run -d ... sleep`, accel %s" % (
        f["runs"], f["concurrent"], lib.accel_used())]
    if f["runs"]:
        out.append("  sequential: %.1f containers/min (%.1f s for %d), start-to-exit p50 %.0f ms, p99 %.0f ms, "
                   "max %.0f ms" % (f["per_min"], f["seq_wall"], f["runs"], f["p50"] * 1000, f["p99"] * 1000,
                                    f["max"] * 1000))
    if f["concurrent"]:
        out.append("  concurrent: %d started and running in %.1f s" % (f["concurrent"], f["concurrent_start"]))
    out.append("  peak host memory of runm's processes (shims + VMMs + passt; at most %s): RSS %.0f MiB, "
               "anonymous %.0f MiB" % (" + ".join("%d %s" % (n, k) for k, n in sorted(f["peak_kinds"].items())),
                                       f["peak_rss_kib"] / 1024, f["peak_anon_kib"] / 1024))
    out.append("  MemAvailable: %.0f MiB before, %.0f MiB after (%+.1f%%)" % (
        f["mem0_kib"] / 1024, f["mem1_kib"] / 1024, 100.0 * (f["mem1_kib"] - f["mem0_kib"]) / f["mem0_kib"]))
    out.append("  leftovers: none (processes, mounts, FIFOs, sockets, bundles, state dirs, temp files)")
    return "\n".join(out)


def main():
    runs = int(os.environ.get("RUNM_SOAK_RUNS", "1000"))
    n_concurrent = int(os.environ.get("RUNM_SOAK_CONCURRENT", "20"))
    # A private state root: its templates and verdicts, and whatever temp
    # files runm leaves there, are this run's alone (lib.leaks checks them).
    cd = lib.Containerd(debug=False, private_state_root=True)
    ok = False
    try:
        cd.start()
        img = lib.import_busybox(cd)
        print(report(soak(cd, img, runs, n_concurrent)), flush=True)
        ok = True
    except AssertionError as e:
        print("soak: FAILED: %s" % e, flush=True)
    finally:
        if cd.tmp is None:  # containerd never started
            return 1
        cd.cleanup_containers()
        done = lib.kill_leftovers(cd)
        if done:
            print("soak: cleanup: " + ", ".join(done), flush=True)
        cd.stop(check=False)
        if ok or not os.environ.get("RUNM_TEST_KEEP_FAILED"):
            cd.remove()
        else:
            print("soak: kept %s" % cd.tmp, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
