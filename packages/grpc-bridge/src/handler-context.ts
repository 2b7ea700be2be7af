import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ContextValues, HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { headersFromMetadata } from "./metadata.ts";
import { peerAddressKey } from "./peer-address.ts";
import { peerCertificateKey } from "./peer-certificate.ts";

/** What one unary or server-streaming call's context is made from. */
export interface CallContextInit {
  method: DescMethod;
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;
  /** The call's deadline (epoch ms); Infinity without one. */
  deadline: number;
  /** Whether the call came over TLS (the URL's scheme). */
  secure: boolean;
  values: ContextValues;
}

/**
 * Connect's HandlerContext for one grpc-js unary call, made for the cost of one object and one
 * AbortController: headers are built on first use (most calls never touch the response's), and
 * the deadline needs no timer of its own, since grpc-js ends the call at its deadline and the
 * bridge aborts `signal` then. Behaves as `createHandlerContext` from @connectrpc/connect.
 */
export class CallContext implements HandlerContext {
  readonly method: DescMethod;
  readonly service: DescService;
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly values: ContextValues;
  readonly signal: AbortSignal;
  readonly #controller = new AbortController();
  readonly #init: CallContextInit;
  #requestHeader: Headers | undefined;
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;

  constructor(init: CallContextInit) {
    this.#init = init;
    this.method = init.method;
    this.service = init.method.parent;
    this.values = init.values;
    this.signal = this.#controller.signal;
    // A deadline already past when the call reaches its handler: aborted from the start.
    if (init.deadline <= Date.now())
      this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
  }

  /** Ms left until the deadline; undefined without one. An arrow: callers may take it off the context. */
  readonly timeoutMs = (): number | undefined =>
    Number.isFinite(this.#init.deadline) ? this.#init.deadline - Date.now() : undefined;

  get url(): string {
    const { call, secure } = this.#init;
    return `${secure ? "https" : "http"}://${call.getHost()}${call.getPath()}`;
  }

  get requestHeader(): Headers {
    this.#requestHeader ??= headersFromMetadata(this.#init.call.metadata);
    return this.#requestHeader;
  }

  get responseHeader(): Headers {
    this.#responseHeader ??= new Headers();
    return this.#responseHeader;
  }

  get responseTrailer(): Headers {
    this.#responseTrailer ??= new Headers();
    return this.#responseTrailer;
  }

  /** The response headers the handler set, or undefined when it set none. */
  get responseHeaderSet(): Headers | undefined {
    return this.#responseHeader;
  }

  /** The response trailers the handler set, or undefined when it set none. */
  get responseTrailerSet(): Headers | undefined {
    return this.#responseTrailer;
  }

  /** Aborts `signal` with `reason` (the deadline, a cancel, or the call's completion); once. */
  abort(reason: unknown): void {
    if (!this.signal.aborted) this.#controller.abort(reason);
  }
}

/** The context of one grpc-js call: its deadline, whether it came over TLS, the peer's address and certificate. */
export function callContextOf(method: DescMethod, call: CallContextInit["call"]): CallContext {
  const auth = call.getAuthContext();
  const secure = auth.transportSecurityType === "ssl";
  return new CallContext({
    method,
    call,
    deadline: Number(call.getDeadline()),
    secure,
    values: createContextValues()
      .set(peerAddressKey, call.getPeer())
      .set(peerCertificateKey, secure ? auth.sslPeerCertificate : undefined),
  });
}
