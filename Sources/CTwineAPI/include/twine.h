/*
 * twine.h - run Twine's Swift protocols on a C program's own libevent loop.
 *
 * Build:  cc host.c $(pkg-config --cflags --libs twine)
 *
 * A host makes its own event_base, hangs a Twine reactor on it, listens Twine
 * factories on ports (or hands Twine sockets it accepted or bound), and keeps running
 * the loop itself (event_base_dispatch). Twine never frees the base, never runs or
 * breaks its loop, and installs no signal handlers; twine_reactor_free removes every
 * event Twine added and closes Twine's sockets, leaving the host's events.
 *
 * Errors: every function that can fail returns a twine_status (TWINE_OK is 0);
 * twine_last_error() then describes the failure, and twine_last_errno() gives the
 * errno of a system call that failed. No function aborts on bad input.
 *
 * Handles (twine_reactor *, twine_factory *, twine_listener *) are opaque numbers, not
 * addresses: Twine never dereferences one. A handle that was freed, one of another
 * kind, or one never made is TWINE_EINVAL, forever: a new object never gets an old
 * object's handle back.
 *
 * Threads: a twine_reactor belongs to one thread: the thread that made it, until its
 * base's loop runs its first pass; from then on the thread running that loop. (A host
 * that makes its bases in main and dispatches each in a worker, like memcached, sets
 * each reactor up in main, then uses and frees it from its worker, even after the
 * making thread has exited; twine_reactor_bind_thread hands it over explicitly.) Calls
 * taking a reactor (or a listener) from any other thread return TWINE_EWRONGTHREAD and
 * do nothing; twine_call_from_thread is the one door for other threads. Factory calls,
 * twine_last_error, twine_last_errno, twine_status_name and twine_version are safe from
 * any thread. One factory may serve reactors on several threads (one reactor per host
 * thread): its counters are shared, its protocols each live on their connection's thread.
 *
 * Signals: Twine leaves signal handling to the host. Ignore SIGPIPE
 * (signal(SIGPIPE, SIG_IGN)) before making a reactor: libevent's queued writes use
 * plain writev, and a peer gone away would otherwise kill the process. A reactor made
 * while SIGPIPE is not ignored logs a warning, through the log callback if one is set
 * before the loop first runs (else to stderr).
 */
#ifndef TWINE_H
#define TWINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The version of twine.h; twine_version() gives the library's. */
#define TWINE_VERSION_MAJOR 0
#define TWINE_VERSION_MINOR 2
#define TWINE_VERSION_PATCH 0
/** "MAJOR.MINOR.PATCH" */
#define TWINE_VERSION_STRING "0.2.0"

struct event_base;
struct bufferevent;

/** What a call returned: TWINE_OK (0), or why it failed (see twine_last_error()). */
typedef enum twine_status {
  TWINE_OK = 0,
  /** A bad argument: NULL where a value is needed, a port outside 0..65535, a log level
      outside TWINE_LOG_TRACE..TWINE_LOG_CRITICAL, malformed factory parameters, or a
      handle that is not (or no longer) live. */
  TWINE_EINVAL = 1,
  /** No factory is registered under that name. */
  TWINE_ENOTFOUND = 2,
  /** The port is already in use. */
  TWINE_EADDRINUSE = 3,
  /** Another socket error (permission denied, not a connected stream socket, ...);
      twine_last_errno() has the errno. */
  TWINE_ESOCKET = 4,
  /** Called from a thread other than the reactor's. */
  TWINE_EWRONGTHREAD = 5,
  /** The reactor is shutting down. */
  TWINE_ESHUTDOWN = 6,
  /** libevent could not make an object (out of memory or file descriptors). */
  TWINE_ELIBEVENT = 7,
  /** The socket is Twine's already (adopted or accepted before, not yet closed): a
      second owner would close it twice. Both the call and the connection are left alone. */
  TWINE_EBUSY = 8
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

/** One listening socket of a reactor, serving one factory. */
typedef struct twine_listener twine_listener;

/** One connection served by a protocol written in C (twine_factory_new_callbacks). */
typedef struct twine_connection twine_connection;

/** How a C protocol's input is cut before data_received sees it (Twisted's receivers). */
typedef enum twine_framing {
  /** Bytes as they arrive, any split. */
  TWINE_FRAMING_RAW = 0,
  /** Lines ending in "\r\n" (the delimiter is not passed on). */
  TWINE_FRAMING_LINES_CRLF = 1,
  /** Lines ending in "\n". */
  TWINE_FRAMING_LINES_LF = 2,
  /** Netstrings ("5:hello,"). */
  TWINE_FRAMING_NETSTRINGS = 3,
  /** Strings after a 4-byte big-endian length. */
  TWINE_FRAMING_INT32 = 4
} twine_framing;

/** Why a connection closed (connection_lost's `reason`). */
typedef enum twine_close_reason {
  TWINE_CLOSED_BY_US = 0,        /**< twine_connection_lose_connection, after every queued byte was written */
  TWINE_CLOSED_BY_PEER = 1,      /**< the peer closed cleanly */
  TWINE_CLOSED_ABORTED = 2,      /**< twine_connection_abort; queued bytes were discarded */
  TWINE_CLOSED_RESET = 3,        /**< the peer reset the connection */
  TWINE_CLOSED_TIMED_OUT = 4,    /**< a timeout closed it */
  TWINE_CLOSED_SHUTDOWN = 5,     /**< the reactor was freed */
  TWINE_CLOSED_PROTOCOL_ERROR = 6, /**< the peer broke the framing (a frame over max_frame_length, a bad netstring) */
  TWINE_CLOSED_BUFFER_OVERFLOW = 7, /**< the output queue passed its hard limit (a peer that does not read) */
  TWINE_CLOSED_ERROR = 8         /**< another error (TLS, a socket error) */
} twine_close_reason;

/**
 * A protocol written in C: what twine_factory_new_callbacks calls for each connection.
 * Any callback may be NULL. Each runs on the connection's reactor thread, in order:
 * connection_made once, data_received any number of times, connection_lost once; none
 * after connection_lost. `context` is the factory's (twine_factory_new_callbacks); keep
 * per-connection state with twine_connection_set_data. The `connection` handle is live
 * from connection_made until connection_lost returns, then TWINE_EINVAL forever.
 * Flow control and limits are Swift protocols': when the output queue passes 1 MiB the
 * connection stops reading (a peer that does not read cannot grow the host), it reads
 * again below 64 KiB, and past 64 MiB queued it is aborted (TWINE_CLOSED_BUFFER_OVERFLOW).
 */
typedef struct twine_protocol_callbacks {
  /** The connection is up: greet, set data, or refuse with twine_connection_lose_connection. */
  void (*connection_made)(twine_connection *connection, void *context);
  /** Bytes arrived, or one whole frame (without its delimiter or prefix) with `framing`.
      `data` is borrowed, valid during the call only. */
  void (*data_received)(twine_connection *connection, const void *data, size_t length, void *context);
  /** The connection is closed; `reason` is a twine_close_reason. Free per-connection data here. */
  void (*connection_lost)(twine_connection *connection, int reason, void *context);
  /** A twine_framing. */
  int framing;
  /** The longest frame accepted (a longer one closes with TWINE_CLOSED_PROTOCOL_ERROR);
      0 = the framing's default (16384 for lines, 99999 otherwise). Ignored for TWINE_FRAMING_RAW. */
  size_t max_frame_length;
} twine_protocol_callbacks;

/** A factory's counters. Each value is exact; together they are not a snapshot. */
typedef struct twine_counters {
  int64_t live;      /**< connections open now */
  int64_t accepted;  /**< connections given a protocol since the start (refused ones too, when the
                          protocol itself turned the peer away after it was built, as "echo" does) */
  int64_t refused;   /**< connections turned away (limit reached, factory refused) */
  int64_t bytes_in;  /**< bytes received on all connections */
  int64_t bytes_out; /**< bytes written by all connections' protocols */
} twine_counters;

/** A reactor's figures (twine_reactor_get_stats). */
typedef struct twine_reactor_stats {
  int64_t connections;            /**< connections open on this reactor now, all factories */
  int64_t listeners;              /**< listening sockets of this reactor (twine_listen, twine_listener_new, twine_listen_fd, twine_listen_endpoint) */
  int64_t accepted;               /**< sockets its listening sockets accepted */
  int64_t refused;                /**< accepted sockets their factory refused at once */
  int64_t accept_errors;          /**< failed accepts (EMFILE, ENFILE, ...), each pausing accepts briefly */
  int64_t tls_handshake_failures; /**< TLS handshakes that failed on its listening sockets */
} twine_reactor_stats;

/** A listener's figures (twine_listener_get_stats). */
typedef struct twine_listener_stats {
  int port;                 /**< the bound port (0 for a UNIX-domain socket) */
  int paused;               /**< 1 between twine_listener_pause and twine_listener_resume */
  twine_counters factory;   /**< its factory's counters (shared with that factory's other listeners) */
} twine_listener_stats;

/** Receives one log line (without a newline) at `level` (a twine_log_level).
    `message` is valid during the call only. Called on the reactor's thread. */
typedef void (*twine_log_fn)(int level, const char *message, void *context);

/** A function twine_call_from_thread runs on the reactor's thread. */
typedef void (*twine_thread_fn)(void *context);

/** A function twine_call_from_thread_or_cancel calls exactly once: `cancelled` is 0 when it
    runs on the reactor's thread, 1 when the reactor was freed first. */
typedef void (*twine_call_fn)(void *context, int cancelled);

/**
 * The library's version, "MAJOR.MINOR.PATCH" (compare with TWINE_VERSION_STRING).
 * Any thread.
 * @return a static string; never NULL.
 */
const char *twine_version(void);

/**
 * The message of the last call on this thread that failed.
 * Any thread.
 * @return "" if none failed yet; valid until the next failing twine_ call on this thread.
 */
const char *twine_last_error(void);

/**
 * The errno of the system call behind the last failure on this thread.
 * Any thread.
 * @return the errno (EADDRINUSE, EACCES, ENOTCONN, EBUSY, ...), or 0 when the last
 *   failure was not a system call's (a bad argument, an unknown name).
 */
int twine_last_errno(void);

/**
 * The name of a status. Any thread.
 * @param status a twine_status value
 * @return "TWINE_EINVAL" and so on, or "TWINE_UNKNOWN"; a static string.
 */
const char *twine_status_name(int status);

/**
 * Makes a reactor on `base`, which the host made and keeps running and freeing.
 * Call it on the thread that runs the base's loop, or set the reactor up here and run
 * the loop on another thread: the reactor moves to that thread on the loop's first pass.
 * Log lines go to stderr until twine_set_log_callback; those logged before it (a
 * warning that SIGPIPE is not ignored) go to the callback if it is set before the loop runs.
 * @param base the host's event_base; borrowed, never freed by Twine
 * @param out receives the new reactor; free it with twine_reactor_free
 * @return TWINE_OK; TWINE_EINVAL if `base` or `out` is NULL; TWINE_ELIBEVENT
 */
twine_status twine_reactor_new(struct event_base *base, twine_reactor **out);

/**
 * Shuts the reactor down and frees it: stops its listeners (their handles die with it),
 * closes every connection Twine serves (their protocols hear connectionLost), cancels
 * its timers and removes every event it added to the base; every function accepted by
 * twine_call_from_thread or twine_call_from_thread_or_cancel that has not run is called
 * now, before this returns (see those). The base, its loop and the host's events are
 * untouched. Reactor's thread only; allowed from a twine_call_from_thread function, not
 * from the log callback (TWINE_EINVAL), and not from host code that a Twine protocol's
 * callback called into (the reactor would be freed under that callback).
 * Order: free the reactor BEFORE event_base_free(base): it frees events, listeners and
 * bufferevents that live in the base (after the base is gone it would touch freed memory).
 * @param reactor the reactor; NULL is a no-op. The handle is dead afterwards.
 * @return TWINE_OK; TWINE_EINVAL (not a live reactor); TWINE_EWRONGTHREAD
 */
twine_status twine_reactor_free(twine_reactor *reactor);

/** The first release's name for twine_reactor_free; the same function. */
twine_status twine_reactor_destroy(twine_reactor *reactor);

/**
 * Makes the calling thread the reactor's thread now, before its loop runs there: for a
 * host that hands a set-up reactor to a worker and wants the worker to make calls
 * before it dispatches. The thread that had it must have stopped using it.
 * @param reactor the reactor (borrowed)
 * @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD once the reactor is bound to another
 *   thread (its loop ran there, or that thread called this)
 */
twine_status twine_reactor_bind_thread(twine_reactor *reactor);

/**
 * Stops the reactor gracefully: closes its listening sockets at once (the kernel queues
 * nothing more), tells each connection's protocol (connectionDraining), waits until every
 * connection has closed or `timeout` seconds have passed, closes the rest (their
 * protocols hear connectionLost with the reactor-shutdown reason), then calls
 * `done(context, 0)` on the reactor's thread. The reactor stays usable: free it, or listen
 * again. If the reactor is freed before the drain ends, twine_reactor_free calls
 * `done(context, 1)` before it returns: `done` is called exactly once either way.
 * Draining again while a drain runs adds `done` to the same drain. Reactor's thread only.
 * @param reactor the reactor (borrowed)
 * @param timeout seconds to wait for connections to close, 0 or more (0: close them now)
 * @param done called once when the drain ends; may be NULL
 * @param context passed to `done`; the host's until `done` has run
 * @return TWINE_OK; TWINE_EINVAL (bad handle, negative or non-finite timeout);
 *   TWINE_EWRONGTHREAD
 */
twine_status twine_reactor_drain(twine_reactor *reactor, double timeout, twine_call_fn done, void *context);

/**
 * Reads a reactor's figures. Reactor's thread only.
 * @param reactor the reactor (borrowed)
 * @param out receives the figures
 * @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD
 */
twine_status twine_reactor_get_stats(twine_reactor *reactor, twine_reactor_stats *out);

/**
 * Sends the reactor's log lines at `min_level` and above to `callback` (with `context`),
 * starting with those logged since the reactor was made, if its loop has not run yet.
 * Each line names what it is about (`peer=`, `port=`). Reactor's thread only.
 * @param callback receives each line; NULL discards them all
 * @param context passed to `callback`; the host keeps it alive while the reactor lives
 * @param min_level a twine_log_level
 * @return TWINE_OK; TWINE_EINVAL (also for a level outside 0..6); TWINE_EWRONGTHREAD
 */
twine_status twine_set_log_callback(twine_reactor *reactor, twine_log_fn callback, void *context, int min_level);

/**
 * Makes a factory by name: a built-in ("echo": the counting echo, parameter
 * max_connections, default 100; "hello": greets and closes) or one registered from
 * Swift (FactoryRegistry.register). Any thread.
 * @param name the registered name
 * @param parameters NULL, "" or "key=value,key=value"
 * @param out receives the factory; free it with twine_factory_free (listeners keep
 *   what they use alive)
 * @return TWINE_OK; TWINE_ENOTFOUND for an unknown name; TWINE_EINVAL for unknown or
 *   malformed parameters
 */
twine_status twine_factory_new(const char *name, const char *parameters, twine_factory **out);

/**
 * Makes a factory whose protocol is written in C: each connection calls `callbacks`.
 * The factory counts connections and bytes like any other and may serve reactors on
 * several threads (then the callbacks run on each, at once: `context` must allow it).
 * Any thread.
 * @param callbacks copied; the host's struct may go once this returns
 * @param context passed to every callback; the host keeps it alive while the factory
 *   or any of its connections lives
 * @param out receives the factory; free it with twine_factory_free
 * @return TWINE_OK; TWINE_EINVAL (NULL callbacks or out, unknown framing, a
 *   max_frame_length above 2^31 - 1)
 */
twine_status twine_factory_new_callbacks(const twine_protocol_callbacks *callbacks, void *context,
                                         twine_factory **out);

/**
 * Listens where the endpoint string `endpoint` says (Twisted's syntax:
 * "tcp:8025:interface=127.0.0.1", "unix:/run/echo.sock:mode=660",
 * "ssl:8443:privateKey=key.pem:certKey=cert.pem", "systemd:domain=INET:index=0",
 * "haproxy:tcp:8025"; not "udp:") and serves each connection with a protocol from
 * `factory`, until the reactor is freed. Reactor's thread only.
 * @param reactor the reactor (borrowed)
 * @param factory the factory (borrowed; the listener keeps what it uses alive)
 * @param endpoint the endpoint string (borrowed)
 * @param bound_port receives the bound port (0 for UNIX-domain sockets) unless NULL
 * @return TWINE_OK; TWINE_EINVAL (a bad string: twine_last_error names the bad part; a
 *   bad handle); TWINE_EADDRINUSE; TWINE_ESOCKET (twine_last_errno says why)
 */
twine_status twine_listen_endpoint(twine_reactor *reactor, twine_factory *factory, const char *endpoint,
                                   int *bound_port);

/**
 * Queues `length` bytes for the peer, as they are (no framing): sent at once when the
 * socket takes them, the rest copied and sent in order. Connection's thread only.
 * @param data borrowed; may be reused once this returns
 * @return TWINE_OK (also when the connection is already closing: the bytes are dropped);
 *   TWINE_EINVAL (not a live connection, NULL data with a length); TWINE_EWRONGTHREAD
 */
twine_status twine_connection_write(twine_connection *connection, const void *data, size_t length);

/**
 * Sends one frame in the factory's framing: the line and its delimiter, a netstring, or
 * a 4-byte length and the bytes; with TWINE_FRAMING_RAW, the same as twine_connection_write.
 * Connection's thread only.
 * @return TWINE_OK; TWINE_EINVAL (not live, or too long for an int32 prefix); TWINE_EWRONGTHREAD
 */
twine_status twine_connection_send_frame(twine_connection *connection, const void *data, size_t length);

/**
 * Closes the connection once every queued byte is written (a FIN, never a reset);
 * nothing more is delivered. Connection's thread only.
 * @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD
 */
twine_status twine_connection_lose_connection(twine_connection *connection);

/** Closes the connection at once, dropping what is queued (a reset). Connection's thread only.
    @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD */
twine_status twine_connection_abort(twine_connection *connection);

/** Stops delivering input (between two frames) until twine_connection_resume; the socket is
    not read meanwhile. Connection's thread only. @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD */
twine_status twine_connection_pause(twine_connection *connection);

/** Delivers input again after twine_connection_pause. Connection's thread only.
    @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD */
twine_status twine_connection_resume(twine_connection *connection);

/**
 * The peer's address. Connection's thread only.
 * @param host receives the numeric host ("127.0.0.1", "::1") or UNIX path, NUL-terminated
 * @param host_size the size of `host`; 64 holds any IP address
 * @param port receives the port unless NULL (0 for UNIX-domain sockets)
 * @return TWINE_OK; TWINE_EINVAL (not live, NULL host, or `host_size` too small);
 *   TWINE_EWRONGTHREAD
 */
twine_status twine_connection_peer(twine_connection *connection, char *host, size_t host_size, int *port);

/**
 * Bytes queued for the peer and not yet taken by the kernel. Connection's thread only.
 * @param out receives the count
 * @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD
 */
twine_status twine_connection_pending_bytes(twine_connection *connection, size_t *out);

/**
 * Keeps one pointer of the host's with the connection (read it back with
 * twine_connection_get_data). Connection's thread only.
 * @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD
 */
twine_status twine_connection_set_data(twine_connection *connection, void *data);

/**
 * The pointer given to twine_connection_set_data (NULL before). Connection's thread only.
 * @return the pointer; NULL also for a connection that is not live or another thread
 */
void *twine_connection_get_data(twine_connection *connection);

/**
 * Lets go of a factory handle (listeners and connections using the factory keep it alive).
 * Any thread.
 * @param factory the factory; NULL is a no-op. The handle is dead afterwards.
 * @return TWINE_OK; TWINE_EINVAL (not a live factory)
 */
twine_status twine_factory_free(twine_factory *factory);

/**
 * Reads a factory's counters (summed over every reactor and thread using it). Any thread.
 * @param out receives the counters
 * @return TWINE_OK; TWINE_EINVAL
 */
twine_status twine_factory_counters(const twine_factory *factory, twine_counters *out);

/**
 * Listens on `interface`:`port` and serves each connection with a protocol from
 * `factory` until the reactor is freed (no handle: see twine_listener_new).
 * Reactor's thread only.
 * @param interface NULL or "" = every IPv4 interface; otherwise a numeric IPv4 or IPv6 address
 * @param port 0..65535; 0 picks a free one
 * @param bound_port receives the bound port unless NULL
 * @return TWINE_OK; TWINE_EINVAL (bad port, interface or handle); TWINE_EADDRINUSE;
 *   TWINE_ESOCKET (see twine_last_errno); TWINE_EWRONGTHREAD
 */
twine_status twine_listen(twine_reactor *reactor, twine_factory *factory, const char *interface, int port,
                          int *bound_port);

/**
 * Like twine_listen, and returns the listener, which can be paused, resumed and freed
 * on its own. Reactor's thread only.
 * @param out receives the listener; free it with twine_listener_free (or it goes with
 *   the reactor: twine_reactor_free frees it and its handle dies)
 * @return as twine_listen
 */
twine_status twine_listener_new(twine_reactor *reactor, twine_factory *factory, const char *interface, int port,
                                twine_listener **out);

/**
 * Listens on `fd`, a TCP or UNIX-domain stream socket the host (or a supervisor such as
 * systemd) already bound; one not listening yet is put in listening mode. On TWINE_OK the
 * socket is Twine's (made non-blocking and close-on-exec; closed by twine_listener_free or
 * twine_reactor_free); on any error nothing was done and it is still yours.
 * Reactor's thread only.
 * @param out receives the listener
 * @return TWINE_OK; TWINE_EINVAL (bad handle, fd not open); TWINE_ESOCKET (not a bound
 *   stream socket; see twine_last_errno); TWINE_EBUSY (a Twine connection owns it)
 */
twine_status twine_listen_fd(twine_reactor *reactor, twine_factory *factory, int fd, twine_listener **out);

/**
 * Stops accepting; peers wait in the kernel's backlog until twine_listener_resume.
 * Open connections are untouched. Pausing a paused listener does nothing.
 * Reactor's thread only.
 * @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD
 */
twine_status twine_listener_pause(twine_listener *listener);

/** Accepts again after twine_listener_pause. Reactor's thread only. @return as twine_listener_pause */
twine_status twine_listener_resume(twine_listener *listener);

/**
 * Reads a listener's figures. Reactor's thread only.
 * @param out receives the figures
 * @return TWINE_OK; TWINE_EINVAL; TWINE_EWRONGTHREAD
 */
twine_status twine_listener_get_stats(twine_listener *listener, twine_listener_stats *out);

/**
 * Closes the listening socket and frees the listener; connections it accepted stay open.
 * Reactor's thread only.
 * @param listener the listener; NULL is a no-op. The handle is dead afterwards.
 * @return TWINE_OK; TWINE_EINVAL (not live, or its reactor was freed); TWINE_EWRONGTHREAD
 */
twine_status twine_listener_free(twine_listener *listener);

/**
 * Serves `fd`, a stream socket the host accepted or connected, with a protocol from
 * `factory`. On TWINE_OK the socket is Twine's, even when the factory refuses it (then
 * it is closed at once and counted): Twine makes it non-blocking and closes it when the
 * connection ends; do not read, write or close it any more. On any error nothing was
 * done and `fd` is still yours. Reactor's thread only.
 * @return TWINE_OK; TWINE_EINVAL (bad handle or fd); TWINE_ESOCKET (not a connected stream
 *   socket; see twine_last_errno); TWINE_EBUSY (Twine owns `fd` already: adopted or
 *   accepted before and not closed; that connection is left alone)
 */
twine_status twine_adopt_fd(twine_reactor *reactor, twine_factory *factory, int fd);

/**
 * Serves `bev`, a connected socket bufferevent the host made on the reactor's base, with
 * a protocol from `factory`. Every byte passes through the bufferevent (its rate limits
 * and filters keep working); bytes already in its input are delivered first, bytes in
 * its output go out first. On TWINE_OK the bufferevent is Twine's, even when the factory
 * refuses it: Twine replaces its callbacks and frees it when the connection ends (the
 * socket closes with it if it was made with BEV_OPT_CLOSE_ON_FREE); do not use or free
 * it any more. On any error nothing was done and it is still yours.
 * Reactor's thread only.
 * @return TWINE_OK; TWINE_EINVAL (bad handle, NULL, another base, no socket, not
 *   connected); TWINE_EBUSY (Twine owns its socket already)
 */
twine_status twine_adopt_bufferevent(twine_reactor *reactor, twine_factory *factory, struct bufferevent *bev);

/**
 * Runs `fn(context)` on the reactor's thread, soon, in the order queued. Safe from any
 * thread. Every accepted call is called exactly once: on the loop, or, if the reactor is
 * freed first, by twine_reactor_free before it returns (on the freeing thread, with the
 * reactor handle already dead), so the host can always free `context`.
 * @param fn the function; called exactly once if this returns TWINE_OK, never otherwise
 * @param context passed to `fn`; the host's until `fn` has run
 * @return TWINE_OK; TWINE_EINVAL (NULL, or not a live reactor: freed, or never made);
 *   TWINE_ESHUTDOWN
 */
twine_status twine_call_from_thread(twine_reactor *reactor, twine_thread_fn fn, void *context);

/**
 * Like twine_call_from_thread, and tells the function which way it ends: `fn(context, 0)`
 * on the reactor's thread, or `fn(context, 1)` from twine_reactor_free when the reactor
 * was freed before it ran. Safe from any thread.
 * @return as twine_call_from_thread
 */
twine_status twine_call_from_thread_or_cancel(twine_reactor *reactor, twine_call_fn fn, void *context);

#ifdef __cplusplus
}
#endif

#endif /* TWINE_H */
