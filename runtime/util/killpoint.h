/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only crash injection (docs/operations.md, "Crash recovery"): with
 * ATE_TEST_KILL_AT=<point> in the environment the process SIGKILLs itself
 * when it reaches that point, once per ATE_TEST_KILL_ONCE file (created
 * before the kill; an existing file disarms it).  Points are named by the
 * caller, e.g. "CheckpointWorkload/snapshot".  Without the variable this is
 * one getenv per call.
 */
#ifndef ATE_KILLPOINT_H
#define ATE_KILLPOINT_H

#define ATE_KILLPOINT_ENV "ATE_TEST_KILL_AT"
#define ATE_KILLPOINT_ONCE_ENV "ATE_TEST_KILL_ONCE"

/* "<scope>/<name>"; scope may be NULL. */
void ate_killpoint (const char *scope, const char *name);

#endif
