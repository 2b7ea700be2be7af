import type { DependencyName } from "../domain/dependency-unavailable.ts";
import type { Dependency } from "../store/dependency.ts";
import type { Health } from "./health.ts";
import { servingStatuses } from "./health.ts";

export interface WatchDependenciesOptions {
  health: Health;
  dependencies: Dependency[];
  /** Probes one dependency through its breaker; a failure only counts against the breaker. */
  probe: (name: DependencyName) => Promise<void>;
  /** How often each dependency is probed, in ms. */
  intervalMs: number;
  /** Told once per change of a dependency's state. */
  onDependencyChange: (name: DependencyName, up: boolean) => void;
}

/**
 * Keeps health in step with the dependencies: each is probed every `intervalMs` (an open circuit's
 * probe is its trial call, so recovery is noticed without traffic), and every change of a circuit
 * updates the per-service statuses at once.
 */
export function watchDependencies(options: WatchDependenciesOptions): {
  stop(): void;
  probe(): Promise<void>;
} {
  const { health, dependencies } = options;
  const redisConfigured = dependencies.some((d) => d.name === "redis");
  let stopped = false;
  const refresh = () => {
    if (stopped) return;
    const up = { postgresql: false, redis: false };
    for (const d of dependencies) up[d.name] = d.available;
    health.update(servingStatuses(up, redisConfigured));
  };
  for (const d of dependencies) {
    d.onChange((available) => {
      refresh();
      options.onDependencyChange(d.name, available);
    });
  }
  const probe = async () => {
    await Promise.all(dependencies.map((d) => options.probe(d.name).catch(() => {})));
    refresh();
  };
  const timer = setInterval(() => void probe(), options.intervalMs);
  timer.unref();
  return {
    probe,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
