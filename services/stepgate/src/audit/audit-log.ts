import { randomToken } from "../crypto/random-id.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { RevocationEvent } from "../domain/revocation.ts";
import type { AuditOutbox } from "../store/audit-outbox.ts";
import {
  type AuditEvent,
  type AuditStore,
  deferredPasskeyCounterType,
  deferredRevocationType,
  deferredTotpClaimType,
} from "../store/audit-store.ts";
import { type AuditDrainer, type AuditDrainerOptions, startAuditDrainer } from "./audit-drainer.ts";

/** A security-relevant event as a use case reports it; `details` must never hold a secret or a code. */
export type AuditRecord = Omit<AuditEvent, "id" | "at" | "replica">;

/** A TOTP time step the hot store granted while PostgreSQL was down. */
export interface DeferredTotpClaim {
  subject: string;
  caller: string;
  factorId: string;
  step: number;
  /** The claim (a keyed hash of the challenge and idempotency key), as `factors.last_claim` holds it. */
  claim: string;
  /** Epoch ms. */
  at: number;
}

/** A passkey signature counter the hot store accepted while PostgreSQL was down. */
export interface DeferredPasskeyCounter {
  subject: string;
  caller: string;
  factorId: string;
  counter: number;
  /** The claim (a keyed hash of the challenge and idempotency key). */
  claim: string;
  /** Epoch ms. */
  at: number;
}

export interface AuditLog {
  /**
   * Makes the event durable, with a new id, the time and this replica: resolves once it is in the
   * Redis outbox, or, without Redis or when its append fails, in PostgreSQL. Rejects when neither
   * takes it; a use case awaits it before it returns a grant or a secret.
   */
  record(record: AuditRecord): Promise<void>;
  /**
   * Queues a TOTP step claim PostgreSQL could not take (it is down) in the outbox, as a
   * `totp.step_claimed` event: when the drainer stores the event it also raises the factor's
   * `last_step`, so PostgreSQL learns the claim as soon as it is back (store/audit-store.ts).
   * Resolves false when there is no outbox (no Redis); rejects when the outbox refuses it.
   */
  deferTotpClaim(claim: DeferredTotpClaim): Promise<boolean>;
  /**
   * Queues a passkey counter PostgreSQL could not take (it is down) as a `passkey.counter_claimed`
   * event: storing it raises the credential's `sign_count`. Resolves false without an outbox.
   */
  deferPasskeyCounter(counter: DeferredPasskeyCounter): Promise<boolean>;
  /**
   * Queues a revocation PostgreSQL could not take (it is down) as a `revocation.deferred` event:
   * storing it appends the revocation to the feed (store/audit-store.ts), so verifiers learn of it
   * once PostgreSQL is back. Resolves false without an outbox; rejects when the outbox refuses it.
   */
  deferRevocation(revocation: RevocationEvent): Promise<boolean>;
  /** Moves what the outbox holds to PostgreSQL now (tests read the table after it). */
  flush(): Promise<void>;
  /**
   * Stops the drainer (at shutdown); what the outbox still holds is drained by the other replicas,
   * or by this one's next start.
   */
  close(): Promise<void>;
}

export interface AuditLogOptions
  extends Pick<
    AuditDrainerOptions,
    "blockMs" | "claimAfterMs" | "batchSize" | "lingerMs" | "retryBaseMs" | "retryMaxMs" | "stopTimeoutMs"
  > {
  store: AuditStore;
  /** The Redis outbox, drained into `store` by this replica; undefined: events go to `store` directly. */
  outbox?: AuditOutbox | undefined;
  /** Names the replica on every event and is its consumer name in the outbox. */
  replica: string;
  /** Told of every failure that a fallback or a retry covers; never throws into a flow. */
  onError: (error: unknown) => void;
}

/**
 * The audit trail as use cases see it. With an outbox, recording costs one XADD that ioredis
 * pipelines with the call's other Redis commands, and a drainer in this replica moves events to
 * PostgreSQL in batches (see `startAuditDrainer`); without one, one insert and commit per event.
 * Either way no event waits in this process's memory, so a replica killed at any point loses none.
 */
export function createAuditLog(options: AuditLogOptions): AuditLog {
  const { store, outbox, replica, onError } = options;
  const drainer: AuditDrainer | undefined = outbox
    ? startAuditDrainer({ ...options, outbox, store, consumer: replica })
    : undefined;
  return {
    async record(record) {
      const event: AuditEvent = { ...record, id: randomToken(), at: new Date(), replica };
      let appendError: unknown;
      if (outbox) {
        try {
          await outbox.append(event);
          return;
        } catch (error) {
          appendError = error;
          // Redis known down is already logged once, as a dependency change: no line per event.
          const knownDown =
            error instanceof DependencyUnavailableError && error.reason === "DEPENDENCY_UNAVAILABLE";
          if (!knownDown) {
            const reason = error instanceof Error ? error.message.slice(0, 120) : String(error);
            onError(
              new Error(`audit outbox append failed (${reason}); inserting into PostgreSQL`, {
                cause: error,
              }),
            );
          }
        }
      }
      try {
        await store.append([event]);
      } catch (error) {
        // A store that is down stays a store that is down: the caller answers UNAVAILABLE.
        if (error instanceof DependencyUnavailableError) throw error;
        const refused = appendError === undefined ? "PostgreSQL" : "the Redis outbox and PostgreSQL";
        throw new Error(`audit event not durable: ${refused} refused it`, { cause: error });
      }
    },
    async deferTotpClaim(claim) {
      if (!outbox) return false;
      const event: AuditEvent = {
        id: randomToken(),
        type: deferredTotpClaimType,
        subject: claim.subject,
        caller: claim.caller,
        details: { factor_id: claim.factorId, step: claim.step, claim: claim.claim },
        at: new Date(claim.at),
        replica,
      };
      await outbox.append(event);
      return true;
    },
    async deferPasskeyCounter(counter) {
      if (!outbox) return false;
      await outbox.append({
        id: randomToken(),
        type: deferredPasskeyCounterType,
        subject: counter.subject,
        caller: counter.caller,
        details: { factor_id: counter.factorId, counter: counter.counter, claim: counter.claim },
        at: new Date(counter.at),
        replica,
      });
      return true;
    },
    async deferRevocation(revocation) {
      if (!outbox) return false;
      await outbox.append({
        id: randomToken(),
        type: deferredRevocationType,
        caller: "stepgate",
        details: { ...revocation },
        at: new Date(revocation.revokedAtMs),
        replica,
      });
      return true;
    },
    flush: async () => drainer?.flush(),
    close: async () => drainer?.stop(),
  };
}
