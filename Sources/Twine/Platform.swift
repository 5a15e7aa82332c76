// The one place that says where Twine builds (Package.swift cannot declare "Linux only").
#if !os(Linux)
  #error("Twine builds on Linux only: it imports Glibc and uses eventfd, SO_PEERCRED and epoll (through libevent).")
#endif
