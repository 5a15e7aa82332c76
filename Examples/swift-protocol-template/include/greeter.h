/*
 * greeter.h - the team's own Swift protocols, in the same library as Twine's C API.
 *
 * Build:  cc host.c $(pkg-config --cflags --libs greeter)      (libgreeter.so)
 *         cc host.c $(pkg-config --cflags --libs greeter-static) (libgreeter.a)
 * The library carries all of twine.h: link it INSTEAD of libtwine, never beside it.
 */
#ifndef GREETER_H
#define GREETER_H

#include <twine.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Registers the "greeter" factory: each line ("\n"-terminated) is answered with
 * "<greeting>, <line>!"; parameter greeting (default "hello"). Call it once before
 * twine_factory_new("greeter", "greeting=hi", &factory). Any thread.
 * @return 0
 */
int greeter_register(void);

#ifdef __cplusplus
}
#endif

#endif /* GREETER_H */
