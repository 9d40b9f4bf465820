"""pod.py - what the pod tests share (test_pod.py, test_jail.py): CRI's
annotations that group containers into one VM, given to `ctr run`, and the
VMM processes and stop sequence they check."""
from lib import RUNM, _stray_procs, wait_for

TYPE = "io.kubernetes.cri.container-type"
SANDBOX = "io.kubernetes.cri.sandbox-id"


def vmms(cd):
    return [pid for pid, kind, _ in _stray_procs(cd) if kind == "qemu"]


def pod_args(pod, kind):
    """ctr run arguments making a container the pod's sandbox or a member of it."""
    return ["--runtime", RUNM, "--annotation", "%s=%s" % (TYPE, kind), "--annotation", "%s=%s" % (SANDBOX, pod)]


def stop(cd, cid):
    cd.ctr("task", "kill", "--signal", "SIGKILL", cid, timeout=60, check=False)
    wait_for(lambda: cd.tasks().get(cid) in (None, "STOPPED"), 60, "%s stopped" % cid, interval=0.2)
    cd.ctr("task", "delete", cid, timeout=60, check=False)
    cd.ctr("container", "rm", cid, timeout=30, check=False)
