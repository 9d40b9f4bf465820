"""cri.py - drive containerd's built-in CRI plugin (io.containerd.grpc.v1.cri)
over its gRPC socket the way a kubelet does, with a small CRI v1 client.

    from cri import CriContainerd, api

    @test(containerd=CriContainerd, timeout=900)
    def pod(cd):
        pod = cd.run_pod("runm", "web")
        c = cd.create_container(pod, "a", BUSYBOX_REF, ["sleep", "1000"])
        cd.start_container(c)
        r = cd.exec_sync(c, ["echo", "hi"])          # api.ExecSyncResponse

CRI messages come from tests/e2e/cri/api.proto (a subset of k8s.io/cri-api's
runtime/v1 api.proto with its field numbers), compiled by Debian's protoc
into build/e2e-cache/cri/<hash>/ (rebuilt when the proto changes) and called
with grpc's generic stubs: Debian's python3-grpcio and python3-protobuf, no
grpc_tools. Run tests with /usr/bin/python3.

containerd runs as lib.NetnsContainerd: in a network namespace of its own and
a private mount namespace where /etc and /var/lib are overlays and
/run/netns (where CRI binds the pods' network namespaces) is a tmpfs, so the
CNI bridge, host-local's leases and the pods' namespaces never reach the
machine. The CRI plugin has runtimes `runm` (io.containerd.runm.v1) and `runc`
(io.containerd.runc.v2, the default), a local pause image as sandbox image
(built from busybox-static, imported with the busybox test image into
namespace k8s.io: nothing is ever pulled) and its stream server on 127.0.0.1.
"""
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (BUSYBOX_REF, CACHE, CRI_PLUGIN, DISABLED_PLUGINS, NetnsContainerd,  # noqa: E402
                 bridge_conflist, image_tarball, log, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "cri", "api.proto")
PAUSE_REF = "docker.io/runm/pause:test"
# Sleeps until SIGTERM (pid 1 ignores signals it has no handler for).
PAUSE_ENTRYPOINT = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
K8S_NS = "k8s.io"
SUBNET = "10.251.0.0/24"

_api = None


def api():
    """The generated api_pb2 module (compiled once per content of api.proto)."""
    global _api
    if _api is not None:
        return _api
    with open(PROTO, "rb") as f:
        src = f.read()
    protoc = shutil.which("protoc")
    if not protoc:
        raise RuntimeError("no protoc: apt-get install protobuf-compiler (tools/deps.sh)")
    ver = subprocess.run([protoc, "--version"], capture_output=True, text=True).stdout
    h = hashlib.sha256(src + ver.encode()).hexdigest()[:16]
    d = os.path.join(CACHE, "cri", h)
    if not os.path.exists(os.path.join(d, "api_pb2.py")):
        os.makedirs(os.path.dirname(d), exist_ok=True)
        t = tempfile.mkdtemp(prefix=".protoc-", dir=os.path.dirname(d))
        try:
            subprocess.run([protoc, "--python_out=" + t, "-I", os.path.dirname(PROTO), PROTO],
                           check=True, capture_output=True, text=True)
            try:
                os.rename(t, d)  # atomic: a concurrent builder may have won
            except OSError:
                if not os.path.exists(os.path.join(d, "api_pb2.py")):
                    raise
        finally:
            shutil.rmtree(t, ignore_errors=True)
    sys.path.insert(0, d)
    try:
        _api = importlib.import_module("api_pb2")
    finally:
        sys.path.remove(d)
    return _api


class Cri:
    """A CRI v1 client on a unix socket: call("RuntimeService", "Version", req)."""

    def __init__(self, address):
        import grpc  # Debian's python3-grpcio
        self.grpc = grpc
        self.channel = grpc.insecure_channel("unix:" + address)
        self._stubs = {}

    def call(self, service, method, req, timeout=60):
        key = (service, method)
        if key not in self._stubs:
            resp = getattr(api(), method + "Response")
            self._stubs[key] = self.channel.unary_unary(
                "/runtime.v1.%s/%s" % (service, method),
                request_serializer=type(req).SerializeToString,
                response_deserializer=resp.FromString)
        return self._stubs[key](req, timeout=timeout)

    def rt(self, method, deadline=60, **fields):
        """RuntimeService/method with a METHOD+Request built from fields; deadline:
        seconds for the call (fields may include the request's own `timeout`)."""
        return self.call("RuntimeService", method, getattr(api(), method + "Request")(**fields), deadline)

    def img(self, method, deadline=60, **fields):
        return self.call("ImageService", method, getattr(api(), method + "Request")(**fields), deadline)

    def close(self):
        self.channel.close()


CRI_CONFIG = """
[plugins."{cri}"]
  sandbox_image = "{pause}"
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  # The sandbox's oom_score_adj is -998: lowering it needs CAP_SYS_RESOURCE,
  # which this machine's root may lack (runc then fails in nsexec with "can't
  # get final child's PID from pipe: EOF"); restricted, CRI never goes below
  # containerd's own.
  restrict_oom_score_adj = true
  max_concurrent_downloads = 1
  [plugins."{cri}".containerd]
    snapshotter = "{snapshotter}"
    default_runtime_name = "runc"
    [plugins."{cri}".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."{cri}".containerd.runtimes.runm]
      runtime_type = "io.containerd.runm.v1"
  [plugins."{cri}".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
"""

# Run in the private mount namespace before containerd: CRI binds each pod's
# network namespace under /var/run/netns (= /run/netns here).
CRI_SETUP = "mkdir -p /run/netns && mount -t tmpfs -o mode=0755 runm-netns /run/netns"


class CriContainerd(NetnsContainerd):
    """A NetnsContainerd with the CRI plugin on, and a CRI client (self.cri) on
    its socket. Also imports the pause and busybox images into k8s.io. Helpers
    mirror what a kubelet sends; pods and containers it made are in self.pods
    ({pod id: PodSandboxConfig}). cleanup_containers() (the lib framework's
    cleanup) stops and removes every pod first."""

    disabled_plugins = [p for p in DISABLED_PLUGINS if p != CRI_PLUGIN]

    def __init__(self, netns=None, namespace=K8S_NS, **kw):
        super().__init__(netns or "runm-cri-%d" % os.getpid(), namespace=namespace,
                         conflists={"10-runm-cri.conflist": bridge_conflist(
                             "runm-cri-test", "cni-runm1", SUBNET)},
                         setup=CRI_SETUP, **kw)
        self.extra_config = CRI_CONFIG.format(cri=CRI_PLUGIN, pause=PAUSE_REF,
                                              snapshotter=self.snapshotter) + self.extra_config
        self.cri = None
        self.pods = {}

    def start(self):
        api()  # fail early when protoc is missing
        super().start()
        try:
            for tar in (image_tarball(PAUSE_REF, PAUSE_ENTRYPOINT), image_tarball(BUSYBOX_REF)):
                self.ctr("images", "import", tar, timeout=120)
            self.cri = Cri(self.address)
            # CRI settles after containerd answers ctr; its image cache after the import.
            wait_for(lambda: self.cri.rt("Version", deadline=10).runtime_api_version, 60,
                     "CRI to answer Version")
            for ref in (PAUSE_REF, BUSYBOX_REF):
                wait_for(lambda ref=ref: self.image_status(ref), 30, "CRI to see image " + ref)
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def stop(self, check=True, timeout=15):
        if self.cri is not None:
            self.cri.close()
            self.cri = None
        super().stop(check=check, timeout=timeout)

    # ------------------------------------------------------------ images

    def image_status(self, ref):
        """The api.Image CRI has for ref, or None."""
        r = self.cri.img("ImageStatus", image=api().ImageSpec(image=ref))
        return r.image if r.HasField("image") else None

    def list_images(self):
        return list(self.cri.img("ListImages").images)

    # ------------------------------------------------------------ pods

    def pod_config(self, name, uid=None, hostname=None, namespace="default"):
        """A PodSandboxConfig as a kubelet makes it: network and ipc shared by
        the pod, pid per container, a log directory under tmp."""
        a = api()
        logdir = os.path.join(self.tmp, "pods", name)
        os.makedirs(logdir, exist_ok=True)
        return a.PodSandboxConfig(
            metadata=a.PodSandboxMetadata(name=name, uid=uid or "uid-%s-%d" % (name, os.getpid()),
                                          namespace=namespace, attempt=0),
            hostname=hostname or name,
            log_directory=logdir,
            dns_config=a.DNSConfig(servers=["127.0.0.11"], options=["ndots:0"]),
            labels={"io.kubernetes.pod.name": name, "runm-test": "1"},
            annotations={"runm.test/pod": name},
            linux=a.LinuxPodSandboxConfig(security_context=a.LinuxSandboxSecurityContext(
                namespace_options=a.NamespaceOption(network=a.POD, pid=a.CONTAINER, ipc=a.POD))))

    def run_pod(self, handler, name, timeout=240, **kw):
        """RunPodSandbox with runtime handler handler; returns the pod id."""
        conf = self.pod_config(name, **kw)
        t0 = time.monotonic()
        pid = self.cri.rt("RunPodSandbox", config=conf, runtime_handler=handler,
                          deadline=timeout).pod_sandbox_id
        self.pods[pid] = conf
        log("pod %s (%s) ready in %.1fs: %s" % (name, handler, time.monotonic() - t0, pid[:12]))
        return pid

    def pod_status(self, pod_id):
        return self.cri.rt("PodSandboxStatus", pod_sandbox_id=pod_id).status

    def list_pods(self):
        return list(self.cri.rt("ListPodSandbox").items)

    def stop_pod(self, pod_id, timeout=180):
        self.cri.rt("StopPodSandbox", pod_sandbox_id=pod_id, deadline=timeout)

    def remove_pod(self, pod_id, timeout=180):
        self.cri.rt("RemovePodSandbox", pod_sandbox_id=pod_id, deadline=timeout)
        self.pods.pop(pod_id, None)

    # ------------------------------------------------------------ containers

    def create_container(self, pod_id, name, image, command, args=(), mounts=(), env=None,
                         pod_config=None, timeout=120, working_dir="", memory_limit=0):
        """CreateContainer in pod_id; mounts: [(host_path, container_path[, readonly])];
        memory_limit in bytes (0: none). Returns the container id."""
        a = api()
        conf = a.ContainerConfig(
            metadata=a.ContainerMetadata(name=name, attempt=0),
            image=a.ImageSpec(image=image),
            command=list(command), args=list(args), working_dir=working_dir,
            envs=[a.KeyValue(key=k, value=v) for k, v in (env or {}).items()],
            mounts=[a.Mount(host_path=m[0], container_path=m[1], readonly=bool(m[2:] and m[2]))
                    for m in mounts],
            labels={"io.kubernetes.container.name": name},
            annotations={"runm.test/container": name},
            log_path="%s.log" % name,
            linux=a.LinuxContainerConfig(
                resources=a.LinuxContainerResources(memory_limit_in_bytes=memory_limit) if memory_limit else None,
                security_context=a.LinuxContainerSecurityContext(
                    namespace_options=a.NamespaceOption(network=a.POD, pid=a.CONTAINER, ipc=a.POD))))
        return self.cri.rt("CreateContainer", pod_sandbox_id=pod_id, config=conf,
                           sandbox_config=pod_config or self.pods[pod_id],
                           deadline=timeout).container_id

    def start_container(self, cid, timeout=180):
        self.cri.rt("StartContainer", container_id=cid, deadline=timeout)

    def run_container(self, pod_id, name, image, command, timeout=180, **kw):
        """create_container + start_container; waits for CONTAINER_RUNNING."""
        t0 = time.monotonic()
        cid = self.create_container(pod_id, name, image, command, timeout=timeout, **kw)
        self.start_container(cid, timeout=timeout)
        wait_for(lambda: self.status(cid).state == api().CONTAINER_RUNNING,
                 max(10, timeout - (time.monotonic() - t0)), "container %s to run" % name)
        log("container %s running in %.1fs: %s" % (name, time.monotonic() - t0, cid[:12]))
        return cid

    def status(self, cid):
        """The api.ContainerStatus of cid."""
        return self.cri.rt("ContainerStatus", container_id=cid).status

    def list_containers(self, pod_id=None):
        a = api()
        f = a.ContainerFilter(pod_sandbox_id=pod_id) if pod_id else None
        return list(self.cri.rt("ListContainers", filter=f).containers)

    def exec_sync(self, cid, cmd, timeout=60):
        """ExecSync; returns the api.ExecSyncResponse (stdout, stderr bytes, exit_code)."""
        return self.cri.rt("ExecSync", container_id=cid, cmd=list(cmd), timeout=timeout,
                           deadline=timeout + 30)

    def stop_container(self, cid, timeout=10):
        self.cri.rt("StopContainer", container_id=cid, timeout=timeout, deadline=timeout + 120)

    def remove_container(self, cid, timeout=120):
        self.cri.rt("RemoveContainer", container_id=cid, deadline=timeout)

    # ------------------------------------------------------------ cleanup

    def cleanup_pods(self):
        """Stop and remove every pod CRI knows (with their containers); returns
        what it removed."""
        done = []
        if self.cri is None or not self.proc or self.proc.poll() is not None:
            return done
        try:
            pods = self.list_pods()
        except Exception as e:  # noqa: BLE001
            log("cleanup: ListPodSandbox: %r" % (e,))
            return done
        for p in pods:
            for what, fn in (("stop", self.stop_pod), ("remove", self.remove_pod)):
                try:
                    fn(p.id)
                except Exception as e:  # noqa: BLE001
                    log("cleanup: %s pod %s: %s" % (what, p.id[:12], e))
            done.append("pod %s (%s)" % (p.metadata.name, p.id[:12]))
        return done

    def cleanup_containers(self, timeout=30):
        return self.cleanup_pods() + super().cleanup_containers(timeout)

    def netns_left(self):
        """Network namespace files left in the private /run/netns."""
        try:
            return sorted(os.listdir("/proc/%d/root/run/netns" % self.proc.pid))
        except OSError:
            return []

    def vmms(self):
        """[(pid, cmdline)] of the VMMs (qemu-system-*) of this containerd:
        processes in its private mount namespace, which only its shims and
        their children share."""
        return [(p, c) for p, c in self.procs_in_mntns()
                if os.path.basename(c.split(" ", 1)[0]).startswith("qemu-system")]
