import { readFileSync } from "node:fs";
import { createGetReplicaStatus } from "../admin/replica-status.ts";
import { createSubjectCommands } from "../admin/subject-commands.ts";
import { createTailAuditLog } from "../admin/tail-audit-log.ts";
import { createUnlockSubject } from "../admin/unlock-subject.ts";
import type { AuditLog } from "../audit/audit-log.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import type { Clock } from "../domain/clock.ts";
import { type Operator, operatorCaller, operatorDetails } from "../domain/operator.ts";
import type { ListFactors } from "../factors/list-factors.ts";
import type { FactorRemovalInput } from "../factors/remove-factor.ts";
import { createRotateSigningKey } from "../grants/rotate-signing-key.ts";
import { keyRetentionMs } from "../grants/signing-key-lifecycle.ts";
import type { SigningKeys } from "../grants/signing-keys.ts";
import { createResealJob } from "../keys/reseal-job.ts";
import { longestGrantLifetimeMs } from "../policy/assurance.ts";
import type { Policy } from "../policy/policy.ts";
import type { PublishRevocations } from "../revocations/publish-revocation.ts";
import { keyRetired } from "../revocations/revocation-events.ts";
import type { AdminUseCases } from "../rpc/admin-handlers.ts";
import type { EndSession } from "../stepup/end-session.ts";
import { tryResealLock } from "../store/reseal-lock.ts";
import type { Stores } from "../store/stores.ts";

/** @stepgate/server's version, as its package.json says. */
const version = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;
// Taken once, as the module loads with the replica.
const startedAtMs = Date.now() - Math.round(process.uptime() * 1000);

/** What the operators' use cases are built from: the replica's own stores and use cases. */
export interface AdminDeps {
  replicaId: string;
  databaseUrl: string;
  policy: Policy;
  stores: Stores;
  keyRing: KeyRing;
  signingKeys: SigningKeys;
  clock: Clock;
  audit: AuditLog;
  publishRevocations: PublishRevocations;
  listFactors: ListFactors;
  removeFactor: (input: FactorRemovalInput) => Promise<void>;
  endSession: EndSession;
  /** How long a new key is published before it signs, in ms. */
  publishLeadMs: number;
}

/**
 * AdminService's use cases over the replica's own: the same removal, session end, key rotation and
 * re-seal job ordinary calls and `pnpm` tools run. `serving` says what the health service says.
 */
export function composeAdmin(deps: AdminDeps, serving: () => boolean): AdminUseCases {
  const { stores, audit, clock, policy } = deps;
  const subjects = createSubjectCommands(deps);
  const recordAs =
    (operator: Operator, command: string) => (type: string, details: Record<string, unknown>) =>
      audit.record({
        type,
        caller: operatorCaller(operator.name),
        details: { ...details, ...operatorDetails(operator, command) },
      });
  const reseal = createResealJob({
    keyRing: deps.keyRing,
    stores,
    tryLock: () => tryResealLock(deps.databaseUrl),
  });
  return {
    getReplicaStatus: createGetReplicaStatus({
      ...{ replicaId: deps.replicaId, version, startedAtMs, stores, serving },
      signingKeys: deps.signingKeys,
    }),
    ...subjects,
    unlockSubject: createUnlockSubject({ counters: stores.attempts, audit }),
    tailAuditLog: createTailAuditLog({ trail: stores.auditTrail, audit }),
    async rotateSigningKey({ operator, ...request }) {
      const rotate = createRotateSigningKey({
        ...{ store: stores.signingKeys, keyRing: deps.keyRing, clock },
        retentionMs: keyRetentionMs(policy),
        publishLeadMs: deps.publishLeadMs,
        record: recordAs(operator, "keys.rotate"),
      });
      const rotation = await rotate(request);
      // Verifiers drop a retired key at once, as when the schedule retires one (server/compose.ts).
      const lifetimeMs = longestGrantLifetimeMs(policy) + 60_000;
      if (rotation.retired.length > 0)
        await deps.publishRevocations(rotation.retired.map((kid) => keyRetired(kid, clock(), lifetimeMs)));
      await deps.signingKeys.refresh();
      return rotation;
    },
    async reseal(operator) {
      // The replicas' own pace for `pnpm reseal` (STEPGATE_RESEAL_BATCH_SIZE's default, no pause).
      const report = await reseal({ batchSize: 500, pauseMs: 0 });
      const outcome =
        report === "locked"
          ? { outcome: "locked" }
          : { outcome: report.done ? "done" : "not_done", key_id: report.keyId };
      await recordAs(operator, "reseal")("admin.reseal_run", outcome);
      return report;
    },
  };
}
