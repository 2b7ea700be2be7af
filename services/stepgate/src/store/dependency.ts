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
  /**
   * True when the driver itself fails each command after `callTimeoutMs` (ioredis
   * `commandTimeout`): no timer of ours per call then, which costs microseconds on every command.
   */
  driverTimesOut?: boolean;
}

/**
 * One store the service depends on, behind a circuit breaker (cockatiel). While the circuit is
 * open, calls fail at once (microseconds) with DEPENDENCY_UNAVAILABLE instead of waiting for a
 * timeout; after `halfOpenAfterMs` the next health probe is the trial call, and requests use the
 * dependency again only once it succeeded. Refused
 * connections open it after `failureThreshold` quick failures; blackholed ones after as many
 * call timeouts.
 */
export interface Dependency {
  readonly name: DependencyName;
  /** The longest one call may take, in ms. */
  readonly callTimeoutMs: number;
  /** True while the circuit is closed; false while it is open or waiting for its trial call. */
  readonly available: boolean;
  /**
   * Runs one call to the dependency, bounded by `callTimeoutMs`. Fails with a
   * DependencyUnavailableError: DEPENDENCY_UNAVAILABLE at once while the circuit is not closed
   * (no request waits on a store known to be down, not even for the trial call, which is the
   * probe's), STORE_UNAVAILABLE when this call failed or timed out. Any other error (an answer from
   * the store) passes through.
   */
  run<T>(call: () => Promise<T>): Promise<T>;
  /** Like `run`, but also makes the trial call of an open circuit once it is due: for health probes. */
  probe<T>(call: () => Promise<T>): Promise<T>;
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
  // No abort on return: calls take no signal, and aborting one per call builds a DOMException
  // (a stack capture) for every store command, several per Verify.
  const bounded = options.driverTimesOut
    ? breaker
    : wrap(
        breaker,
        timeout(options.callTimeoutMs, { strategy: TimeoutStrategy.Aggressive, abortOnReturn: false }),
      );
  const listeners: ((available: boolean) => void)[] = [];
  let available = true;
  let openedAt = 0;
  breaker.onStateChange((state) => {
    const now = state === CircuitState.Closed;
    if (state === CircuitState.Open) openedAt = Date.now();
    if (now === available) return;
    available = now;
    for (const listener of listeners) listener(now);
  });
  const untilTrialMs = () => Math.max(50, openedAt + options.halfOpenAfterMs - Date.now());
  const execute = async <T>(call: () => Promise<T>): Promise<T> => {
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
  };
  return {
    name,
    callTimeoutMs: options.callTimeoutMs,
    get available() {
      return available;
    },
    async run(call) {
      if (breaker.state !== CircuitState.Closed) {
        throw new DependencyUnavailableError(name, "DEPENDENCY_UNAVAILABLE", untilTrialMs());
      }
      return execute(call);
    },
    probe: execute,
    onChange(listener) {
      listeners.push(listener);
    },
  };
}
