/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ch-sim: a stand-in for the cloud-hypervisor binary and the guest behind
 * it (docs/simulator.md).  One process, one VM, an event loop on the main
 * thread serving the REST API and hybrid vsock; helper threads for the
 * guest's network forwarding, the OnDemand prefault (v53) and the debug
 * console.  Stricter than CH wherever CH would reject a request.
 */
#ifndef SIM_CORE_H
#define SIM_CORE_H

#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SIM_PAGE 4096u

/* ------------------------------------------------------------ personality */

enum sim_personality
{
  SIM_V51 = 51,
  SIM_V52 = 52,
  SIM_V53 = 53,
};

/* Error classes; each personality maps them to its own status codes
 * (docs/simulator.md, "Personalities"): v51/v52 answer 500 for nearly
 * everything, v53 404 /
 * 400 / 409. */
enum sim_err
{
  SIM_E_BAD_REQUEST,  /* malformed request or body: 400 everywhere */
  SIM_E_NOT_CREATED,  /* no VM / unknown device: v53 404 */
  SIM_E_INVALID,      /* config validation: v53 400 */
  SIM_E_CONFLICT,     /* duplicate id or path: v53 409 */
  SIM_E_INTERNAL,     /* everything else: 500 */
};

/* --------------------------------------------------------------- memory */

struct sim_mem
{
  int fd;            /* sparse memfd of `size` bytes */
  uint64_t size;
  size_t npages;
  pthread_mutex_t lock;

  /* OnDemand restore: pages not yet present are read from src_fd on first
   * access (as CH's userfaultfd handler does). */
  int src_fd;
  uint8_t *present; /* bitmap, NULL unless OnDemand */

  pthread_t prefault;
  bool prefault_started;
  atomic_bool prefault_stop;
  atomic_bool prefault_done;
};

int sim_mem_new (uint64_t size, struct sim_mem **out, char **errmsg);
void sim_mem_free (struct sim_mem *m);
/* Copy: read the populated extents of src; OnDemand: map lazily. */
int sim_mem_restore (struct sim_mem *m, const char *src_path, bool ondemand, char **errmsg);
/* v53: fault every populated source page in, in the background. */
int sim_mem_start_prefault (struct sim_mem *m);
bool sim_mem_prefault_busy (struct sim_mem *m);
int sim_mem_read (struct sim_mem *m, uint64_t off, void *buf, size_t len);
int sim_mem_write (struct sim_mem *m, uint64_t off, const void *buf, size_t len);
/* Read without faulting anything in (simulator omniscience). */
int sim_mem_peek (struct sim_mem *m, uint64_t off, void *buf, size_t len);
/* Write the populated pages of guest RAM to path (sparse). */
int sim_mem_save (struct sim_mem *m, const char *path, char **errmsg);

/* ---------------------------------------------------------------- guest */

#define SIM_AGENT_FIRST_PAGE 1
#define SIM_AGENT_PAGES 63
#define SIM_GUEST_RESERVED_PAGES 64
#define SIM_INTEGRITY_PAGES 32
#define SIM_MAX_DIGESTS 8
#define SIM_MIN_MEMORY (2u << 20)

/* Build the header and integrity pages of a freshly booted guest. */
int sim_guest_cold_boot (struct sim_mem *m, char **errmsg);
/* The guest's periodic work while running: clock, a few dirty pages. */
void sim_guest_tick (struct sim_mem *m, uint64_t elapsed_ns);
struct sim_vdisk;

/* At every snapshot: remember the writable disks' digests. */
int sim_guest_record_disks (struct sim_mem *m, struct sim_vdisk *const *disks, size_t n,
                            char **errmsg);
/* After a restore, before the first resume: header, integrity pages and
 * disks must be what the guest remembers; errmsg says what broke. */
int sim_guest_check (struct sim_mem *m, struct sim_vdisk *const *disks, size_t n, char **errmsg);
/* Digest of what the guest reads from a disk (docs/simulator.md, "Disks"). */
int sim_disk_digest (struct sim_vdisk *d, uint8_t out[16], char **errmsg);

/* -------------------------------------------------------------- network */

struct sim_net_dev
{
  char *id;
  char *mac;
  int num_queues;
  int *fds;
  size_t nfds;
  bool *vnet; /* per fd: IFF_VNET_HDR set */
};

struct sim_netfwd; /* the forwarding thread */

/* A new network namespace with a tap "eth0" (lo up); fds -1 when not root. */
int sim_guest_netns_create (const char *mac, int *netns_fd, int *tap_fd, char **errmsg);
/* Check that fd is a tap and set it up as CH does (vnet header 12 bytes,
 * offloads off, non-blocking); *vnet tells whether it has a vnet header. */
int sim_tap_adopt (int fd, bool *vnet, char **errmsg);
struct sim_netfwd *sim_netfwd_start (int guest_tap, struct sim_net_dev *devs, size_t n);
void sim_netfwd_set_running (struct sim_netfwd *f, bool running);
void sim_netfwd_stop (struct sim_netfwd *f);

/* ------------------------------------------------------------- the VMM */

enum sim_vm_state
{
  SIM_VM_NONE,
  SIM_VM_CREATED,
  SIM_VM_RUNNING,
  SIM_VM_PAUSED,
  SIM_VM_SHUTDOWN,
};

struct sim_disk
{
  char *path;
  char *id;
  char *image_type; /* as configured; NULL: autodetect */
  bool backing_files;
  bool readonly;
  int lock_fd;            /* the open image (OFD-locked) */
  struct sim_vdisk *vd;   /* the block device the guest sees */
};

/* ---- block devices (vdisk.c) ---- */

int sim_vdisk_open (int fd, const char *path, const char *image_type, bool backing_files,
                    bool writable, struct sim_vdisk **out, char **msg);
/* clean: write a qcow2's pending metadata and clear its dirty bit (a
 * VMM that stops normally); false: drop it (a crash). */
int sim_vdisk_close (struct sim_vdisk *d, bool clean);
uint64_t sim_vdisk_size (const struct sim_vdisk *d);
/* Bytes per cluster of a qcow2 (a page for raw disks). */
uint64_t sim_vdisk_cluster_size (const struct sim_vdisk *d);
int sim_vdisk_read (struct sim_vdisk *d, uint64_t off, void *buf, size_t len);
int sim_vdisk_write (struct sim_vdisk *d, uint64_t off, const void *buf, size_t len);
bool sim_vdisk_is_qcow2 (const struct sim_vdisk *d);
typedef void (*sim_vdisk_cluster_fn) (uint64_t guest_off, const uint8_t *data, uint64_t len,
                                      void *opaque);
/* qcow2: every cluster the overlay holds (data or zeros), in guest order. */
int sim_vdisk_foreach_written (struct sim_vdisk *d, sim_vdisk_cluster_fn fn, void *opaque);
/* qcow2: the backing file (-1: none). */
int sim_vdisk_backing_fd (const struct sim_vdisk *d, uint64_t *size);
/* The image file itself (raw disks: the guest's bytes). */
int sim_vdisk_raw_fd (const struct sim_vdisk *d);


struct sim_console;
struct sim_pending;

struct sim
{
  enum sim_personality personality;
  const char *version;       /* "52.0.0" */
  const char *build_version; /* "v52.0" */
  char *api_path;
  int api_fd;
  FILE *record;
  int boot_ms;
  bool quit;
  bool ever_created; /* restore needs a fresh VMM */

  enum sim_vm_state state;
  struct json_object *config; /* VmConfig as created (ids added) */
  unsigned id_counter;
  struct sim_disk *disks;
  size_t ndisks;
  struct sim_net_dev *nets;
  size_t nnets;
  char *kernel;

  struct sim_mem *mem;
  bool needs_check;  /* restored, the guest has not resumed yet */
  bool broken;       /* the guest failed its resume check */
  uint64_t last_tick_ns;

  int netns_fd;
  int guest_tap;
  struct sim_netfwd *fwd;

  char *vsock_path;
  int vsock_fd;
  int64_t agent_ready_ns;
  unsigned next_host_port;
  struct sim_pending *pending; /* vsock connections awaiting CONNECT */
  struct sim_console *consoles;
  void *agent; /* struct sim_agent * when built with the agent */
};

/* API side (api.c). */
int sim_api_listen (struct sim *s, char **errmsg);
void sim_api_poll_fds (struct sim *s, struct pollfd *p, size_t *n, size_t max);
void sim_api_handle (struct sim *s, struct pollfd *p, size_t n);
void sim_api_close_all (struct sim *s);

/* VM lifecycle (vm.c).  Each returns 0 or an error class with *msg set. */
int sim_vm_create (struct sim *s, struct json_object *cfg, char **msg, enum sim_err *cls);
int sim_vm_add_net (struct sim *s, struct json_object *cfg, int *fds, size_t nfds,
                    char **msg, enum sim_err *cls, char **reply);
int sim_vm_boot (struct sim *s, char **msg, enum sim_err *cls);
int sim_vm_pause (struct sim *s, char **msg, enum sim_err *cls);
int sim_vm_resume (struct sim *s, char **msg, enum sim_err *cls);
int sim_vm_snapshot (struct sim *s, struct json_object *body, char **msg, enum sim_err *cls);
int sim_vm_restore (struct sim *s, struct json_object *body, int *fds, size_t nfds,
                    char **msg, enum sim_err *cls);
int sim_vm_shutdown (struct sim *s, char **msg, enum sim_err *cls);
int sim_vm_delete (struct sim *s, char **msg, enum sim_err *cls);
struct json_object *sim_vm_info (struct sim *s);
void sim_vm_tick (struct sim *s);
void sim_vm_teardown (struct sim *s);
const char *sim_vm_state_name (enum sim_vm_state st);

/* Validation of a VmConfig / NetConfig body (config.c). */
int sim_config_validate (struct json_object *cfg, bool restoring, char **msg);
int sim_netconfig_validate (struct json_object *cfg, char **msg);

/* Vsock and the guest's services (vsock.c). */
int sim_vsock_listen (struct sim *s, char **msg);
void sim_vsock_poll_fds (struct sim *s, struct pollfd *p, size_t *n, size_t max);
void sim_vsock_handle (struct sim *s, struct pollfd *p, size_t n);
/* Drop every connection (snapshot, restore, shutdown). */
void sim_vsock_reset (struct sim *s);
void sim_vsock_close (struct sim *s);

/* Agent glue (agent_glue.c): no-ops without the agent. */
void sim_agent_glue_start (struct sim *s, bool restored);
void sim_agent_glue_pause (struct sim *s);
void sim_agent_glue_resume (struct sim *s);
void sim_agent_glue_reset (struct sim *s);
void sim_agent_glue_stop (struct sim *s);
bool sim_agent_glue_serve (struct sim *s, int fd);

/* Helpers. */
void sim_log (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
int64_t sim_now_ns (void);

#endif
