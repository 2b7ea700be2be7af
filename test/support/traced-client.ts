// A calling service in its own process: starts telemetry as "payments", then runs one complete
// step-up under its own span, and prints what the test needs to look for (including the secrets
// that must not appear in any span).
import { startTelemetry } from "@stepgate/telemetry";

const target = process.argv[2] as string;
const telemetry = await startTelemetry({ serviceName: "payments", instanceId: "payments-1" });
const { trace } = await import("@opentelemetry/api");
const { createStepgateClient } = await import("@stepgate/client");
const { totpCode } = await import("@stepgate/server/factors/totp");

const client = createStepgateClient({ target, caller: "payments" });
const subject = `traced-${process.pid}`;
const sessionId = "s-traced";
const action = "payments.transfer";
const now = () => Math.floor(Date.now() / 1000);
const enrolled = await client.factors.enrollTotp({
  subject,
  label: "Phone",
  accountName: "t@example.com",
  grant: "",
});
const confirmCode = totpCode(enrolled.secret, now());
await client.factors.confirmTotp({ subject, factorId: enrolled.factorId, code: confirmCode });

const tracer = trace.getTracer("payments");
const result = await tracer.startActiveSpan("payments.transfer", async (root) => {
  const stepUp = await client.stepUp.stepUp({ subject, sessionId, action });
  if (stepUp.outcome.case !== "challenge") throw new Error("expected a challenge");
  const verifyCode = totpCode(enrolled.secret, now() + 30);
  const verified = await client.stepUp.verify({
    challengeId: stepUp.outcome.value.challengeId,
    subject,
    sessionId,
    action,
    proof: { kind: { case: "totpCode", value: verifyCode } },
    idempotencyKey: "traced-flow-0001",
  });
  const token = verified.grant?.token ?? "";
  await client.stepUp.checkGrant({ token, action });
  await client.verifyGrant(token, { action, subject });
  const again = await client.stepUp.stepUp({ subject, sessionId, action });
  root.end();
  return {
    traceId: root.spanContext().traceId,
    secrets: [enrolled.secret, confirmCode, verifyCode, token, enrolled.otpauthUri],
    subject,
    secondOutcome: again.outcome.case,
  };
});
// One refused call, for the error counter: a token that is not a grant.
await client.stepUp.checkGrant({ token: "x.y.z", action }).catch(() => {});
client.close();
await telemetry.shutdown();
process.stdout.write(`${JSON.stringify(result)}\n`);
