import type { HandlerContext } from "@connectrpc/connect";
import { callerHeader } from "@stepgate/api";
import { reasonError } from "./errors.ts";

const callerPattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** The calling service's name from the `stepgate-caller` header; challenges and grants are bound to it. */
export function callerOf(ctx: HandlerContext): string {
  const caller = ctx.requestHeader.get(callerHeader) ?? "";
  if (!callerPattern.test(caller)) {
    throw reasonError(
      "CALLER_REQUIRED",
      `the ${callerHeader} header must name the calling service (lowercase letters, digits, . _ -)`,
    );
  }
  return caller;
}
