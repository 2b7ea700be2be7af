import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { handlerContextOf, peerAddressKey } from "@stepgate/grpc-bridge";
import { admissionRank, type Priority } from "../domain/priority.ts";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Admission, Shed, ShedReason, Ticket } from "../traffic/admission.ts";
import type { CheckRateLimits } from "../traffic/rate-limits.ts";
import { type CallPriority, callPriority } from "./call-priority.ts";
import { callerOrAnonymous } from "./caller.ts";
import { reasonError } from "./errors.ts";
import { shortRpcName } from "./method-names.ts";

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

/** The client's address without its port: "127.0.0.1:5000" -> "127.0.0.1", "[::1]:5000" -> "::1". */
export function sourceAddress(peer: string | undefined): string {
  if (!peer) return "unknown";
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed?.[1]) return bracketed[1];
  const hostPort = /^([^:]+):\d+$/.exec(peer);
  return hostPort?.[1] ?? peer;
}

/** What shaping reads off one call. */
interface ShapedCall extends CallPriority {
  caller: string;
  source: string;
  /** StepUp's and Verify's subject. */
  subject: string | undefined;
  /** When the answer is due (performance.now ms), if the call has a deadline. */
  deadline: number | undefined;
}

function describeCall(
  method: string,
  req: unknown,
  ctx: HandlerContext,
  shaping: TrafficShaping,
): ShapedCall {
  const { priority, isVerify } = callPriority(method, req, shaping.actionPriority);
  const timeoutMs = ctx.timeoutMs();
  return {
    priority,
    isVerify,
    caller: callerOrAnonymous(ctx),
    source: sourceAddress(ctx.values.get(peerAddressKey)),
    subject:
      isVerify || method === "StepUpService/StepUp" ? (req as { subject?: string }).subject : undefined,
    deadline: timeoutMs === undefined ? undefined : performance.now() + timeoutMs,
  };
}

/**
 * Waits for a slot; a shed call fails OVERLOADED with RetryInfo and the pushback trailer. Answers
 * without a promise when admission decides at once (most calls).
 */
function admit(shaping: TrafficShaping, call: ShapedCall, ctx: HandlerContext): Ticket | Promise<Ticket> {
  const decision = shaping.admission.admit({
    rank: admissionRank(call.priority, call.isVerify),
    caller: call.caller,
    ...(call.deadline === undefined ? {} : { deadline: call.deadline }),
    signal: ctx.signal,
  });
  if (!(decision instanceof Promise)) return ticketOrShed(shaping, call, ctx, decision);
  return decision.then(
    (waited) => ticketOrShed(shaping, call, ctx, waited),
    (error: unknown) => {
      // Cancelled, or past its deadline, while it waited: the call already ended with that status.
      throw ConnectError.from(error, Code.Canceled);
    },
  );
}

/** The ticket of an admitted call; a shed one counted and thrown as OVERLOADED. */
function ticketOrShed(
  shaping: TrafficShaping,
  call: ShapedCall,
  ctx: HandlerContext,
  decision: Ticket | Shed,
) {
  if (decision.admitted) return decision;
  shaping.metrics.shed({ priority: call.priority, cause: decision.reason, caller: call.caller });
  const retryAfterMs = Math.ceil(decision.retryAfterMs / 10) * 10;
  ctx.responseTrailer.set(retryPushbackTrailer, String(retryAfterMs));
  throw overloaded(decision.priority, decision.reason, retryAfterMs);
}

// Shed answers are few distinct values (priority, cause, retry in 10 ms steps), built once each:
// under a flood most calls end here, and an error's stack and encoded details cost per call.
const overloadedErrors = new Map<string, ConnectError>();
function overloaded(priority: Priority, cause: ShedReason, retryAfterMs: number): ConnectError {
  const key = `${priority}:${cause}:${retryAfterMs}`;
  let error = overloadedErrors.get(key);
  if (!error) {
    const message = "replica is saturated; retry shortly, ideally on another replica";
    error = reasonError("OVERLOADED", message, { priority, cause }, retryAfterMs);
    overloadedErrors.set(key, error);
  }
  return error;
}

/**
 * Counts the call against the rate limits; a refused one fails RATE_LIMITED and is counted.
 * Undefined when memory let it through at once (no promise for most calls).
 */
function limit(shaping: TrafficShaping, call: ShapedCall): Promise<void> | undefined {
  const { caller, source, subject } = call;
  return shaping
    .checkRateLimits({ caller, source, ...(subject ? { subject } : {}) })
    ?.catch((error: unknown) => countRefusal(shaping, call, error));
}

/** Counts a rate-limited call in the metrics and throws its error on. */
function countRefusal(shaping: TrafficShaping, call: ShapedCall, error: unknown): never {
  if (error instanceof StepgateError && error.reason === "RATE_LIMITED") {
    shaping.metrics.rateLimited({
      priority: call.priority,
      limit: error.metadata.limit ?? "",
      caller: call.caller,
    });
  }
  throw error;
}

/**
 * The interceptor that puts every call through this replica's admission control and then the
 * fleet-wide rate limits, before any of its work starts. Admission comes first, so a call shed
 * under a flood costs no Redis round trip. A shed call fails OVERLOADED (UNAVAILABLE, RetryInfo
 * and the `grpc-retry-pushback-ms` trailer, so grpc-js clients retry after that wait, on any
 * replica); a rate-limited one RATE_LIMITED (RESOURCE_EXHAUSTED, RetryInfo). Runs after
 * `identifyCallers`: admission and the limits count calls per caller.
 */
export function shapeTraffic(shaping: TrafficShaping): Interceptor {
  return (next) => async (req) => {
    const ctx = handlerContextOf(req);
    const call = describeCall(shortRpcName(req.method), req.message, ctx, shaping);
    const admitted = admit(shaping, call, ctx);
    const ticket = admitted instanceof Promise ? await admitted : admitted;
    try {
      const limiting = limit(shaping, call);
      if (limiting) await limiting;
      return await next(req);
    } finally {
      ticket.done();
    }
  };
}
