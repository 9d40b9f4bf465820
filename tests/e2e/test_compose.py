#!/usr/bin/python3
"""test_compose.py - Debian's docker-compose 1.29 against a private dockerd
whose default runtime is the runtime under test (RUNM_DOCKER_RUNTIME=runm,
the default, or runc): a two-service stack where `a` finds `b` by name
through Docker's embedded DNS and fetches from its httpd; exec, logs, and
down leaving no container, VM or network. Once with the runtime as dockerd's
default, once named per service (`runtime:`, compose file format 2.4)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from docker import IMAGE, IS_RUNM, RUNTIME, dmain, dtest, expected_kernel, log, wait_for  # noqa: E402

COMPOSE_FILE = """version: "2.4"
services:
  b:
    image: {image}
{runtime}    command: ["sh", "-c", "mkdir -p /www && echo hello-from-b > /www/index.html && httpd -p 80 -h /www && echo b-up && trap 'exit 0' TERM && while :; do sleep 0.2; done"]
  a:
    image: {image}
{runtime}    depends_on: [b]
    command: ["sh", "-c", "trap 'exit 0' TERM; echo a-started; while :; do sleep 0.2; done"]
"""

# In `a`: resolve b through 127.0.0.11 (busybox wget cannot resolve names) and fetch.
FETCH = ("ip=$(nslookup b 127.0.0.11 | sed -n 's/^Address: *\\([0-9.]*\\)$/\\1/p' | tail -1); "
         "[ -n \"$ip\" ] || exit 7; echo ip=$ip; timeout 10 wget -qO- http://$ip/")


def stack(dk, name, per_service_runtime):
    project = "rdk%s%d" % (name, os.getpid())
    d = os.path.join(dk.work, project)
    os.makedirs(d)
    rt = "    runtime: %s\n" % RUNTIME if per_service_runtime else ""
    with open(os.path.join(d, "docker-compose.yml"), "w") as f:
        f.write(COMPOSE_FILE.format(image=IMAGE, runtime=rt))
    try:
        dk.compose(project, d, "up", "-d")
        ids = dk.compose(project, d, "ps", "-q").stdout.split()
        assert len(ids) == 2, "compose ps -q: %s" % ids
        for c in ids:
            dk.track(c)
            assert dk.inspect(c, "{{.HostConfig.Runtime}}") == RUNTIME, \
                "%s runs with %s" % (c[:12], dk.inspect(c, "{{.HostConfig.Runtime}}"))
            assert dk.state(c)["Running"], dk.state(c)
        b_ip = dk.inspect("%s_b_1" % project, '{{(index .NetworkSettings.Networks "%s_default").IPAddress}}'
                          % project)

        last = []

        def fetched():
            r = dk.compose(project, d, "exec", "-T", "a", "sh", "-c", FETCH, check=False, timeout=120)
            last[:] = [r]
            return r.returncode == 0 and "hello-from-b" in r.stdout and r.stdout
        try:
            out = wait_for(fetched, 90, "a to fetch from b by name", interval=0.5)
        except TimeoutError as e:
            r = last[0] if last else None
            raise AssertionError("%s; last try (status 7: nslookup b 127.0.0.11 failed; 1: wget): %s" % (
                e, r and "status %d, stdout %r, stderr %r" % (r.returncode, r.stdout, r.stderr))) from None
        assert "ip=%s\n" % b_ip in out, "b resolved to the wrong address (b is %s): %r" % (b_ip, out)

        r = dk.compose(project, d, "exec", "-T", "a", "sh", "-c", "uname -r; exit 5", check=False, timeout=120)
        assert r.returncode == 5 and r.stdout.strip() == expected_kernel(), \
            "exec: status %d, %r %r" % (r.returncode, r.stdout, r.stderr)

        logs = dk.compose(project, d, "logs", "--no-color").stdout
        assert "a-started" in logs and "b-up" in logs, logs

        t0 = time.monotonic()
        dk.compose(project, d, "down")
        took = time.monotonic() - t0
        # Both services exit on SIGTERM: down must not wait out the 10 s grace period.
        assert took < 9, "compose down took %.1fs: SIGTERM did not stop the services" % took
        left = dk.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=" + project).stdout.split()
        assert not left, "containers left after down: %s" % left
        nets = dk.docker("network", "ls", "-q", "--filter", "name=%s_default" % project).stdout.split()
        assert not nets, "network left after down: %s" % nets
        log("%s: up, fetch by name, exec, logs, down ok%s" % (project, " (runm)" if IS_RUNM else ""))
    except BaseException:
        dk.compose(project, d, "down", "-t", "1", check=False, timeout=120)
        raise


@dtest
def compose_default_runtime(dk):
    stack(dk, "d", per_service_runtime=False)


@dtest
def compose_runtime_per_service(dk):
    stack(dk, "s", per_service_runtime=True)


if __name__ == "__main__":
    dmain()
