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
/* Regular files directly in dir, sorted by name. */
int actor_list_files (const char *dir, char ***files, struct ate_error **err);

#endif
