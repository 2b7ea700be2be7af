import { toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { RotateSigningKeyResponseSchema } from "@stepgate/api";
import type { Command } from "../command.ts";
import { exitCodes, UsageError } from "../exit-codes.ts";
import { say, sayJson } from "../output.ts";

const iso = (t: Parameters<typeof timestampMs>[0] | undefined) =>
  t ? new Date(timestampMs(t)).toISOString() : "?";

/** `stepgate keys rotate [--now [--retire-previous]]`: what `pnpm rotate-signing-key` does, through a replica. */
export const keysRotateCommand: Command = {
  words: ["keys", "rotate"],
  synopsis: "",
  summary: "creates the next grant-signing key (--now: signs at once; --retire-previous: retires the others)",
  options: ["now", "retire-previous"],
  async run(ctx) {
    const now = ctx.values.now === true;
    const retirePrevious = ctx.values["retire-previous"] === true;
    if (retirePrevious && !now) throw new UsageError("--retire-previous needs --now");
    const { admin, headers } = ctx.connect();
    const r = await admin.rotateSigningKey({ now, retirePrevious }, { headers });
    if (ctx.json) {
      sayJson(toJson(RotateSigningKeyResponseSchema, r));
      return exitCodes.ok;
    }
    if (r.createdKid === "") {
      say(`next signing key ${r.waitingKid} is published already and signs from ${iso(r.waitingSignsFrom)}`);
      say("nothing created");
      return exitCodes.ok;
    }
    say(
      `created signing key ${r.createdKid} (generation ${r.generation}), published now, signs from ${iso(r.signsFrom)}`,
    );
    if (r.previousKid && !retirePrevious)
      say(
        `signing key ${r.previousKid} stops signing then and stays published until ${iso(r.previousPublishedUntil)}`,
      );
    if (r.waitingKid && !retirePrevious)
      say(`next signing key ${r.waitingKid} still takes over at ${iso(r.waitingSignsFrom)}`);
    for (const kid of r.retiredKids)
      say(`retired signing key ${kid}: grants it signed now fail CheckGrant and offline verification`);
    return exitCodes.ok;
  },
};
