/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI runtime spec handling for the kata guest (docs/kata-agent.md, "OCI
 * spec").
 *
 * kata_spec_shape() applies the reference's kata-compatibility edits to a
 * bundle's config.json in place; kata_spec_to_agent() converts the result
 * into the agent's grpc.Spec.  docs/kata-agent.md lists every OCI field and
 * whether it is forwarded.
 */
#ifndef KATA_SPEC_H
#define KATA_SPEC_H

#include <json-c/json.h>
#include <stdbool.h>

#include "kata/oci.pb-c.h"

struct ate_error;

/* config.json larger than this is refused (atelet writes a few KiB). */
#define KATA_SPEC_MAX_SIZE (4u << 20)
/* Bound on reading a bundle's config.json (callers hold no deadline here). */
#define KATA_SPEC_READ_MS 10000

/* The edits, on a parsed spec (must be an object):
 *  1. linux missing -> {};  2. linux.resources missing -> kata's default
 *  device allowlist and cpu.shares 1024;  3. empty linux.cgroupsPath ->
 *  "/ateomchv/<sandbox_id>";  4. annotations "io.kubernetes.cri.*" deleted
 *  (and the map dropped when empty);  5. every network namespace gets
 *  netns_path (one is appended if there is none);  6. mounts replaced by the
 *  fixed kata list. */
int kata_spec_shape_json (struct json_object *spec, const char *sandbox_id,
                          const char *netns_path, struct ate_error **err);

/* Read <bundle_dir>/config.json, shape it, write it back atomically
 * (2-space indented, mode 0600) and return it in *out (caller puts it). */
int kata_spec_shape (const char *bundle_dir, const char *sandbox_id,
                     const char *netns_path, struct json_object **out,
                     struct ate_error **err);

/* Convert a (shaped) spec into the agent's Spec with Root = {root_path,
 * readonly}.  Free *out with kata_spec_agent_free().  Fields of the wrong
 * JSON type are errors naming the field. */
int kata_spec_to_agent (struct json_object *spec, const char *root_path, bool readonly,
                        Grpc__Spec **out, struct ate_error **err);

void kata_spec_agent_free (Grpc__Spec *spec);

#endif
