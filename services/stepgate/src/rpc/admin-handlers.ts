import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type AdminService, SigningKeyState } from "@stepgate/api";
import type { GetReplicaStatus, ReplicaStatus } from "../admin/replica-status.ts";
import type {
  EndSubjectSession,
  ListSubjectFactors,
  RemoveSubjectFactor,
} from "../admin/subject-commands.ts";
import type { TailAuditLog } from "../admin/tail-audit-log.ts";
import type { UnlockSubject } from "../admin/unlock-subject.ts";
import type { Operator } from "../domain/operator.ts";
import type { RotateSigningKey } from "../grants/rotate-signing-key.ts";
import type { SigningKeyState as State } from "../grants/signing-key-lifecycle.ts";
import type { ResealJob } from "../keys/reseal-job.ts";
import { remainingSummary } from "../keys/reseal-job.ts";
import { factorToProto } from "./convert.ts";
import { reasonError } from "./errors.ts";
import { operatorOf } from "./operator.ts";

/** The use cases AdminService serves; each runs as the operator `identifyOperators` named. */
export interface AdminUseCases {
  getReplicaStatus: GetReplicaStatus;
  listSubjectFactors: ListSubjectFactors;
  removeSubjectFactor: RemoveSubjectFactor;
  endSubjectSession: EndSubjectSession;
  unlockSubject: UnlockSubject;
  tailAuditLog: TailAuditLog;
  /** Rotates as `pnpm rotate-signing-key` does, then tells this replica and the revocation feed. */
  rotateSigningKey: (request: {
    now: boolean;
    retirePrevious: boolean;
    operator: Operator;
  }) => ReturnType<RotateSigningKey>;
  reseal: (operator: Operator) => ReturnType<ResealJob>;
}

const states: Record<State, SigningKeyState> = {
  next: SigningKeyState.NEXT,
  current: SigningKeyState.CURRENT,
  previous: SigningKeyState.PREVIOUS,
  retired: SigningKeyState.RETIRED,
};

const at = (ms: number | undefined) => (ms === undefined ? undefined : timestampFromMs(ms));

/** A time that is set, as the message's optional timestamp field (unset ones are left out). */
const times = (fields: Record<string, number | undefined>) =>
  Object.fromEntries(Object.entries(fields).flatMap(([k, ms]) => (ms === undefined ? [] : [[k, at(ms)]])));

function statusToProto(s: ReplicaStatus, nowMs: number) {
  return {
    replicaId: s.replicaId,
    version: s.version,
    startedAt: timestampFromMs(s.startedAtMs),
    uptimeSeconds: BigInt(Math.max(0, Math.floor((nowMs - s.startedAtMs) / 1000))),
    serving: s.serving,
    degraded: s.dependencies.some((d) => !d.up),
    dependencies: s.dependencies,
    hotStore: s.hotStore,
    ...(s.auditOutbox
      ? {
          auditOutbox: {
            readable: s.auditOutbox.pending !== undefined,
            pending: BigInt(s.auditOutbox.pending ?? 0),
          },
        }
      : {}),
    signingKeys: s.signingKeys.map((life) => ({
      kid: life.key.kid,
      state: states[life.state],
      generation: BigInt(life.key.generation),
      ...times({ signsFrom: life.key.signsFrom, signsUntil: life.signsUntil, retiresAt: life.retiresAt }),
    })),
  };
}

/** AdminService: requests were validated, and the operator and their scope checked, before (rpc/operator.ts). */
export function adminHandlers(useCases: AdminUseCases): ServiceImpl<typeof AdminService> {
  return {
    async getReplicaStatus() {
      return statusToProto(await useCases.getReplicaStatus(), Date.now());
    },

    async listSubjectFactors(req, ctx) {
      const factors = await useCases.listSubjectFactors({ subject: req.subject, operator: operatorOf(ctx) });
      return { factors: factors.map(factorToProto) };
    },

    async removeSubjectFactor(req, ctx) {
      await useCases.removeSubjectFactor({ ...req, operator: operatorOf(ctx) });
      return {};
    },

    async endSubjectSession(req, ctx) {
      await useCases.endSubjectSession({ ...req, operator: operatorOf(ctx) });
      return {};
    },

    async unlockSubject(req, ctx) {
      return useCases.unlockSubject({ subject: req.subject, operator: operatorOf(ctx) });
    },

    async tailAuditLog(req, ctx) {
      const filter = {
        ...(req.subject === "" ? {} : { subject: req.subject }),
        ...(req.type === "" ? {} : { type: req.type }),
        ...(req.caller === "" ? {} : { caller: req.caller }),
        ...(req.since ? { since: timestampDate(req.since) } : {}),
        ...(req.afterCursor === "" ? {} : { afterCursor: BigInt(req.afterCursor) }),
        limit: req.limit === 0 ? 50 : req.limit,
      };
      const events = await useCases.tailAuditLog({ filter, operator: operatorOf(ctx) });
      return {
        events: events.map((e) => ({
          cursor: e.cursor,
          at: timestampFromMs(e.at.getTime()),
          type: e.type,
          subject: e.subject ?? "",
          caller: e.caller ?? "",
          replica: e.replica ?? "",
          detailsJson: JSON.stringify(e.details),
        })),
        cursor: events.at(-1)?.cursor ?? req.afterCursor,
      };
    },

    async rotateSigningKey(req, ctx) {
      const r = await useCases.rotateSigningKey({ ...req, operator: operatorOf(ctx) });
      // Another replica took each generation first: the same command a moment later goes through.
      if (r.contended)
        throw new ConnectError("other replicas kept creating keys; nothing created, try again", Code.Aborted);
      return {
        createdKid: r.created?.kid ?? "",
        generation: BigInt(r.created?.generation ?? 0),
        waitingKid: r.waiting?.kid ?? "",
        previousKid: r.previous?.kid ?? "",
        retiredKids: r.retired,
        ...times({
          signsFrom: r.created?.signsFrom,
          waitingSignsFrom: r.waiting?.signsFrom,
          previousPublishedUntil: r.previous?.publishedUntil,
        }),
      };
    },

    async resealValues(_req, ctx) {
      const report = await useCases.reseal(operatorOf(ctx));
      if (report === "locked")
        throw reasonError("RESEAL_RUNNING", "another re-seal job holds the lock; try again when it ends");
      return {
        done: report.done,
        keyId: report.keyId,
        passes: report.passes,
        remaining: remainingSummary(report),
        reportJson: JSON.stringify(report),
      };
    },
  };
}
