import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  RevocationFeedService,
  RevocationKind,
  replicaTrailer,
  type WatchRevocationsRequest,
} from "@stepgate/api";
import type { RevocationKind as Kind } from "../domain/revocation.ts";
import type { WatchMessage, WatchRevocations } from "../revocations/watch-revocations.ts";
import type { IdentifyCaller } from "./caller.ts";
import { toRpcError } from "./errors.ts";
import type { RequestCheck } from "./validate-requests.ts";

export interface RevocationFeedHandlerDeps {
  watch: WatchRevocations;
  identifyCaller: IdentifyCaller;
  checkRequest: RequestCheck;
  replicaId: string;
  /** Subscribers this replica serves at once; one more is refused RESOURCE_EXHAUSTED (default 2000). */
  maxWatchers?: number;
  /** Aborts when the replica drains: every stream ends, and its subscriber reconnects elsewhere. */
  stopping: AbortSignal;
}

const kinds: Record<Kind, RevocationKind> = {
  session_ended: RevocationKind.SESSION_ENDED,
  factor_ended: RevocationKind.FACTOR_ENDED,
  grant_consumed: RevocationKind.GRANT_CONSUMED,
  key_retired: RevocationKind.KEY_RETIRED,
};

const toResponse = (m: WatchMessage) => ({
  revocations: m.revocations.map((r) => ({
    cursor: r.seq.toString(),
    kind: kinds[r.kind],
    target: r.target,
    revokedAtMs: BigInt(r.revokedAtMs),
    expiresAtMs: BigInt(r.expiresAtMs),
  })),
  cursor: m.cursor.toString(),
  asOfMs: BigInt(m.asOfMs),
  sentAtMs: BigInt(m.sentAtMs),
  caughtUp: m.caughtUp,
});

// The highest cursor PostgreSQL's bigint holds; a larger one is no cursor Stepgate gave.
const maxCursor = 2n ** 63n - 1n;

/**
 * RevocationFeedService over the watch use case. Streams run without the unary interceptors, so
 * the handler does what they do for a stream's one request: names the replica in the trailer,
 * identifies the caller (any identified caller may watch: the events name no subject), checks the
 * request's rules and maps failures to statuses.
 */
export function revocationFeedHandlers(
  deps: RevocationFeedHandlerDeps,
): ServiceImpl<typeof RevocationFeedService> {
  const maxWatchers = deps.maxWatchers ?? 2000;
  let open = 0;
  const opened = (ctx: HandlerContext, request: WatchRevocationsRequest): bigint | undefined => {
    ctx.responseTrailer.set(replicaTrailer, deps.replicaId);
    try {
      deps.identifyCaller(ctx);
      deps.checkRequest(RevocationFeedService.method.watchRevocations, request);
    } catch (error) {
      throw toRpcError(error);
    }
    const cursor = request.cursor === "" ? undefined : BigInt(request.cursor);
    if (cursor !== undefined && cursor > maxCursor) {
      throw new ConnectError(
        "invalid request: cursor is beyond any cursor the feed gives",
        Code.InvalidArgument,
      );
    }
    if (open >= maxWatchers) {
      throw new ConnectError(
        "this replica serves as many revocation watchers as it may; try another",
        Code.ResourceExhausted,
      );
    }
    return cursor;
  };
  return {
    async *watchRevocations(request, ctx) {
      const cursor = opened(ctx, request);
      open++;
      try {
        const signal = AbortSignal.any([ctx.signal, deps.stopping]);
        for await (const message of deps.watch({ cursor, signal })) yield toResponse(message);
      } finally {
        open--;
      }
    },
  };
}
