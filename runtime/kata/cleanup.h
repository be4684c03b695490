/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stale sandbox state (docs/kata-agent.md, "Stale sandbox cleanup").  The
 * sandbox id is the actor id, so the
 * leftovers of a killed attempt (mounts, sockets, directories) collide with
 * the next Run or Restore of the same actor.
 */
#ifndef KATA_CLEANUP_H
#define KATA_CLEANUP_H

struct ate_error;
struct ate_paths;

/* Unmount (lazily, deepest first) everything mounted at or below
 * <kata_run>/shared/sandboxes/<id> and <run_dir>/<id>, then remove both
 * directories.  Every step runs even when an earlier one failed; each
 * failure is logged as a warning and all of them are returned in one error.
 * Processes are not touched: whoever started the VMM kills it by its pid.
 * id must be a DNS-1123 label (checked before anything is done). */
int kata_sandbox_cleanup (const struct ate_paths *paths, const char *id,
                          struct ate_error **err);

/* Decode the octal escapes (\040 \011 \012 \134) of a mountinfo field in
 * place. */
void kata_mountinfo_unescape (char *field);

#endif
