// CountingEcho, CountingFactory and HelloHD live in TwineBuiltins (the C API registers them as "echo" and
// "hello", and libtwine must not link this tutorial module); re-exported so `import TutorialServers` still
// brings every tutorial server.
@_exported import TwineBuiltins
