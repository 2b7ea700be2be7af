import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  IsolatedCircuitError,
  TaskCancelledError,
  TimeoutStrategy,
  timeout,
  wrap,
} from "cockatiel";
import { type DependencyName, DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import { isInfrastructureFailure } from "./infrastructure-failure.ts";

/** How a dependency's calls are bounded and when its circuit opens. */
export interface DependencyOptions {
  /** The longest one call may take, in ms; a slower call fails (and counts as a failure). */
  callTimeoutMs: number;
  /** Consecutive infrastructure failures (refused, reset, timed out) that open the circuit. */
  failureThreshold: number;
  /** How long an open circuit refuses calls before letting one trial call through, in ms. */
  halfOpenAfterMs: number;
}

/**
 * One store the service depends on, behind a circuit breaker (cockatiel). While the circuit is
 * open, calls fail at once (microseconds) with DEPENDENCY_UNAVAILABLE instead of waiting for a
 * timeout; after `halfOpenAfterMs` one call (usually the health probe) tries again. Refused
 * connections open it after `failureThreshold` quick failures; blackholed ones after as many
 * call timeouts.
 */
export interface Dependency {
  readonly name: DependencyName;
  /** The longest one call may take, in ms. */
  readonly callTimeoutMs: number;
  /** False while the circuit is open: calls would fail at once. */
  readonly available: boolean;
  /**
   * Runs one call to the dependency, bounded by `callTimeoutMs`. Fails with a
   * DependencyUnavailableError (DEPENDENCY_UNAVAILABLE when the circuit is open, STORE_UNAVAILABLE
   * when this call failed or timed out); any other error (an answer from the store) passes through.
   */
  run<T>(call: () => Promise<T>): Promise<T>;
  /** Told of every change of `available`. */
  onChange(listener: (available: boolean) => void): void;
}

/** A timeout or a failure to reach the store; an answer from the store is not. */
const isFailure = (error: unknown) => error instanceof TaskCancelledError || isInfrastructureFailure(error);

export function createDependency(name: DependencyName, options: DependencyOptions): Dependency {
  const breaker = circuitBreaker(handleWhen(isFailure), {
    halfOpenAfter: options.halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(options.failureThreshold),
  });
  // Aggressive: the caller is answered at the deadline even if the driver has not given up yet.
  const bounded = wrap(breaker, timeout(options.callTimeoutMs, TimeoutStrategy.Aggressive));
  const listeners: ((available: boolean) => void)[] = [];
  let available = true;
  let openedAt = 0;
  breaker.onStateChange((state) => {
    const now = state !== CircuitState.Open && state !== CircuitState.Isolated;
    if (state === CircuitState.Open) openedAt = Date.now();
    if (now === available) return;
    available = now;
    for (const listener of listeners) listener(now);
  });
  const untilTrialMs = () => Math.max(50, openedAt + options.halfOpenAfterMs - Date.now());
  return {
    name,
    callTimeoutMs: options.callTimeoutMs,
    get available() {
      return available;
    },
    async run(call) {
      try {
        return await bounded.execute(call);
      } catch (error) {
        if (error instanceof BrokenCircuitError || error instanceof IsolatedCircuitError) {
          throw new DependencyUnavailableError(name, "DEPENDENCY_UNAVAILABLE", untilTrialMs(), {
            cause: error,
          });
        }
        if (isFailure(error)) {
          throw new DependencyUnavailableError(name, "STORE_UNAVAILABLE", 100, { cause: error });
        }
        throw error;
      }
    },
    onChange(listener) {
      listeners.push(listener);
    },
  };
}
