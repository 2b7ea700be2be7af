// Grant-signing keys rotating under load across two replica processes: one rotation by the operator
// command, one by the schedule. Every grant issued meanwhile must verify offline (a verifier fed by
// GetJwks, refreshing faster than the publish lead) and online (CheckGrant). Then an emergency
// rotation retires the old keys: their grants fail both ways, and the JWKS drops them.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { createGrantVerifier, GrantError, type Jwk } from "@stepgate/grant";
import { totpCode } from "@stepgate/server/factors/totp";
import { seedSubjects } from "@stepgate/testkit/seed-subjects";
import { type Cluster, startCluster } from "./support/cluster.ts";
import { failure } from "./support/errors.ts";
import { newKeyRing, writePolicy } from "./support/stepgate.ts";

const tool = join(import.meta.dirname, "../services/stepgate/src/tools/rotate-signing-key.ts");
const action = "payments.transfer";
const expect = { audience: "payments", action };
const leadS = 2;
// Far longer than the run up to the command's rotation, so the command's is the first one.
const rotateEveryS = 15;
const kidOf = (token: string) =>
  (JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString("utf8")) as { kid: string }).kid;

describe("signing-key rotation across two replicas", () => {
  let cluster: Cluster;
  let client: StepgateClient;
  let perReplica: StepgateClient[];
  const env = {
    STEPGATE_POLICY_FILE: writePolicy(),
    STEPGATE_INSECURE_DEV: "1",
    STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
    STEPGATE_SIGNING_KEY_PUBLISH_LEAD_S: String(leadS),
    STEPGATE_SIGNING_KEY_ROTATE_EVERY_S: String(rotateEveryS),
    STEPGATE_SIGNING_KEY_REFRESH_MS: "200",
  };
  /** Runs the operator command with the replicas' configuration; returns what it printed. */
  const rotate = async (...args: string[]) => {
    const { stdout } = await promisify(execFile)(process.execPath, [tool, ...args], {
      env: { PATH: process.env.PATH, DATABASE_URL: cluster.db.url, ...env },
      timeout: 30_000,
    });
    process.stdout.write(`${stdout.trimEnd().replace(/^/gm, "# rotate-signing-key: ")}\n`);
    return stdout;
  };
  // The published keys as a verifier reads them: any field the answer holds is imported as it is.
  const jwksOf = async (c: StepgateClient): Promise<Jwk[]> =>
    (await c.stepUp.getJwks({})).keys.map(
      ({ kty, crv, x, kid, alg, use }) => ({ kty, crv, x, kid, alg, use }) as Jwk,
    );
  const storedKeys = () =>
    cluster.db.query<{ kid: string; retired: boolean }>(
      "select kid, retired_at is not null as retired from signing_keys order by generation",
    );
  // Realistic verifier settings, scaled down: the key set is refetched well within the publish lead.
  const verifier = createGrantVerifier({
    keys: () => jwksOf(client),
    issuer: "stepgate",
    maxKeySetAgeMs: 1000,
    minRefetchIntervalMs: 500,
  });

  before(async () => {
    cluster = await startCluster({ size: 2, env });
    client = createStepgateClient({ target: cluster.target(), caller: "payments" });
    perReplica = cluster.replicas.map((r) => createStepgateClient({ target: r.address, caller: "payments" }));
  });
  after(async () => {
    for (const c of [client, ...perReplica]) c.close();
    await cluster.close();
  });

  it("loses no grant over two rotations; an emergency rotation retires the old keys everywhere", async () => {
    // Sessions stepped up once; each StepUp on them then answers with a fresh grant.
    const sessions = await Promise.all(
      (await seedSubjects(client, 4)).map(async (s) => {
        const sessionId = `s-${randomBytes(6).toString("hex")}`;
        const res = await client.stepUp.stepUp({ subject: s.subject, sessionId, action });
        assert.equal(res.outcome.case, "challenge");
        const code = totpCode(s.secret, Math.floor(Date.now() / 1000) + 30);
        await client.stepUp.verify({
          challengeId: res.outcome.value.challengeId,
          ...{ subject: s.subject, sessionId, action },
          proof: { kind: { case: "totpCode", value: code } },
          idempotencyKey: randomBytes(12).toString("hex"),
        });
        return { subject: s.subject, sessionId };
      }),
    );
    const firstKid = (await storedKeys())[0]?.kid;
    const grantsByKid = new Map<string, string[]>();
    const rejections: string[] = [];
    let grants = 0;
    let largestJwks = 0;
    let stop = false;

    const issueAndVerify = async (session: { subject: string; sessionId: string }) => {
      const res = await client.stepUp.stepUp({ ...session, action });
      assert.equal(res.outcome.case, "grant");
      const token = res.outcome.value.token;
      grants += 1;
      const kid = kidOf(token);
      grantsByKid.set(kid, [...(grantsByKid.get(kid) ?? []), token].slice(-3));
      await verifier.verify(token, expect).catch((e: unknown) => rejections.push(`offline ${kid}: ${e}`));
      await client.stepUp
        .checkGrant({ token, action })
        .catch((e: unknown) => rejections.push(`online ${kid}: ${e}`));
    };
    const load = Promise.all(
      sessions.map(async (session) => {
        while (!stop) {
          await issueAndVerify(session);
          await sleep(20);
        }
      }),
    );
    const watchJwks = (async () => {
      while (!stop) {
        for (const c of perReplica) {
          const kids = (await jwksOf(c)).map((k) => k.kid);
          const stored = await storedKeys();
          largestJwks = Math.max(largestJwks, kids.length);
          for (const kid of kids) {
            assert.ok(
              stored.some((k) => k.kid === kid && !k.retired),
              `a published kid is stored and not retired`,
            );
          }
        }
        await sleep(250);
      }
    })();

    try {
      await sleep(500);
      const commanded = await rotate();
      assert.match(commanded, /created signing key \S+ \(generation 2\)/);
      // The schedule adds the third key once the second has signed for rotateEveryS; bounded wait.
      const deadline = Date.now() + (rotateEveryS + 3 * leadS + 10) * 1000;
      while (grantsByKid.size < 3 && Date.now() < deadline) await sleep(200);
      await sleep(1000);
    } finally {
      stop = true;
      await Promise.all([load, watchJwks]);
    }
    process.stdout.write(
      `# rotation: ${grants} grants over ${grantsByKid.size} keys, ${rejections.length} rejected, largest JWKS ${largestJwks}\n`,
    );
    assert.deepEqual(rejections, [], "no grant rejected offline or online while keys rotated");
    assert.equal(grantsByKid.size, 3, "grants were signed by the first key and by both rotated ones");
    assert.ok(largestJwks <= 3, "the JWKS held next, current and previous keys only");
    const stored = await storedKeys();
    assert.equal(stored.length, 3, "each rotation created exactly one key");
    const audited = await cluster.db.query<{ type: string; by: string }>(
      "select type, details->>'by' as by from audit_events where type like 'signing_key.%' order by id",
    );
    assert.deepEqual(
      audited.map((a) => `${a.type} ${a.by}`),
      ["signing_key.created command", "signing_key.created schedule"],
    );

    // Emergency: a new key signs at once and every other one retires at once.
    const lastKid = stored[2]?.kid as string;
    const oldGrants = [...(grantsByKid.get(firstKid as string) ?? []), ...(grantsByKid.get(lastKid) ?? [])];
    const emergency = await rotate("--now", "--retire-previous");
    const newKid = /created signing key (\S+)/.exec(emergency)?.[1];
    assert.ok(newKid);
    const retiredKids = stored.map((k) => k.kid);
    for (let i = 0; i < 50; i++) {
      const views = await Promise.all(perReplica.map(jwksOf));
      if (views.every((keys) => keys.length === 1 && keys[0]?.kid === newKid)) break;
      await sleep(100);
    }
    for (const c of perReplica) {
      assert.deepEqual(
        (await jwksOf(c)).map((k) => k.kid),
        [newKid],
        "each replica publishes the new key only",
      );
    }
    for (const token of oldGrants) {
      const online = await failure(client.stepUp.checkGrant({ token, action }));
      assert.equal(online.reason, "GRANT_INVALID", "CheckGrant refuses a retired key's grant");
    }
    // Offline: once the verifier has refetched the key set (in the background, when it is older than
    // maxKeySetAgeMs), they fail too. Bounded: a few refetch periods.
    const refusedOffline = async (token: string) => {
      for (let i = 0; i < 25; i++) {
        const refused = await verifier.verify(token, expect).then(
          () => false,
          (e: unknown) => e instanceof GrantError && e.reason === "GRANT_INVALID",
        );
        if (refused) return true;
        await sleep(200);
      }
      return false;
    };
    for (const token of oldGrants) {
      assert.ok(await refusedOffline(token), "offline verification refuses a retired key's grant");
    }
    // New grants carry the new key and verify both ways.
    const session = sessions[0] as { subject: string; sessionId: string };
    const res = await client.stepUp.stepUp({ ...session, action });
    assert.equal(res.outcome.case, "grant");
    assert.equal(kidOf(res.outcome.value.token), newKid);
    assert.ok(!retiredKids.includes(newKid));
    await verifier.verify(res.outcome.value.token, expect);
    await client.stepUp.checkGrant({ token: res.outcome.value.token, action });
  });
});
