import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "@stepgate/api/gen/google/rpc/error_details_pb";

export interface Failure {
  code: Code;
  reason: string | undefined;
  message: string;
  metadata: Record<string, string>;
  fields: string[];
  retryDelayMs: number | undefined;
}

/** Runs `call`, expects it to fail, and returns what the rich error model says about it. */
export async function failure(call: Promise<unknown>): Promise<Failure> {
  try {
    await call;
  } catch (error) {
    const e = ConnectError.from(error);
    const info = e.findDetails(ErrorInfoSchema)[0];
    const retry = e.findDetails(RetryInfoSchema)[0];
    return {
      code: e.code,
      reason: info?.reason,
      message: e.rawMessage,
      metadata: info?.metadata ?? {},
      fields: e.findDetails(BadRequestSchema).flatMap((b) => b.fieldViolations.map((v) => v.field)),
      retryDelayMs:
        retry?.retryDelay === undefined
          ? undefined
          : Number(retry.retryDelay.seconds) * 1000 + retry.retryDelay.nanos / 1e6,
    };
  }
  assert.fail("expected the call to fail");
}

/** Asserts a failure's status code and ErrorInfo reason. */
export async function expectFailure(call: Promise<unknown>, code: Code, reason?: string): Promise<Failure> {
  const f = await failure(call);
  assert.equal(Code[f.code], Code[code], `status (reason ${f.reason}: ${f.message})`);
  if (reason !== undefined) assert.equal(f.reason, reason, `reason (${f.message})`);
  return f;
}
