/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a caller may read in a failed call's status message.  atenet shows
 * FAILED_PRECONDITION messages to the HTTP clients of an actor, so a
 * message never carries host paths or another actor's identity
 * (docs/api.md, "Error messages"); the full message stays in our log.
 */
#ifndef ATE_SERVER_MESSAGE_H
#define ATE_SERVER_MESSAGE_H

#include "util/paths.h"

/* The identity of the actor a call is about (NULL members: none). */
struct message_actor
{
  const char *ns, *tmpl, *id;
};

/* A new string: msg with every host path replaced.  A path inside the
 * calling actor's directory becomes relative to it (`bundles/c/rootfs`,
 * the layout atelet shares with us); another actor's directory becomes
 * "<another actor's directory>"; any other path under the server's
 * directories or the usual system roots becomes "<host path>". */
char *message_for_caller (const char *msg, const struct ate_paths *paths,
                          const struct message_actor *caller);

#endif
