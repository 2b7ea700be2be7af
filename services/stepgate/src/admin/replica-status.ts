import type { KeyLife } from "../grants/signing-key-lifecycle.ts";
import type { SigningKeys } from "../grants/signing-keys.ts";
import type { StoredSigningKey } from "../store/signing-key-store.ts";
import type { Stores } from "../store/stores.ts";

/** What one replica says of itself to an operator (AdminService.GetReplicaStatus). */
export interface ReplicaStatus {
  replicaId: string;
  version: string;
  /** When the process started, epoch ms. */
  startedAtMs: number;
  /** True while its health service says SERVING (false while it drains). */
  serving: boolean;
  /** Each dependency as its circuit breaker sees it. */
  dependencies: { name: string; up: boolean }[];
  hotStore: string;
  /** The Redis outbox; undefined without Redis, `pending` undefined when it cannot be read. */
  auditOutbox: { pending: number | undefined } | undefined;
  /** Every stored signing key's life on this replica's clock, in signing order. */
  signingKeys: KeyLife<StoredSigningKey>[];
}

/** The replica's status now; never fails (a store that does not answer is reported, not thrown). */
export type GetReplicaStatus = () => Promise<ReplicaStatus>;

export interface ReplicaStatusDeps {
  replicaId: string;
  version: string;
  startedAtMs: number;
  stores: Pick<Stores, "dependencies" | "hotKind" | "auditOutbox">;
  signingKeys: Pick<SigningKeys, "lives">;
  /** Whether the health service says SERVING now (known only to the server). */
  serving: () => boolean;
}

export function createGetReplicaStatus(deps: ReplicaStatusDeps): GetReplicaStatus {
  const { stores } = deps;
  return async () => ({
    replicaId: deps.replicaId,
    version: deps.version,
    startedAtMs: deps.startedAtMs,
    serving: deps.serving(),
    dependencies: stores.dependencies.map((d) => ({ name: d.name, up: d.available })),
    hotStore: stores.hotKind,
    auditOutbox: stores.auditOutbox && {
      // A Redis that is down leaves the count unknown: the status still answers.
      pending: await stores.auditOutbox.length().catch(() => undefined),
    },
    signingKeys: deps.signingKeys.lives(),
  });
}
