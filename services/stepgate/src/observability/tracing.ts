import { type Attributes, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { StepgateError } from "../domain/stepgate-error.ts";

const tracer = trace.getTracer("stepgate");

/**
 * Runs `fn` in a child span. Attributes must never hold a code, secret, token or raw subject id:
 * callers pass only actions, levels, methods, outcomes and the replica.
 */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      // The reason is safe to record; other errors' messages may quote data, so only their type is.
      const reason =
        error instanceof StepgateError ? error.reason : error instanceof Error ? error.name : "error";
      span.setAttribute("stepgate.outcome", reason.toLowerCase());
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** The same for synchronous work (grant signing). */
export function inSpanSync<T>(name: string, attributes: Attributes, fn: () => T): T {
  return tracer.startActiveSpan(name, { attributes }, (span) => {
    try {
      return fn();
    } finally {
      span.end();
    }
  });
}

/** The active span's ids, for log lines. */
export function traceIds(): { trace_id: string; span_id: string } | Record<string, never> {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx && trace.isSpanContextValid(ctx) ? { trace_id: ctx.traceId, span_id: ctx.spanId } : {};
}
