import type { Attributes } from "@opentelemetry/api";
import { StepgateError } from "../domain/stepgate-error.ts";

/**
 * Times `fn` and records the duration with its outcome: `outcomeOf(result)` on success, the
 * lowercase failure reason (or "error") otherwise.
 */
export async function measure<T>(
  record: (seconds: number, attributes: Attributes) => void,
  attributes: Attributes,
  fn: () => Promise<T>,
  outcomeOf: (result: T) => string,
): Promise<T> {
  const started = performance.now();
  const done = (outcome: string) =>
    record((performance.now() - started) / 1000, { ...attributes, "stepgate.outcome": outcome });
  try {
    const result = await fn();
    done(outcomeOf(result));
    return result;
  } catch (error) {
    done(failureOutcome(error));
    throw error;
  }
}

export function failureOutcome(error: unknown): string {
  return error instanceof StepgateError ? error.reason.toLowerCase() : "error";
}
