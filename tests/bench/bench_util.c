/* Errors and options, clock, samples, id map and /proc readers of the
 * benchmark; see bench_util.h. */
#include "bench_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *bench_prog = "bench";

void bench_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", bench_prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

uint64_t bench_num(const char *name, const char *v, uint64_t min, uint64_t max) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (*v == '-' || end == v || *end != '\0' || errno != 0 || x < min || x > max)
    bench_die("--%s: want an integer %llu-%llu, got \"%s\"", name, (unsigned long long)min,
              (unsigned long long)max, v);
  return x;
}

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return p;
  size_t c = *cap ? *cap : 1024;
  while (c < need)
    c *= 2;
  p = realloc(p, c * elem);
  if (p == NULL)
    abort();
  *cap = c;
  return p;
}

void bench_samples_push(bench_samples_t *s, double x) {
  s->v = grow(s->v, &s->cap, s->n + 1, sizeof *s->v);
  s->v[s->n++] = x;
}

void bench_samples_append(bench_samples_t *dst, const bench_samples_t *src) {
  if (src->n == 0)
    return;
  dst->v = grow(dst->v, &dst->cap, dst->n + src->n, sizeof *dst->v);
  memcpy(dst->v + dst->n, src->v, src->n * sizeof *src->v);
  dst->n += src->n;
}

void bench_samples_free(bench_samples_t *s) {
  free(s->v);
  *s = (bench_samples_t){0};
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_samples_sort(bench_samples_t *s) {
  if (s->n > 1)
    qsort(s->v, s->n, sizeof *s->v, cmp_double);
}

double bench_samples_pct(const bench_samples_t *s, double p) {
  if (s->n == 0)
    return 0;
  /* nearest rank: the smallest sample with at least p% of samples <= it */
  size_t rank = (size_t)((p / 100.0) * (double)s->n + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > s->n)
    rank = s->n;
  return s->v[rank - 1];
}

void bench_marks_push(bench_marks_t *m, uint64_t id, uint64_t ns) {
  m->v = grow(m->v, &m->cap, m->n + 1, sizeof *m->v);
  m->v[m->n++] = (bench_mark_t){id, ns};
}

void bench_marks_free(bench_marks_t *m) {
  free(m->v);
  *m = (bench_marks_t){0};
}

void bench_idmap_init(bench_idmap_t *m, size_t expected) {
  size_t cap = 1024;
  while (cap < expected * 2)
    cap *= 2;
  m->slots = calloc(cap, sizeof *m->slots);
  if (m->slots == NULL)
    abort();
  m->mask = cap - 1;
}

void bench_idmap_free(bench_idmap_t *m) {
  free(m->slots);
  m->slots = NULL;
}

static size_t hash_id(uint64_t id) {
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdull;
  id ^= id >> 33;
  return (size_t)id;
}

int bench_idmap_put(bench_idmap_t *m, uint64_t id, uint64_t ns) {
  for (size_t i = hash_id(id) & m->mask;; i = (i + 1) & m->mask) {
    if (m->slots[i].id == id)
      return 0;
    if (m->slots[i].id == 0) {
      m->slots[i] = (bench_mark_t){id, ns};
      return 1;
    }
  }
}

int bench_idmap_get(const bench_idmap_t *m, uint64_t id, uint64_t *ns) {
  for (size_t i = hash_id(id) & m->mask;; i = (i + 1) & m->mask) {
    if (m->slots[i].id == id) {
      *ns = m->slots[i].ns;
      return 1;
    }
    if (m->slots[i].id == 0)
      return 0;
  }
}

/* Fields 4 (ppid), 14 (utime) and 15 (stime) of /proc/PID/stat; the command
 * name in field 2 may hold spaces and parentheses, so parse after the last ')'. */
static int read_stat(int pid, int *ppid, double *cpu_s) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (p == NULL)
    return -1;
  char state;
  int pp;
  unsigned long utime, stime;
  if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &state, &pp,
             &utime, &stime) != 4)
    return -1;
  *ppid = pp;
  *cpu_s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
  return 0;
}

double bench_proc_cpu_s(int pid) {
  int ppid;
  double s;
  return read_stat(pid, &ppid, &s) == 0 ? s : -1;
}

double bench_proc_tree_cpu_s(int pid) {
  double total = bench_proc_cpu_s(pid);
  if (total < 0)
    return -1;
  DIR *d = opendir("/proc");
  if (d == NULL)
    return total;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long child = strtol(e->d_name, &end, 10);
    if (*end != '\0' || child <= 0 || child == pid)
      continue;
    int ppid;
    double s;
    if (read_stat((int)child, &ppid, &s) == 0 && ppid == pid)
      total += s;
  }
  closedir(d);
  return total;
}

void bench_host_jiffies(uint64_t *busy, uint64_t *total) {
  *busy = *total = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL)
    return;
  unsigned long long v[8] = {0};
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
             &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
    for (int i = 0; i < 8; i++)
      *total += v[i];
    *busy = *total - v[3] - v[4]; /* minus idle and iowait */
  }
  fclose(f);
}

long bench_proc_status_kb(int pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  long kb = -1;
  size_t fl = strlen(field);
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
      kb = strtol(line + fl + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}
