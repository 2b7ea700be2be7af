import { parseArgs } from "node:util";
import { loadConfig } from "../config/config.ts";
import { parseKeyRing } from "../crypto/key-ring.ts";
import { randomToken } from "../crypto/random-id.ts";
import { createRotateSigningKey, type Rotation } from "../grants/rotate-signing-key.ts";
import { keyRetentionMs } from "../grants/signing-key-lifecycle.ts";
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
  const rotate = createRotateSigningKey({
    ...{ store, keyRing, retentionMs, publishLeadMs },
    clock: Date.now,
    record: (type, details) =>
      audit.append([
        {
          id: randomToken(),
          type,
          caller: "operator",
          replica: "rotate-signing-key",
          details,
          at: new Date(),
        },
      ]),
  });
  const rotation = await rotate(args);
  for (const line of rotationLines(rotation, args.retirePrevious)) say(line);
  if (rotation.contended) {
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

/** What the rotation did, one line each, as this command has always printed it. */
function rotationLines(rotation: Rotation, retirePrevious: boolean): string[] {
  const { created, waiting, previous } = rotation;
  if (created === undefined) {
    if (waiting === undefined) return [];
    return [
      `next signing key ${waiting.kid} is published already and signs from ${iso(waiting.signsFrom)}`,
      "nothing created",
    ];
  }
  const lines = [
    `created signing key ${created.kid} (generation ${created.generation}), published now, signs from ${iso(created.signsFrom)}`,
  ];
  if (previous !== undefined && !retirePrevious)
    lines.push(
      `signing key ${previous.kid} stops signing then and stays published until ${iso(previous.publishedUntil)}`,
    );
  if (waiting !== undefined && !retirePrevious)
    lines.push(`next signing key ${waiting.kid} still takes over at ${iso(waiting.signsFrom)}`);
  for (const kid of rotation.retired)
    lines.push(`retired signing key ${kid}: grants it signed now fail CheckGrant and offline verification`);
  return lines;
}
