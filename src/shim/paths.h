/* paths.h - where a shim's files live: its socket (named as containerd's
 * own shims name theirs), the VM's private state directory, and the small
 * files it records in the bundle for the `delete` command. */
#ifndef RUNM_SHIM_PATHS_H
#define RUNM_SHIM_PATHS_H

/* Directory of shim sockets, as containerd's shim package uses. */
#define PATHS_SOCKET_DIR "/run/containerd/s"
/* Parent of the VMs' state directories (short: they hold unix sockets). */
#define PATHS_STATE_ROOT "/run/runm/shim"

/* Files in the bundle: the shim's pid, the VMM's pid, the init's guest pid. */
#define PATHS_SHIM_PID "shim.pid"
#define PATHS_VMM_PID "vmm.pid"
#define PATHS_INIT_PID "init.pid"

/* /run/containerd/s/<hex(sha256(address/ns/id))>, malloc'd. */
char *paths_socket(const char *address, const char *ns, const char *id);

/* /run/runm/shim/<first 20 hex digits of sha256(bundle)>, malloc'd. */
char *paths_state_dir(const char *bundle);

#endif
