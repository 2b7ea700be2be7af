import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import { timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import type { TailAuditLogRequestSchema } from "@stepgate/api";
import { type AuditEntry, AuditEntrySchema, type TailAuditLogRequest } from "@stepgate/api";
import type { Command, CommandContext } from "../command.ts";
import { exitCodes, UsageError } from "../exit-codes.ts";
import { checkedText, integer, sinceTime } from "../inputs.ts";
import { say, sayJson } from "../output.ts";

// How often --follow asks for what came since (audit events reach PostgreSQL in batches anyway).
const followEveryMs = 1000;

function line(e: AuditEntry): string {
  const at = e.at ? new Date(timestampMs(e.at)).toISOString() : "";
  const who = [e.subject && `subject=${e.subject}`, e.caller && `caller=${e.caller}`]
    .filter(Boolean)
    .join(" ");
  return `${at}  ${e.type.padEnd(24)} ${who}  ${e.detailsJson}`;
}

function filterOf(ctx: CommandContext): MessageInitShape<typeof TailAuditLogRequestSchema> {
  const { subject, kind, caller, since, limit } = ctx.values;
  if (typeof kind === "string" && !/^[a-z0-9_.]{1,64}$/.test(kind))
    throw new UsageError(
      "--kind must be an event type such as factor.removed, or a prefix ending in . (admin.)",
    );
  if (typeof caller === "string" && !/^[a-z0-9][a-z0-9._:-]{0,127}$/.test(caller))
    throw new UsageError("--caller must be a calling service or operator:<name>");
  return {
    ...(typeof subject === "string" ? { subject: checkedText("--subject", subject) } : {}),
    ...(typeof kind === "string" ? { type: kind } : {}),
    ...(typeof caller === "string" ? { caller } : {}),
    ...(typeof since === "string" ? { since: timestampFromDate(sinceTime(since, Date.now())) } : {}),
    limit: typeof limit === "string" ? integer("--limit", limit, 1, 1000) : 50,
  };
}

/** `stepgate audit tail [--subject S] [--kind K] [--caller C] [--since 10m|ISO] [--limit N] [--follow]` */
export const auditTailCommand: Command = {
  words: ["audit", "tail"],
  synopsis: "",
  summary: "the latest audit events that match, oldest first; --follow keeps printing new ones",
  options: ["subject", "kind", "caller", "since", "limit", "follow"],
  async run(ctx) {
    const filter = filterOf(ctx);
    const { admin, headers } = ctx.connect();
    const print = (events: AuditEntry[]) => {
      for (const e of events) {
        if (ctx.json && ctx.values.follow) sayJson(toJson(AuditEntrySchema, e));
        else if (!ctx.json) say(line(e));
      }
    };
    const first = await admin.tailAuditLog(filter as TailAuditLogRequest, { headers });
    if (ctx.json && !ctx.values.follow)
      sayJson({ events: first.events.map((e) => toJson(AuditEntrySchema, e)) });
    else print(first.events);
    let cursor = first.cursor;
    while (ctx.values.follow && !ctx.signal.aborted) {
      await sleep(followEveryMs, undefined, { signal: ctx.signal }).catch(() => {});
      if (ctx.signal.aborted) break;
      const next = await admin.tailAuditLog(
        { ...filter, afterCursor: cursor, limit: 1000 } as TailAuditLogRequest,
        {
          headers,
        },
      );
      print(next.events);
      cursor = next.cursor;
    }
    return exitCodes.ok;
  },
};
