import type * as grpc from "@grpc/grpc-js";
import { FactorService, StepUpService } from "@stepgate/api";
import { HealthImplementation } from "grpc-health-check";
import type { DependencyName } from "../domain/dependency-unavailable.ts";

export type ServingStatus = "SERVING" | "NOT_SERVING";

/** What each service reports, "" being the whole server. */
export type HealthStatuses = Record<string, ServingStatus>;

/** grpc.health.v1.Health for the whole server ("") and each service. */
export interface Health {
  /** Sets every service (and ""), e.g. NOT_SERVING when draining. */
  set(status: ServingStatus): void;
  /** Sets each service named in `statuses`. */
  update(statuses: HealthStatuses): void;
  /** The whole server's status. */
  readonly status: ServingStatus;
  /** Every service's status, "" included. */
  readonly statuses: HealthStatuses;
}

export function addHealth(server: grpc.Server, serviceNames: string[]): Health {
  const names = ["", ...serviceNames];
  const current: HealthStatuses = Object.fromEntries(names.map((n) => [n, "NOT_SERVING"]));
  const impl = new HealthImplementation({ ...current });
  impl.addToServer(server);
  const update = (statuses: HealthStatuses) => {
    for (const [name, status] of Object.entries(statuses)) {
      current[name] = status;
      impl.setStatus(name, status);
    }
  };
  return {
    get status() {
      return current[""] ?? "NOT_SERVING";
    },
    get statuses() {
      return { ...current };
    },
    update,
    set: (status) => update(Object.fromEntries(names.map((n) => [n, status]))),
  };
}

/**
 * What a replica can serve with the dependencies it has (the brief: health tells the truth, and a
 * degraded replica stays in rotation for what it can still do):
 * - FactorService writes factors: it needs PostgreSQL.
 * - StepUpService needs the hot state, which Redis or (failing over) PostgreSQL carries: with
 *   PostgreSQL down it still answers StepUp from elevations, CheckGrant, GetJwks and EndSession.
 * - The whole server ("") serves while any of its services does.
 */
export function servingStatuses(
  up: Record<DependencyName, boolean>,
  redisConfigured: boolean,
): HealthStatuses {
  const serving = (ok: boolean): ServingStatus => (ok ? "SERVING" : "NOT_SERVING");
  const hotState = up.postgresql || (redisConfigured && up.redis);
  return {
    "": serving(hotState || up.postgresql),
    [StepUpService.typeName]: serving(hotState),
    [FactorService.typeName]: serving(up.postgresql),
  };
}
