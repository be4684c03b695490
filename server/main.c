/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ateom-microvm: start-up, serve, orderly shutdown (docs/architecture.md,
 * "Start-up and shutdown").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "actor/actor.h"
#include "options.h"
#include "reflection.h"
#include "rpc.h"
#include "service.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/proc.h"
#include "util/util.h"
#include "version.h"

struct signal_ctx
{
  sigset_t set;
  struct rpc_server *server;
  int64_t grace_ms;
};

static void *
signal_thread (void *arg)
{
  struct signal_ctx *sc = arg;
  int sig = 0;

  if (sigwait (&sc->set, &sig) != 0)
    return NULL;
  ate_log (ATE_LOG_INFO, "shutting down", "signal", strsignal (sig), NULL);
  rpc_server_shutdown (sc->server, sc->grace_ms);
  return NULL;
}

static const char *
goarch (void)
{
  static struct utsname u;
  if (uname (&u) < 0)
    return "unknown";
  if (strcmp (u.machine, "x86_64") == 0)
    return "amd64";
  if (strcmp (u.machine, "aarch64") == 0)
    return "arm64";
  return u.machine;
}

static int
fail (struct ate_error *err, const char *what)
{
  ate_log (ATE_LOG_ERROR, what, "error", err ? err->msg : "unknown", NULL);
  ate_error_free (err);
  return 1;
}

int
main (int argc, char **argv)
{
  struct server_options opts;
  struct ate_error *err = NULL;
  struct signal_ctx sc;
  struct actor_runtime *rt = NULL;
  struct service *svc;
  struct rpc_server *server = NULL;
  struct reflection *refl;
  const struct rpc_method *svc_methods, *refl_methods;
  struct rpc_method methods[16];
  size_t n_methods, n_svc_methods, n_refl_methods;
  enum ate_log_level level = ATE_LOG_INFO;
  pthread_t sig_thread;
  cleanup_free char *ateom_dir = NULL;
  cleanup_free char *socket_path = NULL;

  server_options_init (&opts);
  if (server_options_parse (&opts, argc, argv, &err) < 0)
    {
      fprintf (stderr, "ateom-microvm: %s\nRun 'ateom-microvm --help' for usage.\n", err->msg);
      ate_error_free (err);
      server_options_free (&opts);
      return 2;
    }
  if (opts.help)
    {
      server_options_usage (stdout);
      server_options_free (&opts);
      return 0;
    }
  if (opts.version)
    {
      printf ("%s commit=%s built=%s linux/%s\n", ATE_VERSION, ATE_GIT_COMMIT, ATE_BUILD_DATE,
              goarch ());
      server_options_free (&opts);
      return 0;
    }
  if (server_options_load_config (&opts, getenv (SERVER_CONFIG_ENV), &err) < 0
      || server_options_validate (&opts, &err) < 0)
    {
      fprintf (stderr, "ateom-microvm: %s\n", err->msg);
      ate_error_free (err);
      server_options_free (&opts);
      return 2;
    }
  ate_log_parse_level (opts.log_level, &level);
  ate_log_set_level (level);

  /* Signals are handled by one thread; children get default dispositions
   * back (util/proc.c). */
  signal (SIGPIPE, SIG_IGN);
  sigemptyset (&sc.set);
  sigaddset (&sc.set, SIGTERM);
  sigaddset (&sc.set, SIGINT);
  pthread_sigmask (SIG_BLOCK, &sc.set, NULL);
  if (getpid () == 1)
    ate_proc_block_sigchld ();
  umask (077);

  struct actor_runtime_config rcfg = { 0 };
  rcfg.paths.base = opts.base_path;
  rcfg.paths.run_dir = opts.run_dir;
  rcfg.paths.pod_uid = opts.pod_uid;
  rcfg.paths.netns_dir = opts.netns_dir;
  rcfg.paths.kata_run = opts.kata_run_dir;
  rcfg.ch_binary = opts.ch_binary;
  rcfg.kata_config = opts.kata_config;
  rcfg.kata_debug = opts.kata_debug;
  rcfg.restore_memory_mode = opts.restore_memory_mode;
  rcfg.ingress_ports = opts.ingress_ports;
  rcfg.n_ingress_ports = opts.n_ingress_ports;
  rcfg.ship_golden_disk = opts.ship_golden_disk;
  rcfg.rootfs_cache_max_bytes = opts.rootfs_cache_size;
  rcfg.resolv_conf = opts.resolv_conf;
  rcfg.detect_gce = opts.detect_gce;
  ate_paths_init_defaults (&rcfg.paths);

  ateom_dir = ate_path_ateom_dir (&rcfg.paths);
  socket_path = ate_path_ateom_socket (&rcfg.paths);
  if (ate_mkdir_p (ateom_dir, 0700, &err) < 0)
    return fail (err, "cannot create the ateom directory");
  if (getpid () == 1 && ate_proc_reaper_start (&err) < 0)
    return fail (err, "cannot start the orphan reaper");
  if (actor_runtime_new (&rcfg, &rt, &err) < 0)
    return fail (err, "cannot initialise the runtime");

  grpc_init ();
  svc = service_new (rt, &rcfg.paths);
  svc_methods = service_methods (svc, &n_svc_methods);
  refl = reflection_new (ate_served_descriptors, ate_served_descriptors_len, svc_methods,
                         n_svc_methods);
  refl_methods = reflection_methods (refl, &n_refl_methods);
  if (n_svc_methods + n_refl_methods > ATE_N_ELEMENTS (methods))
    abort ();
  memcpy (methods, svc_methods, n_svc_methods * sizeof (*methods));
  memcpy (methods + n_svc_methods, refl_methods, n_refl_methods * sizeof (*methods));
  n_methods = n_svc_methods + n_refl_methods;
  if (rpc_server_start (socket_path, methods, n_methods, &server, &err) < 0)
    {
      reflection_free (refl);
      service_free (svc);
      actor_runtime_free (rt);
      grpc_shutdown_blocking ();
      server_options_free (&opts);
      return fail (err, "cannot serve");
    }
  sc.server = server;
  sc.grace_ms = opts.shutdown_grace_s * 1000;
  if (pthread_create (&sig_thread, NULL, signal_thread, &sc) != 0)
    abort ();
  pthread_detach (sig_thread);

  ate_log (ATE_LOG_INFO, "serving", "socket", socket_path, "version", ATE_VERSION, "pod_uid",
           opts.pod_uid, "config", opts.config_files ? opts.config_files : "", NULL);
  rpc_server_run (server);
  if (rpc_server_abandoned (server))
    _exit (0);
  rpc_server_free (server);
  reflection_free (refl);
  service_free (svc);
  actor_runtime_free (rt);
  grpc_shutdown_blocking ();
  ate_log (ATE_LOG_INFO, "stopped", NULL);
  server_options_free (&opts);
  return 0;
}
