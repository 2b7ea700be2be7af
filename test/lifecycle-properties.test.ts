// Properties over random interleavings of factor changes and step-ups, through the real service:
// no factor becomes active, and no grant is issued, without the authorisation the policy demands
// at that moment; every grant StepUp or Verify returns passes CheckGrant at once unless an event
// of the run revoked it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  createSoftwareAuthenticator,
  type SoftwareAuthenticator,
} from "@stepgate/testkit/software-authenticator";
import fc from "fast-check";
import { failure } from "./support/errors.ts";
import { newKey, newSession, newSubject } from "./support/flows.ts";
import { type Party, passkeyPolicy, paymentsParty } from "./support/passkeys.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

// The passkey policy, with a single-use action beside payments.transfer (passkey or TOTP).
const policy = passkeyPolicy.replace("actions:\n", "actions:\n  secrets.read: { acr: aal2, max_age: 0 }\n");

type Op =
  | { op: "enrol"; withGrant: boolean }
  | { op: "confirm"; pick: number; withGrant: boolean }
  | { op: "beginPasskey"; withGrant: boolean }
  | { op: "finishPasskey"; pick: number; withGrant: boolean }
  | { op: "recovery"; withGrant: boolean }
  | { op: "remove"; pick: number; withGrant: boolean }
  | { op: "stepUp"; pick: number; action: "payments.transfer" | "secrets.read" }
  | { op: "endSession" }
  | { op: "newSession" };

// Weighted towards enrolments and confirmations, whose interleavings are where authorisation can slip.
const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant("enrol" as const), withGrant: fc.boolean() }) },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant("confirm" as const), pick: fc.nat(7), withGrant: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("beginPasskey" as const), withGrant: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("finishPasskey" as const),
      pick: fc.nat(7),
      withGrant: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("recovery" as const), withGrant: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("remove" as const), pick: fc.nat(7), withGrant: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("stepUp" as const),
      pick: fc.nat(15),
      action: fc.constantFrom("payments.transfer" as const, "secrets.read" as const),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: "endSession" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "newSession" as const }) },
);

const active = 2;

/** One run: a subject, the factors it was given and what the service says of them. */
class Run {
  readonly subject = newSubject();
  session = newSession();
  readonly ended = new Set<string>();
  /** TOTP secrets by factor id, and the factor whose grant authorised each pending enrolment. */
  readonly secrets = new Map<string, string>();
  /** Passkeys by factor id: the software authenticator and the ceremony its enrolment asked for. */
  readonly passkeys = new Map<string, { authenticator: SoftwareAuthenticator; challenge: string }>();
  readonly enrolledWith = new Map<string, string | undefined>();
  /** Factors whose activation the run saw authorised. */
  readonly authorised = new Set<string>();

  readonly h: Harness;

  constructor(h: Harness) {
    this.h = h;
  }

  async statuses(): Promise<Map<string, number>> {
    const listed = await this.h.client.factors.listFactors({ subject: this.subject });
    return new Map(listed.factors.map((f) => [f.factorId, f.status]));
  }

  /** A management grant proved with an active TOTP factor, and that factor; none when there is none or it fails. */
  async grant(action: string, statuses: Map<string, number>): Promise<{ token: string; factorId?: string }> {
    const factorId = [...this.secrets.keys()].find((id) => statuses.get(id) === active);
    if (factorId === undefined) return { token: "" };
    const sessionId = newSession();
    const res = await this.h.client.stepUp.stepUp({ subject: this.subject, sessionId, action });
    if (res.outcome.case === "grant") return { token: res.outcome.value.token, factorId };
    if (res.outcome.case !== "challenge") return { token: "" };
    const verified = await this.h.client.stepUp
      .verify({
        challengeId: res.outcome.value.challengeId,
        ...{ subject: this.subject, sessionId, action },
        proof: { kind: { case: "totpCode", value: this.h.code(this.secrets.get(factorId) as string) } },
        idempotencyKey: newKey(),
      })
      .catch(() => undefined);
    return verified?.grant ? { token: verified.grant.token, factorId } : { token: "" };
  }

  pick<T>(items: T[], n: number): T | undefined {
    return items.length === 0 ? undefined : items[n % items.length];
  }
}

async function apply(h: Harness, run: Run, step: Op): Promise<void> {
  const before = await run.statuses();
  const hadActive = [...before.values()].includes(active);
  const { subject } = run;
  const management = {
    enrol: "stepgate.enroll_totp",
    confirm: "stepgate.enroll_totp",
    beginPasskey: "stepgate.enroll_passkey",
    finishPasskey: "stepgate.enroll_passkey",
    recovery: "stepgate.create_recovery_codes",
    remove: "stepgate.remove_factor",
  } as const;
  const grant =
    "withGrant" in step && step.withGrant ? await run.grant(management[step.op], before) : { token: "" };
  const attempt = async <T>(call: Promise<T>) =>
    call.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
  switch (step.op) {
    case "enrol": {
      const r = await attempt(
        h.client.factors.enrollTotp({ subject, label: "Phone", accountName: "a@b.c", grant: grant.token }),
      );
      if ("value" in r) {
        assert.ok(!hadActive || grant.token !== "", "enrolled without the authorisation it needs");
        run.secrets.set(r.value.factorId, r.value.secret);
        run.enrolledWith.set(r.value.factorId, grant.token === "" ? undefined : grant.factorId);
      } else {
        assert.ok(hadActive && grant.token === "", `refused an authorised enrolment: ${String(r.error)}`);
      }
      return;
    }
    case "beginPasskey": {
      const r = await attempt(
        h.client.factors.beginPasskeyEnrollment({
          subject,
          label: "Key",
          userName: "a@b.c",
          grant: grant.token,
        }),
      );
      if ("value" in r) {
        assert.ok(!hadActive || grant.token !== "", "enrolled without the authorisation it needs");
        const { challenge } = JSON.parse(r.value.creationOptionsJson) as { challenge: string };
        run.passkeys.set(r.value.factorId, { authenticator: createSoftwareAuthenticator(), challenge });
        run.enrolledWith.set(r.value.factorId, grant.token === "" ? undefined : grant.factorId);
      } else {
        assert.ok(hadActive && grant.token === "", `refused an authorised enrolment: ${String(r.error)}`);
      }
      return;
    }
    case "confirm":
    case "finishPasskey": {
      const candidates = step.op === "confirm" ? run.secrets : run.passkeys;
      const pending = [...candidates.keys()].filter((id) => before.get(id) === 1);
      const factorId = run.pick(pending, step.pick);
      if (factorId === undefined) return;
      const r = await attempt(activate(h, run, factorId, grant.token));
      const producer = run.enrolledWith.get(factorId);
      const byEnrolmentGrant = producer !== undefined && before.get(producer) === active;
      const allowed = grant.token !== "" || byEnrolmentGrant || (!hadActive && producer === undefined);
      if ("value" in r) {
        assert.ok(allowed, "a factor became active without the authorisation the policy demands now");
        run.authorised.add(factorId);
      } else {
        assert.ok(!allowed, `refused an authorised confirmation: ${String(r.error)}`);
      }
      return;
    }
    case "recovery": {
      const r = await attempt(h.client.factors.createRecoveryCodes({ subject, grant: grant.token }));
      if ("value" in r) {
        assert.ok(!hadActive || grant.token !== "", "recovery codes without the authorisation they need");
        run.authorised.add(r.value.factorId);
      } else {
        assert.ok(hadActive && grant.token === "", `refused authorised recovery codes: ${String(r.error)}`);
      }
      return;
    }
    case "remove": {
      const factorId = run.pick(
        [...before].filter(([, status]) => status === active).map(([id]) => id),
        step.pick,
      );
      if (factorId === undefined) return;
      const r = await attempt(h.client.factors.removeFactor({ subject, factorId, grant: grant.token }));
      assert.equal("value" in r, grant.token !== "", "removal follows its grant");
      return;
    }
    case "stepUp":
      return stepUp(h, run, step, before);
    case "endSession":
      await h.client.stepUp.endSession({ subject, sessionId: run.session });
      run.ended.add(run.session);
      return;
    case "newSession":
      run.session = newSession();
      return;
  }
}

/** Confirms a pending TOTP factor with its code, or finishes a pending passkey with its registration. */
function activate(h: Harness, run: Run, factorId: string, grant: string): Promise<unknown> {
  const { subject } = run;
  const passkey = run.passkeys.get(factorId);
  if (passkey === undefined) {
    const code = h.code(run.secrets.get(factorId) as string);
    return h.client.factors.confirmTotp({ subject, factorId, grant, code });
  }
  const ceremony = { ...(paymentsParty as Party), challenge: passkey.challenge };
  const attestationJson = JSON.stringify(passkey.authenticator.register(ceremony));
  return h.client.factors.finishPasskeyEnrollment({ subject, factorId, grant, attestationJson });
}

/** The proof a factor gives for a challenge: its TOTP code, or its passkey's assertion. */
function proofOf(h: Harness, run: Run, factorId: string, passkeyOptionsJson: string) {
  const passkey = run.passkeys.get(factorId);
  if (passkey === undefined)
    return { kind: { case: "totpCode" as const, value: h.code(run.secrets.get(factorId) as string) } };
  // A challenge offers no passkey options unless the subject has an active passkey.
  const { challenge } = (passkeyOptionsJson ? JSON.parse(passkeyOptionsJson) : { challenge: "none" }) as {
    challenge: string;
  };
  const assertion = passkey.authenticator.assert({ ...paymentsParty, challenge });
  return { kind: { case: "passkeyAssertionJson" as const, value: JSON.stringify(assertion) } };
}

/** StepUp (and Verify with a known factor's code): a grant only from an active factor, passing CheckGrant at once. */
async function stepUp(
  h: Harness,
  run: Run,
  step: Extract<Op, { op: "stepUp" }>,
  before: Map<string, number>,
) {
  const { subject, session: sessionId } = run;
  const { action } = step;
  const res = await h.client.stepUp.stepUp({ subject, sessionId, action }).catch((error: unknown) => error);
  if (run.ended.has(sessionId)) {
    assert.equal(
      (await failure(Promise.reject(res))).reason,
      "SESSION_ENDED",
      "an ended session gets nothing",
    );
    return;
  }
  assert.ok(!(res instanceof Error), `StepUp failed: ${String(res)}`);
  const outcome = (res as Awaited<ReturnType<typeof h.client.stepUp.stepUp>>).outcome;
  let token: string | undefined;
  if (outcome.case === "grant") token = outcome.value.token;
  if (outcome.case === "challenge") {
    // Even picks answer with an active factor, odd ones with any the run made (pending or removed too).
    const known = [...run.secrets.keys(), ...run.passkeys.keys()];
    const candidates = step.pick % 2 === 0 ? known.filter((id) => before.get(id) === active) : known;
    const factorId = run.pick(candidates, step.pick >> 1);
    if (factorId === undefined) return;
    const verified = await h.client.stepUp
      .verify({
        challengeId: outcome.value.challengeId,
        ...{ subject, sessionId, action },
        proof: proofOf(h, run, factorId, outcome.value.passkeyRequestOptionsJson),
        idempotencyKey: newKey(),
      })
      .catch(() => undefined);
    token = verified?.grant?.token;
    if (token !== undefined)
      assert.equal(before.get(factorId), active, "a grant from a factor that is not active");
  }
  if (token !== undefined) await h.client.stepUp.checkGrant({ token, action });
}

describe("factor lifecycle properties", () => {
  let h: Harness;
  before(async () => {
    h = await startStepgate({ policy });
  });
  after(async () => {
    await h?.close();
  });

  it("activates no factor and issues no grant without the authorisation due at that moment", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(ops, { minLength: 1, maxLength: 14 }), async (steps) => {
        const run = new Run(h);
        for (const step of steps) {
          // Every step answers with a new TOTP time step, so no code is a replay of the last.
          h.clock.advance(31_000);
          await apply(h, run, step);
        }
        const statuses = await run.statuses();
        for (const [id, status] of statuses) {
          if (status === active) assert.ok(run.authorised.has(id), `factor ${id} is active unauthorised`);
        }
      }),
      { numRuns: 100 },
    );
  });
});
