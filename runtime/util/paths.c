/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "paths.h"

#include "fs.h"
#include "util.h"

void
ate_paths_init_defaults (struct ate_paths *p)
{
  if (p->base == NULL)
    p->base = ATE_DEFAULT_BASE_PATH;
  if (p->run_dir == NULL)
    p->run_dir = ATE_DEFAULT_RUN_DIR;
  if (p->netns_dir == NULL)
    p->netns_dir = ATE_DEFAULT_NETNS_DIR;
  if (p->kata_run == NULL)
    p->kata_run = ATE_DEFAULT_KATA_RUN_DIR;
  if (p->pod_uid == NULL)
    p->pod_uid = "";
}

char *
ate_path_static_files (const struct ate_paths *p)
{
  return ate_path_join (p->base, "static-files");
}

char *
ate_path_ateom_dir (const struct ate_paths *p)
{
  return xasprintf ("%s/ateoms/%s", p->base, p->pod_uid);
}

char *
ate_path_ateom_socket (const struct ate_paths *p)
{
  return xasprintf ("%s/ateoms/%s/ateom.sock", p->base, p->pod_uid);
}

char *
ate_path_netns_name (const struct ate_paths *p)
{
  return xasprintf ("ateom:%s", p->pod_uid);
}

char *
ate_path_netns (const struct ate_paths *p)
{
  return xasprintf ("%s/ateom:%s", p->netns_dir, p->pod_uid);
}

char *
ate_path_actor (const struct ate_paths *p, const char *ns, const char *tmpl,
                const char *id)
{
  return xasprintf ("%s/actors/%s:%s:%s", p->base, ns, tmpl, id);
}

char *
ate_path_actor_sub (const struct ate_paths *p, const char *ns, const char *tmpl,
                    const char *id, const char *sub)
{
  return xasprintf ("%s/actors/%s:%s:%s/%s", p->base, ns, tmpl, id, sub);
}

char *
ate_path_bundle (const struct ate_paths *p, const char *ns, const char *tmpl,
                 const char *id, const char *ctr)
{
  return xasprintf ("%s/actors/%s:%s:%s/bundles/%s", p->base, ns, tmpl, id, ctr);
}

char *
ate_path_vm_dir (const struct ate_paths *p, const char *id)
{
  return ate_path_join (p->run_dir, id);
}

char *
ate_path_vm_file (const struct ate_paths *p, const char *id, const char *file)
{
  return xasprintf ("%s/%s/%s", p->run_dir, id, file);
}
