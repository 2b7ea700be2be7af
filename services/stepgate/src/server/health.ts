import type * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";

export type ServingStatus = "SERVING" | "NOT_SERVING";

/** grpc.health.v1.Health for the whole server ("") and each service, set together. */
export interface Health {
  set(status: ServingStatus): void;
  readonly status: ServingStatus;
}

export function addHealth(server: grpc.Server, serviceNames: string[]): Health {
  const names = ["", ...serviceNames];
  const impl = new HealthImplementation(Object.fromEntries(names.map((n) => [n, "NOT_SERVING"])));
  impl.addToServer(server);
  let current: ServingStatus = "NOT_SERVING";
  return {
    get status() {
      return current;
    },
    set(status) {
      current = status;
      for (const n of names) impl.setStatus(n, status);
    },
  };
}

/**
 * Probes the stores on an interval: the replica serves only while every store it needs answers,
 * so load balancers and clients steer calls away from a replica that cannot complete them.
 */
export function watchStores(
  health: Health,
  probes: (() => Promise<void>)[],
  intervalMs: number,
  onChange: (status: ServingStatus, error?: unknown) => void,
): { stop(): void; probe(): Promise<void> } {
  let stopped = false;
  const probe = async () => {
    let next: ServingStatus = "SERVING";
    let failure: unknown;
    try {
      await Promise.all(probes.map((p) => p()));
    } catch (error) {
      next = "NOT_SERVING";
      failure = error;
    }
    if (stopped) return;
    if (next !== health.status) onChange(next, failure);
    health.set(next);
  };
  const timer = setInterval(() => void probe(), intervalMs);
  timer.unref();
  return {
    probe,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
