// Preloaded into a benchmarked server started with --expose-gc: SIGUSR2 runs a full garbage
// collection, so a memory figure counts what is held, not garbage not yet collected.
process.on('SIGUSR2', () => globalThis.gc?.());
