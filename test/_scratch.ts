import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { StepUpRequestSchema } from "@stepgate/api";
import { failure } from "./support/errors.ts";
import { enrolTotp, newKey, newSession, newSubject } from "./support/flows.ts";
import { startStepgate } from "./support/stepgate.ts";

const h = await startStepgate({ redis: false });
const raw = new grpc.Client(h.target, grpc.credentials.createInsecure());
const call = (path: string, bytes: Buffer) =>
  new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set("stepgate-caller", "payments");
    raw.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      md,
      (err, v) =>
        resolve(
          err ? { code: grpc.status[err.code], details: err.details.slice(0, 200) } : { ok: v?.length },
        ),
    );
  });
const show = async (name: string, p: Promise<unknown>) => {
  const f = await failure(p);
  console.log(
    name,
    JSON.stringify({
      code: f.code,
      reason: f.reason,
      fields: f.fields,
      md: f.metadata,
      msg: f.message.slice(0, 150),
    }),
  );
};
try {
  for (const b of [
    [0x08, 0x01],
    [0xa0, 0x06, 0x01],
    [0x0a, 0x02, 0xff, 0xfe, 0x12, 0x01, 0x73, 0x1a, 0x11, ...Buffer.from("payments.transfer")],
  ]) {
    console.log(Buffer.from(b), await call("/stepgate.v1.StepUpService/StepUp", Buffer.from(b)));
  }
  for (const n of [65532, 65533]) {
    const bytes = Buffer.from(
      toBinary(StepUpRequestSchema, create(StepUpRequestSchema, { subject: "a".repeat(n) })),
    );
    console.log(n, bytes.length, await call("/stepgate.v1.StepUpService/StepUp", bytes));
  }
  const s = newSubject(),
    sid = newSession();
  await show(
    "ctx",
    h.client.stepUp.stepUp({
      subject: s,
      sessionId: sid,
      action: "payments.transfer",
      context: { "a\nb": "x", ok: "v".repeat(257), "": "e" },
    }),
  );
  await show(
    "ctx17",
    h.client.stepUp.stepUp({
      subject: s,
      sessionId: sid,
      action: "payments.transfer",
      context: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])),
    }),
  );
  await show(
    "unknown action",
    h.client.stepUp.stepUp({ subject: s, sessionId: sid, action: "nope.nothing" }),
  );
  await show(
    "verify unknown",
    h.client.stepUp.verify({
      challengeId: "A".repeat(22),
      subject: s,
      sessionId: sid,
      action: "payments.transfer",
      proof: { kind: { case: "totpCode", value: "123456" } },
      idempotencyKey: newKey(),
    }),
  );
  await show(
    "verify unknown action",
    h.client.stepUp.verify({
      challengeId: "A".repeat(22),
      subject: s,
      sessionId: sid,
      action: "nope.nothing",
      proof: { kind: { case: "totpCode", value: "123456" } },
      idempotencyKey: newKey(),
    }),
  );
  await show("check garbage", h.client.stepUp.checkGrant({ token: "garbage", action: "payments.transfer" }));
  await show(
    "check garbage unknown action",
    h.client.stepUp.checkGrant({ token: "a.b.c", action: "nope.nothing" }),
  );
  await show(
    "check alg none",
    h.client.stepUp.checkGrant({
      token:
        Buffer.from('{"alg":"none"}').toString("base64url") +
        "." +
        Buffer.from('{"sub":"x"}').toString("base64url") +
        ".",
      action: "payments.transfer",
    }),
  );
  await show(
    "confirm unknown",
    h.client.factors.confirmTotp({
      subject: s,
      factorId: "00000000-0000-4000-8000-000000000000",
      code: "123456",
    }),
  );
  await show(
    "remove unknown",
    h.client.factors.removeFactor({ subject: s, factorId: "00000000-0000-4000-8000-000000000000" }),
  );
  await show(
    "confirm upper uuid",
    h.client.factors.confirmTotp({
      subject: s,
      factorId: "00000000-0000-4000-8000-00000000000A",
      code: "123456",
    }),
  );
  const e = await h.client.factors.enrollTotp({ subject: s, label: "Phone", accountName: "a@b" });
  console.log(e.otpauthUri);
  await show(
    "confirm wrong",
    h.client.factors.confirmTotp({
      subject: s,
      factorId: e.factorId,
      code: "000000" === h.code(e.secret) ? "111111" : "000000",
    }),
  );
  console.log(await h.db.query("select * from factors where subject = $1", [s]));
  for (let i = 0; i < 5; i++)
    await show(
      "confirm wrong " + i,
      h.client.factors.confirmTotp({
        subject: s,
        factorId: e.factorId,
        code: "000000" === h.code(e.secret) ? "111111" : "000000",
      }),
    );
  await show(
    "confirm right after lock",
    h.client.factors.confirmTotp({ subject: s, factorId: e.factorId, code: h.code(e.secret) }),
  );
  await show(
    "confirm other subject",
    h.client.factors.confirmTotp({ subject: newSubject(), factorId: e.factorId, code: h.code(e.secret) }),
  );
  const s2 = newSubject();
  const f = await enrolTotp(h, s2);
  await show("enrol no grant", h.client.factors.enrollTotp({ subject: s2, label: "x", accountName: "y" }));
  await show(
    "enrol garbage grant",
    h.client.factors.enrollTotp({ subject: s2, label: "x", accountName: "y", grant: "garbage" }),
  );
  await show("rc no grant", h.client.factors.createRecoveryCodes({ subject: s2 }));
  await show("remove no grant", h.client.factors.removeFactor({ subject: s2, factorId: f.factorId }));
  await show(
    "confirm active",
    h.client.factors.confirmTotp({ subject: s2, factorId: f.factorId, code: h.code(f.secret) }),
  );
  await show(
    "subject 257",
    h.client.stepUp.stepUp({ subject: "é".repeat(128) + "a", sessionId: sid, action: "payments.transfer" }),
  );
  console.log(
    await h.client.stepUp.stepUp({
      subject: "é".repeat(128),
      sessionId: "s".repeat(256),
      action: "payments.transfer",
    }),
  );
  await show(
    "dead",
    h.client.stepUp.stepUp({ subject: "a\u007f", sessionId: "b\u0000", action: "payments.transfer\t" }),
  );
  console.log(
    await h.client.stepUp.stepUp({
      subject: "a\u0085\u2028\ud800",
      sessionId: "b",
      action: "payments.transfer",
    }),
  );
} finally {
  raw.close();
  await h.close();
}
