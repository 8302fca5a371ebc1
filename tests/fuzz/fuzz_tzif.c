/*
 * Fuzz target: the TZif zone-file reader behind working hours
 * (server/util/bt_hours.c: tzif_parse, the POSIX TZ footer parser and the
 * offset lookup). The input is written as the zone "Fuzz/Zone" in a private
 * mkdtemp directory, which bt_hours__set_zonedir points the reader at; each
 * run clears the zone cache so the file is parsed again. Input: a zone file.
 *
 * Invariants beyond "no crash":
 *   - a zone that loads gives, for instants from the far past to the far
 *     future (table and footer alike), an offset within +-26 hours, and a
 *     local weekday 0-6 and minute 0-1439;
 *   - a zone that does not load is refused by every call (BT_EINVAL).
 */
#include "fuzz_util.h"

#include "bt_err.h"
#include "bt_hours.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZONE "Fuzz/Zone"

static char dir[64], sub[96], file[128];

static void cleanup(void) {
  unlink(file);
  rmdir(sub);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/baton-fuzz-tzif-XXXXXX",
           tmp && tmp[0] && strlen(tmp) < 30 ? tmp : "/tmp");
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    abort();
  }
  snprintf(sub, sizeof sub, "%s/Fuzz", dir);
  snprintf(file, sizeof file, "%s/Zone", sub);
  if (mkdir(sub, 0700) != 0) {
    perror("mkdir");
    abort();
  }
  atexit(cleanup);
  return 0;
}

static void put_file(const uint8_t *data, size_t size) {
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0, "open %s", file);
  size_t o = 0;
  while (o < size) {
    ssize_t n = write(fd, data + o, size - o);
    FUZZ_CHECK(n > 0, "write");
    o += (size_t)n;
  }
  close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int64_t instants[] = {
      INT64_MIN, -4000000000000000LL, -2208988800000LL, -1, 0, 1,
      1700000000000LL, 1711846800000LL, 2200000000000LL, /* after 2037: footer */
      253402300799999LL, 4000000000000000LL, INT64_MAX};
  put_file(data, size);
  bt_hours__set_zonedir(dir); /* also empties the cache */
  bool loads = bt_hours_zone_exists(ZONE);
  for (size_t i = 0; i < sizeof instants / sizeof instants[0]; i++) {
    int32_t off = 0;
    int wday = -1, minute = -1;
    int rc = bt_hours_offset(ZONE, instants[i], &off);
    int rc2 = bt_hours_local(ZONE, instants[i], &wday, &minute);
    if (!loads) {
      FUZZ_CHECK(rc == BT_EINVAL && rc2 == BT_EINVAL, "an unloadable zone answers");
      continue;
    }
    FUZZ_CHECK(rc == 0 && rc2 == 0, "a loaded zone fails (%d, %d)", rc, rc2);
    FUZZ_CHECK(off >= -26 * 3600 && off <= 26 * 3600, "offset %d s at %lld", off,
               (long long)instants[i]);
    FUZZ_CHECK(wday >= 0 && wday <= 6 && minute >= 0 && minute <= 1439,
               "local day %d minute %d at %lld", wday, minute, (long long)instants[i]);
  }
  return 0;
}
