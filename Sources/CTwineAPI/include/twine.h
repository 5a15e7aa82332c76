/*
 * twine.h - run Twine's Swift protocols on a C program's own libevent loop.
 *
 * Build:  cc host.c $(pkg-config --cflags --libs twine)
 *
 * A host makes its own event_base, hangs a Twine reactor on it, listens Twine
 * factories on ports (or hands Twine sockets it accepted), and keeps running the
 * loop itself (event_base_dispatch). Twine never frees the base, never runs or
 * breaks its loop, and installs no signal handlers; twine_reactor_destroy removes
 * every event Twine added and closes Twine's sockets, leaving the host's events.
 *
 * Errors: every function that can fail returns a twine_status (TWINE_OK is 0);
 * twine_last_error() then describes the failure. No function aborts on bad input.
 *
 * Threads: a twine_reactor belongs to the thread that made it, which must be the
 * thread running the base's loop. Calls taking a reactor from any other thread
 * return TWINE_EWRONGTHREAD and do nothing; the exception is
 * twine_call_from_thread, the one door for other threads. Factory calls
 * (twine_factory_new, _free, _counters), twine_last_error and
 * twine_status_name are safe from any thread. A factory's connections share its
 * state, so listen one factory on reactors of one thread only.
 *
 * Signals: Twine leaves signal handling to the host. Ignore SIGPIPE
 * (signal(SIGPIPE, SIG_IGN)) before making a reactor: libevent's queued writes
 * use plain writev, and a peer gone away would otherwise kill the process (the
 * reactor logs a warning when SIGPIPE is not ignored).
 */
#ifndef TWINE_H
#define TWINE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct bufferevent;

/** What a call returned: TWINE_OK (0), or why it failed (see twine_last_error()). */
typedef enum twine_status {
  TWINE_OK = 0,
  /** A bad argument: NULL where a value is needed, a port outside 0..65535,
      malformed factory parameters, or a handle that is not (or no longer) live. */
  TWINE_EINVAL = 1,
  /** No factory is registered under that name. */
  TWINE_ENOTFOUND = 2,
  /** The port is already in use. */
  TWINE_EADDRINUSE = 3,
  /** Another socket error (permission denied, not a connected stream socket, ...). */
  TWINE_ESOCKET = 4,
  /** Called from a thread other than the one that made the reactor. */
  TWINE_EWRONGTHREAD = 5,
  /** The reactor is shutting down or gone (twine_call_from_thread after destroy). */
  TWINE_ESHUTDOWN = 6,
  /** libevent could not make an object (out of memory or file descriptors). */
  TWINE_ELIBEVENT = 7
} twine_status;

/** Log levels, as in swift-log. */
typedef enum twine_log_level {
  TWINE_LOG_TRACE = 0,
  TWINE_LOG_DEBUG = 1,
  TWINE_LOG_INFO = 2,
  TWINE_LOG_NOTICE = 3,
  TWINE_LOG_WARNING = 4,
  TWINE_LOG_ERROR = 5,
  TWINE_LOG_CRITICAL = 6
} twine_log_level;

/** A Twine reactor on a host's event_base. */
typedef struct twine_reactor twine_reactor;

/** A Twine factory: builds one protocol per connection and counts them. */
typedef struct twine_factory twine_factory;

/** A factory's counters. Each value is exact; together they are not a snapshot. */
typedef struct twine_counters {
  int64_t live;      /**< connections open now */
  int64_t accepted;  /**< connections given a protocol since the start */
  int64_t refused;   /**< connections turned away (limit reached, factory refused) */
  int64_t bytes_in;  /**< bytes received on all connections */
  int64_t bytes_out; /**< bytes written by all connections' protocols */
} twine_counters;

/** Receives one log line (without a newline) at `level` (a twine_log_level).
    `message` is valid during the call only. Called on the reactor's thread. */
typedef void (*twine_log_fn)(int level, const char *message, void *context);

/** A function twine_call_from_thread runs on the reactor's thread. */
typedef void (*twine_thread_fn)(void *context);

/** The message of the last call on this thread that failed ("" if none failed yet).
    Valid until the next failing twine_ call on this thread. Any thread. */
const char *twine_last_error(void);

/** The name of a status ("TWINE_EINVAL"), or "TWINE_UNKNOWN". Any thread. */
const char *twine_status_name(int status);

/** Makes a reactor on `base`, which the host made and keeps running and freeing.
    Call it on the thread that runs the base's loop: the reactor belongs to it.
    Logs warnings and errors to stderr until twine_set_log_callback.
    TWINE_EINVAL if `base` or `out` is NULL. */
int twine_reactor_new(struct event_base *base, twine_reactor **out);

/** Shuts the reactor down and frees it: stops its listeners, closes every
    connection Twine serves (their protocols hear connectionLost), cancels its
    timers and removes every event it added to the base. The base, its loop and
    the host's events are untouched. NULL is a no-op (TWINE_OK). Reactor's thread
    only (TWINE_EWRONGTHREAD, and nothing done, from another); allowed from a
    twine_call_from_thread function, not from the log callback (TWINE_EINVAL), and
    not from host code that a Twine protocol's callback called into (the reactor
    would be freed under that callback).
    Order: destroy the reactor BEFORE event_base_free(base): destroy frees events,
    listeners and bufferevents that live in the base, so after the base is gone it
    would touch freed memory (this cannot be detected). */
int twine_reactor_destroy(twine_reactor *reactor);

/** Sends the reactor's log lines at `min_level` and above to `callback` (with
    `context`); a NULL callback discards them all. Reactor's thread only. */
int twine_set_log_callback(twine_reactor *reactor, twine_log_fn callback, void *context, int min_level);

/** Makes a factory by name: a built-in ("echo": the counting echo, parameter
    max_connections, default 100; "hello": greets and closes) or one registered
    from Swift (FactoryRegistry.register). `parameters` is NULL, "" or
    "key=value,key=value". TWINE_ENOTFOUND for an unknown name, TWINE_EINVAL for
    unknown or malformed parameters. Free it with twine_factory_free; listeners
    keep what they use alive. Any thread. */
int twine_factory_new(const char *name, const char *parameters, twine_factory **out);

/** Lets go of a factory handle (listeners using it keep it alive). NULL is a no-op. Any thread. */
int twine_factory_free(twine_factory *factory);

/** Reads a factory's counters into `out`. Any thread. */
int twine_factory_counters(const twine_factory *factory, twine_counters *out);

/** Listens on `interface`:`port` (interface NULL or "" = every IPv4 interface; a
    numeric IPv4 or IPv6 address otherwise; port 0 picks a free one) and serves
    each connection with a protocol from `factory`, until the reactor is
    destroyed. Stores the bound port in `*bound_port` unless it is NULL.
    TWINE_EINVAL (bad port, interface or handle), TWINE_EADDRINUSE, TWINE_ESOCKET.
    Reactor's thread only. */
int twine_listen(twine_reactor *reactor, twine_factory *factory, const char *interface, int port, int *bound_port);

/** Listens where the endpoint string `endpoint` says (Twisted's syntax: "tcp:8025:interface=127.0.0.1",
    "unix:/run/echo.sock:mode=660", "ssl:8443:privateKey=key.pem:certKey=cert.pem",
    "systemd:domain=INET:index=0", "haproxy:tcp:8025"; not "udp:") and serves each connection with a
    protocol from `factory`, until the reactor is destroyed. Stores the bound port (0 for UNIX-domain
    sockets) in `*bound_port` unless it is NULL. TWINE_EINVAL (a bad string: twine_last_error names the
    bad part; a bad handle), TWINE_EADDRINUSE, TWINE_ESOCKET. Reactor's thread only. */
int twine_listen_endpoint(twine_reactor *reactor, twine_factory *factory, const char *endpoint, int *bound_port);

/** A reactor's listening ports and connections, summed over every port (twine_reactor_stats). */
typedef struct twine_stats {
  int64_t listeners;              /**< ports listening now */
  int64_t connections;            /**< connections open now, of every factory */
  int64_t accepted;               /**< sockets the ports accepted */
  int64_t refused;                /**< accepted sockets their factory refused at once */
  int64_t accept_errors;          /**< failed accepts (EMFILE, ENFILE, ...), each pausing accepts briefly */
  int64_t tls_handshake_failures; /**< TLS handshakes that failed on the ports */
} twine_stats;

/** Reads the reactor's port and connection counts into `out`. Reactor's thread only. */
int twine_reactor_stats(twine_reactor *reactor, twine_stats *out);

/** Serves `fd`, a stream socket the host accepted or connected, with a protocol
    from `factory`. On TWINE_OK the socket is Twine's, even when the factory
    refuses it (then it is closed at once and counted): Twine makes it
    non-blocking and closes it when the connection ends; do not read, write or
    close it any more. On any error nothing was done and `fd` is still yours.
    TWINE_EINVAL (bad handle or fd), TWINE_ESOCKET (not a connected stream socket).
    Reactor's thread only. */
int twine_adopt_fd(twine_reactor *reactor, twine_factory *factory, int fd);

/** Serves `bev`, a connected socket bufferevent the host made on the reactor's base,
    with a protocol from `factory`. Every byte passes through the bufferevent (its rate
    limits and filters keep working); bytes already in its input are delivered first,
    bytes in its output go out first. On TWINE_OK the bufferevent is Twine's, even when
    the factory refuses it: Twine replaces its callbacks and frees it when the connection
    ends (the socket closes with it if it was made with BEV_OPT_CLOSE_ON_FREE); do not use
    or free it any more. On any error nothing was done and it is still yours.
    TWINE_EINVAL (bad handle, NULL, another base, no socket, not connected).
    Reactor's thread only. */
int twine_adopt_bufferevent(twine_reactor *reactor, twine_factory *factory, struct bufferevent *bev);

/** Runs `fn(context)` on the reactor's thread, soon, in the order queued. The
    one reactor call that is safe from any thread (while the reactor is not
    destroyed). TWINE_ESHUTDOWN once the reactor is gone or going. */
int twine_call_from_thread(twine_reactor *reactor, twine_thread_fn fn, void *context);

#ifdef __cplusplus
}
#endif

#endif /* TWINE_H */
