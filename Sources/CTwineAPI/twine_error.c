/* The C API's error reporting: the status names, each thread's last error, the version. */
#include <string.h>

#include "twine_internal.h"

/* Long enough for any message Twine makes (they are one line); longer ones are cut. */
static _Thread_local char last_error[512];
static _Thread_local int last_errno;

const char *twine_last_error(void) { return last_error; }

int twine_last_errno(void) { return last_errno; }

const char *twine_version(void) { return TWINE_VERSION_STRING; }

__attribute__((visibility("hidden"))) int twine_internal_fail(int status, int error_number, const char *message) {
  strncpy(last_error, message ? message : "", sizeof last_error - 1);
  last_error[sizeof last_error - 1] = '\0';
  last_errno = error_number;
  return status;
}

const char *twine_status_name(int status) {
  switch (status) {
  case TWINE_OK: return "TWINE_OK";
  case TWINE_EINVAL: return "TWINE_EINVAL";
  case TWINE_ENOTFOUND: return "TWINE_ENOTFOUND";
  case TWINE_EADDRINUSE: return "TWINE_EADDRINUSE";
  case TWINE_ESOCKET: return "TWINE_ESOCKET";
  case TWINE_EWRONGTHREAD: return "TWINE_EWRONGTHREAD";
  case TWINE_ESHUTDOWN: return "TWINE_ESHUTDOWN";
  case TWINE_ELIBEVENT: return "TWINE_ELIBEVENT";
  case TWINE_EBUSY: return "TWINE_EBUSY";
  default: return "TWINE_UNKNOWN";
  }
}
