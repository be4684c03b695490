/* SPDX-License-Identifier: Apache-2.0 */
/* Test hook for the merge's crash safety (test/unit/test_ch_merge.c only). */
#ifndef ATE_CH_MERGE_TESTING_H
#define ATE_CH_MERGE_TESTING_H

/* Crash points, in the order the steps run. */
enum ch_merge_crash_point
{
  CH_MERGE_CRASH_NONE = 0,
  CH_MERGE_CRASH_AFTER_RENAME_BASE,    /* base renamed to the work file */
  CH_MERGE_CRASH_AFTER_FIRST_EXTENT,   /* work file partly merged (torn) */
  CH_MERGE_CRASH_AFTER_COPY,           /* work file complete */
  CH_MERGE_CRASH_AFTER_UNLINK_DELTA,   /* delta gone, result not yet renamed */
  CH_OVERLAY_CRASH_AFTER_BASE_COPY,    /* overlay work file holds only base */
  CH_OVERLAY_CRASH_AFTER_FIRST_EXTENT, /* overlay work file torn */
};

/* When the merge reaches `point`, the process kills itself with SIGKILL
 * (a crash: no cleanup, nothing flushed by us).  Call in a forked child. */
void ch_merge_test_crash_at (enum ch_merge_crash_point point);

/* Make the rename of base fail with EXDEV (exercises the overlay fallback
 * without a second filesystem). */
void ch_merge_test_force_exdev (int on);

#endif
