import { toJson } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { ResealValuesResponseSchema } from "@stepgate/api";
import type { Command } from "../command.ts";
import { exitCodes, reasonOf } from "../exit-codes.ts";
import { say, sayJson } from "../output.ts";

/**
 * `stepgate reseal`: the re-seal job on the replica that answers. Exits as `pnpm reseal` does: 0
 * done, 1 something is left under another key, 3 while another job holds the lock.
 */
export const resealCommand: Command = {
  words: ["reseal"],
  synopsis: "",
  summary: "moves every sealed value to the active encryption key, on one replica, under the fleet's lock",
  options: [],
  async run(ctx) {
    const { admin, headers } = ctx.connect();
    let r: Awaited<ReturnType<typeof admin.resealValues>>;
    try {
      r = await admin.resealValues({}, { headers });
    } catch (error) {
      if (error instanceof ConnectError && reasonOf(error) === "RESEAL_RUNNING") {
        process.stderr.write(
          "stepgate: reseal: another re-seal job holds the lock; try again when it ends\n",
        );
        return exitCodes.unavailable;
      }
      throw error;
    }
    if (ctx.json) sayJson(toJson(ResealValuesResponseSchema, r));
    else if (r.done) say(`done: nothing is sealed under a key other than "${r.keyId}" (${r.passes} passes)`);
    else say(`not done after ${r.passes} passes: still under another key: ${r.remaining}`);
    return r.done ? exitCodes.ok : exitCodes.failed;
  },
};
