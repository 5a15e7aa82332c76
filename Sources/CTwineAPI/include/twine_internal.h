/* Internal to libtwine: how the Swift side records errors. Not installed. */
#ifndef TWINE_INTERNAL_H
#define TWINE_INTERNAL_H

#include "twine.h"

/** Records `message` (and `error_number`, 0 if no system call failed) as this thread's
    last error and returns `status`. */
__attribute__((visibility("hidden"))) int twine_internal_fail(int status, int error_number, const char *message);

#endif
