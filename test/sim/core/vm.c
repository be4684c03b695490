/* SPDX-License-Identifier: Apache-2.0 */
/* The VM's lifecycle: create, add-net, boot, pause, resume, snapshot,
 * restore, shutdown, delete -- with CH's preconditions. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/util.h"

#define FAIL(cls_, ...)                                                                        \
  do                                                                                           \
    {                                                                                          \
      *msg = xasprintf (__VA_ARGS__);                                                          \
      *cls = (cls_);                                                                           \
      return -1;                                                                               \
    }                                                                                          \
  while (0)

const char *
sim_vm_state_name (enum sim_vm_state st)
{
  switch (st)
    {
    case SIM_VM_CREATED:
      return "Created";
    case SIM_VM_RUNNING:
      return "Running";
    case SIM_VM_PAUSED:
      return "Paused";
    case SIM_VM_SHUTDOWN:
      return "Shutdown";
    default:
      return "NotCreated";
    }
}

/* ------------------------------------------------------------- devices */

static void
disks_release (struct sim *s)
{
  for (size_t i = 0; i < s->ndisks; i++)
    {
      sim_vdisk_close (s->disks[i].vd, true);
      s->disks[i].vd = NULL;
      close_and_reset (&s->disks[i].lock_fd);
      free (s->disks[i].path);
      free (s->disks[i].id);
      free (s->disks[i].image_type);
    }
  free (s->disks);
  s->disks = NULL;
  s->ndisks = 0;
}

static void
nets_release (struct sim *s)
{
  for (size_t i = 0; i < s->nnets; i++)
    {
      for (size_t k = 0; k < s->nets[i].nfds; k++)
        close (s->nets[i].fds[k]);
      free (s->nets[i].fds);
      free (s->nets[i].vnet);
      free (s->nets[i].id);
      free (s->nets[i].mac);
    }
  free (s->nets);
  s->nets = NULL;
  s->nnets = 0;
}

/* s->disks from the config's disks[], assigning ids CH-style. */
static void
disks_from_config (struct sim *s)
{
  struct json_object *arr = NULL;
  size_t n;

  disks_release (s);
  if (!json_object_object_get_ex (s->config, "disks", &arr) || !json_object_is_type (arr, json_type_array))
    return;
  n = json_object_array_length (arr);
  s->disks = xcalloc (n + 1, sizeof (*s->disks));
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *d = json_object_array_get_idx (arr, i), *ro, *bf;
      const char *id = ate_json_get_string (d, "id");
      const char *type = ate_json_get_string (d, "image_type");
      struct sim_disk *sd = &s->disks[s->ndisks++];
      sd->path = xstrdup (ate_json_get_string (d, "path"));
      sd->readonly = json_object_object_get_ex (d, "readonly", &ro) && json_object_get_boolean (ro);
      sd->backing_files = json_object_object_get_ex (d, "backing_files", &bf)
                          && json_object_get_boolean (bf);
      sd->image_type = type && strcmp (type, "Unknown") != 0 ? xstrdup (type) : NULL;
      sd->lock_fd = -1;
      if (id == NULL)
        {
          sd->id = xasprintf ("_disk%u", s->id_counter++);
          json_object_object_add (d, "id", json_object_new_string (sd->id));
        }
      else
        sd->id = xstrdup (id);
    }
}

/* CH holds an OFD lock on every disk (docs/disk_locking.md): a second VM
 * on the same writable image fails to start. */
static int
disks_lock (struct sim *s, char **msg)
{
  for (size_t i = 0; i < s->ndisks; i++)
    {
      struct sim_disk *d = &s->disks[i];
      struct flock fl = { .l_type = d->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };
      d->lock_fd = open (d->path, (d->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
      if (d->lock_fd < 0)
        {
          *msg = xasprintf ("Error opening disk `%s`: %s", d->path, strerror (errno));
          return -1;
        }
      if (fcntl (d->lock_fd, F_OFD_SETLK, &fl) < 0)
        {
          *msg = xasprintf ("Failed to lock disk image `%s` (%s lock): %s; is another VM "
                            "using it?", d->path, d->readonly ? "read" : "write", strerror (errno));
          return -1;
        }
      if (sim_vdisk_open (d->lock_fd, d->path, d->image_type, d->backing_files, !d->readonly,
                          &d->vd, msg) < 0)
        return -1;
    }
  return 0;
}

static size_t
writable_disks (struct sim *s, struct sim_vdisk **disks)
{
  size_t n = 0;
  for (size_t i = 0; i < s->ndisks && n < SIM_MAX_DIGESTS; i++)
    if (!s->disks[i].readonly && s->disks[i].vd)
      disks[n++] = s->disks[i].vd;
  return n;
}

static int
net_adopt_fds (struct sim_net_dev *nd, int *fds, size_t nfds, char **msg)
{
  nd->vnet = xcalloc (nfds + 1, sizeof (bool));
  for (size_t i = 0; i < nfds; i++)
    if (sim_tap_adopt (fds[i], &nd->vnet[i], msg) < 0)
      {
        free (nd->vnet);
        nd->vnet = NULL;
        return -1;
      }
  nd->fds = xcalloc (nfds + 1, sizeof (int));
  memcpy (nd->fds, fds, nfds * sizeof (int));
  nd->nfds = nfds;
  for (size_t i = 0; i < nfds; i++)
    fds[i] = -1; /* ours now */
  return 0;
}

static void
net_restart_forwarding (struct sim *s)
{
  sim_netfwd_stop (s->fwd);
  s->fwd = sim_netfwd_start (s->guest_tap, s->nets, s->nnets);
  sim_netfwd_set_running (s->fwd, s->state == SIM_VM_RUNNING);
}

/* --------------------------------------------------------------- guest */

static int
guest_env_start (struct sim *s, char **msg)
{
  struct json_object *v;
  char *nmsg = NULL;

  if (sim_guest_netns_create (s->nnets > 0 && s->nets[0].mac && *s->nets[0].mac ? s->nets[0].mac : NULL,
                              &s->netns_fd, &s->guest_tap, &nmsg) < 0)
    {
      if (geteuid () == 0)
        {
          *msg = nmsg;
          return -1;
        }
      sim_log ("guest network disabled (not root): %s", nmsg);
      free (nmsg);
    }
  if (json_object_object_get_ex (s->config, "vsock", &v) && json_object_is_type (v, json_type_object))
    {
      free (s->vsock_path);
      s->vsock_path = xstrdup (ate_json_get_string (v, "socket"));
      if (sim_vsock_listen (s, msg) < 0)
        return -1;
    }
  return 0;
}

/* Stop the running guest and release its devices (config kept). */
static void
guest_stop (struct sim *s)
{
  sim_agent_glue_stop (s);
  sim_vsock_close (s);
  sim_netfwd_stop (s->fwd);
  s->fwd = NULL;
  close_and_reset (&s->guest_tap);
  close_and_reset (&s->netns_fd);
  sim_mem_free (s->mem);
  s->mem = NULL;
  nets_release (s);
  /* The VMM stops normally: qcow2 metadata is written, dirty bits clear. */
  for (size_t i = 0; i < s->ndisks; i++)
    {
      if (sim_vdisk_close (s->disks[i].vd, true) < 0)
        sim_log ("disk `%s`: clean close failed: %s", s->disks[i].path, strerror (errno));
      s->disks[i].vd = NULL;
      close_and_reset (&s->disks[i].lock_fd);
    }
  s->needs_check = s->broken = false;
}

void
sim_vm_teardown (struct sim *s)
{
  guest_stop (s);
  disks_release (s);
  json_object_put (s->config);
  s->config = NULL;
  free (s->kernel);
  s->kernel = NULL;
  s->state = SIM_VM_NONE;
}

/* ------------------------------------------------------------ requests */

int
sim_vm_create (struct sim *s, struct json_object *cfg, char **msg, enum sim_err *cls)
{
  int r;

  if (s->state != SIM_VM_NONE)
    FAIL (SIM_E_CONFLICT, "VM is already created");
  r = sim_config_validate (cfg, false, msg);
  if (r < 0)
    {
      *cls = r == -2 ? SIM_E_CONFLICT : SIM_E_INVALID;
      return -1;
    }
  s->config = json_object_get (cfg);
  disks_from_config (s);
  s->state = SIM_VM_CREATED;
  s->ever_created = true;
  return 0;
}

static struct json_object *
net_config_entry (struct json_object *req, const char *id, const char *mac, int64_t nq,
                  size_t nfds)
{
  struct json_object *e = json_object_new_object (), *fds = json_object_new_array ();
  struct json_object *v;

  json_object_object_add (e, "tap", NULL);
  json_object_object_add (e, "ip", json_object_new_string ("192.168.249.1"));
  json_object_object_add (e, "mask", json_object_new_string ("255.255.255.0"));
  json_object_object_add (e, "mac", json_object_new_string (mac));
  json_object_object_add (e, "mtu",
                          json_object_object_get_ex (req, "mtu", &v) ? json_object_get (v) : NULL);
  json_object_object_add (e, "iommu", json_object_new_boolean (false));
  json_object_object_add (e, "num_queues", json_object_new_int64 (nq));
  json_object_object_add (e, "queue_size",
                          json_object_object_get_ex (req, "queue_size", &v)
                              ? json_object_get (v) : json_object_new_int64 (256));
  json_object_object_add (e, "id", json_object_new_string (id));
  /* fd-backed: CH records placeholders, the fds themselves cannot be
   * restored (hence net_fds on vm.restore). */
  for (size_t i = 0; i < nfds; i++)
    json_object_array_add (fds, json_object_new_int64 (-1));
  json_object_object_add (e, "fds", fds);
  return e;
}

int
sim_vm_add_net (struct sim *s, struct json_object *req, int *fds, size_t nfds, char **msg,
                enum sim_err *cls, char **reply)
{
  struct json_object *v, *arr;
  int64_t nq = 2;
  const char *mac, *id;
  char macbuf[18], *gen_id = NULL;
  struct sim_net_dev nd = { 0 };

  if (s->state == SIM_VM_NONE)
    FAIL (SIM_E_NOT_CREATED, "VM is not created");
  if (s->state == SIM_VM_SHUTDOWN)
    FAIL (SIM_E_INTERNAL, "VM is shut down");
  if (sim_netconfig_validate (req, msg) < 0)
    {
      *cls = SIM_E_INVALID;
      return -1;
    }
  if (json_object_object_get_ex (req, "num_queues", &v))
    nq = json_object_get_int64 (v);
  if (nfds == 0 || nq != 2 * (int64_t) nfds)
    FAIL (SIM_E_INVALID, "Number of queues (%lld) must be twice the number of fds (%zu)",
          (long long) nq, nfds);
  id = ate_json_get_string (req, "id");
  for (size_t i = 0; id && i < s->nnets; i++)
    if (strcmp (s->nets[i].id, id) == 0)
      FAIL (SIM_E_CONFLICT, "Identifier %s is not unique", id);
  mac = ate_json_get_string (req, "mac");
  if (mac == NULL)
    {
      snprintf (macbuf, sizeof (macbuf), "52:54:00:%02x:%02x:%02x", getpid () & 0xff,
                s->id_counter & 0xff, (unsigned) s->nnets & 0xff);
      mac = macbuf;
    }
  if (net_adopt_fds (&nd, fds, nfds, msg) < 0)
    {
      *cls = SIM_E_INVALID;
      return -1;
    }
  if (id == NULL)
    id = gen_id = xasprintf ("_net%u", s->id_counter++);
  nd.id = xstrdup (id);
  nd.mac = xstrdup (mac);
  nd.num_queues = (int) nq;
  if (!json_object_object_get_ex (s->config, "net", &arr) || !json_object_is_type (arr, json_type_array))
    {
      arr = json_object_new_array ();
      json_object_object_add (s->config, "net", arr);
    }
  json_object_array_add (arr, net_config_entry (req, id, mac, nq, nfds));
  s->nets = xrealloc (s->nets, (s->nnets + 1) * sizeof (*s->nets));
  s->nets[s->nnets++] = nd;
  if (s->state == SIM_VM_RUNNING || s->state == SIM_VM_PAUSED)
    {
      /* Hot plug: CH answers with the new PCI device. */
      *reply = xasprintf ("{\"id\":\"%s\",\"bdf\":\"0000:00:%02zx.0\"}", id, 4 + s->nnets);
      net_restart_forwarding (s);
    }
  free (gen_id);
  return 0;
}

int
sim_vm_boot (struct sim *s, char **msg, enum sim_err *cls)
{
  struct json_object *mem, *sz, *vs;

  if (s->state == SIM_VM_NONE)
    FAIL (SIM_E_NOT_CREATED, "VM is not created");
  if (s->state != SIM_VM_CREATED)
    FAIL (SIM_E_INTERNAL, "VM is already booted (state %s)", sim_vm_state_name (s->state));
  json_object_object_get_ex (s->config, "memory", &mem);
  json_object_object_get_ex (mem, "size", &sz);
  if (disks_lock (s, msg) < 0 || sim_mem_new ((uint64_t) json_object_get_int64 (sz), &s->mem, msg) < 0
      || sim_guest_cold_boot (s->mem, msg) < 0 || guest_env_start (s, msg) < 0)
    {
      guest_stop (s);
      *cls = SIM_E_INTERNAL;
      return -1;
    }
  if (json_object_object_get_ex (s->config, "vsock", &vs) && vs
      && !json_object_object_get_ex (vs, "id", NULL))
    {
      cleanup_free char *vid = xasprintf ("_vsock%u", s->id_counter++);
      json_object_object_add (vs, "id", json_object_new_string (vid));
    }
  s->state = SIM_VM_RUNNING;
  s->last_tick_ns = (uint64_t) sim_now_ns ();
  s->agent_ready_ns = sim_now_ns () + (int64_t) s->boot_ms * 1000000;
  sim_agent_glue_start (s, false);
  net_restart_forwarding (s);
  return 0;
}

int
sim_vm_pause (struct sim *s, char **msg, enum sim_err *cls)
{
  if (s->state == SIM_VM_NONE)
    FAIL (SIM_E_NOT_CREATED, "VM is not created");
  /* CH: InvalidStateTransition, a 500 -- also for an already paused VM. */
  if (s->state != SIM_VM_RUNNING)
    FAIL (SIM_E_INTERNAL, "Invalid state transition: %s -> Paused", sim_vm_state_name (s->state));
  sim_vm_tick (s);
  sim_netfwd_set_running (s->fwd, false);
  sim_agent_glue_pause (s);
  s->state = SIM_VM_PAUSED;
  return 0;
}

int
sim_vm_resume (struct sim *s, char **msg, enum sim_err *cls)
{
  if (s->state == SIM_VM_NONE)
    FAIL (SIM_E_NOT_CREATED, "VM is not created");
  if (s->state != SIM_VM_PAUSED)
    FAIL (SIM_E_INTERNAL, "Invalid state transition: %s -> Running", sim_vm_state_name (s->state));
  if (s->broken)
    FAIL (SIM_E_INTERNAL, "guest is broken and cannot run");
  if (s->needs_check)
    {
      struct sim_vdisk *paths[SIM_MAX_DIGESTS];
      size_t n = writable_disks (s, paths);
      char *why = NULL;
      /* What a real guest would hit as memory corruption or ext4 errors
       * right after it resumes. */
      if (sim_guest_check (s->mem, paths, n, &why) < 0)
        {
          s->broken = true;
          *msg = xasprintf ("Error resuming VM: guest failed after restore: %s", why);
          *cls = SIM_E_INTERNAL;
          free (why);
          return -1;
        }
      s->needs_check = false;
      s->state = SIM_VM_RUNNING;
      s->agent_ready_ns = sim_now_ns ();
      sim_agent_glue_start (s, true);
    }
  else
    {
      s->state = SIM_VM_RUNNING;
      sim_agent_glue_resume (s);
    }
  s->last_tick_ns = (uint64_t) sim_now_ns ();
  sim_netfwd_set_running (s->fwd, true);
  return 0;
}

static const char *
file_url_dir (struct json_object *o, const char *key, char **msg)
{
  const char *u = ate_json_get_string (o, key);
  if (u == NULL)
    {
      *msg = xasprintf ("%s is required", key);
      return NULL;
    }
  if (strncmp (u, "file://", 7) != 0 || u[7] != '/')
    {
      *msg = xasprintf ("%s `%s`: only file:///absolute/dir URLs are supported", key, u);
      return NULL;
    }
  return u + 7;
}

static int
write_state_json (struct sim *s, const char *dir, char **msg)
{
  cleanup_json struct json_object *st = json_object_new_object ();
  cleanup_free char *path = ate_path_join (dir, "state.json");
  cleanup_free char *text = NULL;
  struct ate_error *err = NULL;

  json_object_object_add (st, "simulator", json_object_new_string ("ch-sim"));
  json_object_object_add (st, "version", json_object_new_string (s->version));
  json_object_object_add (st, "memory_size", json_object_new_int64 ((int64_t) s->mem->size));
  json_object_object_add (st, "vcpus", json_object_new_array ());
  /* cloud-hypervisor saves the guest clock (KVM_GET_CLOCK) and the vCPU
   * registers: no two snapshots have the same state.json. */
  json_object_object_add (st, "clock", json_object_new_int64 (sim_now_ns ()));
  text = ate_json_to_string (st, 1);
  if (ate_write_file (path, text, strlen (text), 0600, &err) < 0)
    {
      *msg = xstrdup (err->msg);
      ate_error_release (&err);
      return -1;
    }
  return 0;
}

int
sim_vm_snapshot (struct sim *s, struct json_object *body, char **msg, enum sim_err *cls)
{
  const char *dir = file_url_dir (body, "destination_url", msg);
  struct sim_vdisk *paths[SIM_MAX_DIGESTS];
  cleanup_free char *cfgp = NULL, *memp = NULL, *text = NULL;
  struct ate_error *err = NULL;
  size_t n;

  if (dir == NULL)
    {
      *cls = SIM_E_BAD_REQUEST;
      return -1;
    }
  if (s->state == SIM_VM_NONE)
    FAIL (SIM_E_NOT_CREATED, "VM is not created");
  if (s->state != SIM_VM_PAUSED)
    FAIL (SIM_E_INTERNAL, "Error creating snapshot: VM is not paused (state %s)",
          sim_vm_state_name (s->state));
  if (!ate_is_dir (dir))
    FAIL (SIM_E_INTERNAL, "Error creating snapshot: destination `%s` is not an existing "
          "directory", dir);
  if (sim_mem_prefault_busy (s->mem))
    FAIL (SIM_E_INTERNAL, "Error creating snapshot: on-demand memory restore still in progress");
  sim_vsock_reset (s);
  n = writable_disks (s, paths);
  if (sim_guest_record_disks (s->mem, paths, n, msg) < 0)
    {
      *cls = SIM_E_INTERNAL;
      return -1;
    }
  cfgp = ate_path_join (dir, "config.json");
  memp = ate_path_join (dir, "memory-ranges");
  text = ate_json_to_string (s->config, 1);
  if (ate_write_file (cfgp, text, strlen (text), 0600, &err) < 0)
    {
      *msg = xstrdup (err->msg);
      ate_error_release (&err);
      *cls = SIM_E_INTERNAL;
      return -1;
    }
  if (write_state_json (s, dir, msg) < 0 || sim_mem_save (s->mem, memp, msg) < 0)
    {
      *cls = SIM_E_INTERNAL;
      return -1;
    }
  return 0;
}

int
sim_vm_shutdown (struct sim *s, char **msg, enum sim_err *cls)
{
  if (s->state == SIM_VM_NONE)
    FAIL (SIM_E_NOT_CREATED, "VM is not created");
  if (s->state != SIM_VM_RUNNING && s->state != SIM_VM_PAUSED)
    FAIL (SIM_E_INTERNAL, "Invalid state transition: %s -> Shutdown", sim_vm_state_name (s->state));
  guest_stop (s);
  s->state = SIM_VM_SHUTDOWN;
  return 0;
}

int
sim_vm_delete (struct sim *s, char **msg, enum sim_err *cls)
{
  (void) msg;
  (void) cls;
  sim_vm_teardown (s);
  return 0;
}

struct json_object *
sim_vm_info (struct sim *s)
{
  struct json_object *o = json_object_new_object ();
  json_object_object_add (o, "config", json_object_get (s->config));
  json_object_object_add (o, "state", json_object_new_string (sim_vm_state_name (s->state)));
  json_object_object_add (o, "memory_actual_size",
                          json_object_new_int64 (s->mem ? (int64_t) s->mem->size : 0));
  return o;
}

void
sim_vm_tick (struct sim *s)
{
  uint64_t now = (uint64_t) sim_now_ns ();
  if (s->state != SIM_VM_RUNNING || s->mem == NULL)
    return;
  sim_guest_tick (s->mem, now - s->last_tick_ns);
  s->last_tick_ns = now;
}

/* ------------------------------------------------------------- restore */

struct restore_req
{
  const char *dir;
  bool ondemand;
  bool prefault;
  bool resume;
  struct json_object *net_fds; /* array or NULL */
};

static int
restore_parse (struct sim *s, struct json_object *body, size_t nfds, struct restore_req *r,
               char **msg, enum sim_err *cls)
{
  struct json_object *v;
  size_t want = 0;

  r->dir = file_url_dir (body, "source_url", msg);
  if (r->dir == NULL)
    {
      *cls = SIM_E_BAD_REQUEST;
      return -1;
    }
  if (json_object_object_get_ex (body, "prefault", &v))
    r->prefault = json_object_get_boolean (v);
  /* v51.1's RestoreConfig has neither field; serde ignores them there, so
   * a v51 restore is always an eager Copy. */
  if (s->personality >= SIM_V52)
    {
      const char *mode = ate_json_get_string (body, "memory_restore_mode");
      if (mode && strcmp (mode, "OnDemand") == 0)
        r->ondemand = true;
      else if (mode && strcmp (mode, "Copy") != 0)
        FAIL (SIM_E_BAD_REQUEST, "memory_restore_mode: unknown variant `%s`, expected `Copy` "
              "or `OnDemand`", mode);
      if (json_object_object_get_ex (body, "resume", &v))
        r->resume = json_object_get_boolean (v);
    }
  if (r->ondemand && r->prefault)
    FAIL (SIM_E_INVALID, "InvalidRestorePrefaultWithOnDemand: prefault cannot be combined with "
          "OnDemand memory restore");
  if (json_object_object_get_ex (body, "net_fds", &v) && !json_object_is_type (v, json_type_null))
    {
      if (!json_object_is_type (v, json_type_array))
        FAIL (SIM_E_BAD_REQUEST, "net_fds must be an array");
      for (size_t i = 0; i < json_object_array_length (v); i++)
        {
          struct json_object *e = json_object_array_get_idx (v, i), *nf;
          if (ate_json_get_string (e, "id") == NULL || !json_object_object_get_ex (e, "num_fds", &nf)
              || !json_object_is_type (nf, json_type_int) || json_object_get_int64 (nf) < 0)
            FAIL (SIM_E_BAD_REQUEST, "net_fds[%zu] needs an id and num_fds", i);
          want += (size_t) json_object_get_int64 (nf);
        }
      r->net_fds = v;
    }
  if (want != nfds)
    FAIL (SIM_E_BAD_REQUEST, "Number of FDs passed (%zu) does not match the net_fds (%zu)",
          nfds, want);
  return 0;
}

/* Every fd-backed net of the snapshot needs new fds (CH's
 * RestoreMissingRequiredNetId / RestoreNetFdCountMismatch); fds are
 * consumed in net_fds order. */
static int
restore_nets (struct sim *s, struct restore_req *r, int *fds, char **msg)
{
  struct json_object *arr = NULL;
  size_t n = 0;

  if (json_object_object_get_ex (s->config, "net", &arr) && json_object_is_type (arr, json_type_array))
    n = json_object_array_length (arr);
  s->nets = xcalloc (n + 1, sizeof (*s->nets));
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *e = json_object_array_get_idx (arr, i), *cfds, *nq;
      const char *id = ate_json_get_string (e, "id");
      size_t off = 0, cnt = 0, need;
      bool found = false;
      if (id == NULL || !json_object_object_get_ex (e, "fds", &cfds)
          || !json_object_is_type (cfds, json_type_array))
        {
          *msg = xasprintf ("ch-sim restores only fd-backed nets; net[%zu] has no fds", i);
          return -1;
        }
      need = json_object_array_length (cfds);
      for (size_t k = 0; r->net_fds && k < json_object_array_length (r->net_fds); k++)
        {
          struct json_object *nf = json_object_array_get_idx (r->net_fds, k);
          size_t c = (size_t) json_object_get_int64 (json_object_object_get (nf, "num_fds"));
          if (!found && strcmp (ate_json_get_string (nf, "id"), id) == 0)
            {
              found = true;
              cnt = c;
              break;
            }
          off += c;
        }
      if (!found)
        {
          *msg = xasprintf ("RestoreMissingRequiredNetId(%s): net device `%s` was created with "
                            "fds; net_fds must name it", id, id);
          return -1;
        }
      if (cnt != need)
        {
          *msg = xasprintf ("RestoreNetFdCountMismatch(%s, %zu, %zu)", id, need, cnt);
          return -1;
        }
      struct sim_net_dev *nd = &s->nets[s->nnets];
      if (net_adopt_fds (nd, fds + off, cnt, msg) < 0)
        return -1;
      s->nnets++;
      nd->id = xstrdup (id);
      nd->mac = xstrdup (ate_json_get_string (e, "mac") ? ate_json_get_string (e, "mac") : "");
      nd->num_queues = json_object_object_get_ex (e, "num_queues", &nq) ? json_object_get_int (nq) : 2;
    }
  return 0;
}

static int
restore_load (struct sim *s, struct restore_req *r, int *fds, char **msg)
{
  cleanup_free char *cfgp = ate_path_join (r->dir, "config.json");
  cleanup_free char *statep = ate_path_join (r->dir, "state.json");
  cleanup_free char *memp = ate_path_join (r->dir, "memory-ranges");
  cleanup_json struct json_object *st = NULL;
  struct json_object *cfg = NULL, *mem, *sz;
  struct ate_error *err = NULL;

  if (ate_json_parse_file (cfgp, 4 << 20, &cfg, &err) == 0)
    s->config = cfg;
  if (s->config == NULL || ate_json_parse_file (statep, 4 << 20, &st, &err) < 0)
    {
      *msg = xstrdup (err->msg);
      ate_error_release (&err);
      return -1;
    }
  if (sim_config_validate (cfg, true, msg) < 0)
    return -1;
  json_object_object_get_ex (cfg, "memory", &mem);
  json_object_object_get_ex (mem, "size", &sz);
  disks_from_config (s);
  if (restore_nets (s, r, fds, msg) < 0 || disks_lock (s, msg) < 0
      || sim_mem_new ((uint64_t) json_object_get_int64 (sz), &s->mem, msg) < 0
      || sim_mem_restore (s->mem, memp, r->ondemand, msg) < 0 || guest_env_start (s, msg) < 0)
    return -1;
  return 0;
}

int
sim_vm_restore (struct sim *s, struct json_object *body, int *fds, size_t nfds, char **msg,
                enum sim_err *cls)
{
  struct restore_req r = { 0 };

  if (s->ever_created || s->state != SIM_VM_NONE)
    FAIL (SIM_E_NOT_CREATED, "Error restoring VM: VM is already created (restore needs a fresh "
          "VMM)");
  if (restore_parse (s, body, nfds, &r, msg, cls) < 0)
    return -1;
  if (restore_load (s, &r, fds, msg) < 0)
    {
      sim_vm_teardown (s);
      *cls = SIM_E_INVALID;
      return -1;
    }
  s->ever_created = true;
  s->state = SIM_VM_PAUSED;
  s->needs_check = true;
  /* v53: the on-demand handler prefaults everything in the background. */
  if (r.ondemand && s->personality >= SIM_V53)
    sim_mem_start_prefault (s->mem);
  net_restart_forwarding (s);
  if (r.resume)
    return sim_vm_resume (s, msg, cls);
  return 0;
}
