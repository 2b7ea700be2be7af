import { createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { callerHeader, subjectTokenHeader } from "@stepgate/api";
import { handlerContextOf } from "@stepgate/grpc-bridge";
import { principalFromCertificate } from "./certificate-principals.ts";
import { reasonError } from "./errors.ts";

const callerPattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;

// Set once per call by `identifyCallers`, before traffic shaping and the handler read it.
const callerKey = createContextKey<string>("", { description: "stepgate caller" });

/** Names the calling service of one call; fails with CALLER_REQUIRED or CALLER_UNKNOWN (UNAUTHENTICATED). */
export type IdentifyCaller = (ctx: HandlerContext) => string;

/** The calling service's name, as `identifyCallers` found it; challenges and grants are bound to it. */
export function callerOf(ctx: HandlerContext): string {
  const caller = ctx.values.get(callerKey);
  if (caller === "") throw new Error("the call's caller was not identified");
  return caller;
}

/**
 * Names the call's caller when another interceptor identified it (AdminService's operators, as
 * `operator:<name>`), so shaping counts it and `callerOf` answers as for any call.
 */
export function setCallerOf(ctx: HandlerContext, caller: string): void {
  ctx.values.set(callerKey, caller);
}

/** The caller `identifyCallers` found, or "" for a public method's anonymous call. */
export function callerOrAnonymous(ctx: HandlerContext): string {
  return ctx.values.get(callerKey);
}

// The key set is public: verifiers fetch it whoever they are.
const publicMethods = new Set(["getJwks"]);

/**
 * The interceptor that runs `identify` before the rest of every call, so `callerOf` answers for
 * the rest of it. A call whose caller cannot be named fails before anything else runs, except a
 * public method's (GetJwks), which then runs anonymously.
 */
export function identifyCallers(identify: IdentifyCaller): Interceptor {
  return (next) => (req) => {
    const ctx = handlerContextOf(req);
    const isPublic = publicMethods.has(req.method.localName);
    ctx.values.set(callerKey, isPublic ? anonymousOr(identify, ctx) : identify(ctx));
    return next(req);
  };
}

function anonymousOr(identify: IdentifyCaller, ctx: HandlerContext): string {
  try {
    return identify(ctx);
  } catch {
    return "";
  }
}

/** Insecure development mode: the caller is whatever the `stepgate-caller` header says. */
export function callerFromHeader(ctx: HandlerContext): string {
  const caller = ctx.requestHeader.get(callerHeader) ?? "";
  if (!callerPattern.test(caller)) {
    throw reasonError(
      "CALLER_REQUIRED",
      `the ${callerHeader} header must name the calling service (lowercase letters, digits, . _ -)`,
    );
  }
  return caller;
}

/**
 * Mutual TLS: the caller is the one the policy maps the client certificate's names to (`peers`,
 * identity to caller): its SPIFFE IDs (typed URI names) and DNS names (typed dNSName names, without
 * case), read from the certificate's DER as `certificateNames` says. A certificate whose names map to
 * two callers, or whose DER cannot be read, names none. A `stepgate-caller` header, if sent, must
 * name the same caller. Fails with CALLER_UNKNOWN.
 */
export function callerFromCertificate(peers: ReadonlyMap<string, string>): IdentifyCaller {
  const identify = principalFromCertificate(peers, "calling service");
  return (ctx) => {
    const identified = identify(ctx);
    if ("refusal" in identified) throw reasonError("CALLER_UNKNOWN", identified.refusal);
    const claimed = ctx.requestHeader.get(callerHeader);
    if (claimed !== null && claimed !== identified.principal) {
      throw reasonError(
        "CALLER_UNKNOWN",
        `the ${callerHeader} header names another service than the client certificate`,
      );
    }
    return identified.principal;
  };
}

/** The user's primary-session token from the `stepgate-subject-token` header, if the caller sent one. */
export function subjectTokenOf(ctx: HandlerContext): string | undefined {
  return ctx.requestHeader.get(subjectTokenHeader) ?? undefined;
}
