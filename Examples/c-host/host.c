/*
 * host.c - a C daemon that owns its libevent loop and mounts Twine on it.
 *
 * It makes its own event_base and, on it:
 *   - its own C timer, printing "heartbeat N" every --heartbeat-ms;
 *   - its own C-only protocol on --c-port: answers each line with "C says: <line>";
 *   - Twine's counting echo on --echo-port, through Twine's C API (twine.h);
 *     with --c-echo, a plain C bufferevent echo on that port instead (the
 *     benchmark compares the two: the cost of embedding Twine); with
 *     --twine-c-echo, an echo written in C on Twine's transport
 *     (twine_factory_new_callbacks) instead of Twine's Swift echo;
 *   - on --adopt-port, connections the host accepts itself and hands to Twine's
 *     echo (twine_adopt_fd: the socket is Twine's from then on);
 *   - on --c-line-port, a protocol written in C on Twine's transport
 *     (twine_factory_new_callbacks, line framing): answers "C on Twine: <line>";
 *   - built as host-greeter (-DTWINE_HOST_GREETER, linked with libgreeter from
 *     Examples/swift-protocol-template): the team's own Swift protocol "greeter" on
 *     --greeter-port, answering "hi, <line>!";
 *   - SIGTERM/SIGINT events that tear everything down and leave the loop;
 * then runs event_base_dispatch itself.
 *
 *   host [--c-port P] [--echo-port P] [--adopt-port P] [--c-line-port P] [--greeter-port P]
 *        [--heartbeat-ms MS] [--max-connections N] [--c-echo | --twine-c-echo]
 *        [--twine-log-level trace|debug|info|notice|warning|error|critical]
 *
 * Ports default to 0 (a free one). Prints "c-protocol on 127.0.0.1:PORT", then
 * "adopt on 127.0.0.1:PORT", "c-line on 127.0.0.1:PORT" and (host-greeter)
 * "greeter on 127.0.0.1:PORT" (not with --c-echo), then "listening on 127.0.0.1:PORT"
 * for the echo port, then heartbeats. Twine's log
 * lines go to stderr as "twine[LEVEL]: ...". On SIGTERM it prints the echo's
 * counters and "fds before=N after=M" (open descriptors before the base was made
 * and after it was freed), and exits 0; on a setup error it prints the error and
 * exits 1. Build: cc host.c $(pkg-config --cflags --libs twine)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <twine.h>
#ifdef TWINE_HOST_GREETER
#include <greeter.h>
#endif

struct host;

/* One connection of the host's own protocols, listed so that shutdown frees them all. */
struct conn {
  struct host *host;
  struct bufferevent *bev;
  struct conn *prev, *next;
};

struct host {
  struct event_base *base;
  struct event *heartbeat, *sigterm, *sigint;
  struct evconnlistener *c_listener;
  struct evconnlistener *c_echo_listener; /* --c-echo only */
  struct evconnlistener *adopt_listener;  /* accepts for twine_adopt_fd (not with --c-echo) */
  struct conn *conns;
  twine_reactor *twine;
  twine_factory *echo;
  twine_factory *c_line;       /* the C line protocol's factory */
  twine_listener *c_line_port; /* its listener, freed on its own at teardown */
  twine_factory *greeter;      /* host-greeter only */
  long beats;
  int exit_code;
};

static const char *const level_names[] = {"trace", "debug", "info", "notice", "warning", "error", "critical"};

/* Open file descriptors of this process (opendir's own is counted every time alike). */
static int open_fds(void) {
  int count = 0;
  DIR *dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  for (struct dirent *entry; (entry = readdir(dir));)
    if (entry->d_name[0] != '.') count++;
  closedir(dir);
  return count;
}

static void conn_free(struct conn *conn) {
  struct host *host = conn->host;
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    host->conns = conn->next;
  if (conn->next) conn->next->prev = conn->prev;
  bufferevent_free(conn->bev); /* closes the socket (BEV_OPT_CLOSE_ON_FREE) */
  free(conn);
}

/* The C-only protocol: "C says: <line>" for each line. */
static void c_protocol_read(struct bufferevent *bev, void *ctx) {
  (void)ctx;
  struct evbuffer *input = bufferevent_get_input(bev);
  char *line;
  while ((line = evbuffer_readln(input, NULL, EVBUFFER_EOL_CRLF))) {
    evbuffer_add_printf(bufferevent_get_output(bev), "C says: %s\n", line);
    free(line);
  }
}

/* The plain C bufferevent echo (--c-echo), as Benchmarks/c/libevent_server.c writes it. */
static void c_echo_read(struct bufferevent *bev, void *ctx) {
  (void)ctx;
  evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void conn_event(struct bufferevent *bev, short events, void *ctx) {
  (void)bev;
  if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(ctx);
}

static void c_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                     void *ctx) {
  (void)sa, (void)socklen;
  struct host *host = ctx;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct conn *conn = calloc(1, sizeof *conn);
  struct bufferevent *bev = conn ? bufferevent_socket_new(host->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
  if (!bev) {
    free(conn);
    evutil_closesocket(fd);
    return;
  }
  conn->host = host;
  conn->bev = bev;
  conn->next = host->conns;
  if (host->conns) host->conns->prev = conn;
  host->conns = conn;
  bufferevent_data_cb read = listener == host->c_echo_listener ? c_echo_read : c_protocol_read;
  bufferevent_setcb(bev, read, NULL, conn_event, conn);
  bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* A connection the host accepted itself, handed to Twine: from TWINE_OK on, the fd is Twine's. */
static void adopt_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                         void *ctx) {
  (void)listener, (void)sa, (void)socklen;
  struct host *host = ctx;
  int status = twine_adopt_fd(host->twine, host->echo, fd);
  if (status != TWINE_OK) {
    fprintf(stderr, "host: twine_adopt_fd: %s: %s\n", twine_status_name(status), twine_last_error());
    evutil_closesocket(fd); /* on an error the fd is still ours */
  }
}

static void heartbeat(evutil_socket_t fd, short events, void *ctx) {
  (void)fd, (void)events;
  struct host *host = ctx;
  printf("heartbeat %ld\n", ++host->beats);
  fflush(stdout);
}

/* A protocol written in C on Twine's transport: Twine cuts the input into lines
   (TWINE_FRAMING_LINES_LF) and frames the answers; flow control and limits are Twine's. */
static void c_line_received(twine_connection *connection, const void *line, size_t length, void *ctx) {
  (void)ctx;
  char answer[256];
  int n = snprintf(answer, sizeof answer, "C on Twine: %.*s", (int)(length < 200 ? length : 200), (const char *)line);
  twine_connection_send_frame(connection, answer, (size_t)n);
}

/* --twine-c-echo: the echo written in C on Twine (raw bytes, no framing). */
static void c_echo_received(twine_connection *connection, const void *data, size_t length, void *ctx) {
  (void)ctx;
  twine_connection_write(connection, data, length);
}

/* Twine's log lines, through the C API's log callback. */
static void twine_log(int level, const char *message, void *ctx) {
  (void)ctx;
  fprintf(stderr, "twine[%s]: %s\n", level >= 0 && level <= 6 ? level_names[level] : "?", message);
}

/* Undoes everything set up on the base, in any state of setup; the base itself stays. */
static void teardown(struct host *host) {
  if (host->echo) {
    twine_counters counters;
    if (twine_factory_counters(host->echo, &counters) == TWINE_OK)
      printf("twine-echo accepted=%lld live=%lld refused=%lld bytes_in=%lld bytes_out=%lld\n",
             (long long)counters.accepted, (long long)counters.live, (long long)counters.refused,
             (long long)counters.bytes_in, (long long)counters.bytes_out);
  }
  /* A listener handle can go on its own (its connections stay); the reactor would free it too. */
  twine_listener_free(host->c_line_port);
  /* Closes Twine's listeners and connections and removes Twine's events; ours stay until freed below. */
  twine_reactor_free(host->twine);
  twine_factory_free(host->echo);
  twine_factory_free(host->c_line);
  twine_factory_free(host->greeter);
  host->twine = NULL;
  host->echo = host->c_line = host->greeter = NULL;
  host->c_line_port = NULL;
  while (host->conns) conn_free(host->conns);
  if (host->c_listener) evconnlistener_free(host->c_listener);
  if (host->c_echo_listener) evconnlistener_free(host->c_echo_listener);
  if (host->adopt_listener) evconnlistener_free(host->adopt_listener);
  host->c_listener = host->c_echo_listener = host->adopt_listener = NULL;
  struct event **events[] = {&host->heartbeat, &host->sigterm, &host->sigint};
  for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
    if (*events[i]) event_free(*events[i]);
    *events[i] = NULL;
  }
}

static void on_signal(evutil_socket_t signum, short events, void *ctx) {
  (void)events;
  struct host *host = ctx;
  printf("signal %d: shutting down\n", (int)signum);
  teardown(host);
  event_base_loopbreak(host->base);
}

static struct evconnlistener *listen_c(struct host *host, int port, evconnlistener_cb accepted) {
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct evconnlistener *listener =
      evconnlistener_new_bind(host->base, accepted, host, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                              4096, (struct sockaddr *)&address, sizeof address);
  if (!listener) perror("host: listen");
  return listener;
}

static int bound_port(struct evconnlistener *listener) {
  struct sockaddr_in address;
  socklen_t length = sizeof address;
  getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&address, &length);
  return ntohs(address.sin_port);
}

/* Reports a failed twine_ call; returns 1 (the exit code). */
static int twine_failed(const char *what, int status) {
  fprintf(stderr, "host: %s failed: %s: %s\n", what, twine_status_name(status), twine_last_error());
  return 1;
}

static int parse_int(const char *text, int low, int high, int *out) {
  char *end;
  long value = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < low || value > high) return 0;
  *out = (int)value;
  return 1;
}

static void usage(void) {
  fprintf(stderr, "usage: host [--c-port P] [--echo-port P] [--adopt-port P] [--c-line-port P] [--greeter-port P]\n"
                  "            [--heartbeat-ms MS] [--max-connections N] [--c-echo | --twine-c-echo]\n"
                  "            [--twine-log-level trace|debug|info|notice|warning|error|critical]\n");
  exit(2);
}

/* Sets up everything on host->base; returns 0, or 1 after reporting why not. */
static int setup(struct host *host, int c_port, int echo_port, int adopt_port, int c_line_port, int greeter_port,
                 int heartbeat_ms, int max_connections, int c_echo, int twine_c_echo, int log_level) {
  struct timeval interval = {heartbeat_ms / 1000, (heartbeat_ms % 1000) * 1000};
  host->heartbeat = event_new(host->base, -1, EV_PERSIST, heartbeat, host);
  host->sigterm = evsignal_new(host->base, SIGTERM, on_signal, host);
  host->sigint = evsignal_new(host->base, SIGINT, on_signal, host);
  if (!host->heartbeat || !host->sigterm || !host->sigint) return fprintf(stderr, "host: event_new failed\n"), 1;
  event_add(host->heartbeat, &interval);
  event_add(host->sigterm, NULL);
  event_add(host->sigint, NULL);

  if (!(host->c_listener = listen_c(host, c_port, c_accept))) return 1;
  printf("c-protocol on 127.0.0.1:%d\n", bound_port(host->c_listener));

  if (c_echo) {
    if (!(host->c_echo_listener = listen_c(host, echo_port, c_accept))) return 1;
    printf("listening on 127.0.0.1:%d\n", bound_port(host->c_echo_listener));
    return 0;
  }
  int status, port;
  char parameters[64];
  snprintf(parameters, sizeof parameters, "max_connections=%d", max_connections);
  if ((status = twine_reactor_new(host->base, &host->twine))) return twine_failed("twine_reactor_new", status);
  if ((status = twine_set_log_callback(host->twine, twine_log, NULL, log_level)))
    return twine_failed("twine_set_log_callback", status);
  twine_protocol_callbacks echo_callbacks = {.data_received = c_echo_received, .framing = TWINE_FRAMING_RAW};
  if (twine_c_echo) {
    if ((status = twine_factory_new_callbacks(&echo_callbacks, NULL, &host->echo)))
      return twine_failed("twine_factory_new_callbacks", status);
  } else if ((status = twine_factory_new("echo", parameters, &host->echo))) {
    return twine_failed("twine_factory_new", status);
  }
  if (!(host->adopt_listener = listen_c(host, adopt_port, adopt_accept))) return 1;
  printf("adopt on 127.0.0.1:%d\n", bound_port(host->adopt_listener));
  twine_protocol_callbacks c_line = {.data_received = c_line_received, .framing = TWINE_FRAMING_LINES_LF};
  twine_listener_stats stats;
  if ((status = twine_factory_new_callbacks(&c_line, host, &host->c_line)))
    return twine_failed("twine_factory_new_callbacks", status);
  if ((status = twine_listener_new(host->twine, host->c_line, "127.0.0.1", c_line_port, &host->c_line_port)) ||
      (status = twine_listener_get_stats(host->c_line_port, &stats)))
    return twine_failed("twine_listener_new", status);
  printf("c-line on 127.0.0.1:%d\n", stats.port);
#ifdef TWINE_HOST_GREETER
  /* The team's own Swift protocol, built into libgreeter with Twine (Examples/swift-protocol-template). */
  greeter_register();
  if ((status = twine_factory_new("greeter", "greeting=hi", &host->greeter)))
    return twine_failed("twine_factory_new(greeter)", status);
  if ((status = twine_listen(host->twine, host->greeter, "127.0.0.1", greeter_port, &port)))
    return twine_failed("twine_listen(greeter)", status);
  printf("greeter on 127.0.0.1:%d\n", port);
#else
  (void)greeter_port;
#endif
  if ((status = twine_listen(host->twine, host->echo, "127.0.0.1", echo_port, &port)))
    return twine_failed("twine_listen", status);
  printf("listening on 127.0.0.1:%d\n", port);
  return 0;
}

int main(int argc, char **argv) {
  int c_port = 0, echo_port = 0, adopt_port = 0, c_line_port = 0, greeter_port = 0, heartbeat_ms = 1000;
  int max_connections = 1000000, c_echo = 0, twine_c_echo = 0;
  int log_level = TWINE_LOG_WARNING;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(arg, "--c-echo")) {
      c_echo = 1;
      continue;
    }
    if (!strcmp(arg, "--twine-c-echo")) {
      twine_c_echo = 1;
      continue;
    }
    if (!value) usage();
    i++;
    if (!strcmp(arg, "--c-port")) {
      if (!parse_int(value, 0, 65535, &c_port)) usage();
    } else if (!strcmp(arg, "--adopt-port")) {
      if (!parse_int(value, 0, 65535, &adopt_port)) usage();
    } else if (!strcmp(arg, "--c-line-port")) {
      if (!parse_int(value, 0, 65535, &c_line_port)) usage();
    } else if (!strcmp(arg, "--greeter-port")) {
      if (!parse_int(value, 0, 65535, &greeter_port)) usage();
    } else if (!strcmp(arg, "--echo-port")) {
      /* Not range-checked here: Twine's own check is part of what the tests drive. */
      if (!parse_int(value, -1000000, 1000000, &echo_port)) usage();
    } else if (!strcmp(arg, "--heartbeat-ms")) {
      if (!parse_int(value, 1, 3600000, &heartbeat_ms)) usage();
    } else if (!strcmp(arg, "--max-connections")) {
      if (!parse_int(value, 0, 1000000000, &max_connections)) usage();
    } else if (!strcmp(arg, "--twine-log-level")) {
      for (log_level = 0; log_level < 7 && strcmp(value, level_names[log_level]); log_level++) {}
      if (log_level == 7) usage();
    } else {
      usage();
    }
  }

  /* Hosts own the process's signals; Twine asks only that SIGPIPE be ignored. */
  signal(SIGPIPE, SIG_IGN);
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  int fds_before = open_fds();
  struct host host = {0};
  if (!(host.base = event_base_new())) return fprintf(stderr, "host: event_base_new failed\n"), 1;
  if (c_echo && twine_c_echo) usage();
  if (setup(&host, c_port, echo_port, adopt_port, c_line_port, greeter_port, heartbeat_ms, max_connections, c_echo,
            twine_c_echo, log_level) == 0) {
    fflush(stdout);
    event_base_dispatch(host.base); /* the host's loop: Twine never runs or breaks it */
  } else {
    host.exit_code = 1;
  }
  teardown(&host); /* after a signal: nothing left to do; after a setup error: frees what was made */
  event_base_free(host.base);
  printf("fds before=%d after=%d\n", fds_before, open_fds());
  return host.exit_code;
}
