import { toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Factor, FactorSchema, FactorStatus, Method } from "@stepgate/api";
import type { Command } from "../command.ts";
import { exitCodes, UsageError } from "../exit-codes.ts";
import { checkedFactorId, checkedText } from "../inputs.ts";
import { say, sayJson, table } from "../output.ts";

const methodNames: Record<Method, string> = {
  [Method.UNSPECIFIED]: "unspecified",
  [Method.TOTP]: "totp",
  [Method.RECOVERY_CODE]: "recovery_code",
  [Method.PASSKEY]: "passkey",
};
const statusNames: Record<FactorStatus, string> = {
  [FactorStatus.UNSPECIFIED]: "unspecified",
  [FactorStatus.PENDING]: "pending",
  [FactorStatus.ACTIVE]: "active",
};

function factorRow(f: Factor): string[] {
  const used = f.lastUsedAt ? new Date(timestampMs(f.lastUsedAt)).toISOString() : "never";
  const notes = [
    ...(f.method === Method.RECOVERY_CODE ? [`${f.recoveryCodesRemaining} codes left`] : []),
    ...(f.flagged ? ["FLAGGED (cloned authenticator)"] : []),
  ];
  return [
    f.factorId,
    methodNames[f.method] ?? "unknown",
    statusNames[f.status] ?? "unknown",
    f.label,
    used,
    notes.join(", "),
  ];
}

/** `stepgate factors list <subject>` */
export const factorsListCommand: Command = {
  words: ["factors", "list"],
  synopsis: "<subject>",
  summary: "a subject's factors, without secrets",
  options: [],
  async run(ctx) {
    const subject = checkedText("subject", ctx.args[0]);
    const { admin, headers } = ctx.connect();
    const { factors } = await admin.listSubjectFactors({ subject }, { headers });
    if (ctx.json) sayJson({ subject, factors: factors.map((f) => toJson(FactorSchema, f)) });
    else if (factors.length === 0) say(`${subject} has no factors`);
    else
      for (const line of table(
        ["FACTOR", "METHOD", "STATUS", "LABEL", "LAST USED", ""],
        factors.map(factorRow),
      ))
        say(line);
    return exitCodes.ok;
  },
};

/** `stepgate factors remove <subject> <factor-id>` */
export const factorsRemoveCommand: Command = {
  words: ["factors", "remove"],
  synopsis: "<subject> <factor-id>",
  summary: "removes a factor: its elevations end and its grants are revoked",
  options: [],
  async run(ctx) {
    const subject = checkedText("subject", ctx.args[0]);
    const factorId = checkedFactorId(ctx.args[1]);
    const { admin, headers } = ctx.connect();
    await admin.removeSubjectFactor({ subject, factorId }, { headers });
    if (ctx.json) sayJson({ subject, factorId, removed: true });
    else say(`removed factor ${factorId} of ${subject}; its grants are revoked`);
    return exitCodes.ok;
  },
};

/** `stepgate sessions end <subject> <session-id>` */
export const sessionsEndCommand: Command = {
  words: ["sessions", "end"],
  synopsis: "<subject> <session-id>",
  summary: "ends a session: its grants are revoked and its next StepUp challenges again",
  options: ["all"],
  async run(ctx) {
    // Sessions are keyed by subject and id and never listed: there is no "all" to find cheaply.
    if (ctx.values.all)
      throw new UsageError(
        "--all is not supported: Stepgate does not list a subject's sessions; name the session",
      );
    const subject = checkedText("subject", ctx.args[0]);
    const sessionId = checkedText("session id", ctx.args[1]);
    const { admin, headers } = ctx.connect();
    await admin.endSubjectSession({ subject, sessionId }, { headers });
    if (ctx.json) sayJson({ subject, sessionId, ended: true });
    else say(`ended session ${sessionId} of ${subject}; its grants are revoked`);
    return exitCodes.ok;
  },
};

/** `stepgate subject unlock <subject>` */
export const subjectUnlockCommand: Command = {
  words: ["subject", "unlock"],
  synopsis: "<subject>",
  summary: "clears a subject's lockout and run of consecutive failures",
  options: [],
  async run(ctx) {
    const subject = checkedText("subject", ctx.args[0]);
    const { admin, headers } = ctx.connect();
    const { hadFailures } = await admin.unlockSubject({ subject }, { headers });
    if (ctx.json) sayJson({ subject, hadFailures });
    else
      say(
        hadFailures ? `unlocked ${subject}: its failures are cleared` : `${subject} had no failures to clear`,
      );
    return exitCodes.ok;
  },
};
