/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sparse memory merge (docs/cloud-hypervisor.md, "Merging an OnDemand
 * delta").  After an OnDemand restore, CH's next
 * snapshot holds only the pages the guest touched since the restore (the
 * "delta"); the complete image is the restore source (the "base") with the
 * delta's data extents laid over it.  Work is proportional to populated
 * bytes: both files are walked with SEEK_DATA/SEEK_HOLE and copied with
 * copy_file_range (read/write when the kernel cannot).
 *
 * Crash safety (process crash at any point): the name the next step trusts
 * -- `delta` once no merge is pending -- only ever holds the old delta or
 * the complete merged image, and the old complete base survives under
 * `base` or `<delta>.merged.tmp` until the merged image is in place.  Call
 * ch_merge_recover() (ch_merge_delta_into_base() does it first) before
 * trusting either path after a crash.
 */
#ifndef ATE_CH_MERGE_H
#define ATE_CH_MERGE_H

struct ate_error;

#define CH_MERGE_TMP_SUFFIX ".merged.tmp"   /* delta-into-base work file */
#define CH_OVERLAY_TMP_SUFFIX ".merge.tmp"  /* overlay work file */

/* Copying merge: out = base overlaid with delta, written to
 * "<out>.merge.tmp" and renamed onto out.  base and delta are untouched
 * (out may be delta itself).  Sizes must match, checked before anything is
 * written. */
int ch_merge_sparse_overlay (const char *base, const char *delta, const char *out,
                             struct ate_error **err);

/* Fast merge that consumes the base: rename base to "<delta>.merged.tmp",
 * copy the delta's extents into it, unlink delta, rename the result to
 * delta (renaming onto a free name avoids ext4's flush-on-replace).  When
 * base and delta are on different filesystems (EXDEV) it falls back to
 * ch_merge_sparse_overlay (base, delta, delta), leaving base in place.
 * Idempotent: retried after a crash it finishes the interrupted merge. */
int ch_merge_delta_into_base (const char *base, const char *delta, struct ate_error **err);

/* Finish or clean up an interrupted merge.  Returns 1 when an interrupted
 * merge was completed (the merged image is now at delta), 0 when none was
 * pending (stale work files are removed; base and delta are as they were),
 * < 0 on error. */
int ch_merge_recover (const char *base, const char *delta, struct ate_error **err);

#endif
