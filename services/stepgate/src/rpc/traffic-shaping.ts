import type { DescService } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { callerHeader } from "@stepgate/api";
import { peerAddressKey } from "@stepgate/grpc-bridge";
import { admissionRank, type Priority } from "../domain/priority.ts";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { Metrics } from "../observability/metrics.ts";
import { type Admission, ShedError } from "../traffic/admission.ts";
import type { CheckRateLimits } from "../traffic/rate-limits.ts";
import { callPriority } from "./call-priority.ts";
import { reasonError } from "./errors.ts";

/**
 * The trailer gRPC retry policies read (gRFC A6): the client waits this many ms before its retry,
 * instead of its own backoff. Sent with every shed call.
 */
export const retryPushbackTrailer = "grpc-retry-pushback-ms";

/** What shaping needs: the limits, the admission control, the policy's priorities and the metrics. */
export interface TrafficShaping {
  checkRateLimits: CheckRateLimits;
  admission: Admission;
  /** An action's priority from the policy; undefined for an unknown action. */
  actionPriority: (action: string) => Priority | undefined;
  metrics: Pick<Metrics, "shed" | "rateLimited">;
}

// Metric attributes must come from a bounded set: the first callers seen are named, the rest "_other".
const maxNamedCallers = 50;

/** The client's address without its port: "127.0.0.1:5000" -> "127.0.0.1", "[::1]:5000" -> "::1". */
export function sourceAddress(peer: string | undefined): string {
  if (!peer) return "unknown";
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed?.[1]) return bracketed[1];
  const hostPort = /^([^:]+):\d+$/.exec(peer);
  return hostPort?.[1] ?? peer;
}

/**
 * Wraps every handler of `service` in the fleet-wide rate limits and then this replica's admission
 * control, before any of its work starts. A rate-limited call fails RATE_LIMITED
 * (RESOURCE_EXHAUSTED, RetryInfo); a shed one OVERLOADED (UNAVAILABLE, RetryInfo and the
 * `grpc-retry-pushback-ms` trailer), so grpc-js clients retry after that wait, on any replica.
 */
export function shapeTraffic<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  shaping: TrafficShaping,
): ServiceImpl<S> {
  const named = new Set<string>();
  const callerLabel = (caller: string) => {
    if (named.has(caller)) return caller;
    if (named.size >= maxNamedCallers) return "_other";
    named.add(caller);
    return caller;
  };
  const wrapped: Record<string, unknown> = {};
  for (const method of service.methods) {
    const fn = (impl as Record<string, (req: unknown, ctx: HandlerContext) => Promise<unknown>>)[
      method.localName
    ];
    if (!fn) continue;
    const name = `${service.name}/${method.name}`;
    wrapped[method.localName] = async (req: unknown, ctx: HandlerContext) => {
      const { priority, isVerify } = callPriority(name, req, shaping.actionPriority);
      // The handler refuses a missing or malformed caller; shaping only needs a name to count.
      const caller = ctx.requestHeader.get(callerHeader) ?? "";
      const source = sourceAddress(ctx.values.get(peerAddressKey));
      const subject =
        isVerify || name === "StepUpService/StepUp" ? (req as { subject?: string }).subject : undefined;
      try {
        await shaping.checkRateLimits({ caller, source, ...(subject ? { subject } : {}) });
      } catch (error) {
        if (error instanceof StepgateError && error.reason === "RATE_LIMITED") {
          shaping.metrics.rateLimited({
            priority,
            limit: error.metadata.limit ?? "",
            caller: callerLabel(caller),
          });
        }
        throw error;
      }
      const timeoutMs = ctx.timeoutMs();
      const deadline = timeoutMs === undefined ? undefined : performance.now() + timeoutMs;
      let ticket: Awaited<ReturnType<Admission["admit"]>>;
      try {
        ticket = await shaping.admission.admit({
          rank: admissionRank(priority, isVerify),
          caller,
          ...(deadline === undefined ? {} : { deadline }),
        });
      } catch (error) {
        if (!(error instanceof ShedError)) throw error;
        shaping.metrics.shed({ priority, cause: error.reason, caller: callerLabel(caller) });
        ctx.responseTrailer.set(retryPushbackTrailer, String(error.retryAfterMs));
        throw reasonError(
          "OVERLOADED",
          "replica is saturated; retry shortly, ideally on another replica",
          { priority, cause: error.reason },
          error.retryAfterMs,
        );
      }
      try {
        return await fn(req, ctx);
      } finally {
        ticket.done();
      }
    };
  }
  return wrapped as ServiceImpl<S>;
}
