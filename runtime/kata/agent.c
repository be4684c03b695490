/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "kata/agent.pb-c.h"
#include "kata/health.pb-c.h"
#include "kata/types.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "ttrpc_client.h"
#include "util/error.h"
#include "util/log.h"
#include "util/util.h"
#include "vsock.h"

#define AGENT_SERVICE "grpc.AgentService"
#define HEALTH_SERVICE "grpc.Health"

/* NUD_PERMANENT and RT_SCOPE_LINK, spelled out so this file does not
 * depend on kernel headers for two constants of the wire format. */
#define NEIGH_STATE_PERMANENT 0x80
#define ROUTE_SCOPE_LINK 253

/* Debug console limits (docs/kata-agent.md, "Debug console dump"): dial
 * and I/O within 8 s; the output is
 * diagnostics, capped so a chatty guest cannot fill our memory. */
#define DEBUG_CONSOLE_MS 8000
#define DEBUG_CONSOLE_MAX_OUTPUT (64 * 1024)

struct kata_agent
{
  struct ttrpc_client *client;
};

int
kata_agent_new_from_fd (int fd, struct kata_agent **out, struct ate_error **err)
{
  struct kata_agent *a = xmalloc0 (sizeof (*a));
  if (ttrpc_client_new (fd, &a->client, err) < 0)
    {
      free (a);
      return -1;
    }
  *out = a;
  return 0;
}

int
kata_agent_connect (const char *vsock_path, uint32_t port, ate_deadline_t overall_deadline,
                    int64_t attempt_ms, int64_t pause_ms, struct kata_agent **out,
                    struct ate_error **err)
{
  int fd = -1;

  if (kata_vsock_dial_retry (vsock_path, port, overall_deadline, attempt_ms, pause_ms, &fd,
                             err)
      < 0)
    return ate_error_wrap (err, "dial kata agent");
  return kata_agent_new_from_fd (fd, out, err);
}

void
kata_agent_close (struct kata_agent *agent)
{
  if (agent)
    ttrpc_client_close (agent->client);
}

void
kata_agent_free (struct kata_agent *agent)
{
  if (agent == NULL)
    return;
  ttrpc_client_free (agent->client);
  free (agent);
}

/* One call whose response is not needed beyond success. */
static int
call_agent (struct kata_agent *a, const char *method, const ProtobufCMessage *req,
            const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
            ate_deadline_t deadline, struct ate_error **err)
{
  ProtobufCMessage *ignored = NULL;
  int r = ttrpc_client_call (a->client, AGENT_SERVICE, method, req, resp_desc,
                             resp ? resp : &ignored, deadline, err);
  if (ignored)
    protobuf_c_message_free_unpacked (ignored, NULL);
  if (r < 0)
    return ate_error_wrap (err, "agent %s", method);
  return 0;
}

int
kata_agent_create_sandbox (struct kata_agent *agent, const char *hostname,
                           const char *sandbox_id, ate_deadline_t deadline,
                           struct ate_error **err)
{
  Grpc__CreateSandboxRequest req = GRPC__CREATE_SANDBOX_REQUEST__INIT;

  req.hostname = (char *) (hostname ? hostname : "");
  req.sandbox_id = (char *) sandbox_id;
  return call_agent (agent, "CreateSandbox", &req.base, &google__protobuf__empty__descriptor,
                     NULL, deadline, err);
}

static int
update_interface (struct kata_agent *agent, uint64_t mtu, ate_deadline_t deadline,
                  struct ate_error **err)
{
  Grpc__UpdateInterfaceRequest req = GRPC__UPDATE_INTERFACE_REQUEST__INIT;
  Types__Interface iface = TYPES__INTERFACE__INIT;
  Types__IPAddress ip = TYPES__IPADDRESS__INIT;
  Types__IPAddress *ips[1] = { &ip };

  ip.family = TYPES__IPFAMILY__v4;
  ip.address = KATA_GUEST_IP;
  ip.mask = KATA_GUEST_PREFIX;
  iface.device = KATA_GUEST_IFACE;
  iface.name = KATA_GUEST_IFACE;
  iface.hwaddr = KATA_GUEST_MAC;
  iface.mtu = mtu;
  iface.n_ipaddresses = 1;
  iface.ipaddresses = ips;
  req.interface = &iface;
  return call_agent (agent, "UpdateInterface", &req.base, &types__interface__descriptor,
                     NULL, deadline, err);
}

static int
update_routes (struct kata_agent *agent, ate_deadline_t deadline, struct ate_error **err)
{
  Grpc__UpdateRoutesRequest req = GRPC__UPDATE_ROUTES_REQUEST__INIT;
  Grpc__Routes routes = GRPC__ROUTES__INIT;
  Types__Route link = TYPES__ROUTE__INIT;
  Types__Route def = TYPES__ROUTE__INIT;
  Types__Route *list[2] = { &link, &def };

  /* The connected route first, so the gateway is reachable when the
   * default route is added. */
  link.dest = KATA_GUEST_SUBNET;
  link.device = KATA_GUEST_IFACE;
  link.scope = ROUTE_SCOPE_LINK;
  link.family = TYPES__IPFAMILY__v4;
  def.dest = "";
  def.gateway = KATA_GATEWAY_IP;
  def.device = KATA_GUEST_IFACE;
  def.family = TYPES__IPFAMILY__v4;
  routes.n_routes = 2;
  routes.routes = list;
  req.routes = &routes;
  return call_agent (agent, "UpdateRoutes", &req.base, &grpc__routes__descriptor, NULL,
                     deadline, err);
}

static int
add_arp_neighbors (struct kata_agent *agent, ate_deadline_t deadline, struct ate_error **err)
{
  Grpc__AddARPNeighborsRequest req = GRPC__ADD_ARPNEIGHBORS_REQUEST__INIT;
  Grpc__ARPNeighbors neighbors = GRPC__ARPNEIGHBORS__INIT;
  Types__ARPNeighbor gw = TYPES__ARPNEIGHBOR__INIT;
  Types__IPAddress ip = TYPES__IPADDRESS__INIT;
  Types__ARPNeighbor *list[1] = { &gw };

  ip.family = TYPES__IPFAMILY__v4;
  ip.address = KATA_GATEWAY_IP;
  gw.toipaddress = &ip;
  gw.device = KATA_GUEST_IFACE;
  gw.lladdr = KATA_GATEWAY_MAC;
  gw.state = NEIGH_STATE_PERMANENT;
  neighbors.n_arpneighbors = 1;
  neighbors.arpneighbors = list;
  req.neighbors = &neighbors;
  return call_agent (agent, "AddARPNeighbors", &req.base, &google__protobuf__empty__descriptor,
                     NULL, deadline, err);
}

int
kata_agent_configure_guest_network (struct kata_agent *agent, uint64_t mtu,
                                    ate_deadline_t deadline, struct ate_error **err)
{
  if (update_interface (agent, mtu, deadline, err) < 0
      || update_routes (agent, deadline, err) < 0
      || add_arp_neighbors (agent, deadline, err) < 0)
    return ate_error_wrap (err, "configure guest network");
  return 0;
}

int
kata_agent_create_container_blk (struct kata_agent *agent, const char *container_id,
                                 const char *exec_id, const char *guest_device,
                                 const Grpc__Spec *spec, ate_deadline_t deadline,
                                 struct ate_error **err)
{
  Grpc__CreateContainerRequest req = GRPC__CREATE_CONTAINER_REQUEST__INIT;
  Grpc__Storage st = GRPC__STORAGE__INIT;
  Grpc__Storage *storages[1] = { &st };
  Grpc__Root root = GRPC__ROOT__INIT;
  Grpc__Spec oci;
  char *options[1] = { "rw" };
  cleanup_free char *rootfs = NULL;

  if (spec == NULL)
    return ate_error_make_code (err, ATE_CODE_INVALID_ARGUMENT, EINVAL,
                                "create container %s: no OCI spec", container_id);
  rootfs = xasprintf ("/run/kata-containers/%s/rootfs", container_id);
  /* The agent mounts the disk itself (a "/dev/..." source needs no device
   * discovery) and uses the mount point as the container root. */
  st.driver = "blk";
  st.source = (char *) guest_device;
  st.fstype = "ext4";
  st.mount_point = rootfs;
  st.n_options = 1;
  st.options = options;
  root.path = rootfs;
  root.readonly = false;
  oci = *spec; /* shallow: only the root differs */
  oci.root = &root;
  req.container_id = (char *) container_id;
  req.exec_id = (char *) exec_id;
  req.n_storages = 1;
  req.storages = storages;
  req.oci = &oci;
  if (call_agent (agent, "CreateContainer", &req.base, &google__protobuf__empty__descriptor,
                  NULL, deadline, err)
      < 0)
    return ate_error_wrap (err, "create blk workload %s on %s", container_id, guest_device);
  return 0;
}

int
kata_agent_start_container (struct kata_agent *agent, const char *container_id,
                            ate_deadline_t deadline, struct ate_error **err)
{
  Grpc__StartContainerRequest req = GRPC__START_CONTAINER_REQUEST__INIT;

  req.container_id = (char *) container_id;
  return call_agent (agent, "StartContainer", &req.base, &google__protobuf__empty__descriptor,
                     NULL, deadline, err);
}

static int
read_stream (struct kata_agent *agent, const char *method, const char *container_id,
             const char *exec_id, uint32_t len, uint8_t **buf, size_t *n,
             ate_deadline_t deadline, struct ate_error **err)
{
  Grpc__ReadStreamRequest req = GRPC__READ_STREAM_REQUEST__INIT;
  Grpc__ReadStreamResponse *resp = NULL;

  req.container_id = (char *) container_id;
  req.exec_id = (char *) exec_id;
  req.len = len;
  if (call_agent (agent, method, &req.base, &grpc__read_stream_response__descriptor,
                  (ProtobufCMessage **) &resp, deadline, err)
      < 0)
    return -1;
  /* An agent that ignores `len` must not make us hold more than asked. */
  if (resp->data.len > len)
    {
      size_t got = resp->data.len;
      grpc__read_stream_response__free_unpacked (resp, NULL);
      return ate_error_make_code (err, ATE_CODE_INTERNAL, EPROTO,
                                  "agent %s returned %zu bytes for a %u byte read", method,
                                  got, len);
    }
  *n = resp->data.len;
  *buf = NULL;
  if (resp->data.len > 0)
    {
      *buf = xmalloc (resp->data.len);
      memcpy (*buf, resp->data.data, resp->data.len);
    }
  grpc__read_stream_response__free_unpacked (resp, NULL);
  return 0;
}

int
kata_agent_read_stdout (struct kata_agent *agent, const char *container_id,
                        const char *exec_id, uint32_t len, uint8_t **buf, size_t *n,
                        ate_deadline_t deadline, struct ate_error **err)
{
  return read_stream (agent, "ReadStdout", container_id, exec_id, len, buf, n, deadline, err);
}

int
kata_agent_read_stderr (struct kata_agent *agent, const char *container_id,
                        const char *exec_id, uint32_t len, uint8_t **buf, size_t *n,
                        ate_deadline_t deadline, struct ate_error **err)
{
  return read_stream (agent, "ReadStderr", container_id, exec_id, len, buf, n, deadline, err);
}

int
kata_agent_wait_process (struct kata_agent *agent, const char *container_id,
                         const char *exec_id, int32_t *status, ate_deadline_t deadline,
                         struct ate_error **err)
{
  Grpc__WaitProcessRequest req = GRPC__WAIT_PROCESS_REQUEST__INIT;
  Grpc__WaitProcessResponse *resp = NULL;

  req.container_id = (char *) container_id;
  req.exec_id = (char *) exec_id;
  if (call_agent (agent, "WaitProcess", &req.base, &grpc__wait_process_response__descriptor,
                  (ProtobufCMessage **) &resp, deadline, err)
      < 0)
    return -1;
  *status = resp->status;
  grpc__wait_process_response__free_unpacked (resp, NULL);
  return 0;
}

int
kata_agent_destroy_sandbox (struct kata_agent *agent, ate_deadline_t deadline,
                            struct ate_error **err)
{
  Grpc__DestroySandboxRequest req = GRPC__DESTROY_SANDBOX_REQUEST__INIT;
  return call_agent (agent, "DestroySandbox", &req.base, &google__protobuf__empty__descriptor,
                     NULL, deadline, err);
}

int
kata_agent_health_check (struct kata_agent *agent, ate_deadline_t deadline,
                         struct ate_error **err)
{
  Grpc__CheckRequest req = GRPC__CHECK_REQUEST__INIT;
  Grpc__HealthCheckResponse *resp = NULL;
  int status;

  if (ttrpc_client_call (agent->client, HEALTH_SERVICE, "Check", &req.base,
                         &grpc__health_check_response__descriptor,
                         (ProtobufCMessage **) &resp, deadline, err)
      < 0)
    return ate_error_wrap (err, "agent health check");
  status = resp->status;
  grpc__health_check_response__free_unpacked (resp, NULL);
  if (status != GRPC__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
    return ate_error_make_code (err, ATE_CODE_UNAVAILABLE, 0,
                                "agent health check: status %d, not SERVING", status);
  return 0;
}

/* Collect console output until the sentinel line, EOF, the deadline or the
 * size cap.  The console is an interactive shell that echoes the command:
 * the sentinel is written split by '' so only the shell's output matches. */
static void
collect_console (int fd, ate_deadline_t deadline, char **text, size_t *len)
{
  static const char sentinel[] = "__ATE_END__";
  char *buf = xmalloc (DEBUG_CONSOLE_MAX_OUTPUT + 1);
  size_t n = 0, line_start = 0;

  while (n < DEBUG_CONSOLE_MAX_OUTPUT)
    {
      struct ate_error *err = NULL;
      if (kata_io_read_full (fd, buf + n, 1, deadline, NULL, &err) < 0)
        {
          ate_error_free (err);
          break;
        }
      if (buf[n++] != '\n')
        continue;
      buf[n] = '\0';
      if (memmem (buf + line_start, n - line_start, sentinel, sizeof (sentinel) - 1))
        {
          n = line_start;
          break;
        }
      line_start = n;
    }
  buf[n] = '\0';
  *text = buf;
  *len = n;
}

char *
kata_debug_console_dump (const char *vsock_path, const char *cmd, ate_deadline_t deadline)
{
  struct ate_error *err = NULL;
  cleanup_free char *line = NULL;
  char *text = NULL;
  size_t len = 0;
  int fd = -1;

  deadline = ate_deadline_min (deadline, ate_deadline_in_ms (DEBUG_CONSOLE_MS));
  if (kata_vsock_connect (vsock_path, KATA_DEBUG_CONSOLE_VSOCK_PORT, deadline, &fd, &err) < 0)
    {
      char *r = xasprintf ("debug-console dial: %s", err->msg);
      ate_error_free (err);
      return r;
    }
  line = xasprintf ("{ %s ; } 2>&1; echo __ATE''_END__\n", cmd);
  if (kata_io_write_full (fd, line, strlen (line), deadline, &err) < 0)
    {
      char *r = xasprintf ("debug-console write: %s", err->msg);
      ate_error_free (err);
      close (fd);
      return r;
    }
  collect_console (fd, deadline, &text, &len);
  close (fd);
  return text;
}
