/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest memory: a sparse memfd.  Every guest access goes through here so
 * that an OnDemand restore behaves like CH's userfaultfd handler: a page is
 * copied from the snapshot's memory-ranges into the memfd on first access,
 * and a later snapshot (the memfd's populated pages) holds exactly the
 * pages touched since the restore.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"
#include "util/error.h"
#include "util/sparse.h"
#include "util/util.h"

static char *
take_error (struct ate_error **e)
{
  char *m = xstrdup ((*e)->msg);
  ate_error_release (e);
  return m;
}

int
sim_mem_new (uint64_t size, struct sim_mem **out, char **errmsg)
{
  struct sim_mem *m;
  int fd;

  if (size < SIM_MIN_MEMORY || size % SIM_PAGE)
    {
      *errmsg = xasprintf ("memory size %llu: need a multiple of 4 KiB of at least %u bytes",
                           (unsigned long long) size, SIM_MIN_MEMORY);
      return -1;
    }
  fd = memfd_create ("ch-sim-guest-ram", MFD_CLOEXEC);
  if (fd < 0 || ftruncate (fd, (off_t) size) < 0)
    {
      *errmsg = xasprintf ("guest memory: %s", strerror (errno));
      if (fd >= 0)
        close (fd);
      return -1;
    }
  m = xmalloc0 (sizeof (*m));
  m->fd = fd;
  m->size = size;
  m->npages = size / SIM_PAGE;
  m->src_fd = -1;
  pthread_mutex_init (&m->lock, NULL);
  *out = m;
  return 0;
}

void
sim_mem_free (struct sim_mem *m)
{
  if (m == NULL)
    return;
  if (m->prefault_started)
    {
      atomic_store (&m->prefault_stop, true);
      pthread_join (m->prefault, NULL);
    }
  close_and_reset (&m->fd);
  close_and_reset (&m->src_fd);
  free (m->present);
  pthread_mutex_destroy (&m->lock);
  free (m);
}

static bool
page_present (struct sim_mem *m, size_t pg)
{
  return m->present == NULL || (m->present[pg / 8] & (1u << (pg % 8)));
}

/* With the lock held: copy page pg from the source into the memfd. */
static int
fault_in_locked (struct sim_mem *m, size_t pg)
{
  unsigned char buf[SIM_PAGE];
  ssize_t n;

  if (page_present (m, pg))
    return 0;
  n = pread (m->src_fd, buf, SIM_PAGE, (off_t) pg * SIM_PAGE);
  if (n < 0)
    return -1;
  memset (buf + n, 0, SIM_PAGE - (size_t) n);
  if (pwrite (m->fd, buf, SIM_PAGE, (off_t) pg * SIM_PAGE) != SIM_PAGE)
    return -1;
  m->present[pg / 8] |= (unsigned char) (1u << (pg % 8));
  return 0;
}

static int
check_range (struct sim_mem *m, uint64_t off, size_t len)
{
  if (off > m->size || len > m->size - off)
    {
      errno = EFAULT;
      return -1;
    }
  return 0;
}

static int
fault_range_locked (struct sim_mem *m, uint64_t off, size_t len)
{
  if (m->present == NULL || len == 0)
    return 0;
  for (size_t pg = off / SIM_PAGE; pg <= (off + len - 1) / SIM_PAGE; pg++)
    if (fault_in_locked (m, pg) < 0)
      return -1;
  return 0;
}

int
sim_mem_read (struct sim_mem *m, uint64_t off, void *buf, size_t len)
{
  int ret = -1;

  if (check_range (m, off, len) < 0)
    return -1;
  pthread_mutex_lock (&m->lock);
  if (fault_range_locked (m, off, len) == 0
      && pread (m->fd, buf, len, (off_t) off) == (ssize_t) len)
    ret = 0;
  pthread_mutex_unlock (&m->lock);
  return ret;
}

int
sim_mem_write (struct sim_mem *m, uint64_t off, const void *buf, size_t len)
{
  int ret = -1;

  if (check_range (m, off, len) < 0)
    return -1;
  pthread_mutex_lock (&m->lock);
  if (fault_range_locked (m, off, len) == 0
      && pwrite (m->fd, buf, len, (off_t) off) == (ssize_t) len)
    ret = 0;
  pthread_mutex_unlock (&m->lock);
  return ret;
}

int
sim_mem_peek (struct sim_mem *m, uint64_t off, void *buf, size_t len)
{
  int ret = 0;

  if (check_range (m, off, len) < 0)
    return -1;
  pthread_mutex_lock (&m->lock);
  for (size_t done = 0; done < len;)
    {
      uint64_t o = off + done;
      size_t pg = o / SIM_PAGE, chunk = SIM_PAGE - o % SIM_PAGE;
      int fd = page_present (m, pg) ? m->fd : m->src_fd;
      ssize_t n;
      if (chunk > len - done)
        chunk = len - done;
      n = pread (fd, (char *) buf + done, chunk, (off_t) o);
      if (n < 0)
        {
          ret = -1;
          break;
        }
      memset ((char *) buf + done + n, 0, chunk - (size_t) n);
      done += chunk;
    }
  pthread_mutex_unlock (&m->lock);
  return ret;
}

int
sim_mem_restore (struct sim_mem *m, const char *src_path, bool ondemand, char **errmsg)
{
  struct ate_error *err = NULL;
  struct stat st;
  int fd = open (src_path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    {
      *errmsg = xasprintf ("open `%s`: %s", src_path, strerror (errno));
      return -1;
    }
  if (fstat (fd, &st) < 0 || (uint64_t) st.st_size != m->size)
    {
      *errmsg = xasprintf ("`%s` has %lld bytes, guest memory is %llu", src_path,
                           (long long) st.st_size, (unsigned long long) m->size);
      close (fd);
      return -1;
    }
  if (!ondemand)
    {
      /* Sparse restore (CH v52+): only the populated extents are read. */
      int r = ate_sparse_copy_extents (fd, m->fd, st.st_size, NULL, &err);
      close (fd);
      if (r < 0)
        {
          *errmsg = take_error (&err);
          return -1;
        }
      return 0;
    }
  m->src_fd = fd;
  m->present = xcalloc ((m->npages + 7) / 8, 1);
  return 0;
}

/* v53's background prefault: walk the source's data extents and fault in
 * every page not yet present, a chunk at a time so the guest keeps running. */
static void *
prefault_main (void *arg)
{
  struct sim_mem *m = arg;
  off_t off = 0, s, e;
  struct ate_error *err = NULL;

  while (!atomic_load (&m->prefault_stop)
         && ate_sparse_next_extent (m->src_fd, off, (off_t) m->size, &s, &e, &err) > 0)
    {
      for (size_t pg = (size_t) s / SIM_PAGE; pg < ((size_t) e + SIM_PAGE - 1) / SIM_PAGE;
           pg++)
        {
          if (atomic_load (&m->prefault_stop))
            break;
          pthread_mutex_lock (&m->lock);
          fault_in_locked (m, pg);
          pthread_mutex_unlock (&m->lock);
          if (pg % 256 == 255)
            usleep (200);
        }
      off = e;
    }
  ate_error_release (&err);
  atomic_store (&m->prefault_done, true);
  return NULL;
}

int
sim_mem_start_prefault (struct sim_mem *m)
{
  if (m->present == NULL || m->prefault_started)
    return 0;
  if (pthread_create (&m->prefault, NULL, prefault_main, m) != 0)
    return -1;
  m->prefault_started = true;
  return 0;
}

bool
sim_mem_prefault_busy (struct sim_mem *m)
{
  return m->prefault_started && !atomic_load (&m->prefault_done);
}

int
sim_mem_save (struct sim_mem *m, const char *path, char **errmsg)
{
  struct ate_error *err = NULL;
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int r;

  if (fd < 0)
    {
      *errmsg = xasprintf ("create `%s`: %s", path, strerror (errno));
      return -1;
    }
  pthread_mutex_lock (&m->lock);
  r = ate_sparse_copy_fd (m->fd, fd, &err);
  pthread_mutex_unlock (&m->lock);
  if (close (fd) < 0 && r == 0)
    {
      *errmsg = xasprintf ("close `%s`: %s", path, strerror (errno));
      return -1;
    }
  if (r < 0)
    {
      *errmsg = take_error (&err);
      return -1;
    }
  return 0;
}
