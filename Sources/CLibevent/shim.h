#ifndef TWINE_CLIBEVENT_SHIM_H
#define TWINE_CLIBEVENT_SHIM_H

// System headers first: Debian's event-config.h defines _GNU_SOURCE, and
// including <event2/...> before these fails with an fd_set module conflict.
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <event2/dns.h>

/// `EVUTIL_SOCKET_ERROR()`: the errno of the last socket call (a macro Swift cannot see).
static inline int twine_socket_error(void) { return EVUTIL_SOCKET_ERROR(); }

/// `accept4(2)`: glibc declares it only under _GNU_SOURCE, which this header cannot set
/// before the system headers; the raw system call sets errno just the same.
static inline int twine_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
  return (int)syscall(SYS_accept4, fd, address, length, flags);
}

/// `evtimer_new`: a timer event with no fd.
static inline struct event *twine_evtimer_new(struct event_base *base, event_callback_fn cb, void *arg) {
  return event_new(base, -1, 0, cb, arg);
}

/// `evsignal_new`: a persistent signal event.
static inline struct event *twine_evsignal_new(struct event_base *base, int signum, event_callback_fn cb, void *arg) {
  return event_new(base, signum, EV_SIGNAL | EV_PERSIST, cb, arg);
}

/// The most iovecs Twine asks `evbuffer_peek` / `evbuffer_reserve_space` for at once.
#define TWINE_MAX_IOVECS 8

#endif
