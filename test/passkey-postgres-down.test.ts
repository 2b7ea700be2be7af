// PostgreSQL down, Redis up: a passkey answers from the encrypted factor cache (its public key,
// counter and flags), its counter is claimed in Redis and queued for PostgreSQL, a clone is caught
// during the outage, and PostgreSQL learns the counter once it is back.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { type OwnPostgres, startOwnPostgres } from "@stepgate/testkit/own-postgres";
import { expectFailure } from "./support/errors.ts";
import { newSession, newSubject } from "./support/flows.ts";
import {
  enrolPasskey,
  passkeyChallenge,
  passkeyPolicy,
  paymentsParty,
  verifyPasskey,
} from "./support/passkeys.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

describe("passkeys with PostgreSQL down", () => {
  let postgres: OwnPostgres;
  let h: Harness;
  before(async () => {
    postgres = await startOwnPostgres();
    h = await startStepgate({
      databaseServerUrl: postgres.url,
      healthIntervalMs: 100,
      policy: passkeyPolicy,
    });
  });
  after(async () => {
    await postgres.start().catch(() => {});
    await h.close();
    await postgres.destroy();
  });

  /** Waits (at most 10 s) for a log line written after `from` that holds every one of `parts`. */
  const logged = async (from: number, ...parts: string[]) => {
    for (let i = 0; i < 200; i++) {
      if (h.logs.slice(from).some((l) => parts.every((p) => l.includes(p)))) return;
      await sleep(50);
    }
    assert.fail(`no log line with ${parts.join(", ")}`);
  };
  const action = "payments.transfer";

  it("verifies from the factor cache, refuses a clone during the outage, and PostgreSQL learns the counter", async () => {
    const subject = newSubject();
    const { authenticator, factorId } = await enrolPasskey(h.client, subject, paymentsParty);
    // A StepUp while PostgreSQL is up fills the cache with the passkey.
    await h.client.stepUp.stepUp({ subject, sessionId: newSession(), action });
    const from = h.logs.length;
    await postgres.stop("SIGQUIT");
    await logged(from, '"dependency down"', '"postgresql"');

    const first = await passkeyChallenge(h.client, subject, newSession(), action, paymentsParty);
    const verified = await verifyPasskey(
      h.client,
      first.request,
      JSON.stringify(authenticator.assert(first.ceremony)),
    );
    assert.equal(verified.grant?.acr, "aal3");
    const counter = authenticator.counter;
    const offline = await h.client.verifyGrant(verified.grant?.token ?? "", {
      action,
      subject,
      sessionId: first.request.sessionId,
    });
    assert.equal(offline.fid, factorId);

    // The clone's counter lags: Redis's copy of the counter refuses it though PostgreSQL is down.
    const clone = await passkeyChallenge(h.client, subject, newSession(), action, paymentsParty);
    authenticator.counter = counter - 1;
    const refused = await expectFailure(
      verifyPasskey(h.client, clone.request, JSON.stringify(authenticator.assert(clone.ceremony))),
      Code.PermissionDenied,
      "PASSKEY_REFUSED",
    );
    assert.equal(refused.metadata.refusal, "counter_regressed");

    // Once a clone is seen, the passkey answers no more, the genuine authenticator included.
    authenticator.counter = counter + 5;
    const next = await passkeyChallenge(h.client, subject, newSession(), action, paymentsParty);
    const retired = await expectFailure(
      verifyPasskey(h.client, next.request, JSON.stringify(authenticator.assert(next.ceremony))),
      Code.PermissionDenied,
      "PASSKEY_REFUSED",
    );
    assert.equal(retired.metadata.refusal, "counter_regressed");

    const back = h.logs.length;
    await postgres.start();
    await logged(back, '"dependency up"', '"postgresql"');
    await h.flushAudit();
    const [credential] = await h.db.query<{ sign_count: string; cloned: boolean }>(
      "select sign_count, cloned_at is not null as cloned from passkey_credentials where factor_id = $1",
      [factorId],
    );
    assert.equal(Number(credential?.sign_count), counter, "PostgreSQL learnt the counter accepted");
    assert.equal(credential?.cloned, true, "PostgreSQL learnt the clone from the audit trail");
    const events = await h.db.query<{ type: string }>(
      `select type from audit_events where subject = $1
       and type in ('verify.succeeded', 'passkey.counter_claimed', 'passkey.counter_regressed')`,
      [subject],
    );
    assert.deepEqual(events.map((e) => e.type).sort(), [
      "passkey.counter_claimed",
      "passkey.counter_regressed",
      "passkey.counter_regressed",
      "verify.succeeded",
    ]);
    // The flagged passkey left the subject's factors: Redis losing its data changes nothing.
    await h.redis?.clean();
    const [factor] = (await h.client.factors.listFactors({ subject })).factors;
    assert.equal(factor?.flagged, true);
    const res = await h.client.stepUp.stepUp({ subject, sessionId: newSession(), action });
    assert.equal(res.outcome.case, "enrollmentRequired");
  });
});
