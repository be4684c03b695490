/* SPDX-License-Identifier: Apache-2.0 */
/* OCI spec shaping and conversion to the agent's Spec (docs/kata-agent.md,
 * "OCI spec"). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kata/spec.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/util.h"

/* What atelet writes for one container (upstream cmd/atelet/oci.go), with
 * its CRI annotations and one annotation of our own. */
static const char atelet_config[] =
  "{\n"
  "  \"ociVersion\": \"\",\n"
  "  \"process\": {\n"
  "    \"user\": {\"uid\": 0, \"gid\": 0},\n"
  "    \"args\": [\"/ko-app/counter\", \"--port=80\"],\n"
  "    \"env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\n"
  "            \"GREETING=hello\"],\n"
  "    \"cwd\": \"/\",\n"
  "    \"capabilities\": {\n"
  "      \"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
  "      \"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
  "      \"inheritable\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
  "      \"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]\n"
  "    },\n"
  "    \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1024, \"soft\": 1024}]\n"
  "  },\n"
  "  \"root\": {\"path\": \"rootfs\"},\n"
  "  \"hostname\": \"runsc\",\n"
  "  \"mounts\": [\n"
  "    {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},\n"
  "    {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\"},\n"
  "    {\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\",\n"
  "     \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"]},\n"
  "    {\"destination\": \"/etc/resolv.conf\", \"type\": \"bind\",\n"
  "     \"source\": \"/etc/resolv.conf\", \"options\": [\"ro\"]},\n"
  "    {\"destination\": \"/run/ate\", \"type\": \"bind\",\n"
  "     \"source\": \"/var/lib/ateom-gvisor/actors/default:counter:a1/identity\",\n"
  "     \"options\": [\"ro\"]}\n"
  "  ],\n"
  "  \"annotations\": {\n"
  "    \"io.kubernetes.cri.container-type\": \"container\",\n"
  "    \"io.kubernetes.cri.sandbox-id\": \"pause\",\n"
  "    \"example.com/team\": \"agents\"\n"
  "  },\n"
  "  \"linux\": {\n"
  "    \"namespaces\": [\n"
  "      {\"type\": \"pid\"},\n"
  "      {\"type\": \"network\", \"path\": \"/run/netns/old\"},\n"
  "      {\"type\": \"ipc\"},\n"
  "      {\"type\": \"uts\"},\n"
  "      {\"type\": \"mount\"}\n"
  "    ]\n"
  "  }\n"
  "}\n";

#define NETNS "/run/netns/ateom:0c6f3e1e-pod"

static struct json_object *
parse (const char *text)
{
  struct json_object *o = NULL;
  struct ate_error *err = NULL;
  if (ate_json_parse (text, strlen (text), 0, &o, &err) < 0)
    fail_msg ("%s", err->msg);
  return o;
}

static struct json_object *
at (struct json_object *o, const char *path)
{
  cleanup_free char *copy = xstrdup (path);
  char *save = NULL;
  for (char *k = strtok_r (copy, ".", &save); k && o; k = strtok_r (NULL, ".", &save))
    {
      struct json_object *v = NULL;
      if (json_object_is_type (o, json_type_array))
        v = json_object_array_get_idx (o, (size_t) atoi (k));
      else if (!json_object_object_get_ex (o, k, &v))
        v = NULL;
      o = v;
    }
  return o;
}

static const char *
str_at (struct json_object *o, const char *path)
{
  struct json_object *v = at (o, path);
  return v ? json_object_get_string (v) : NULL;
}

static void
test_shape_atelet_bundle (void **state)
{
  (void) state;
  char tmpl[] = "/tmp/ate-test-spec-XXXXXX";
  char *dir = mkdtemp (tmpl);
  cleanup_free char *cfg = NULL;
  struct json_object *spec = NULL, *written = NULL, *devs, *mounts;
  struct ate_error *err = NULL;
  struct stat st;

  assert_non_null (dir);
  cfg = ate_path_join (dir, "config.json");
  assert_int_equal (ate_write_file (cfg, atelet_config, strlen (atelet_config), 0644, &err), 0);
  assert_int_equal (kata_spec_shape (dir, "a1", NETNS, &spec, &err), 0);

  /* Written back: mode 0600, 2-space indentation, same content. */
  assert_int_equal (stat (cfg, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0600);
  assert_int_equal (ate_json_parse_file (cfg, 1 << 20, &written, &err), 0);
  assert_true (json_object_equal (spec, written));
  {
    cleanup_free char *text = NULL;
    size_t len;
    assert_int_equal (ate_read_file (cfg, 1 << 20, &text, &len, &err), 0);
    assert_non_null (strstr (text, "{\n  \""));
  }

  /* 2. default resources: deny-all first, nine allows, 136 without minor. */
  devs = at (spec, "linux.resources.devices");
  assert_int_equal (json_object_array_length (devs), 10);
  assert_false (json_object_get_boolean (at (devs, "0.allow")));
  assert_null (at (devs, "0.type"));
  assert_string_equal (str_at (devs, "0.access"), "rwm");
  assert_int_equal (json_object_get_int64 (at (devs, "1.major")), 1);
  assert_int_equal (json_object_get_int64 (at (devs, "1.minor")), 3);
  assert_int_equal (json_object_get_int64 (at (devs, "4.minor")), 0); /* c 5:0 */
  assert_int_equal (json_object_get_int64 (at (devs, "8.major")), 136);
  assert_null (at (devs, "8.minor"));
  assert_int_equal (json_object_get_int64 (at (devs, "9.minor")), 2);
  assert_int_equal (json_object_get_int64 (at (spec, "linux.resources.cpu.shares")), 1024);
  /* 3. cgroupsPath. */
  assert_string_equal (str_at (spec, "linux.cgroupsPath"), "/ateomchv/a1");
  /* 4. CRI annotations gone, ours kept. */
  assert_int_equal (json_object_object_length (at (spec, "annotations")), 1);
  {
    struct json_object *v = NULL;
    assert_true (json_object_object_get_ex (at (spec, "annotations"), "example.com/team", &v));
    assert_string_equal (json_object_get_string (v), "agents");
  }
  /* 5. network namespace path. */
  assert_string_equal (str_at (spec, "linux.namespaces.1.type"), "network");
  assert_string_equal (str_at (spec, "linux.namespaces.1.path"), NETNS);
  assert_int_equal (json_object_array_length (at (spec, "linux.namespaces")), 5);
  /* 6. the fixed mount list replaces resolv.conf and /run/ate. */
  mounts = at (spec, "mounts");
  assert_int_equal (json_object_array_length (mounts), 7);
  static const char *dests[] = { "/proc", "/dev", "/dev/pts", "/dev/shm",
                                 "/dev/mqueue", "/sys", "/run" };
  for (size_t i = 0; i < 7; i++)
    assert_string_equal (json_object_get_string (at (json_object_array_get_idx (mounts, i),
                                                     "destination")),
                         dests[i]);
  assert_string_equal (str_at (mounts, "2.options.5"), "gid=5");
  assert_string_equal (str_at (mounts, "3.source"), "shm");
  assert_int_equal (json_object_array_length (at (mounts, "6.options")), 4);
  /* Untouched fields survive. */
  assert_string_equal (str_at (spec, "process.args.0"), "/ko-app/counter");
  assert_string_equal (str_at (spec, "hostname"), "runsc");

  json_object_put (spec);
  json_object_put (written);
  assert_int_equal (ate_rm_rf (dir, &err), 0);
}

static void
test_shape_edge_cases (void **state)
{
  (void) state;
  struct ate_error *err = NULL;
  struct json_object *s;

  /* No linux at all; only CRI annotations (the map disappears). */
  s = parse ("{\"annotations\":{\"io.kubernetes.cri.sandbox-id\":\"pause\"}}");
  assert_int_equal (kata_spec_shape_json (s, "b2", NETNS, &err), 0);
  assert_null (at (s, "annotations"));
  assert_string_equal (str_at (s, "linux.cgroupsPath"), "/ateomchv/b2");
  assert_int_equal (json_object_array_length (at (s, "linux.namespaces")), 1);
  assert_string_equal (str_at (s, "linux.namespaces.0.type"), "network");
  assert_string_equal (str_at (s, "linux.namespaces.0.path"), NETNS);
  json_object_put (s);

  /* Existing resources and cgroupsPath are kept; null linux is created. */
  s = parse ("{\"linux\":{\"resources\":{\"memory\":{\"limit\":1}},"
             "\"cgroupsPath\":\"/mine\",\"namespaces\":[{\"type\":\"network\"},"
             "{\"type\":\"network\",\"path\":\"/x\"}]}}");
  assert_int_equal (kata_spec_shape_json (s, "c3", NETNS, &err), 0);
  assert_null (at (s, "linux.resources.devices"));
  assert_string_equal (str_at (s, "linux.cgroupsPath"), "/mine");
  assert_string_equal (str_at (s, "linux.namespaces.0.path"), NETNS);
  assert_string_equal (str_at (s, "linux.namespaces.1.path"), NETNS);
  json_object_put (s);

  s = parse ("{\"linux\":null,\"annotations\":null}");
  assert_int_equal (kata_spec_shape_json (s, "d4", NETNS, &err), 0);
  assert_non_null (at (s, "linux.resources"));
  json_object_put (s);

  /* Wrong types are errors that name the field. */
  static const struct
  {
    const char *json, *want;
  } bad[] = {
    { "[]", "not a JSON object" },
    { "{\"linux\":\"x\"}", "linux is not an object" },
    { "{\"linux\":{\"resources\":[]}}", "linux.resources is not an object" },
    { "{\"linux\":{\"cgroupsPath\":5}}", "linux.cgroupsPath is not a string" },
    { "{\"annotations\":[]}", "annotations is not an object" },
    { "{\"linux\":{\"namespaces\":{}}}", "linux.namespaces is not an array" },
    { "{\"linux\":{\"namespaces\":[{\"path\":\"/p\"}]}}", "linux.namespaces[0] has no type" },
  };
  for (size_t i = 0; i < ATE_N_ELEMENTS (bad); i++)
    {
      s = parse (bad[i].json);
      assert_true (kata_spec_shape_json (s, "e5", NETNS, &err) < 0);
      if (strstr (err->msg, bad[i].want) == NULL)
        fail_msg ("%s: \"%s\" lacks \"%s\"", bad[i].json, err->msg, bad[i].want);
      assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
      ate_error_release (&err);
      json_object_put (s);
    }
}

static void
test_shape_unreadable_bundle (void **state)
{
  (void) state;
  char tmpl[] = "/tmp/ate-test-spec-XXXXXX";
  char *dir = mkdtemp (tmpl);
  struct json_object *spec = NULL;
  struct ate_error *err = NULL;
  cleanup_free char *cfg = ate_path_join (dir, "config.json");

  assert_true (kata_spec_shape (dir, "a1", NETNS, &spec, &err) < 0);
  assert_non_null (strstr (err->msg, "config.json"));
  assert_int_equal (err->status, ENOENT);
  ate_error_release (&err);

  assert_int_equal (ate_write_file (cfg, "{\"process\":", 11, 0600, &err), 0);
  assert_true (kata_spec_shape (dir, "a1", NETNS, &spec, &err) < 0);
  assert_non_null (strstr (err->msg, "invalid JSON"));
  /* The caller's mistake, naming the file. */
  assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
  assert_non_null (strstr (err->msg, cfg));
  ate_error_release (&err);
  /* A bad file is left as it was. */
  {
    cleanup_free char *text = NULL;
    size_t len;
    assert_int_equal (ate_read_file (cfg, 100, &text, &len, &err), 0);
    assert_string_equal (text, "{\"process\":");
  }
  /* A FIFO or a link is refused at once, saying what it is. */
  unlink (cfg);
  assert_int_equal (mkfifo (cfg, 0600), 0);
  assert_true (kata_spec_shape (dir, "a1", NETNS, &spec, &err) < 0);
  assert_int_equal (err->code, ATE_CODE_FAILED_PRECONDITION);
  assert_non_null (strstr (err->msg, "FIFO"));
  ate_error_release (&err);
  unlink (cfg);
  assert_int_equal (symlink ("/etc/hostname", cfg), 0);
  assert_true (kata_spec_shape (dir, "a1", NETNS, &spec, &err) < 0);
  assert_non_null (strstr (err->msg, "symbolic link"));
  ate_error_release (&err);
  assert_int_equal (ate_rm_rf (dir, &err), 0);
}

static void
test_convert_atelet_spec (void **state)
{
  (void) state;
  struct json_object *s = parse (atelet_config);
  struct ate_error *err = NULL;
  Grpc__Spec *g = NULL;

  assert_int_equal (kata_spec_shape_json (s, "a1", NETNS, &err), 0);
  assert_int_equal (kata_spec_to_agent (s, "/run/kata-containers/a1/rootfs", false, &g, &err),
                    0);
  assert_string_equal (g->version, "");
  assert_string_equal (g->hostname, "runsc");
  assert_int_equal (g->n_annotations, 1);
  assert_string_equal (g->annotations[0]->key, "example.com/team");
  assert_string_equal (g->root->path, "/run/kata-containers/a1/rootfs");
  assert_false (g->root->readonly);
  /* process */
  assert_int_equal (g->process->n_args, 2);
  assert_string_equal (g->process->args[1], "--port=80");
  assert_int_equal (g->process->n_env, 2);
  assert_string_equal (g->process->cwd, "/");
  assert_non_null (g->process->user);
  assert_int_equal (g->process->user->uid, 0);
  assert_int_equal (g->process->capabilities->n_bounding, 3);
  assert_int_equal (g->process->capabilities->n_permitted, 3);
  assert_int_equal (g->process->capabilities->n_ambient, 0);
  assert_string_equal (g->process->capabilities->effective[2], "CAP_NET_BIND_SERVICE");
  assert_int_equal (g->process->n_rlimits, 1);
  assert_string_equal (g->process->rlimits[0]->type, "RLIMIT_NOFILE");
  assert_int_equal (g->process->rlimits[0]->hard, 1024);
  assert_false (g->process->terminal);
  /* mounts: the fixed list */
  assert_int_equal (g->n_mounts, 7);
  assert_string_equal (g->mounts[2]->destination, "/dev/pts");
  assert_int_equal (g->mounts[2]->n_options, 6);
  /* linux */
  assert_string_equal (g->linux->cgroupspath, "/ateomchv/a1");
  assert_int_equal (g->linux->n_namespaces, 4); /* network dropped */
  static const char *ns[] = { "pid", "ipc", "uts", "mount" };
  for (size_t i = 0; i < 4; i++)
    {
      assert_string_equal (g->linux->namespaces[i]->type, ns[i]);
      assert_string_equal (g->linux->namespaces[i]->path, "");
    }
  assert_int_equal (g->linux->resources->n_devices, 10);
  assert_false (g->linux->resources->devices[0]->allow);
  assert_int_equal (g->linux->resources->devices[0]->major, 0);
  assert_int_equal (g->linux->resources->devices[8]->major, 136);
  assert_int_equal (g->linux->resources->devices[8]->minor, 0);
  assert_string_equal (g->linux->resources->devices[8]->type, "c");
  assert_int_equal (g->linux->resources->cpu->shares, 1024);
  assert_null (g->linux->resources->memory);
  assert_null (g->linux->seccomp);
  assert_null (g->hooks);
  kata_spec_agent_free (g);
  json_object_put (s);
}

/* What the reference drops and we forward, and what stays dropped. */
static const char rich_config[] =
  "{\"ociVersion\":\"1.1.0\",\"hostname\":\"h\","
  "\"process\":{\"terminal\":true,\"consoleSize\":{\"height\":10,\"width\":80},"
  "\"user\":{\"uid\":1000,\"gid\":1001,\"additionalGids\":[5,4294967295],"
  "\"umask\":18,\"username\":\"agent\"},\"args\":[\"sh\"],\"cwd\":\"/work\","
  "\"noNewPrivileges\":true,\"oomScoreAdj\":-500,\"apparmorProfile\":\"p\","
  "\"selinuxLabel\":\"l\",\"rlimits\":[{\"type\":\"RLIMIT_CORE\","
  "\"hard\":18446744073709551615,\"soft\":0}],"
  "\"capabilities\":{\"ambient\":[\"CAP_KILL\"]}},"
  "\"hooks\":{\"prestart\":[{\"path\":\"/bin/true\"}]},"
  "\"linux\":{\"sysctl\":{\"net.ipv4.ip_forward\":\"1\",\"kernel.shm_rmid_forced\":\"1\"},"
  "\"namespaces\":[{\"type\":\"cgroup\"},{\"type\":\"time\"},{\"type\":\"user\","
  "\"path\":\"/proc/1/ns/user\"}],"
  "\"uidMappings\":[{\"containerID\":0,\"hostID\":100000,\"size\":65536}],"
  "\"devices\":[{\"path\":\"/dev/fuse\",\"type\":\"c\",\"major\":10,\"minor\":229}],"
  "\"resources\":{\"memory\":{\"limit\":536870912,\"swappiness\":10},"
  "\"cpu\":{\"shares\":512,\"quota\":50000,\"period\":100000,\"cpus\":\"0-3\"},"
  "\"pids\":{\"limit\":100}},\"rootfsPropagation\":\"rslave\","
  "\"maskedPaths\":[\"/proc/kcore\"],\"readonlyPaths\":[\"/proc/sys\"],"
  "\"mountLabel\":\"m\",\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\","
  "\"defaultErrnoRet\":1,\"architectures\":[\"SCMP_ARCH_X86_64\"],"
  "\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\"],\"syscalls\":["
  "{\"names\":[\"read\",\"write\"],\"action\":\"SCMP_ACT_ALLOW\"},"
  "{\"names\":[\"kill\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":0,"
  "\"args\":[{\"index\":1,\"value\":9,\"valueTwo\":0,\"op\":\"SCMP_CMP_EQ\"}]}]}}}";

static void
test_convert_forwarded_fields (void **state)
{
  (void) state;
  struct json_object *s = parse (rich_config);
  struct ate_error *err = NULL;
  Grpc__Spec *g = NULL;
  Grpc__LinuxSeccomp *sc;

  assert_int_equal (kata_spec_to_agent (s, "/r", true, &g, &err), 0);
  assert_true (g->root->readonly);
  assert_string_equal (g->version, "1.1.0");
  /* process */
  assert_false (g->process->terminal); /* never a terminal */
  assert_null (g->process->consolesize);
  assert_string_equal (g->process->apparmorprofile, "");
  assert_string_equal (g->process->selinuxlabel, "");
  assert_int_equal (g->process->user->uid, 1000);
  assert_int_equal (g->process->user->gid, 1001);
  assert_int_equal (g->process->user->n_additionalgids, 2);
  assert_int_equal (g->process->user->additionalgids[1], 4294967295u);
  assert_string_equal (g->process->user->username, "agent");
  assert_true (g->process->nonewprivileges);
  assert_int_equal (g->process->oomscoreadj, -500);
  assert_int_equal (g->process->rlimits[0]->hard, UINT64_MAX);
  assert_int_equal (g->process->capabilities->n_ambient, 1);
  assert_int_equal (g->process->capabilities->n_bounding, 0);
  assert_null (g->hooks);
  /* linux */
  assert_int_equal (g->linux->n_sysctl, 2);
  assert_string_equal (g->linux->sysctl[0]->key, "net.ipv4.ip_forward");
  assert_string_equal (g->linux->sysctl[1]->value, "1");
  assert_int_equal (g->linux->n_namespaces, 1);
  assert_string_equal (g->linux->namespaces[0]->type, "user");
  assert_string_equal (g->linux->namespaces[0]->path, "");
  assert_int_equal (g->linux->n_uidmappings, 1);
  assert_int_equal (g->linux->uidmappings[0]->hostid, 100000);
  assert_int_equal (g->linux->n_devices, 0);
  assert_int_equal (g->linux->resources->memory->limit, 536870912);
  assert_int_equal (g->linux->resources->memory->swappiness, 10);
  assert_int_equal (g->linux->resources->cpu->shares, 512);
  assert_int_equal (g->linux->resources->cpu->quota, 50000);
  assert_int_equal (g->linux->resources->cpu->period, 100000);
  assert_string_equal (g->linux->resources->cpu->cpus, "");
  assert_null (g->linux->resources->pids);
  assert_string_equal (g->linux->rootfspropagation, "rslave");
  assert_string_equal (g->linux->maskedpaths[0], "/proc/kcore");
  assert_string_equal (g->linux->readonlypaths[0], "/proc/sys");
  assert_string_equal (g->linux->mountlabel, "");
  sc = g->linux->seccomp;
  assert_non_null (sc);
  assert_string_equal (sc->defaultaction, "SCMP_ACT_ERRNO");
  assert_int_equal (sc->n_architectures, 1);
  assert_int_equal (sc->n_flags, 1);
  assert_int_equal (sc->n_syscalls, 2);
  assert_int_equal (sc->syscalls[0]->errno_ret_case, GRPC__LINUX_SYSCALL__ERRNO_RET__NOT_SET);
  /* errnoRet 0 is kept apart from "absent" */
  assert_int_equal (sc->syscalls[1]->errno_ret_case, GRPC__LINUX_SYSCALL__ERRNO_RET_ERRNORET);
  assert_int_equal (sc->syscalls[1]->errnoret, 0);
  assert_int_equal (sc->syscalls[1]->args[0]->value, 9);
  assert_string_equal (sc->syscalls[1]->args[0]->op, "SCMP_CMP_EQ");
  kata_spec_agent_free (g);
  json_object_put (s);
}

static void
test_convert_type_errors (void **state)
{
  (void) state;
  static const struct
  {
    const char *json, *want;
  } bad[] = {
    { "{\"process\":{\"args\":\"sh -c\"}}", "process.args must be an array, not a string" },
    { "{\"process\":{\"args\":[\"a\",1]}}", "process.args[1] must be a string" },
    { "{\"process\":{\"user\":{\"uid\":-1}}}", "process.user.uid is out of range" },
    { "{\"process\":{\"user\":{\"uid\":4294967296}}}", "process.user.uid is out of range" },
    { "{\"process\":{\"user\":{\"gid\":1.5}}}",
      "process.user.gid must be an integer, not a fractional number" },
    { "{\"process\":{\"user\":{\"additionalGids\":[\"x\"]}}}",
      "process.user.additionalGids[0] must be a gid" },
    { "{\"process\":{\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":-1}]}}",
      "process.rlimits[].hard is out of range" },
    { "{\"process\":7}", "process must be an object, not an integer" },
    { "{\"mounts\":[\"/proc\"]}", "mounts[0] must be an object" },
    { "{\"annotations\":{\"a\":1}}", "annotations[\"a\"] must be a string" },
    { "{\"linux\":{\"namespaces\":[{}]}}", "linux.namespaces[0] has no type" },
    { "{\"linux\":{\"sysctl\":{\"k\":true}}}", "linux.sysctl[\"k\"] must be a string" },
    { "{\"linux\":{\"resources\":{\"cpu\":{\"shares\":\"1024\"}}}}",
      "linux.resources.cpu.shares must be an integer, not a string" },
    { "{\"linux\":{\"seccomp\":{\"syscalls\":[{\"errnoRet\":-1}]}}}",
      "linux.seccomp.syscalls[].errnoRet is out of range" },
    { "\"spec\"", "config.json is not a JSON object" },
  };
  for (size_t i = 0; i < ATE_N_ELEMENTS (bad); i++)
    {
      struct json_object *s = parse (bad[i].json);
      struct ate_error *err = NULL;
      Grpc__Spec *g = NULL;
      assert_true (kata_spec_to_agent (s, "/r", false, &g, &err) < 0);
      assert_null (g);
      if (strstr (err->msg, bad[i].want) == NULL)
        fail_msg ("%s: \"%s\" lacks \"%s\"", bad[i].json, err->msg, bad[i].want);
      assert_int_equal (ate_error_code (err), ATE_CODE_INVALID_ARGUMENT);
      ate_error_release (&err);
      json_object_put (s);
    }
}

/* A spec without process/linux converts to a Spec without them. */
static void
test_convert_minimal (void **state)
{
  (void) state;
  struct json_object *s = parse ("{}");
  struct ate_error *err = NULL;
  Grpc__Spec *g = NULL;

  assert_int_equal (kata_spec_to_agent (s, "/root", false, &g, &err), 0);
  assert_null (g->process);
  assert_null (g->linux);
  assert_int_equal (g->n_mounts, 0);
  assert_string_equal (g->root->path, "/root");
  kata_spec_agent_free (g);
  json_object_put (s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_shape_atelet_bundle),
    cmocka_unit_test (test_shape_edge_cases),
    cmocka_unit_test (test_shape_unreadable_bundle),
    cmocka_unit_test (test_convert_atelet_spec),
    cmocka_unit_test (test_convert_forwarded_fields),
    cmocka_unit_test (test_convert_type_errors),
    cmocka_unit_test (test_convert_minimal),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
