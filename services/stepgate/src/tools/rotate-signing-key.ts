import { parseArgs } from "node:util";
import { loadConfig } from "../config/config.ts";
import { parseKeyRing } from "../crypto/key-ring.ts";
import { randomToken } from "../crypto/random-id.ts";
import { createSigningKey } from "../grants/new-signing-key.ts";
import { keyLives, keyRetentionMs, nextGeneration } from "../grants/signing-key-lifecycle.ts";
import { signingKeyEvents } from "../grants/signing-key-rotation.ts";
import { describeError } from "../log/describe-error.ts";
import { loadPolicy } from "../policy/policy.ts";
import { openOperatorStores } from "../store/operator-stores.ts";

// `pnpm rotate-signing-key [--now [--retire-previous]]`, with the replicas' environment (DATABASE_URL,
// STEPGATE_ENCRYPTION_KEYS, STEPGATE_POLICY_FILE, STEPGATE_SIGNING_KEY_PUBLISH_LEAD_S, ...).
// Creates the next grant-signing key, published at once and signing after the publish lead, unless
// a next key is waiting already. `--now`: the new key signs at once (an emergency, e.g. a leaked key;
// verifiers fetch it when they first meet its kid). `--retire-previous` (with --now): every other key
// is retired at once, so every grant they signed that has not expired fails, in CheckGrant and
// offline alike. Prints what it did, by kid; never key material.
const usage = "usage: pnpm rotate-signing-key [--now [--retire-previous]]\n";
const iso = (ms: number) => new Date(ms).toISOString();
const say = (line: string) => process.stdout.write(`${line}\n`);

let args: { now: boolean; retirePrevious: boolean };
try {
  const { values } = parseArgs({
    options: {
      now: { type: "boolean", default: false },
      "retire-previous": { type: "boolean", default: false },
    },
  });
  args = { now: values.now, retirePrevious: values["retire-previous"] };
  if (args.retirePrevious && !args.now) throw new Error("--retire-previous needs --now");
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n${usage}`);
  process.exit(2);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (error) {
  process.stderr.write(`rotate-signing-key: invalid configuration\n${(error as Error).message}\n`);
  process.exit(2);
}
const keyRing = parseKeyRing(config.encryptionKeys, config.encryptionKeyId);
const retentionMs = keyRetentionMs(loadPolicy(config.policyFile));
const { publishLeadMs } = config.signingKeys;
const d = config.dependencies;

const stores = await openOperatorStores({
  databaseUrl: config.databaseUrl,
  postgres: {
    callTimeoutMs: d.postgresTimeoutMs,
    failureThreshold: d.breakerFailures,
    halfOpenAfterMs: d.breakerHalfOpenMs,
  },
});
try {
  if (stores.migrated.length > 0) say(`applied database migrations ${stores.migrated.join(", ")}`);
  const { signingKeys: store, audit } = stores;
  const record = (type: string, details: Record<string, unknown>) =>
    audit.append([
      { id: randomToken(), type, caller: "operator", replica: "rotate-signing-key", details, at: new Date() },
    ]);

  // Another replica or operator may take the generation first: read again and decide again.
  let done = false;
  for (let attempt = 0; attempt < 3 && !done; attempt++) {
    const now = Date.now();
    const lives = keyLives(await store.list(), now, retentionMs);
    const waiting = lives.find((l) => l.state === "next");
    if (waiting !== undefined && !args.now) {
      say(
        `next signing key ${waiting.key.kid} is published already and signs from ${iso(waiting.key.signsFrom)}`,
      );
      say("nothing created");
      done = true;
      break;
    }
    const signsFrom = args.now || lives.length === 0 ? now : now + publishLeadMs;
    const generation = nextGeneration(lives.map((l) => l.key));
    const created = await createSigningKey({ store, keyRing }, { generation, signsFrom, now });
    if (created === undefined) continue;
    done = true;
    await record(signingKeyEvents.created, {
      kid: created.kid,
      signs_from: iso(signsFrom),
      by: args.now ? "command --now" : "command",
    });
    say(
      `created signing key ${created.kid} (generation ${generation}), published now, signs from ${iso(signsFrom)}`,
    );
    const current = lives.find((l) => l.state === "current");
    if (current !== undefined && !args.retirePrevious) {
      say(
        `signing key ${current.key.kid} stops signing then and stays published until ${iso(signsFrom + retentionMs)}`,
      );
    }
    if (waiting !== undefined && !args.retirePrevious) {
      say(`next signing key ${waiting.key.kid} still takes over at ${iso(waiting.key.signsFrom)}`);
    }
    if (args.retirePrevious) {
      for (const life of lives) {
        if (life.state === "retired" || !(await store.retire(life.key.kid, now))) continue;
        await record(signingKeyEvents.retired, { kid: life.key.kid, by: "command --retire-previous" });
        say(
          `retired signing key ${life.key.kid}: grants it signed now fail CheckGrant and offline verification`,
        );
      }
    }
  }
  if (!done) {
    process.stderr.write(
      "rotate-signing-key: other replicas kept creating keys; nothing created, try again\n",
    );
    process.exitCode = 1;
  }
} catch (error) {
  process.stderr.write(`rotate-signing-key: failed: ${JSON.stringify(describeError(error))}\n`);
  process.exitCode = 1;
} finally {
  await stores.close();
}
