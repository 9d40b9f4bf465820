#!/usr/bin/python3
"""test_docker_build.py - the classic builder (DOCKER_BUILDKIT=0 docker build),
whose RUN steps are containers of dockerd's --default-runtime: the runtime
under test (RUNM_DOCKER_RUNTIME=runm, the default, or runc). BuildKit would
always use the runc on dockerd's PATH, so it is never used here.

A RUN step's output lands in the image (and for runm ran in the guest
kernel), a multi-stage build copies between stages, and a failing RUN
reports its status. No intermediate container, VM or mount is left."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker import IMAGE, IS_RUNM, dmain, dtest, expected_kernel, host_kernel, log  # noqa: E402


def build(dk, name, dockerfile, tag, check=True):
    d = os.path.join(dk.work, name)
    os.makedirs(d)
    with open(os.path.join(d, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    return dk.docker("build", "--force-rm", "-t", tag, d, timeout=600, check=check)


@dtest
def build_run_steps(dk):
    """RUN writes files into the image; the kernel it ran on is recorded."""
    r = build(dk, "simple", "FROM %s\nRUN echo built > /f && uname -r > /kernel\n"
              "RUN cat /f > /g\nCMD [\"cat\", \"/g\"]\n" % IMAGE, "runm-build:simple")
    assert "Successfully tagged runm-build:simple" in r.stdout, r.stdout
    out = dk.docker("run", "--rm", "runm-build:simple", "cat", "/f", "/kernel", timeout=180).stdout.split("\n")
    assert out[0] == "built", out
    assert out[1] == expected_kernel(), "RUN ran on kernel %r, expected %r" % (out[1], expected_kernel())
    if IS_RUNM:
        assert out[1] != host_kernel(), "RUN ran on the host's kernel: not in a VM"
    assert dk.docker("run", "--rm", "runm-build:simple", timeout=180).stdout == "built\n"
    dk.docker("rmi", "runm-build:simple")


@dtest
def build_multi_stage(dk):
    """FROM ... AS a, then COPY --from=a into a second stage that RUNs on it."""
    r = build(dk, "multi", "FROM %s AS a\nRUN echo from-stage-a > /a\n"
              "FROM %s\nCOPY --from=a /a /b\nRUN cat /b /b > /c\n" % (IMAGE, IMAGE), "runm-build:multi")
    assert "Successfully tagged runm-build:multi" in r.stdout, r.stdout
    out = dk.docker("run", "--rm", "runm-build:multi", "sh", "-c", "cat /c; test -e /a || echo no-a",
                    timeout=180).stdout
    assert out == "from-stage-a\nfrom-stage-a\nno-a\n", repr(out)
    dk.docker("rmi", "runm-build:multi")
    dk.docker("image", "prune", "-f")


@dtest
def build_failing_run(dk):
    """RUN exit 3 fails the build with the status in the message."""
    r = build(dk, "fail", "FROM %s\nRUN echo before\nRUN exit 3\n" % IMAGE, "runm-build:fail", check=False)
    assert r.returncode != 0, r.stdout
    text = r.stdout + r.stderr
    assert "returned a non-zero code: 3" in text, text
    log("failing build said: %s" % [l for l in text.splitlines() if "non-zero" in l])
    dk.docker("image", "prune", "-f")


if __name__ == "__main__":
    dmain()
