/* fuzz_agent - the protobuf messages runm decodes from peers: every runm
 * agent message (the host unpacks the guest's replies, the agent the host's
 * requests) and the containerd task API requests the shim serves. Each is
 * unpacked from the same bytes; what decodes is packed again (the shim
 * re-packs fields it forwards) and freed. */
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "runm/agent.pb-c.h"
#include "ttrpc.pb-c.h"

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__ubsan_default_options(void);

/* The Makefile builds fuzzers without -fno-sanitize-recover: make UBSan
 * findings crashes, or libFuzzer would report them and carry on. */
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

static const ProtobufCMessageDescriptor *const types[] = {
	/* runm agent API, both directions */
	&runm__agent__v1__empty__descriptor,
	&runm__agent__v1__mount__descriptor,
	&runm__agent__v1__create_request__descriptor,
	&runm__agent__v1__create_response__descriptor,
	&runm__agent__v1__start_request__descriptor,
	&runm__agent__v1__start_response__descriptor,
	&runm__agent__v1__exec_request__descriptor,
	&runm__agent__v1__signal_request__descriptor,
	&runm__agent__v1__wait_request__descriptor,
	&runm__agent__v1__wait_response__descriptor,
	&runm__agent__v1__resize_request__descriptor,
	&runm__agent__v1__close_stdin_request__descriptor,
	&runm__agent__v1__stdio_request__descriptor,
	&runm__agent__v1__state_request__descriptor,
	&runm__agent__v1__state_response__descriptor,
	&runm__agent__v1__process_info__descriptor,
	&runm__agent__v1__pids_response__descriptor,
	&runm__agent__v1__delete_request__descriptor,
	&runm__agent__v1__stats_response__descriptor,
	&runm__agent__v1__ping_request__descriptor,
	&runm__agent__v1__ping_response__descriptor,
	&runm__agent__v1__dns_relay_request__descriptor,
	&runm__agent__v1__dns_packet__descriptor,
	&runm__agent__v1__network_request__descriptor,
	&runm__agent__v1__socket_mount__descriptor,
	&runm__agent__v1__socket_proxy_request__descriptor,
	/* containerd's task API (containerd.task.v2.Task), what the shim decodes */
	&containerd__task__v2__create_task_request__descriptor,
	&containerd__task__v2__delete_request__descriptor,
	&containerd__task__v2__exec_process_request__descriptor,
	&containerd__task__v2__resize_pty_request__descriptor,
	&containerd__task__v2__state_request__descriptor,
	&containerd__task__v2__kill_request__descriptor,
	&containerd__task__v2__close_iorequest__descriptor,
	&containerd__task__v2__pids_request__descriptor,
	&containerd__task__v2__checkpoint_task_request__descriptor,
	&containerd__task__v2__update_task_request__descriptor,
	&containerd__task__v2__start_request__descriptor,
	&containerd__task__v2__wait_request__descriptor,
	&containerd__task__v2__stats_request__descriptor,
	&containerd__task__v2__connect_request__descriptor,
	&containerd__task__v2__shutdown_request__descriptor,
	&containerd__task__v2__pause_request__descriptor,
	&containerd__task__v2__resume_request__descriptor,
	/* the ttrpc envelopes around them */
	&ttrpc__request__descriptor,
	&ttrpc__response__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		ProtobufCMessage *m = protobuf_c_message_unpack(types[i], NULL, size, data);
		size_t len;
		uint8_t *buf;

		if (m == NULL)
			continue;
		if (!protobuf_c_message_check(m))
			abort(); /* unpack returned a message with a broken required/NULL field */
		len = protobuf_c_message_get_packed_size(m);
		buf = malloc(len ? len : 1);
		if (buf == NULL || protobuf_c_message_pack(m, buf) != len)
			abort();
		free(buf);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return 0;
}
