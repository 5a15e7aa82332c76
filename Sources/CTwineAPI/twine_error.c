/* The C API's error reporting: the status names and each thread's last error message. */
#include <string.h>

#include "twine_internal.h"

/* Long enough for any message Twine makes (they are one line); longer ones are cut. */
static _Thread_local char last_error[512];

const char *twine_last_error(void) { return last_error; }

__attribute__((visibility("hidden"))) int twine_internal_fail(int status, const char *message) {
  strncpy(last_error, message ? message : "", sizeof last_error - 1);
  last_error[sizeof last_error - 1] = '\0';
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
  default: return "TWINE_UNKNOWN";
  }
}
