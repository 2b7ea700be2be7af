import { Code, ConnectError } from "@connectrpc/connect";
import { errorDomain } from "@stepgate/api";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";

/** The CLI's exit codes (docs/operator-cli.md). */
export const exitCodes = {
  ok: 0,
  /** The service refused the command or failed it (or re-seal is not done). */
  failed: 1,
  /** Bad usage or input, found before any call (or INVALID_ARGUMENT from the service). */
  usage: 2,
  /** A replica could not be reached or did not answer in time (or a re-seal job holds the lock). */
  unavailable: 3,
  /** Not allowed: PERMISSION_DENIED or UNAUTHENTICATED. */
  notAllowed: 4,
  /** No such subject's factor (NOT_FOUND). */
  notFound: 5,
} as const;

/** A problem with the command line, reported before anything is sent. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The exit code for what a command threw. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return exitCodes.usage;
  if (!(error instanceof ConnectError)) return exitCodes.failed;
  switch (error.code) {
    case Code.InvalidArgument:
      return exitCodes.usage;
    // Nobody answered in time, or the replica is down or shedding: another try may get through.
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return exitCodes.unavailable;
    case Code.PermissionDenied:
    case Code.Unauthenticated:
      return exitCodes.notAllowed;
    case Code.NotFound:
      return exitCodes.notFound;
    default:
      return exitCodes.failed;
  }
}

/** Stepgate's ErrorInfo reason of a failed call, e.g. "OPERATOR_NOT_ALLOWED"; "" when it carries none. */
export function reasonOf(error: ConnectError): string {
  const info = error.findDetails(ErrorInfoSchema).find((i) => i.domain === errorDomain);
  return info?.reason ?? "";
}

/** One line for stderr: what failed and why, with the gRPC status and Stepgate's reason. */
export function describeFailure(error: unknown): string {
  if (error instanceof UsageError) return error.message;
  if (!(error instanceof ConnectError)) return error instanceof Error ? error.message : String(error);
  const reason = reasonOf(error);
  const status = Code[error.code] ?? String(error.code);
  return `${error.rawMessage} (${status}${reason ? ` ${reason}` : ""})`;
}
