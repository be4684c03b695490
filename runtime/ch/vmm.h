/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cloud-hypervisor process: launch a bare VMM on an API socket, wait
 * until it answers vmm.ping, re-attach after a server restart, and stop it
 * without ever leaving an orphan (docs/cloud-hypervisor.md, "Process").
 */
#ifndef ATE_CH_VMM_H
#define ATE_CH_VMM_H

#include <sys/types.h>

#include "api.h"
#include "util/time.h"

struct ate_error;
struct ch_vmm;

/* Unlink api_socket, spawn `<binary> --api-socket path=<api_socket>` (stdin
 * /dev/null; stdout and stderr logged as INFO "cloud-hypervisor" records
 * with attribute "out" by a reader thread), and poll vmm.ping every 10 ms
 * until ready_deadline.  On any failure the process is killed and waited
 * for, and the error says what it printed or how it exited.  The process is
 * not tied to the caller's lifetime (it survives a server restart). */
int ch_vmm_launch (const char *binary, const char *api_socket, ate_deadline_t ready_deadline,
                   struct ch_vmm **out, struct ate_error **err);

/* Re-attach to a VMM started by an earlier server process (pid + start time
 * from /proc/<pid>/stat rule out pid reuse) and ping it (10 s).  Its output
 * is no longer captured (it went to the old server's pipe). */
int ch_vmm_attach (pid_t pid, unsigned long long starttime, const char *api_socket,
                   struct ch_vmm **out, struct ate_error **err);

pid_t ch_vmm_pid (const struct ch_vmm *vmm);
unsigned long long ch_vmm_starttime (const struct ch_vmm *vmm);
const char *ch_vmm_socket (const struct ch_vmm *vmm);
const struct ch_version *ch_vmm_version (const struct ch_vmm *vmm);

/* Whether the process has exited (non-blocking). */
int ch_vmm_exited (struct ch_vmm *vmm);

/* vm.shutdown (error ignored: there may be no VM), vmm.shutdown, wait for
 * the exit until the deadline, then SIGKILL and wait.  Always leaves the
 * process reaped; returns < 0 (err may be NULL) when the VMM had to be
 * killed or vmm.shutdown failed. */
int ch_vmm_stop (struct ch_vmm *vmm, ate_deadline_t deadline, struct ate_error **err);

/* Kill and reap if still running, join the output reader, free.  NULL-safe. */
void ch_vmm_free (struct ch_vmm *vmm);

static inline void
cleanup_ch_vmm_fn (struct ch_vmm **v)
{
  ch_vmm_free (*v);
}
#define cleanup_ch_vmm __attribute__ ((cleanup (cleanup_ch_vmm_fn)))

#endif
