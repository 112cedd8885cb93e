#include "notify.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#ifdef MXGUARD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace mxguard::milter {

namespace {

void notify(const char* state) {
#ifdef MXGUARD_HAVE_SYSTEMD
  // A failure to notify must not stop mail: systemd would time the start out and say so.
  sd_notify(0, state);
#else
  (void)state;
#endif
}

}  // namespace

void notify_ready() {
  notify("READY=1\nSTATUS=filtering mail");
}

void notify_reloading() {
  notify("RELOADING=1\nSTATUS=reloading the configuration");
}

void notify_stopping() {
  notify("STOPPING=1\nSTATUS=finishing the transactions under way");
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

}  // namespace mxguard::milter
