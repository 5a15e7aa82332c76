/*
 * check.h - what the C tests (api_test.c, protocol_test.c, threads_test.c) share: the PASS/FAIL
 * line test_c_host.py reads, a monotonic clock, a loop runner and a loopback connect.
 */
#ifndef TWINE_TEST_CHECK_H
#define TWINE_TEST_CHECK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <twine.h>

static int failures;

/* Prints "PASS name", or "FAIL name: detail (last error: ...)" and counts it; the detail is a
   printf format and its arguments. */
#define CHECK(name, condition, ...)                                                                                    \
  do {                                                                                                                 \
    if (condition) {                                                                                                   \
      printf("PASS %s\n", name);                                                                                       \
    } else {                                                                                                           \
      failures++;                                                                                                      \
      printf("FAIL %s: ", name);                                                                                       \
      printf(" " __VA_ARGS__);                                                                                         \
      printf(" (last error: %s)\n", twine_last_error());                                                               \
    }                                                                                                                  \
    fflush(stdout);                                                                                                    \
  } while (0)

static inline double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the base's loop (without blocking) for `seconds`. */
static inline void run_for(struct event_base *base, double seconds) {
  double deadline = now() + seconds;
  while (now() < deadline) {
    event_base_loop(base, EVLOOP_NONBLOCK);
    usleep(500);
  }
}

/* A blocking TCP socket connected to 127.0.0.1:`port`, or -1. */
static inline int loopback_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

#endif
