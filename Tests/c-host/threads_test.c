/*
 * threads_test.c - one Twine reactor per host event_base on 4 host threads (the
 * memcached / Envoy model), sharing factories and their counters; run by
 * Tests/c-host/test_c_host.py plain, under AddressSanitizer and under ThreadSanitizer.
 *
 * main makes 4 bases and a reactor on each, listens the shared "echo" factory and a
 * shared C-callback echo factory on every reactor, then starts 4 workers, each
 * dispatching its own base (each reactor binds to its worker on the loop's first pass).
 * Clients on 4 more threads echo through every port; main also accepts connections
 * itself and hands each to a worker (twine_call_from_thread_or_cancel, then
 * twine_adopt_fd on the worker's thread, as memcached's dispatcher does). At the end
 * each worker frees its own reactor from its loop and leaves.
 *
 *   threads_test    prints "PASS name" / "FAIL name: detail", then "threads_test: N failed".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include <twine.h>

#include "check.h"

enum { WORKERS = 4, CLIENTS_PER_PORT = 4, ROUNDS = 20, MESSAGE = 16384, ADOPTED = 8 };


/* The C echo's shared context: touched by every worker at once. */
struct c_echo {
  atomic_long made, lost, bytes;
};

static void c_made(twine_connection *connection, void *context) {
  (void)connection;
  atomic_fetch_add(&((struct c_echo *)context)->made, 1);
}

static void c_received(twine_connection *connection, const void *data, size_t length, void *context) {
  twine_connection_write(connection, data, length);
  atomic_fetch_add(&((struct c_echo *)context)->bytes, (long)length);
}

static void c_lost(twine_connection *connection, int reason, void *context) {
  (void)connection, (void)reason;
  atomic_fetch_add(&((struct c_echo *)context)->lost, 1);
}

struct worker {
  pthread_t thread;
  struct event_base *base;
  twine_reactor *reactor;
  twine_factory *echo; /* borrowed: the shared factory, for adoptions */
  int echo_port, c_port;
  atomic_int adopted, adopt_failed, cancelled;
  twine_status free_status;
  long connections_seen;
};

static void *dispatch(void *arg) {
  struct worker *worker = arg;
  event_base_dispatch(worker->base); /* until the stop call breaks it */
  event_base_free(worker->base);
  return NULL;
}

/* Runs on the worker's loop: frees its reactor there, then leaves the loop. */
static void stop_worker(void *arg) {
  struct worker *worker = arg;
  twine_reactor_stats stats;
  if (twine_reactor_get_stats(worker->reactor, &stats) == TWINE_OK) worker->connections_seen = stats.connections;
  worker->free_status = twine_reactor_free(worker->reactor);
  event_base_loopbreak(worker->base);
}

/* A connection main accepted, on its way to a worker. */
struct handover {
  struct worker *worker;
  int fd;
};

static void adopt_on_worker(void *arg, int cancelled) {
  struct handover *handover = arg;
  if (cancelled) {
    atomic_fetch_add(&handover->worker->cancelled, 1);
    close(handover->fd);
  } else if (twine_adopt_fd(handover->worker->reactor, handover->worker->echo, handover->fd) == TWINE_OK) {
    atomic_fetch_add(&handover->worker->adopted, 1);
  } else {
    atomic_fetch_add(&handover->worker->adopt_failed, 1);
    close(handover->fd);
  }
  free(handover);
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval timeout = {20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* One client: ROUNDS echoes of MESSAGE bytes, checked; returns 1 if every byte came back. */
static int echo_rounds(int port) {
  int fd = connect_to(port);
  if (fd < 0) return 0;
  static _Thread_local char out[MESSAGE], in[MESSAGE];
  int ok = 1;
  for (int round = 0; round < ROUNDS && ok; round++) {
    for (int i = 0; i < MESSAGE; i++) out[i] = (char)(i * 7 + round + port);
    ok = send(fd, out, MESSAGE, MSG_NOSIGNAL) == MESSAGE;
    size_t got = 0;
    while (ok && got < MESSAGE) {
      ssize_t n = recv(fd, in + got, MESSAGE - got, 0);
      if (n <= 0) ok = 0;
      else got += (size_t)n;
    }
    ok = ok && memcmp(in, out, MESSAGE) == 0;
  }
  close(fd);
  return ok;
}

struct client_args {
  int echo_port, c_port;
  int ok;
};

static void *client(void *arg) {
  struct client_args *args = arg;
  args->ok = 1;
  for (int i = 0; i < CLIENTS_PER_PORT; i++) args->ok &= echo_rounds(args->echo_port) & echo_rounds(args->c_port);
  return NULL;
}

static int host_listener(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  bind(fd, (struct sockaddr *)&address, sizeof address);
  listen(fd, 64);
  getsockname(fd, (struct sockaddr *)&address, &length);
  *port = ntohs(address.sin_port);
  return fd;
}

struct adopt_client {
  int port, ok;
};

static void *adopt_client(void *arg) {
  struct adopt_client *args = arg;
  args->ok = 1;
  for (int i = 0; i < ADOPTED; i++) args->ok &= echo_rounds(args->port);
  return NULL;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  struct c_echo c_echo = {0};
  twine_factory *echo, *c_factory;
  twine_protocol_callbacks callbacks = {c_made, c_received, c_lost, TWINE_FRAMING_RAW, 0};
  if (twine_factory_new("echo", "max_connections=1000", &echo) != TWINE_OK ||
      twine_factory_new_callbacks(&callbacks, &c_echo, &c_factory) != TWINE_OK) {
    CHECK("shared factories", 0, "%s", twine_last_error());
    return 1;
  }
  /* memcached's way: every base and reactor made in main, then each handed to its worker. */
  static struct worker workers[WORKERS];
  int setup = 1;
  for (int i = 0; i < WORKERS; i++) {
    struct worker *worker = &workers[i];
    worker->base = event_base_new();
    worker->echo = echo;
    setup &= twine_reactor_new(worker->base, &worker->reactor) == TWINE_OK;
    setup &= twine_listen(worker->reactor, echo, "127.0.0.1", 0, &worker->echo_port) == TWINE_OK;
    setup &= twine_listen(worker->reactor, c_factory, "127.0.0.1", 0, &worker->c_port) == TWINE_OK;
  }
  CHECK("4 reactors on 4 host bases, made in main, both factories listening on each", setup, "");
  for (int i = 0; i < WORKERS; i++) pthread_create(&workers[i].thread, NULL, dispatch, &workers[i]);

  struct client_args clients[WORKERS];
  pthread_t client_threads[WORKERS];
  for (int i = 0; i < WORKERS; i++) {
    clients[i] = (struct client_args){workers[i].echo_port, workers[i].c_port, 0};
    pthread_create(&client_threads[i], NULL, client, &clients[i]);
  }

  /* Main accepts on its own socket and hands each connection to a worker, round robin. */
  int adopt_port, listener = host_listener(&adopt_port);
  struct adopt_client adopt_args = {adopt_port, 0};
  pthread_t adopt_thread;
  pthread_create(&adopt_thread, NULL, adopt_client, &adopt_args);
  int handed = 0;
  for (int i = 0; i < ADOPTED; i++) {
    int fd = accept(listener, NULL, NULL);
    struct handover *handover = malloc(sizeof *handover);
    *handover = (struct handover){&workers[i % WORKERS], fd};
    if (twine_call_from_thread_or_cancel(workers[i % WORKERS].reactor, adopt_on_worker, handover) == TWINE_OK) {
      handed++;
    } else {
      close(fd);
      free(handover);
    }
  }
  pthread_join(adopt_thread, NULL);
  close(listener);
  int all_ok = 1;
  for (int i = 0; i < WORKERS; i++) {
    pthread_join(client_threads[i], NULL);
    all_ok &= clients[i].ok;
  }
  CHECK("every client on every worker's ports got every byte back (Swift echo and C echo)", all_ok, "");
  int adopted = 0;
  for (int i = 0; i < WORKERS; i++) adopted += atomic_load(&workers[i].adopted);
  CHECK("connections main accepted were adopted by the workers and echoed", adopt_args.ok && handed == ADOPTED &&
        adopted == ADOPTED, "handed %d adopted %d ok %d", handed, adopted, adopt_args.ok);

  /* Calls from main into a worker's reactor are refused: it belongs to its worker now. */
  twine_reactor_stats stats;
  CHECK("main's calls on a worker's reactor are TWINE_EWRONGTHREAD once the worker runs its loop",
        twine_reactor_get_stats(workers[0].reactor, &stats) == TWINE_EWRONGTHREAD, "");

  /* Each worker frees its reactor from its own loop, after main made it. */
  for (int i = 0; i < WORKERS; i++) twine_call_from_thread(workers[i].reactor, stop_worker, &workers[i]);
  int freed = 1;
  for (int i = 0; i < WORKERS; i++) {
    pthread_join(workers[i].thread, NULL);
    freed &= workers[i].free_status == TWINE_OK;
  }
  CHECK("each worker freed its reactor from its own loop", freed, "");

  twine_counters counters, c_counters;
  twine_factory_counters(echo, &counters);
  twine_factory_counters(c_factory, &c_counters);
  long expected_echo = WORKERS * CLIENTS_PER_PORT + ADOPTED;
  long expected_bytes = expected_echo * (long)ROUNDS * MESSAGE;
  CHECK("the shared echo factory's counters add up over the 4 threads",
        counters.accepted == expected_echo && counters.live == 0 && counters.bytes_in == expected_bytes &&
            counters.bytes_out == expected_bytes,
        "accepted %lld live %lld in %lld out %lld (expected %ld, %ld bytes)", (long long)counters.accepted,
        (long long)counters.live, (long long)counters.bytes_in, (long long)counters.bytes_out, expected_echo,
        expected_bytes);
  long expected_c = WORKERS * CLIENTS_PER_PORT;
  CHECK("the shared C factory: every connection made and lost once, counters and the host's context agree",
        c_counters.accepted == expected_c && c_counters.live == 0 && atomic_load(&c_echo.made) == expected_c &&
            atomic_load(&c_echo.lost) == expected_c && atomic_load(&c_echo.bytes) == c_counters.bytes_in &&
            c_counters.bytes_out == c_counters.bytes_in,
        "accepted %lld live %lld made %ld lost %ld", (long long)c_counters.accepted, (long long)c_counters.live,
        atomic_load(&c_echo.made), atomic_load(&c_echo.lost));
  twine_factory_free(echo);
  twine_factory_free(c_factory);
  printf("threads_test: %d failed\n", failures);
  return failures ? 1 : 0;
}
