/*
 * protocol_test.c - protocols written in C on Twine's transport (twine_factory_new_callbacks),
 * against the installed libtwine, over real loopback sockets: an 8 MiB echo with flow
 * control, a peer that never reads, the framings, the connection handle's life.
 *
 *   protocol_test   prints "PASS name" / "FAIL name: detail" per check, then "protocol_test: N failed".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <twine.h>

#include "check.h"




/* A non-blocking, TCP_NODELAY client of 127.0.0.1:`port`, or -1. */
static int connect_to(int port) {
  int fd = loopback_connect(port);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* What the protocols below saw, shared by every connection of a test. */
struct seen {
  int made, lost, last_reason;
  long frames;
  size_t max_pending;
  char frame[256];
  char peer[64];
  int peer_port;
  twine_connection *last;
  twine_status after_lost;
  int pause_on_made;
};

static void echo_made(twine_connection *connection, void *context) {
  struct seen *seen = context;
  seen->made++;
  seen->last = connection;
  twine_connection_peer(connection, seen->peer, sizeof seen->peer, &seen->peer_port);
  if (seen->pause_on_made) twine_connection_pause(connection);
}

/* The echo: writes every byte back, and notes how much waits in the output queue. */
static void echo_received(twine_connection *connection, const void *data, size_t length, void *context) {
  struct seen *seen = context;
  twine_connection_write(connection, data, length);
  size_t pending = 0;
  twine_connection_pending_bytes(connection, &pending);
  if (pending > seen->max_pending) seen->max_pending = pending;
  seen->frames++;
}

static void note_lost(twine_connection *connection, int reason, void *context) {
  struct seen *seen = context;
  seen->lost++;
  seen->last_reason = reason;
  seen->last = connection;
}

/* A frame protocol: answers each frame with "C got: <frame>" as a frame. */
static void frame_received(twine_connection *connection, const void *data, size_t length, void *context) {
  struct seen *seen = context;
  char answer[300];
  int n = snprintf(answer, sizeof answer, "C got: %.*s", (int)(length < 250 ? length : 250), (const char *)data);
  snprintf(seen->frame, sizeof seen->frame, "%.*s", (int)(length < 250 ? length : 250), (const char *)data);
  seen->frames++;
  twine_connection_send_frame(connection, answer, (size_t)n);
}

struct server {
  struct event_base *base;
  twine_reactor *reactor;
  twine_factory *factory;
  int port;
};

static int serve(struct server *server, const twine_protocol_callbacks *callbacks, struct seen *seen) {
  server->base = event_base_new();
  if (twine_reactor_new(server->base, &server->reactor) != TWINE_OK) return 0;
  if (twine_factory_new_callbacks(callbacks, seen, &server->factory) != TWINE_OK) return 0;
  return twine_listen(server->reactor, server->factory, "127.0.0.1", 0, &server->port) == TWINE_OK;
}

static void stop(struct server *server) {
  twine_reactor_free(server->reactor);
  twine_factory_free(server->factory);
  event_base_free(server->base);
}

/* Reads what is there (non-blocking) into buffer at *have, up to want; returns bytes read (0 at EOF: -1). */
static long drain(int fd, char *buffer, size_t *have, size_t want) {
  long total = 0;
  while (*have < want) {
    ssize_t n = recv(fd, buffer + *have, want - *have, 0);
    if (n == 0) return total ? total : -1;
    if (n < 0) break;
    *have += (size_t)n;
    total += n;
  }
  return total;
}

static void test_echo_8mib(void) {
  struct seen seen = {0};
  twine_protocol_callbacks callbacks = {echo_made, echo_received, note_lost, TWINE_FRAMING_RAW, 0};
  struct server server;
  if (!serve(&server, &callbacks, &seen)) {
    CHECK("a C-callback factory listens", 0, "%s", twine_last_error());
    return;
  }
  size_t size = 8u << 20;
  char *out = malloc(size), *in = malloc(size);
  for (size_t i = 0; i < size; i++) out[i] = (char)((i * 31 + (i >> 10)) & 0xff);
  int fd = connect_to(server.port);
  size_t sent = 0, got = 0;
  double deadline = now() + 60;
  while (got < size && now() < deadline) {
    if (sent < size) {
      ssize_t n = send(fd, out + sent, size - sent < 65536 ? size - sent : 65536, MSG_NOSIGNAL);
      if (n > 0) sent += (size_t)n;
    }
    event_base_loop(server.base, EVLOOP_NONBLOCK);
    drain(fd, in, &got, size);
  }
  CHECK("a C-callback protocol echoes 8 MiB, every byte in order", got == size && memcmp(in, out, size) == 0,
        "got %zu of %zu", got, size);
  CHECK("peer address through twine_connection_peer", strcmp(seen.peer, "127.0.0.1") == 0 && seen.peer_port > 0,
        "%s:%d", seen.peer, seen.peer_port);
  twine_counters counters;
  twine_factory_counters(server.factory, &counters);
  CHECK("the C factory's counters count its bytes", counters.bytes_in == (int64_t)size && counters.bytes_out == (int64_t)size,
        "in %lld out %lld", (long long)counters.bytes_in, (long long)counters.bytes_out);
  twine_connection *connection = seen.last;
  close(fd);
  run_for(server.base, 0.2);
  CHECK("connection_lost once, closed by the peer", seen.made == 1 && seen.lost == 1 && seen.last_reason == TWINE_CLOSED_BY_PEER,
        "made %d lost %d reason %d", seen.made, seen.lost, seen.last_reason);
  CHECK("the connection's handle is dead after connection_lost",
        twine_connection_write(connection, "x", 1) == TWINE_EINVAL && twine_connection_get_data(connection) == NULL, "");
  free(out);
  free(in);
  stop(&server);
}

/* A peer that sends and never reads: the echo's output stops at the high-water mark, reading stops. */
static void test_never_reading_peer(void) {
  struct seen seen = {0};
  twine_protocol_callbacks callbacks = {echo_made, echo_received, note_lost, TWINE_FRAMING_RAW, 0};
  struct server server;
  if (!serve(&server, &callbacks, &seen)) return;
  int fd = connect_to(server.port);
  static char chunk[65536];
  memset(chunk, 'x', sizeof chunk);
  long long sent = 0;
  double last_progress = now(), deadline = now() + 30;
  while (now() - last_progress < 0.5 && now() < deadline) { /* until the client cannot send for 0.5 s */
    ssize_t n = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
    if (n > 0) {
      sent += n;
      last_progress = now();
    }
    event_base_loop(server.base, EVLOOP_NONBLOCK);
  }
  twine_counters before, after;
  twine_factory_counters(server.factory, &before);
  run_for(server.base, 0.3);
  twine_factory_counters(server.factory, &after);
  CHECK("a never-reading peer: the C echo's output queue stays near the 1 MiB high-water mark",
        seen.max_pending > 0 && seen.max_pending <= (3u << 20), "max pending %zu bytes; client sent %lld",
        seen.max_pending, sent);
  CHECK("and Twine stops reading from it (the bytes stay in the kernel, not in the host)",
        after.bytes_in == before.bytes_in && after.bytes_in < sent, "bytes_in %lld then %lld, sent %lld",
        (long long)before.bytes_in, (long long)after.bytes_in, sent);
  CHECK("the connection stays open (paused, not aborted)", seen.lost == 0 && after.live == 1, "lost %d", seen.lost);
  close(fd);
  run_for(server.base, 0.2);
  stop(&server);
}

/* Sends `text`, runs the loop until `want` bytes came back into `reply`. */
static size_t exchange(struct server *server, int fd, const char *text, size_t text_length, char *reply, size_t want) {
  size_t got = 0;
  send(fd, text, text_length, MSG_NOSIGNAL);
  double deadline = now() + 10;
  while (got < want && now() < deadline) {
    event_base_loop(server->base, EVLOOP_NONBLOCK);
    if (drain(fd, reply, &got, want) < 0) break;
    usleep(500);
  }
  return got;
}

static void test_framings(void) {
  struct {
    int framing;
    const char *name, *input;
    size_t input_length;
    const char *expected;
    size_t expected_length;
  } cases[] = {
      {TWINE_FRAMING_LINES_LF, "lines (LF)", "one\n", 4, "C got: one\n", 11},
      {TWINE_FRAMING_LINES_CRLF, "lines (CRLF)", "one\r\n", 5, "C got: one\r\n", 12},
      {TWINE_FRAMING_NETSTRINGS, "netstrings", "3:one,", 6, "10:C got: one,", 14},
      {TWINE_FRAMING_INT32, "int32 prefixes", "\0\0\0\3one", 7, "\0\0\0\12C got: one", 14},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct seen seen = {0};
    twine_protocol_callbacks callbacks = {echo_made, frame_received, note_lost, cases[i].framing, 8};
    struct server server;
    if (!serve(&server, &callbacks, &seen)) return;
    int fd = connect_to(server.port);
    char reply[64] = {0};
    size_t got = exchange(&server, fd, cases[i].input, cases[i].input_length, reply, cases[i].expected_length);
    char name[128];
    snprintf(name, sizeof name, "%s: the C protocol gets whole frames and sends framed answers", cases[i].name);
    CHECK(name, got == cases[i].expected_length && memcmp(reply, cases[i].expected, got) == 0 && seen.frames == 1,
          "got %zu bytes, %ld frames", got, seen.frames);
    /* max_frame_length 8: a longer frame is a protocol error. */
    const char *too_long = cases[i].framing == TWINE_FRAMING_NETSTRINGS ? "99:"
                           : cases[i].framing == TWINE_FRAMING_INT32    ? "\0\0\0\77"
                                                                        : "123456789012\n";
    size_t too_long_length = cases[i].framing == TWINE_FRAMING_INT32 ? 4 : strlen(too_long);
    send(fd, too_long, too_long_length, MSG_NOSIGNAL);
    double deadline = now() + 10;
    while (seen.lost == 0 && now() < deadline) {
      event_base_loop(server.base, EVLOOP_NONBLOCK);
      usleep(500);
    }
    snprintf(name, sizeof name, "%s: a frame over max_frame_length closes with TWINE_CLOSED_PROTOCOL_ERROR",
             cases[i].name);
    CHECK(name, seen.lost == 1 && seen.last_reason == TWINE_CLOSED_PROTOCOL_ERROR, "lost %d reason %d", seen.lost,
          seen.last_reason);
    close(fd);
    stop(&server);
  }
}

static void test_pause(void) {
  struct seen seen = {.pause_on_made = 1};
  twine_protocol_callbacks callbacks = {echo_made, frame_received, note_lost, TWINE_FRAMING_LINES_LF, 0};
  struct server server;
  if (!serve(&server, &callbacks, &seen)) return;
  int fd = connect_to(server.port);
  send(fd, "held\n", 5, MSG_NOSIGNAL);
  run_for(server.base, 0.3);
  CHECK("twine_connection_pause: nothing is delivered", seen.made == 1 && seen.frames == 0, "frames %ld", seen.frames);
  CHECK("twine_connection_resume on the loop's thread", twine_connection_resume(seen.last) == TWINE_OK, "");
  char reply[32] = {0};
  size_t got = exchange(&server, fd, "", 0, reply, 12);
  CHECK("twine_connection_resume delivers what waited", got == 12 && memcmp(reply, "C got: held\n", 12) == 0,
        "got %zu: %.*s", got, (int)got, reply);
  close(fd);
  run_for(server.base, 0.1);
  stop(&server);
}

static void test_bad_arguments(void) {
  twine_factory *factory = NULL;
  twine_protocol_callbacks callbacks = {NULL, NULL, NULL, 9, 0};
  CHECK("an unknown framing is TWINE_EINVAL", twine_factory_new_callbacks(&callbacks, NULL, &factory) == TWINE_EINVAL,
        "");
  CHECK("NULL callbacks are TWINE_EINVAL", twine_factory_new_callbacks(NULL, NULL, &factory) == TWINE_EINVAL, "");
  int local;
  CHECK("an address that was never a connection is TWINE_EINVAL",
        twine_connection_write((twine_connection *)&local, "x", 1) == TWINE_EINVAL, "");
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_echo_8mib();
  test_never_reading_peer();
  test_framings();
  test_pause();
  test_bad_arguments();
  printf("protocol_test: %d failed\n", failures);
  return failures ? 1 : 0;
}
