// Loads every module a replica runs and exits 0, so Node's compile cache (NODE_COMPILE_CACHE) holds
// them all: the image's build runs it (Dockerfile), and so do the benchmarks and tests before they
// start replicas. A replica started with the cache loads no TypeScript stripper and starts faster.
// Run it with the replica's V8 flags: the cache is kept per set of flags.
await import("@stepgate/telemetry");
await import("../replica.ts");
await import("../server/run.ts");
