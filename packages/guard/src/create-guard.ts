import {
  Code,
  ConnectError,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  grpcStatusFromCode,
  headersFromMetadata,
  metadataFromHeaders,
  statusDetailsFromError,
  statusDetailsKey,
} from "@stepgate/grpc-bridge";
import { type Admission, admitCall, type GuardStepgate } from "./admit-call.ts";
import type { AdmittedGrant } from "./check-grant.ts";
import { methodPath, type ProtectedMethod } from "./method-rule.ts";
import { stepUpRequiredOf } from "./step-up-required.ts";

/** How a protected call ended in the guard, for logs and metrics (never a token). */
export interface GuardDecision {
  /** The gRPC path, `/package.Service/Method`. */
  path: string;
  action?: string;
  /** `admitted`; `step_up_required` (the STEP_UP_REQUIRED error); `refused` or `unavailable` (other errors). */
  outcome: "admitted" | "step_up_required" | "refused" | "unavailable";
  /** GRANT_MISSING, or why the call's grant would not do (GRANT_EXPIRED, GRANT_CONSUMED, ...). */
  grantRefusal?: string;
  /** For `admitted`: CheckGrant consumed the grant (single-use). */
  checkedOnline?: boolean;
  /** For `admitted`: StepUp issued the grant, the session's elevation being fresh enough. */
  fromStepUp?: boolean;
  /** Time spent in the guard, in ms. */
  durationMs: number;
  /** For `refused` and `unavailable`: the error, with Stepgate's as its cause. */
  error?: ConnectError;
}

/** What `createGuard` takes. */
export interface GuardOptions {
  /** A Stepgate client (`createStepgateClient`) of the protected service, as its calling service. */
  stepgate: GuardStepgate;
  /** The protected methods (`protect(...)`); every other method passes through untouched. */
  methods: readonly ProtectedMethod[];
  /** Told of every protected call's outcome, once. Default: nothing. */
  onDecision?: (decision: GuardDecision) => void;
}

/** The guard for both server stacks, sharing one rule set. */
export interface Guard {
  /** For Connect servers (connect-node, @stepgate/grpc-bridge's addService): `interceptors: [guard.connect]`. */
  connect: Interceptor;
  /** For grpc-js servers: `new grpc.Server({ interceptors: [guard.grpc] })`. */
  grpc: grpc.ServerInterceptor;
}

const admittedKey = createContextKey<AdmittedGrant | undefined>(undefined, { description: "stepgate grant" });
const admittedCalls = new WeakMap<grpc.Metadata, AdmittedGrant>();

/**
 * The grant a protected call was admitted with, in its handler: a Connect HandlerContext, or a
 * grpc-js call (anything with the call's `metadata`). Undefined for a method the guard does not protect.
 */
export function admittedGrantOf(
  call: HandlerContext | { metadata: grpc.Metadata },
): AdmittedGrant | undefined {
  return "values" in call ? call.values.get(admittedKey) : admittedCalls.get(call.metadata);
}

/**
 * Builds the guard of a consuming service's protected methods: each call of one is admitted only
 * with a grant for its action, session and transaction (`admitCall`), else refused with the
 * STEP_UP_REQUIRED error (docs/step-up-required.md). Only unary methods can be protected: a
 * protected method called as a stream is refused with INTERNAL. Throws when two rules name one path.
 */
export function createGuard(options: GuardOptions): Guard {
  const rules = new Map<string, ProtectedMethod["rule"]>();
  for (const m of options.methods) {
    if (rules.has(m.path)) throw new Error(`createGuard: ${m.path} is protected twice`);
    rules.set(m.path, m.rule);
  }
  const report = options.onDecision ?? (() => {});
  const admit = async (path: string, request: unknown, headers: Headers): Promise<AdmittedGrant> => {
    const started = performance.now();
    try {
      const admission = await admitCall(
        options.stepgate,
        rules.get(path) as ProtectedMethod["rule"],
        request,
        headers,
      );
      report(admittedDecision(path, admission, performance.now() - started));
      return admission.grant;
    } catch (error) {
      report(failedDecision(path, error as ConnectError, performance.now() - started));
      throw error;
    }
  };

  const connect: Interceptor = (next) => async (req) => {
    const path = methodPath(req.method);
    if (!rules.has(path)) return next(req);
    if (req.stream) throw new ConnectError(`${path} is protected and must be unary`, Code.Internal);
    req.contextValues.set(admittedKey, await admit(path, req.message, req.header));
    return next(req);
  };

  const grpcInterceptor: grpc.ServerInterceptor = (descriptor, call) => {
    if (!rules.has(descriptor.path)) return new grpc.ServerInterceptingCall(call);
    if (descriptor.requestStream) {
      const refusal = new ConnectError(`${descriptor.path} is protected and must be unary`, Code.Internal);
      return refuseAtStart(call, refusal);
    }
    let metadata = new grpc.Metadata();
    const intercepting: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (received, pass) => {
            metadata = received;
            pass(received);
          },
          onReceiveMessage: (message, pass) => {
            admit(descriptor.path, message, headersFromMetadata(metadata)).then(
              (grant) => {
                admittedCalls.set(metadata, grant);
                pass(message);
              },
              // The message never reaches the handler: the call ends here with the guard's status.
              (error: ConnectError) => intercepting.sendStatus(grpcStatusOf(error)),
            );
          },
        }),
    });
    return intercepting;
  };

  return { connect, grpc: grpcInterceptor };
}

function admittedDecision(path: string, a: Admission, durationMs: number): GuardDecision {
  return {
    path,
    action: a.action,
    outcome: "admitted",
    checkedOnline: a.grant.checkedOnline,
    fromStepUp: a.fromStepUp,
    ...(a.grantRefusal ? { grantRefusal: a.grantRefusal } : {}),
    durationMs,
  };
}

function failedDecision(path: string, error: ConnectError, durationMs: number): GuardDecision {
  const needed = stepUpRequiredOf(error);
  if (needed) {
    return {
      path,
      action: needed.action,
      outcome: "step_up_required",
      grantRefusal: needed.grantRefusal,
      durationMs,
    };
  }
  const outcome = error.code === Code.Unavailable ? "unavailable" : "refused";
  return { path, outcome, durationMs, error };
}

function refuseAtStart(
  call: grpc.ServerInterceptingCallInterface,
  error: ConnectError,
): grpc.ServerInterceptingCall {
  const intercepting: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
    start: (next) => {
      next({ onReceiveMessage: () => {} });
      intercepting.sendStatus(grpcStatusOf(error));
    },
  });
  return intercepting;
}

// A ConnectError as grpc-js sends it: the code, the message, its metadata and details as trailers.
function grpcStatusOf(error: ConnectError): grpc.StatusObject {
  const metadata = error.isWireError ? new grpc.Metadata() : metadataFromHeaders(error.metadata);
  if (error.details.length > 0) metadata.set(statusDetailsKey, statusDetailsFromError(error));
  return { code: grpcStatusFromCode(error.code), details: error.rawMessage, metadata };
}
