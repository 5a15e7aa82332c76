#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <twine.h>

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);                      /* Twine leaves signals to you; ignore SIGPIPE */
  struct event_base *base = event_base_new();    /* your base: add your own events to it too */
  twine_reactor *twine;
  twine_factory *echo;
  int port;
  if (twine_reactor_new(base, &twine) || twine_factory_new("echo", "max_connections=100", &echo) ||
      twine_listen(twine, echo, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 8025, &port))
    return fprintf(stderr, "twine: %s\n", twine_last_error()), 1;
  printf("listening on 127.0.0.1:%d\n", port);
  fflush(stdout);
  event_base_dispatch(base);                     /* your loop: Twine never runs or breaks it */
  twine_reactor_free(twine);                     /* removes Twine's events, closes its sockets */
  twine_factory_free(echo);
  event_base_free(base);
  return 0;
}
