import type { DescService } from "@bufbuild/protobuf";
import { createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { callerHeader, subjectTokenHeader } from "@stepgate/api";
import { peerCertificateKey } from "@stepgate/grpc-bridge";
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

/** The caller `identifyCallers` found, or "" for a public method's anonymous call. */
export function callerOrAnonymous(ctx: HandlerContext): string {
  return ctx.values.get(callerKey);
}

// The key set is public: verifiers fetch it whoever they are.
const publicMethods = new Set(["getJwks"]);

/**
 * Runs `identify` before every method of `impl`, so `callerOf` answers for the rest of the call.
 * A call whose caller cannot be named fails before anything else runs, except a public method's
 * (GetJwks), which then runs anonymously.
 */
export function identifyCallers<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  identify: IdentifyCaller,
): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = {};
  for (const method of service.methods) {
    const fn = (impl as Record<string, (req: unknown, ctx: HandlerContext) => unknown>)[method.localName];
    if (!fn) continue;
    const isPublic = publicMethods.has(method.localName);
    wrapped[method.localName] = (req: unknown, ctx: HandlerContext) => {
      ctx.values.set(callerKey, isPublic ? anonymousOr(identify, ctx) : identify(ctx));
      return fn.call(impl, req, ctx);
    };
  }
  return wrapped as ServiceImpl<S>;
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
 * Mutual TLS: the caller is the one the policy maps the client certificate's SPIFFE ID (URI SAN)
 * or DNS name (DNS SAN) to (`peers`, identity to caller). A `stepgate-caller` header, if sent,
 * must name the same caller. Fails with CALLER_UNKNOWN.
 */
export function callerFromCertificate(peers: ReadonlyMap<string, string>): IdentifyCaller {
  // Certificates are few and calls many: the mapping is remembered per certificate fingerprint.
  const known = new Map<string, string | undefined>();
  return (ctx) => {
    const certificate = ctx.values.get(peerCertificateKey);
    if (!certificate) throw reasonError("CALLER_UNKNOWN", "a client certificate is required");
    let caller = known.get(certificate.fingerprint256);
    if (!known.has(certificate.fingerprint256)) {
      caller = subjectAltNames(certificate.subjectaltname ?? "")
        .map((name) => peers.get(name))
        .find((name) => name !== undefined);
      if (known.size >= 1024) known.clear();
      known.set(certificate.fingerprint256, caller);
    }
    if (caller === undefined) {
      throw reasonError("CALLER_UNKNOWN", "the client certificate names no calling service in the policy");
    }
    const claimed = ctx.requestHeader.get(callerHeader);
    if (claimed !== null && claimed !== caller) {
      throw reasonError(
        "CALLER_UNKNOWN",
        `the ${callerHeader} header names another service than the client certificate`,
      );
    }
    return caller;
  };
}

/**
 * The URI and DNS names of Node's `subjectaltname` (`URI:spiffe://a/b, DNS:x.example`); Node
 * quotes a value holding a comma or quote as a JSON string, which is read back the same way.
 */
export function subjectAltNames(text: string): string[] {
  const names: string[] = [];
  for (const match of text.matchAll(/(URI|DNS):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g)) {
    const raw = match[2] ?? "";
    try {
      const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
      // DNS names compare without case (RFC 4343); SPIFFE IDs as written.
      names.push(match[1] === "DNS" ? value.toLowerCase() : value);
    } catch {
      // A value Node could not have written: no identity is taken from it.
    }
  }
  return names;
}

/** The user's primary-session token from the `stepgate-subject-token` header, if the caller sent one. */
export function subjectTokenOf(ctx: HandlerContext): string | undefined {
  return ctx.requestHeader.get(subjectTokenHeader) ?? undefined;
}
