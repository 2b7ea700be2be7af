// Architecture guard for Stepgate (`pnpm check:shape`, run in CI after typecheck): no import cycles in
// services/stepgate/src or packages/*/src, and the server's imports point one way, down its layers.
//
// Layers of services/stepgate/src, lowest first. A folder may import its own layer or a lower one,
// never a higher one:
//   0  domain/ crypto/ log/ observability/ config/   types, errors, clock, key ring, logging, tracing,
//                                        the environment (read first, depends on nothing)
//   1  policy/
//   2  store/                                the only folder that knows SQL, tables, hot-store keys
//   3  limits/ audit/ grants/ factors/ stepup/ revocations/ traffic/ identity/ keys/ admin/  use cases: may import each other, never in a cycle
//   4  rpc/                                  handlers
//   5  server/                               composition root, gRPC server
//   6  files at the src root (main.ts, replica.ts, dev.ts, migrate.ts) and tools/: entry points
// test/, bench/ and *.test.ts files are outside the layer rules (cycles still count in *.test.ts).
//
// dependency-cruiser reads TypeScript through the compiler's JS API, which TypeScript 7 (native) does
// not ship: pnpm-workspace.yaml gives dependency-cruiser its own typescript 6.0.3 (packageExtensions)
// while the workspace compiles with 7. Without a parser it would skip every .ts file and report
// nothing, so refuse to run at all if the TypeScript it loads has no compiler API.
const { realpathSync } = require("node:fs");
const { createRequire } = require("node:module");
const { join } = require("node:path");

const cruiserRequire = createRequire(
  realpathSync(join(__dirname, "node_modules/dependency-cruiser/package.json")),
);
if (typeof cruiserRequire("typescript").createSourceFile !== "function") {
  throw new Error(
    "dependency-cruiser would load a TypeScript without the compiler API and skip every .ts file; " +
      "pnpm-workspace.yaml's packageExtensions must give it typescript 6.x",
  );
}

const src = "^services/stepgate/src/";
const tests = "\\.test\\.ts$";
const layers = [
  [`${src}(domain|crypto|log|observability|config)/`],
  [`${src}policy/`],
  [`${src}store/`],
  [`${src}(limits|audit|grants|factors|stepup|revocations|traffic|identity|keys|admin)/`],
  [`${src}rpc/`],
  [`${src}server/`],
  [`${src}[^/]+\\.ts$`, `${src}tools/`],
];
const entryPoints = [`${src}(main|replica|dev|migrate)\\.ts$`, `${src}tools/`];
/** The layers 0..n, as a list of path patterns. */
const upTo = (n) => layers.slice(0, n + 1).flat();
/** A rule: files of layer n (tests aside) import nothing in services/stepgate/src above layer n. */
const layerRule = (n, name, comment) => ({
  name,
  comment,
  severity: "error",
  from: { path: layers[n], pathNot: tests },
  to: { path: src, pathNot: upTo(n) },
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment:
        "A cycle makes its modules one unit: none can be loaded, tested or moved without the others, and " +
        "ESM evaluates one of them half-initialised. Type-only imports count: they couple the same way.",
      severity: "error",
      from: { path: ["^services/[^/]+/src/", "^packages/[^/]+/src/"] },
      to: { circular: true },
    },
    {
      name: "no-folder-cycles",
      comment:
        "Folders of the server must not depend on each other in a cycle either, even when no single chain " +
        "of files does (e.g. grants/ -> stepup/ -> grants/): use cases may import each other, one way only.",
      severity: "error",
      scope: "folder",
      from: { path: src },
      to: { path: src, circular: true },
    },
    {
      name: "not-in-a-layer",
      comment:
        "Every folder of services/stepgate/src belongs to a layer (see the top of this file); add a new " +
        "folder to `layers` so the direction rules can see it.",
      severity: "error",
      from: { path: src, pathNot: [...upTo(layers.length - 1), tests] },
      to: {},
    },
    layerRule(
      0,
      "base-imports-only-base",
      "Layer 0 (domain, crypto, log, observability, config) is what everything else is built on: it " +
        "imports only itself, so it can be used from anywhere without dragging policy or storage along.",
    ),
    layerRule(
      1,
      "policy-imports-only-base",
      "Layer 1 (policy) parses and interprets the policy file; it may use the base but knows nothing of " +
        "storage, use cases or transport.",
    ),
    layerRule(
      2,
      "store-imports-only-base-and-policy",
      "Layer 2 (store) is the only folder that knows SQL, table names and hot-store keys; it may import " +
        "layers 0 and 1 only. A store that imports a use case (or anything above) turns the dependency " +
        "around: use cases call the store, not the other way.",
    ),
    layerRule(
      3,
      "use-cases-import-nothing-above",
      "Layer 3 (limits, audit, grants, factors, stepup) holds the use cases: they may use each other and " +
        "everything below, but not handlers, the server or the composition at the src root, so they run " +
        "and test without gRPC.",
    ),
    layerRule(
      4,
      "rpc-imports-nothing-above",
      "Layer 4 (rpc) translates between gRPC messages and use cases; the server and the entry points " +
        "compose handlers, so handlers must not reach up into them (e.g. for fault injection).",
    ),
    layerRule(
      5,
      "server-imports-nothing-above",
      "Layer 5 (server) is the composition root; the files at the src root and tools/ start it, so it " +
        "must not import them.",
    ),
    {
      name: "rpc-only-from-server-or-entry-points",
      comment:
        "rpc/ is the transport edge: only rpc/ itself, server/ (which mounts the handlers) and the entry " +
        "points may import it. Layers 0-3 importing rpc/ would make domain code depend on gRPC.",
      severity: "error",
      from: { path: src, pathNot: [...layers[4], ...layers[5], ...entryPoints, tests] },
      to: { path: layers[4] },
    },
    {
      name: "server-only-from-entry-points",
      comment:
        "server/ is the composition root: only server/ itself and the entry points (main, replica, dev, " +
        "migrate, tools/) may import it; anything lower importing it creates a back-edge to the top.",
      severity: "error",
      from: { path: src, pathNot: [...layers[5], ...entryPoints, tests] },
      to: { path: layers[5] },
    },
    {
      name: "sql-and-hot-keys-stay-in-store",
      comment:
        "store/ is the only folder that knows SQL, table names and hot-store keys: its query helper " +
        "(store/sql.ts), table definitions (store/entities.ts, migrations) and the hot-store key scheme " +
        "(hot-keys.ts, wherever it lives) are for store/ alone; other folders call store/'s functions. " +
        "Not a layer rule: these imports point down, but they leak storage details upwards.",
      severity: "error",
      from: { path: src, pathNot: [`${src}store/`, tests] },
      to: { path: [`${src}store/(sql|entities)\\.ts$`, `${src}store/migrations/`, `${src}.*hot-keys\\.ts$`] },
    },
    {
      name: "database-drivers-only-in-store",
      comment:
        "pg, ioredis, kysely and MikroORM are store/'s business (that includes the migration lock in " +
        "store/database.ts); everything else reaches PostgreSQL and Redis through store/. The test " +
        "harness (packages/testkit) creates and drops test databases and key prefixes, so it may too.",
      severity: "error",
      from: {
        path: ["^services/[^/]+/src/", "^packages/[^/]+/src/"],
        pathNot: [`${src}store/`, "^packages/testkit/", tests],
      },
      to: {
        path: [
          "(^|/)node_modules/(@types/)?(pg|ioredis|kysely)/",
          "(^|/)node_modules/@mikro-orm/",
          "^(pg|ioredis|kysely)(/|$)",
          "^@mikro-orm/",
        ],
      },
    },
    {
      name: "embedded-postgres-only-in-store-or-dev",
      comment:
        "PGlite is a database too. The one exception: dev.ts (`pnpm dev`, never in production) starts an " +
        "embedded PostgreSQL when DATABASE_URL is unset and hands the replicas its URL.",
      severity: "error",
      from: {
        path: ["^services/[^/]+/src/", "^packages/[^/]+/src/"],
        pathNot: [`${src}store/`, `${src}dev\\.ts$`, tests],
      },
      to: { path: ["(^|/)node_modules/@electric-sql/pglite", "^@electric-sql/pglite"] },
    },
    {
      name: "packages-import-no-service",
      comment: "packages/* are libraries the server and its clients share; they must not import the server.",
      severity: "error",
      from: { path: "^packages/" },
      to: { path: "^services/" },
    },
    {
      name: "not-to-unresolvable",
      comment:
        "An import the cruiser cannot resolve is invisible to every rule above; fix the import or the " +
        "resolution options below rather than let it pass unchecked.",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    moduleSystems: ["es6", "cjs"],
    // Type-only imports are dependencies too: they tie the importer to the imported module's design.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    // Imports carry explicit .ts extensions; workspace packages export "./*": "./src/*.ts".
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".d.ts", ".js", ".mjs", ".cjs", ".json"],
      mainFields: ["module", "main", "types", "typings"],
    },
  },
};
