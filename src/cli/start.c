/* start.c - runc's `start`: ask a created container's monitor to start it
 * (the monitor service's Start, answered once the process runs), then run
 * the poststart hooks here, on the host, as runc does. */
#include "cli/cli.h"

#include "cli/session.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/hooks.h"
#include "runm/agent.pb-c.h"

#include <stdio.h>
#include <string.h>

/* Booting is done at create: start waits for the mirror and the guest's Start. */
#define START_TIMEOUT_MS 120000

int cmd_start(const struct cli *cli, int argc, char **argv)
{
	Runm__Agent__V1__Empty req = RUNM__AGENT__V1__EMPTY__INIT;
	cleanup_error runm_error_t err = NULL;
	cleanup_free char *state = NULL;
	struct session *s = NULL;
	struct cli_state st;
	const char *id;

	if (argc != 2) {
		fprintf(stderr, "usage: runm start ID\n");
		return 2;
	}
	id = argv[1];
	if (cli_load(cli, id, &st) < 0)
		return 1;
	if (!cli_monitor_alive(&st) || strcmp(st.status, "stopped") == 0) {
		cli_state_release(&st);
		return cli_fail("cannot start a container that has stopped");
	}
	if (strcmp(st.status, "created") != 0) {
		int rc = cli_fail("cannot start a container in the %s state", st.status);
		cli_state_release(&st);
		return rc;
	}
	if (session_open(cli, id, &s, &err) < 0 ||
	    session_call_service(s, CLI_MONITOR_SERVICE, "Start", &req.base, START_TIMEOUT_MS, NULL, NULL, &err) < 0) {
		session_close(s);
		cli_state_release(&st);
		return cli_fail("start %s: %s", id, runm_error_msg(err));
	}
	session_close(s);
	state = hooks_state_json(st.bundle, id, "running", st.host_pid ? st.host_pid : st.vmm_pid);
	/* The runtime spec: a failing poststart hook is a warning, and the
	 * container keeps running. */
	if (hooks_run(st.bundle, HOOK_POSTSTART, state, &err) < 0)
		log_warn("%s", runm_error_msg(err));
	cli_state_release(&st);
	return 0;
}
