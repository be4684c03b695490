/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The files of an actor, bottom of the actor layers (docs/architecture.md,
 * "Layers"): the state file under <run-dir>/<id>/ a restarted server
 * recovers the activation from (docs/architecture.md, "Restart recovery"),
 * the checkpoint file listing, and the marker that makes a retried
 * CheckpointWorkload safe.
 */
#ifndef ATE_ACTOR_STATE_H
#define ATE_ACTOR_STATE_H

#include <sys/types.h>

struct actor;
struct actor_env;
struct ate_error;
struct json_object;

/* Largest state or marker file read back. */
#define ACTOR_STATE_MAX (256u << 10)

int actor_state_save (const struct actor *a, struct ate_error **err);
/* Rebuild an actor from a parsed state file, with the recorded VMM pid and
 * start time; NULL when the file is unusable. */
struct actor *actor_state_parse (const struct actor_env *env, struct json_object *o, pid_t *pid,
                                 unsigned long long *starttime);

/* Checkpoint retry safety: the marker records the files of a complete
 * checkpoint; it matches only while those files are still there. */
int actor_marker_write (const char *actor_dir, char **files, struct ate_error **err);
char **actor_marker_match (const char *actor_dir);
void actor_marker_remove (const char *actor_dir);
/* The identity of the snapshot in restore_dir as atelet placed it: sha256
 * over base-id (when present), config.json and state.json, names and
 * lengths included, and memory-ranges' size, read before anything rewrites
 * them.  atelet removes
 * and downloads the files again before every RestoreWorkload, so times and
 * inodes say nothing; their content does (cloud-hypervisor's state.json
 * holds the guest clock and vCPU registers: no two snapshots share it).  out gets ACTOR_DIGEST_HEX
 * characters and a NUL.  A missing config.json or state.json is
 * FAILED_PRECONDITION naming it. */
int actor_snapshot_digest (const char *restore_dir, char *out, struct ate_error **err);

/* Regular files directly in dir, sorted by name. */
int actor_list_files (const char *dir, char ***files, struct ate_error **err);

#endif
