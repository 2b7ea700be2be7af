import { toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import {
  type GetReplicaStatusResponse,
  GetReplicaStatusResponseSchema,
  SigningKeyState,
} from "@stepgate/api";
import type { Command, CommandContext } from "../command.ts";
import { connect, replicaTargets } from "../connection.ts";
import { describeFailure, exitCodeOf, exitCodes, reasonOf } from "../exit-codes.ts";
import { say, sayJson, table, uptime } from "../output.ts";

type Row = { target: string; status: GetReplicaStatusResponse } | { target: string; error: unknown };

/** Asks one replica over a channel of its own, so each row is that replica's own answer. */
async function ask(ctx: CommandContext, target: string): Promise<Row> {
  const connection = connect(target, ctx.connection);
  try {
    const status = await connection.admin.getReplicaStatus({}, { headers: connection.headers });
    return { target, status };
  } catch (error) {
    return { target, error };
  } finally {
    connection.close();
  }
}

const stateNames: Record<SigningKeyState, string> = {
  [SigningKeyState.UNSPECIFIED]: "unspecified",
  [SigningKeyState.NEXT]: "next",
  [SigningKeyState.CURRENT]: "current",
  [SigningKeyState.PREVIOUS]: "previous",
  [SigningKeyState.RETIRED]: "retired",
};
const iso = (t: Parameters<typeof timestampMs>[0] | undefined) =>
  t ? new Date(timestampMs(t)).toISOString() : "";

function dependencies(s: GetReplicaStatusResponse): string {
  const deps = s.dependencies.map((d) => `${d.name} ${d.up ? "up" : "DOWN"}`);
  const outbox = s.auditOutbox;
  if (outbox) deps.push(outbox.readable ? `outbox ${outbox.pending}` : "outbox ?");
  return deps.join(", ");
}

function humanRows(rows: Row[]): string[] {
  const cells = rows.map((row) => {
    if ("error" in row) return [row.target, "-", "UNREACHABLE", describeFailure(row.error)];
    const s = row.status;
    const health = !s.serving ? "NOT_SERVING" : s.degraded ? "DEGRADED" : "SERVING";
    const current = s.signingKeys.find((k) => k.state === SigningKeyState.CURRENT)?.kid ?? "-";
    return [
      row.target,
      s.replicaId,
      health,
      `${dependencies(s)}; hot ${s.hotStore}; key ${current}; ${s.version}; up ${uptime(Number(s.uptimeSeconds))}`,
    ];
  });
  return table(["TARGET", "REPLICA", "HEALTH", "DETAILS"], cells);
}

function keyLines(rows: Row[]): string[] {
  const first = rows.find((r): r is Extract<Row, { status: unknown }> => "status" in r);
  if (!first) return [];
  const keys = first.status.signingKeys.map((k) => [
    k.kid,
    stateNames[k.state] ?? "unknown",
    iso(k.signsFrom),
    iso(k.retiresAt),
  ]);
  return [
    "",
    `signing keys, as ${first.status.replicaId} sees them:`,
    ...table(["KID", "STATE", "SIGNS FROM", "RETIRES AT"], keys),
  ];
}

function jsonRow(row: Row) {
  if ("status" in row)
    return {
      target: row.target,
      reachable: true,
      status: toJson(GetReplicaStatusResponseSchema, row.status),
    };
  const error = row.error;
  const failure = error instanceof ConnectError ? { code: error.code, reason: reasonOf(error) } : {};
  return { target: row.target, reachable: false, error: { ...failure, message: describeFailure(error) } };
}

/** `stepgate status`: every replica of --target, one row each; any replica that does not answer makes it fail. */
export const statusCommand: Command = {
  words: ["status"],
  synopsis: "",
  summary: "health, dependencies, keys, version and uptime of every replica of --target",
  options: [],
  async run(ctx) {
    const rows = await Promise.all(replicaTargets(ctx.target).map((target) => ask(ctx, target)));
    if (ctx.json) sayJson({ replicas: rows.map(jsonRow) });
    else for (const line of [...humanRows(rows), ...keyLines(rows)]) say(line);
    const codes = rows.flatMap((r) => ("error" in r ? [exitCodeOf(r.error)] : []));
    // An unreachable replica wins: it is what an operator looks at first.
    if (codes.includes(exitCodes.unavailable)) return exitCodes.unavailable;
    return codes[0] ?? exitCodes.ok;
  },
};
