// Preloaded into the brokers the load harness starts (`node --expose-gc --import
// bench/load/gc-on-signal.mjs ...`): SIGUSR2 runs a full garbage collection, so
// the idle-memory figures can also be read without uncollected garbage in them.
// Plain JavaScript: stompbus runs from dist/ with no TypeScript loader.
process.on('SIGUSR2', () => globalThis.gc?.());
