import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { replicaNodeFlags, replicaRuntimeEnv } from "@stepgate/testkit/replica-process";

const dockerfile = readFileSync(join(import.meta.dirname, "../Dockerfile"), "utf8");

test("the image runs replicas with the V8 flags tests and the bench use", () => {
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
  assert.ok(cmd, "Dockerfile has a CMD in exec form");
  assert.deepEqual(JSON.parse(cmd), ["node", ...replicaNodeFlags, "services/stepgate/src/main.ts"]);
});

test("the image fills its compile cache with the same flags (the cache is per set of flags)", () => {
  assert.match(dockerfile, /^ENV NODE_COMPILE_CACHE=/m);
  assert.ok(
    dockerfile.includes(
      `RUN node ${replicaNodeFlags.join(" ")} services/stepgate/src/tools/warm-compile-cache.ts &&`,
    ),
    "the RUN that fills the cache names the CMD's flags",
  );
});

test("the image sets the environment tests and the bench give replicas", () => {
  for (const [name, value] of Object.entries(replicaRuntimeEnv)) {
    assert.match(dockerfile, new RegExp(`^ENV ${name}=${value}$`, "m"));
  }
});
