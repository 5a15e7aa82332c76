/* Internal to libtwine: how the Swift side records errors. Not installed. */
#ifndef TWINE_INTERNAL_H
#define TWINE_INTERNAL_H

#include "twine.h"

/** Records `message` as this thread's last error and returns `status`. */
__attribute__((visibility("hidden"))) int twine_internal_fail(int status, const char *message);

#endif
