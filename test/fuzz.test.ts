// Property-based fuzzing of every RPC's fields through the real service: whatever arrives, the
// reply is OK or a clear status with a reason (never INTERNAL or UNKNOWN, never a hang), and no
// submitted code, grant or token comes back in an error message or a log line, and a refused factor
// call leaves the subject's stored factors as they were.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import fc from "fast-check";
import { type Harness, startStepgate } from "./support/stepgate.ts";

/** Statuses that describe the request or a limit; anything else is the service failing. */
const clearStatuses = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.ResourceExhausted,
  Code.Unauthenticated,
]);

/** Field values: empty, short, long, unicode, control characters, look-alikes of real values. */
const text = fc.oneof(
  fc.constant(""),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.stringMatching(/^[0-9]{6}$/),
  fc.stringMatching(/^[A-Za-z0-9_-]{22}$/),
  fc.constantFrom(
    "payments.transfer",
    "secrets.read",
    "stepgate.remove_factor",
    "00000000-0000-4000-8000-000000000000",
  ),
);
// Values long enough to be recognised if echoed: codes, grants, tokens a caller sent.
const secretLike = fc.oneof(fc.stringMatching(/^[0-9]{6}$/), fc.stringMatching(/^[A-Za-z0-9._-]{16,80}$/));

/** Runs one call; returns what an echo check needs. Fails the property on an unclear outcome. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "";
  } catch (error) {
    const e = ConnectError.from(error);
    assert.ok(clearStatuses.has(e.code), `unclear status ${Code[e.code]}: ${e.rawMessage}`);
    if (e.code !== Code.InvalidArgument) {
      assert.ok(e.findDetails(ErrorInfoSchema)[0]?.reason, `no ErrorInfo reason on ${Code[e.code]}`);
    }
    return e.rawMessage;
  }
}

describe("fuzzed RPC fields", () => {
  let h: Harness;
  const sent: string[] = [];
  before(async () => {
    h = await startStepgate();
  });
  after(async () => {
    await h.close();
  });

  const property = (run: (secret: string, a: string, b: string, c: string) => Promise<string>) =>
    fc.assert(
      fc.asyncProperty(secretLike, text, text, text, async (secret, a, b, c) => {
        sent.push(secret);
        const message = await run(secret, a, b, c);
        assert.ok(!message.includes(secret), `the error echoes what was sent: ${message}`);
      }),
      { numRuns: 60 },
    );
  const s = () => h.client.stepUp;
  const f = () => h.client.factors;

  it("StepUp", () =>
    property((_, a, b, c) =>
      outcome(s().stepUp({ subject: a, sessionId: b, action: c, context: { [b]: a } })),
    ));

  it("Verify, with TOTP codes and recovery codes", () =>
    property((secret, a, b, c) =>
      outcome(
        s().verify({
          challengeId: c,
          subject: a,
          sessionId: b,
          action: "payments.transfer",
          proof: {
            kind:
              a.length % 2 ? { case: "totpCode", value: secret } : { case: "recoveryCode", value: secret },
          },
          idempotencyKey: `${b}${c}`,
        }),
      ),
    ));

  it("CheckGrant and EndSession", () =>
    property(async (secret, a, b, c) => {
      const checked = await outcome(s().checkGrant({ token: `${secret}.${a}.${b}`, action: c }));
      await outcome(s().endSession({ subject: a, sessionId: b }));
      return checked;
    }));

  /** The subject's factor rows and recovery codes, as stored. */
  const stored = async (subject: string) =>
    // PostgreSQL text cannot hold U+0000, so no row can belong to such a subject (nor be asked for).
    subject.includes("\u0000")
      ? "[]"
      : JSON.stringify(
          await h.db.query(
            `select f.id, f.status, f.label, f.last_step, count(r.id) as codes, count(r.used_at) as used
         from factors f left join recovery_codes r on r.factor_id = f.id
         where f.subject = $1 group by f.id order by f.id`,
            [subject],
          ),
        );
  /** Runs a factor call; a refused one must leave the subject's stored factors as they were. */
  const nothingHalfWritten = async (subject: string, call: () => Promise<unknown>) => {
    const before = await stored(subject);
    let refused = false;
    const message = await outcome(
      call().catch((error: unknown) => {
        refused = true;
        throw error;
      }),
    );
    if (refused) assert.equal(await stored(subject), before, `a refused call changed the store: ${message}`);
    return message;
  };

  it("EnrollTotp, ConfirmTotp, CreateRecoveryCodes, ListFactors and RemoveFactor", () =>
    property(async (secret, a, b, c) => {
      const messages = [
        await nothingHalfWritten(a, () =>
          f().enrollTotp({ subject: a, label: b, accountName: c, grant: secret }),
        ),
        await nothingHalfWritten(a, () => f().confirmTotp({ subject: a, factorId: c, code: secret })),
        await nothingHalfWritten(a, () => f().createRecoveryCodes({ subject: a, grant: secret })),
        await outcome(f().listFactors({ subject: a })),
        await nothingHalfWritten(a, () => f().removeFactor({ subject: a, factorId: c, grant: secret })),
      ];
      return messages.join("\n");
    }));

  it("never logs what was sent as a code, grant or token", () => {
    const logs = h.logs.join("");
    const echoed = sent.filter((secret) => secret.length >= 8 && logs.includes(secret));
    assert.deepEqual(echoed, []);
  });
});
