// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

// Linux only: Twine imports Glibc and uses eventfd, SO_PEERCRED and epoll (through libevent). SwiftPM cannot
// declare "Linux only", so no Apple platform is listed, and Sources/Twine/Platform.swift stops any other
// build with an #error that says so.
let package = Package(
  name: "Twine",
  products: [
    .library(name: "Twine", targets: ["Twine"]),
    .library(name: "TwineCore", targets: ["TwineCore"]),
    .library(name: "TwineTesting", targets: ["TwineTesting"]),
    .library(name: "TwineProtocols", targets: ["TwineProtocols"]),
    .library(name: "TwineAsync", targets: ["TwineAsync"]),
    .library(name: "TwineMetrics", targets: ["TwineMetrics"]),
    .executable(name: "twine", targets: ["twine"]),
    // The C API (twine.h) as one static archive; `make install` links libtwine.so from it.
    .library(name: "TwineCAPI", type: .static, targets: ["TwineC"]),
    // A reactor as a swift-service-lifecycle Service; a module of its own, so Twine does not depend on it.
    .library(name: "TwineServiceLifecycle", targets: ["TwineServiceLifecycle"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
  ],
  targets: [
    .systemLibrary(
      name: "CLibevent",
      pkgConfig: "libevent_core libevent_extra libevent_pthreads",
      providers: [.apt(["libevent-dev"])]
    ),
    // libevent's OpenSSL bufferevents: linked by the module map (event_openssl, ssl, crypto), not by
    // `pkg-config libevent_openssl`, whose `Requires: libevent` would load the whole libevent a second time.
    .systemLibrary(name: "CLibeventOpenSSL", pkgConfig: "openssl", providers: [.apt(["libevent-dev", "libssl-dev"])]),
    .target(name: "TwineCore", swiftSettings: strict),
    .target(
      name: "Twine",
      dependencies: ["CLibevent", "CLibeventOpenSSL", "TwineCore", .product(name: "Logging", package: "swift-log")],
      swiftSettings: strict),
    .target(name: "TwineTesting", dependencies: ["TwineCore"], swiftSettings: strict),
    // Async connections, listeners and timers on the reactor (the reactor as the tasks' executor).
    .target(name: "TwineAsync", dependencies: ["Twine"], swiftSettings: strict),
    // Twine's counters through swift-metrics, apart from Twine so that the core links no metrics API;
    // the backend (Prometheus in the `twine` CLI) is the program's choice.
    .target(
      name: "TwineMetrics", dependencies: ["Twine", .product(name: "CoreMetrics", package: "swift-metrics")],
      swiftSettings: strict),
    .target(name: "TwineProtocols", dependencies: ["TwineCore"], swiftSettings: strict),
    // The factories the C API registers by name ("echo": CountingEcho, "hello": HelloHD), apart from the
    // tutorial's servers so that libtwine does not link TutorialServers (the chat, TwineProtocols).
    .target(name: "TwineBuiltins", dependencies: ["TwineCore"], swiftSettings: strict),
    .target(
      name: "TutorialServers", dependencies: ["TwineCore", "TwineProtocols", "TwineBuiltins", "TwineAsync"],
      swiftSettings: strict),
    .target(name: "CTwineAPI", exclude: ["twine.pc.in", "twine-static.pc.in", "exports.map", "install.sh"]),
    .target(
      name: "TwineC",
      dependencies: [
        "CTwineAPI", "Twine", "TwineBuiltins", "TwineProtocols", "CLibevent",
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict),
    .executableTarget(
      name: "twine",
      dependencies: [
        "Twine", "TutorialServers", "TwineProtocols", "TwineAsync", "TwineMetrics",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ],
      swiftSettings: strict
    ),
    .executableTarget(name: "echo-server", dependencies: ["Twine", "TutorialServers"], swiftSettings: strict),
    .executableTarget(name: "hello-server", dependencies: ["Twine"], swiftSettings: strict),
    .testTarget(
      name: "TutorialServersTests", dependencies: ["TutorialServers", "TwineTesting"], swiftSettings: strict),
    .testTarget(name: "TwineTestingTests", dependencies: ["TwineTesting"], swiftSettings: strict),
    .testTarget(name: "TwineCoreTests", dependencies: ["TwineCore"], swiftSettings: strict),
    .testTarget(
      name: "TwineTests",
      dependencies: ["Twine", "TutorialServers", "CLibevent", "CLibeventOpenSSL", "LoopbackTestSupport"],
      swiftSettings: strict),
    .testTarget(
      name: "EmbeddingTests",
      dependencies: [
        "Twine", "TutorialServers", "TwineBuiltins", "CLibevent", "TwineC", "CTwineAPI", "LoopbackTestSupport",
      ],
      swiftSettings: strict),
    .testTarget(name: "CLITests", dependencies: [], swiftSettings: strict),
    // Loop and client helpers the loopback test targets share (a library: test targets cannot share sources).
    .target(
      name: "LoopbackTestSupport", dependencies: ["Twine"], path: "Tests/LoopbackTestSupport", swiftSettings: strict),
    .testTarget(
      name: "TwineAsyncTests",
      dependencies: ["TwineAsync", "Twine", "TutorialServers", "TwineTesting", "LoopbackTestSupport"],
      swiftSettings: strict),
    .testTarget(
      name: "PolicyTests", dependencies: ["TwineProtocols", "TwineTesting", "Twine", "TutorialServers"],
      swiftSettings: strict),
    .target(
      name: "TwineServiceLifecycle",
      dependencies: [
        "Twine", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict),
    .testTarget(
      name: "TwineServiceLifecycleTests",
      dependencies: [
        "TwineServiceLifecycle", "Twine", "TutorialServers",
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict),
    .testTarget(
      name: "TwineProtocolsTests", dependencies: ["TwineProtocols", "TwineTesting", "Twine", "CLibevent"],
      swiftSettings: strict),
  ]
)
