/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The on-disk layout shared with atelet (docs/operations.md, "State";
 * docs/api.md, "Snapshot files").  Every helper
 * returns a newly allocated string.  Callers validate ids first
 * (validate.h): these helpers only join.
 */
#ifndef ATE_PATHS_H
#define ATE_PATHS_H

#define ATE_DEFAULT_BASE_PATH "/var/lib/ateom-gvisor"
#define ATE_DEFAULT_RUN_DIR "/run/vc/vm"
#define ATE_DEFAULT_NETNS_DIR "/run/netns"
#define ATE_DEFAULT_KATA_RUN_DIR "/run/kata-containers"

#define ATE_ACTOR_ROOTFS_DISK "actor-rootfs.ext4"
#define ATE_GOLDEN_ROOTFS_DISK "golden-rootfs.ext4"
#define ATE_BASE_ID_FILE "base-id"

struct ate_paths
{
  const char *base;      /* --base-path, default /var/lib/ateom-gvisor */
  const char *run_dir;   /* --run-dir, default /run/vc/vm */
  const char *netns_dir; /* default /run/netns */
  const char *kata_run;  /* default /run/kata-containers */
  const char *pod_uid;
};

/* Fills in the defaults for NULL members. */
void ate_paths_init_defaults (struct ate_paths *p);

char *ate_path_static_files (const struct ate_paths *p);
char *ate_path_ateom_dir (const struct ate_paths *p);
char *ate_path_ateom_socket (const struct ate_paths *p);
char *ate_path_netns_name (const struct ate_paths *p);
char *ate_path_netns (const struct ate_paths *p);

/* <base>/actors/<ns>:<tmpl>:<id> */
char *ate_path_actor (const struct ate_paths *p, const char *ns, const char *tmpl,
                      const char *id);
/* <actor>/<sub> for sub in identity, sandbox-assets.json, bundles,
 * checkpoint-state, restore-state, local-checkpoint, pidfiles, ... */
char *ate_path_actor_sub (const struct ate_paths *p, const char *ns,
                          const char *tmpl, const char *id, const char *sub);
/* <actor>/bundles/<ctr> */
char *ate_path_bundle (const struct ate_paths *p, const char *ns, const char *tmpl,
                       const char *id, const char *ctr);

/* <run_dir>/<id> and files in it */
char *ate_path_vm_dir (const struct ate_paths *p, const char *id);
char *ate_path_vm_file (const struct ate_paths *p, const char *id, const char *file);

#endif
