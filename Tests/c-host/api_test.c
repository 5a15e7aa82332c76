/*
 * api_test.c - the C API's rules, checked from C against the installed libtwine:
 * one check per defect a C host found (issue 15), each on real loopback sockets.
 *
 *   api_test        prints "PASS name" / "FAIL name: detail" per check, then "api_test: N failed";
 *                   exits 1 if any check failed.
 *
 * Built by Tests/c-host/test_c_host.py with the same compiler and flags as the host.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <twine.h>

#include "check.h"



/* Runs the base's loop (without blocking) until `done(ctx)` or `seconds` pass. */
static int run_until(struct event_base *base, int (*done)(void *), void *ctx, double seconds) {
  double deadline = now() + seconds;
  while (!done(ctx)) {
    if (now() > deadline) return 0;
    event_base_loop(base, EVLOOP_NONBLOCK);
    usleep(1000);
  }
  return 1;
}


static int connect_to(int port) { return loopback_connect(port); }

/* A connected pair over loopback: *client and *server. */
static void tcp_pair(int *client, int *server) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  bind(listener, (struct sockaddr *)&address, sizeof address);
  listen(listener, 1);
  getsockname(listener, (struct sockaddr *)&address, &length);
  *client = connect_to(ntohs(address.sin_port));
  *server = accept(listener, NULL, NULL);
  close(listener);
}

/* An echo check: sends `text` on `fd`, runs `base` until it comes back. */
struct echo_wait {
  int fd;
  char got[64];
  size_t have, want;
};

static int echo_back(void *ctx) {
  struct echo_wait *wait = ctx;
  ssize_t n = recv(wait->fd, wait->got + wait->have, wait->want - wait->have, MSG_DONTWAIT);
  if (n > 0) wait->have += (size_t)n;
  return wait->have == wait->want;
}

static int echoes(struct event_base *base, int fd, const char *text) {
  struct echo_wait wait = {.fd = fd, .want = strlen(text)};
  if (send(fd, text, wait.want, MSG_NOSIGNAL) != (ssize_t)wait.want) return 0;
  return run_until(base, echo_back, &wait, 10) && memcmp(wait.got, text, wait.want) == 0;
}

/* Log lines collected by the callback. */
struct log_lines {
  int count;
  char first[512];
  int sigpipe;
};

static void collect_log(int level, const char *message, void *ctx) {
  struct log_lines *lines = ctx;
  (void)level;
  if (lines->count++ == 0) snprintf(lines->first, sizeof lines->first, "%s", message);
  if (strstr(message, "SIGPIPE")) lines->sigpipe++;
}

/* Minor: version, log levels, and the SIGPIPE warning through the callback set after twine_reactor_new. */
static void test_version_and_logging(void) {
  CHECK("twine_version() is the header's TWINE_VERSION_STRING", strcmp(twine_version(), TWINE_VERSION_STRING) == 0,
        "%s vs %s", twine_version(), TWINE_VERSION_STRING);
  struct event_base *base = event_base_new();
  twine_reactor *reactor;
  struct log_lines lines = {0};
  signal(SIGPIPE, SIG_DFL);
  twine_status status = twine_reactor_new(base, &reactor);
  CHECK("twine_reactor_new with SIGPIPE not ignored", status == TWINE_OK, "%s", twine_status_name(status));
  CHECK("a log level above TWINE_LOG_CRITICAL is TWINE_EINVAL",
        twine_set_log_callback(reactor, collect_log, &lines, 7) == TWINE_EINVAL, "accepted");
  CHECK("a negative log level is TWINE_EINVAL", twine_set_log_callback(reactor, collect_log, &lines, -1) == TWINE_EINVAL,
        "accepted");
  status = twine_set_log_callback(reactor, collect_log, &lines, TWINE_LOG_WARNING);
  CHECK("the SIGPIPE warning logged by twine_reactor_new reaches the callback set after it, once",
        status == TWINE_OK && lines.sigpipe == 1, "%d SIGPIPE lines, first: %s", lines.sigpipe, lines.first);
  signal(SIGPIPE, SIG_IGN);
  twine_reactor_free(reactor);
  event_base_free(base);
}

/* Defect 1: a freed handle came back to life as the next object made. */
static void test_handles(void) {
  struct event_base *base = event_base_new();
  twine_reactor *a, *b;
  twine_factory *echo, *stale_factory;
  twine_reactor_new(base, &a);
  twine_reactor_free(a);
  twine_reactor_new(base, &b);
  CHECK("a new reactor never gets a freed reactor's handle", a != b, "both %p", (void *)a);
  twine_factory_new("echo", NULL, &stale_factory);
  twine_factory_free(stale_factory);
  twine_factory_new("echo", NULL, &echo);
  CHECK("a new factory never gets a freed factory's handle", stale_factory != echo, "both %p", (void *)echo);
  CHECK("twine_listen on the freed reactor is TWINE_EINVAL (and listens nowhere)",
        twine_listen(a, echo, "127.0.0.1", 0, NULL) == TWINE_EINVAL, "");
  CHECK("freeing the freed reactor again is TWINE_EINVAL", twine_reactor_free(a) == TWINE_EINVAL, "");
  twine_reactor_stats stats;
  CHECK("the reactor made after it still works", twine_reactor_get_stats(b, &stats) == TWINE_OK, "");
  twine_counters counters;
  CHECK("the freed factory's handle is TWINE_EINVAL", twine_factory_counters(stale_factory, &counters) == TWINE_EINVAL,
        "");
  CHECK("a factory handle passed as a reactor is TWINE_EINVAL",
        twine_reactor_get_stats((twine_reactor *)echo, &stats) == TWINE_EINVAL, "");
  CHECK("a reactor handle passed as a factory is TWINE_EINVAL",
        twine_factory_counters((twine_factory *)b, &counters) == TWINE_EINVAL, "");
  int local = 0;
  CHECK("an address that was never a handle is TWINE_EINVAL",
        twine_reactor_get_stats((twine_reactor *)&local, &stats) == TWINE_EINVAL, "");

  /* 10,000 handles made and freed: every old one stays dead while its slot is reused. */
  enum { N = 10000 };
  static twine_reactor *reactors[N];
  static twine_factory *factories[N];
  int made = 0, alive = 0, aliased = 0;
  for (int i = 0; i < N; i++) {
    made += twine_reactor_new(base, &reactors[i]) == TWINE_OK;
    made += twine_factory_new("hello", NULL, &factories[i]) == TWINE_OK;
    twine_reactor_free(reactors[i]);
    twine_factory_free(factories[i]);
  }
  twine_reactor *fresh;
  twine_reactor_new(base, &fresh);
  for (int i = 0; i < N; i++) {
    alive += twine_reactor_get_stats(reactors[i], &stats) != TWINE_EINVAL;
    alive += twine_factory_counters(factories[i], &counters) != TWINE_EINVAL;
    alive += twine_reactor_free(reactors[i]) != TWINE_EINVAL;
    aliased += reactors[i] == fresh;
  }
  CHECK("10,000 recycled reactor and factory handles: each stale one is TWINE_EINVAL, none aliases a new one",
        made == 2 * N && alive == 0 && aliased == 0, "made %d, still alive %d, aliased %d", made, alive, aliased);
  CHECK("the reactor made last is live", twine_reactor_get_stats(fresh, &stats) == TWINE_OK, "");
  twine_reactor_free(fresh);
  twine_reactor_free(b);
  twine_factory_free(echo);
  event_base_free(base);
}

/* An fd's identity: the same number may be reused by another socket. */
static ino_t inode(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

struct closed_wait {
  int fd;
  ino_t inode;
};

static int fd_gone(void *ctx) {
  struct closed_wait *wait = ctx;
  return inode(wait->fd) != wait->inode;
}

/* Defect 2: the same fd adopted twice was closed twice. */
static void test_fd_ownership(void) {
  struct event_base *base = event_base_new();
  twine_reactor *reactor, *other;
  twine_factory *echo;
  twine_reactor_new(base, &reactor);
  twine_reactor_new(base, &other);
  twine_factory_new("echo", NULL, &echo);
  int client, server;
  tcp_pair(&client, &server);
  ino_t identity = inode(server);
  twine_status first = twine_adopt_fd(reactor, echo, server);
  twine_status second = twine_adopt_fd(reactor, echo, server);
  int second_errno = twine_last_errno();
  twine_status third = twine_adopt_fd(other, echo, server);
  CHECK("adopting an fd Twine owns already is TWINE_EBUSY (errno EBUSY), on the same or another reactor",
        first == TWINE_OK && second == TWINE_EBUSY && second_errno == EBUSY && third == TWINE_EBUSY, "%s, %s (%d), %s",
        twine_status_name(first), twine_status_name(second), second_errno, twine_status_name(third));
  twine_counters counters;
  twine_factory_counters(echo, &counters);
  CHECK("the refused adoptions counted nothing", counters.accepted == 1 && counters.live == 1,
        "accepted %lld live %lld", (long long)counters.accepted, (long long)counters.live);
  CHECK("the fd is still open, the same socket", inode(server) == identity, "");
  CHECK("the first connection is left alone: it still echoes", echoes(base, client, "still mine"), "");
  close(client);
  struct closed_wait wait = {server, identity};
  CHECK("when its peer goes, Twine closes the fd once", run_until(base, fd_gone, &wait, 10), "");
  /* The number is free again: a new socket may get it, and then it may be adopted. */
  int client2, server2;
  tcp_pair(&client2, &server2);
  CHECK("once closed, a socket with a reused number is adopted", twine_adopt_fd(reactor, echo, server2) == TWINE_OK,
        "");
  CHECK("and echoes", echoes(base, client2, "new"), "");
  close(client2);
  twine_reactor_free(reactor);
  twine_reactor_free(other);
  twine_factory_free(echo);
  event_base_free(base);
}

/* Defect 3: calls accepted and then dropped when the reactor was freed first. */
struct call_log {
  int plain, ran, cancelled;
};

static void plain_call(void *ctx) { ((struct call_log *)ctx)->plain++; }

static void call_or_cancel(void *ctx, int cancelled) {
  struct call_log *log = ctx;
  if (cancelled)
    log->cancelled++;
  else
    log->ran++;
}

static int one_ran(void *ctx) { return ((struct call_log *)ctx)->ran == 1; }

static void *queue_calls(void *arg) {
  void **args = arg;
  twine_reactor *reactor = args[0];
  struct call_log *log = args[1];
  long ok = 0;
  ok += twine_call_from_thread(reactor, plain_call, log) == TWINE_OK;
  ok += twine_call_from_thread(reactor, plain_call, log) == TWINE_OK;
  ok += twine_call_from_thread_or_cancel(reactor, call_or_cancel, log) == TWINE_OK;
  return (void *)ok;
}

static void test_calls_always_end(void) {
  struct event_base *base = event_base_new();
  twine_reactor *reactor;
  twine_reactor_new(base, &reactor);
  struct call_log log = {0};
  CHECK("twine_call_from_thread_or_cancel runs with cancelled = 0 on the loop",
        twine_call_from_thread_or_cancel(reactor, call_or_cancel, &log) == TWINE_OK &&
            run_until(base, one_ran, &log, 10) && log.cancelled == 0,
        "ran %d cancelled %d", log.ran, log.cancelled);
  pthread_t thread;
  void *args[] = {reactor, &log};
  void *accepted;
  pthread_create(&thread, NULL, queue_calls, args);
  pthread_join(thread, &accepted);
  int plain_before = log.plain;
  twine_reactor_free(reactor); /* before the loop ran them */
  CHECK("calls accepted from another thread and not run when the reactor is freed: each is called back by the free",
        (long)accepted == 3 && plain_before == 0 && log.plain == 2 && log.cancelled == 1 && log.ran == 1,
        "accepted %ld, plain %d (before %d), cancelled %d, ran %d", (long)accepted, log.plain, plain_before,
        log.cancelled, log.ran);
  run_for(base, 0.05);
  CHECK("and never again afterwards", log.plain == 2 && log.cancelled == 1 && log.ran == 1, "");
  CHECK("after the free, the dead handle refuses calls (TWINE_EINVAL)",
        twine_call_from_thread(reactor, plain_call, &log) == TWINE_EINVAL, "");
  event_base_free(base);
}

/* Defect 4: a reactor made on one thread and run on another could never be used or freed there. */
struct bound_test {
  pthread_barrier_t made, release, gone; /* creator+worker, creator+worker, main+worker */
  struct event_base *base;
  twine_reactor *reactor;
  twine_factory *echo;
  int port;
  twine_status from_loop, free_status, stranger;
};

static void *make_and_exit(void *arg) {
  struct bound_test *test = arg;
  test->base = event_base_new();
  twine_reactor_new(test->base, &test->reactor);
  twine_listen(test->reactor, test->echo, "127.0.0.1", 0, &test->port);
  pthread_barrier_wait(&test->made);
  pthread_barrier_wait(&test->release); /* alive while the worker serves: thread ids stay distinct */
  return NULL;
}

static void in_loop(evutil_socket_t fd, short events, void *arg) {
  (void)fd, (void)events;
  struct bound_test *test = arg;
  twine_reactor_stats stats;
  test->from_loop = twine_reactor_get_stats(test->reactor, &stats);
}

static void *dispatch_and_free(void *arg) {
  struct bound_test *test = arg;
  pthread_barrier_wait(&test->made);
  struct timeval soon = {0, 20000};
  event_base_once(test->base, -1, EV_TIMEOUT, in_loop, test, &soon);
  int client = connect_to(test->port);
  int served = client >= 0 && echoes(test->base, client, "worker");
  if (client >= 0) close(client);
  run_for(test->base, 0.05);
  pthread_barrier_wait(&test->release);
  pthread_barrier_wait(&test->gone); /* the creating thread has exited */
  test->free_status = twine_reactor_free(test->reactor);
  event_base_free(test->base);
  return (void *)(long)served;
}

static void *stranger(void *arg) {
  struct bound_test *test = arg;
  twine_reactor_stats stats;
  test->stranger = twine_reactor_get_stats(test->reactor, &stats);
  return NULL;
}

struct binder {
  twine_reactor *reactor;
  pthread_barrier_t bound, checked;
  twine_status bind, free_status;
};

static void *bind_check_free(void *arg) {
  struct binder *binder = arg;
  binder->bind = twine_reactor_bind_thread(binder->reactor);
  pthread_barrier_wait(&binder->bound);
  pthread_barrier_wait(&binder->checked);
  binder->free_status = twine_reactor_free(binder->reactor);
  return NULL;
}

static void test_thread_binding(void) {
  struct bound_test test = {0};
  twine_factory_new("echo", NULL, &test.echo);
  pthread_t creator, worker, other;
  pthread_barrier_init(&test.made, NULL, 2);
  pthread_barrier_init(&test.release, NULL, 2);
  pthread_barrier_init(&test.gone, NULL, 2);
  pthread_create(&creator, NULL, make_and_exit, &test);
  void *served;
  pthread_create(&worker, NULL, dispatch_and_free, &test);
  pthread_join(creator, NULL);
  pthread_barrier_wait(&test.gone);
  pthread_join(worker, &served);
  pthread_barrier_destroy(&test.made);
  pthread_barrier_destroy(&test.release);
  pthread_barrier_destroy(&test.gone);
  CHECK("a reactor made on a thread that exited serves from the thread dispatching its base", (long)served == 1, "");
  CHECK("calls from the dispatching thread's loop are allowed", test.from_loop == TWINE_OK, "%s",
        twine_status_name(test.from_loop));
  CHECK("the dispatching thread frees it after the creator exited", test.free_status == TWINE_OK, "%s",
        twine_status_name(test.free_status));

  /* Explicit binding: made here, bound by another thread, then this one is a stranger. */
  struct event_base *base = event_base_new();
  struct binder binder = {0};
  twine_reactor_new(base, &binder.reactor);
  pthread_barrier_init(&binder.bound, NULL, 2);
  pthread_barrier_init(&binder.checked, NULL, 2);
  pthread_create(&other, NULL, bind_check_free, &binder);
  pthread_barrier_wait(&binder.bound);
  twine_reactor_stats stats;
  CHECK("twine_reactor_bind_thread hands the reactor to the calling thread; its maker is then TWINE_EWRONGTHREAD",
        binder.bind == TWINE_OK && twine_reactor_get_stats(binder.reactor, &stats) == TWINE_EWRONGTHREAD, "bind: %s",
        twine_status_name(binder.bind));
  struct bound_test bound = {.reactor = binder.reactor};
  pthread_t third;
  pthread_create(&third, NULL, stranger, &bound);
  pthread_join(third, NULL);
  CHECK("and so is any other thread", bound.stranger == TWINE_EWRONGTHREAD, "%s", twine_status_name(bound.stranger));
  CHECK("binding back from a thread that does not hold it is TWINE_EWRONGTHREAD",
        twine_reactor_bind_thread(binder.reactor) == TWINE_EWRONGTHREAD, "");
  pthread_barrier_wait(&binder.checked);
  pthread_join(other, NULL);
  CHECK("the bound thread frees it", binder.free_status == TWINE_OK, "%s", twine_status_name(binder.free_status));
  pthread_barrier_destroy(&binder.bound);
  pthread_barrier_destroy(&binder.checked);
  twine_factory_free(test.echo);
  event_base_free(base);
}

/* Defect 6: a port could not be paused or stopped on its own. */
struct recv_wait {
  int fd;
  char byte;
  int got;
};

static int got_byte(void *ctx) {
  struct recv_wait *wait = ctx;
  if (wait->got <= 0) wait->got = (int)recv(wait->fd, &wait->byte, 1, MSG_DONTWAIT);
  return wait->got > 0;
}

static void test_listeners(void) {
  struct event_base *base = event_base_new();
  twine_reactor *reactor;
  twine_factory *echo;
  twine_listener *listener, *other;
  twine_reactor_new(base, &reactor);
  twine_factory_new("echo", NULL, &echo);
  twine_listener_new(reactor, echo, "127.0.0.1", 0, &listener);
  twine_listener_new(reactor, echo, "127.0.0.1", 0, &other);
  twine_listener_stats stats = {0}, other_stats = {0};
  twine_listener_get_stats(listener, &stats);
  twine_listener_get_stats(other, &other_stats);
  int fd = connect_to(stats.port);
  CHECK("a listener handle serves", fd >= 0 && echoes(base, fd, "one"), "port %d", stats.port);
  close(fd);
  twine_listener_pause(listener);
  twine_listener_get_stats(listener, &stats);
  fd = connect_to(stats.port); /* the kernel completes it into the backlog */
  struct recv_wait wait = {.fd = fd};
  send(fd, "p", 1, MSG_NOSIGNAL);
  CHECK("a paused listener accepts nothing", stats.paused == 1 && !run_until(base, got_byte, &wait, 0.3), "");
  twine_listener_resume(listener);
  CHECK("resumed, it serves the peer that waited", run_until(base, got_byte, &wait, 10) && wait.byte == 'p', "");
  close(fd);
  int port = stats.port;
  CHECK("twine_listener_free stops only that port", twine_listener_free(listener) == TWINE_OK, "");
  fd = connect_to(port);
  CHECK("its port refuses connections now", fd < 0, "connected");
  if (fd >= 0) close(fd);
  fd = connect_to(other_stats.port);
  CHECK("the other listener still serves", fd >= 0 && echoes(base, fd, "two"), "");
  CHECK("the freed listener's handle is TWINE_EINVAL", twine_listener_pause(listener) == TWINE_EINVAL, "");
  twine_reactor_stats reactor_stats;
  twine_reactor_get_stats(reactor, &reactor_stats);
  CHECK("reactor stats: one listener, one open connection",
        reactor_stats.listeners == 1 && reactor_stats.connections == 1, "listeners %lld connections %lld",
        (long long)reactor_stats.listeners, (long long)reactor_stats.connections);
  twine_listener_get_stats(other, &other_stats);
  CHECK("listener stats carry the factory's counters", other_stats.factory.accepted == 3, "accepted %lld",
        (long long)other_stats.factory.accepted);
  close(fd);

  /* twine_listen_fd: a socket the host bound. */
  int bound = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  bind(bound, (struct sockaddr *)&address, sizeof address);
  getsockname(bound, (struct sockaddr *)&address, &length);
  twine_listener *from_fd;
  twine_status status = twine_listen_fd(reactor, echo, bound, &from_fd);
  fd = connect_to(ntohs(address.sin_port));
  CHECK("twine_listen_fd serves a socket the host bound", status == TWINE_OK && fd >= 0 && echoes(base, fd, "fd"), "%s",
        twine_status_name(status));
  close(fd);
  int unbound = socket(AF_INET, SOCK_STREAM, 0);
  status = twine_listen_fd(reactor, echo, unbound, &from_fd);
  CHECK("twine_listen_fd on an unbound socket is TWINE_ESOCKET with errno EINVAL, and leaves it open",
        status == TWINE_ESOCKET && twine_last_errno() == EINVAL && inode(unbound) != 0, "%s errno %d",
        twine_status_name(status), twine_last_errno());
  close(unbound);

  /* Minor: ESOCKET / EADDRINUSE keep their errno. */
  twine_listener_get_stats(other, &other_stats);
  status = twine_listen(reactor, echo, "127.0.0.1", other_stats.port, NULL);
  CHECK("TWINE_EADDRINUSE keeps errno EADDRINUSE", status == TWINE_EADDRINUSE && twine_last_errno() == EADDRINUSE,
        "%s errno %d", twine_status_name(status), twine_last_errno());
  twine_reactor_free(reactor);
  CHECK("a listener's handle dies with its reactor", twine_listener_free(other) == TWINE_EINVAL, "");
  twine_factory_free(echo);
  event_base_free(base);
}

static void drain_done(void *ctx, int cancelled) {
  int *result = ctx;
  *result = cancelled ? 2 : 1;
}

static int drained(void *ctx) { return *(int *)ctx != 0; }

static void test_drain(void) {
  struct event_base *base = event_base_new();
  twine_reactor *reactor;
  twine_factory *echo;
  twine_reactor_new(base, &reactor);
  twine_factory_new("echo", NULL, &echo);
  int port = 0;
  twine_listen(reactor, echo, "127.0.0.1", 0, &port);
  int open_fd = connect_to(port);
  CHECK("before the drain, a connection echoes", open_fd >= 0 && echoes(base, open_fd, "before"), "");
  CHECK("a negative drain timeout is TWINE_EINVAL", twine_reactor_drain(reactor, -1, NULL, NULL) == TWINE_EINVAL, "");
  int result = 0;
  double started = now();
  CHECK("twine_reactor_drain starts", twine_reactor_drain(reactor, 0.5, drain_done, &result) == TWINE_OK, "");
  int late = connect_to(port);
  CHECK("draining: the port is closed at once, new connects are refused", late < 0, "connected");
  if (late >= 0) close(late);
  CHECK("draining: an open connection still echoes", echoes(base, open_fd, "during"), "");
  CHECK("a connection that stays open is cut at the deadline, then done(ctx, 0) runs",
        run_until(base, drained, &result, 10) && result == 1 && now() - started >= 0.4, "result %d after %.2f s",
        result, now() - started);
  twine_counters counters;
  twine_factory_counters(echo, &counters);
  CHECK("after the drain no connection is live", counters.live == 0, "live %lld", (long long)counters.live);
  close(open_fd);

  /* Freed before the drain ends: done is called back as cancelled, by the free. */
  twine_listen(reactor, echo, "127.0.0.1", 0, &port);
  int held = connect_to(port);
  echoes(base, held, "held");
  int cancelled = 0;
  twine_reactor_drain(reactor, 60, drain_done, &cancelled);
  twine_reactor_free(reactor);
  CHECK("a reactor freed mid-drain calls done(ctx, 1) before the free returns", cancelled == 2, "result %d",
        cancelled);
  close(held);
  twine_factory_free(echo);
  event_base_free(base);
}

int main(void) {
  test_version_and_logging();
  test_handles();
  test_fd_ownership();
  test_calls_always_end();
  test_thread_binding();
  test_listeners();
  test_drain();
  printf("api_test: %d failed\n", failures);
  return failures ? 1 : 0;
}
