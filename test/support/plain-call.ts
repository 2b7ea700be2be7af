import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { callerHeader } from "@stepgate/api";
import {
  type ErrorInfo,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "@stepgate/api/gen/google/rpc/error_details_pb";
import { StatusSchema } from "@stepgate/api/gen/google/rpc/status_pb";

/** What a plain grpc-js client (no service config: no retries) saw of one unary call. */
export interface Seen {
  /** "metadata" for response headers, "status" for the status with its trailers, in order. */
  events: string[];
  status: grpc.StatusObject;
}

const bytes = (b: Buffer) => b;

/**
 * One unary call of `path` on `client`, a plain grpc-js client, as `caller`, with `request`
 * encoded by `schema`; answers after `deadlineMs` at the latest (ms). Records whether response
 * headers came before the status.
 */
export function plainUnary<I extends DescMessage>(
  client: grpc.Client,
  path: string,
  schema: I,
  request: MessageInitShape<I>,
  options: { caller: string; deadlineMs: number },
): Promise<Seen> {
  const metadata = new grpc.Metadata();
  metadata.set(callerHeader, options.caller);
  const events: string[] = [];
  return new Promise<Seen>((resolve) => {
    const call = client.makeUnaryRequest(
      path,
      bytes,
      bytes,
      Buffer.from(toBinary(schema, create(schema, request))),
      metadata,
      { deadline: Date.now() + options.deadlineMs },
      () => {},
    );
    call.on("metadata", () => events.push("metadata"));
    call.on("status", (status: grpc.StatusObject) => {
      events.push("status");
      resolve({ events, status });
    });
  });
}

/** The ErrorInfo and the RetryInfo delay (ms) of a failed call's `grpc-status-details-bin`. */
export function richDetails(metadata: grpc.Metadata): {
  info: ErrorInfo | undefined;
  retryMs: number | undefined;
} {
  const [raw] = metadata.get("grpc-status-details-bin");
  if (!(raw instanceof Buffer)) return { info: undefined, retryMs: undefined };
  const details = fromBinary(StatusSchema, raw).details;
  const info = details.map((d) => anyUnpack(d, ErrorInfoSchema)).find((d) => d !== undefined);
  const retry = details.map((d) => anyUnpack(d, RetryInfoSchema)).find((d) => d !== undefined);
  const delay = retry?.retryDelay;
  return {
    info,
    retryMs: delay === undefined ? undefined : Number(delay.seconds) * 1000 + delay.nanos / 1e6,
  };
}
