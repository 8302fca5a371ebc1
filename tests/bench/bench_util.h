/*
 * Small helpers of the benchmark: the shared monotonic clock, growable sample
 * arrays and percentiles, a package id -> time map, and what /proc says about
 * the processes being measured (CPU time, resident memory).
 */
#ifndef BT_BENCH_UTIL_H
#define BT_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The program name bench_die's messages start with (set it in main). */
extern const char *bench_prog;
/* Prints "PROG: message" on stderr and exits 1. */
_Noreturn void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The integer value v of option --name in [min, max], or bench_die. */
uint64_t bench_num(const char *name, const char *v, uint64_t min, uint64_t max);

/* CLOCK_MONOTONIC in nanoseconds; the same clock in every thread. */
uint64_t bench_now_ns(void);

/* A growable array of doubles (latencies in ms). */
typedef struct {
  double *v;
  size_t n, cap;
} bench_samples_t;

void bench_samples_push(bench_samples_t *s, double x);
/* Appends all of src to dst. */
void bench_samples_append(bench_samples_t *dst, const bench_samples_t *src);
void bench_samples_free(bench_samples_t *s);
/* Sorts in place; call before bench_samples_pct. */
void bench_samples_sort(bench_samples_t *s);
/* The nearest-rank percentile p (0-100) of sorted samples; 0 when empty. */
double bench_samples_pct(const bench_samples_t *s, double p);

/* (id, time) pairs, appended by one thread. */
typedef struct {
  uint64_t id;
  uint64_t ns;
} bench_mark_t;

typedef struct {
  bench_mark_t *v;
  size_t n, cap;
} bench_marks_t;

void bench_marks_push(bench_marks_t *m, uint64_t id, uint64_t ns);
void bench_marks_free(bench_marks_t *m);

/* An open-addressing map id -> ns; ids are never 0. */
typedef struct {
  bench_mark_t *slots;
  size_t mask;
} bench_idmap_t;

void bench_idmap_init(bench_idmap_t *m, size_t expected);
void bench_idmap_free(bench_idmap_t *m);
/* Inserts id unless present. Returns 1 when inserted, 0 when it was there. */
int bench_idmap_put(bench_idmap_t *m, uint64_t id, uint64_t ns);
/* Returns 1 and *ns when id is present, else 0. */
int bench_idmap_get(const bench_idmap_t *m, uint64_t id, uint64_t *ns);

/* CPU seconds (user + system) of one process, -1 when it is gone. */
double bench_proc_cpu_s(int pid);
/* CPU seconds of a process and all its direct children (a PostgreSQL
 * postmaster and its backends and helpers). Children that exited in between
 * are lost: PostgreSQL's long-lived processes are what matters here. */
double bench_proc_tree_cpu_s(int pid);
/* Busy and total jiffies of the whole machine from /proc/stat. */
void bench_host_jiffies(uint64_t *busy, uint64_t *total);
/* A "VmRSS"/"VmHWM"-style field of /proc/PID/status in kB, -1 if unreadable. */
long bench_proc_status_kb(int pid, const char *field);

#endif
