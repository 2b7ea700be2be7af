import type { DescMessage, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";

/** The user session a protected call acts for, as the calling service knows it. */
export interface CallSession {
  /** The user (1 to 256 printable bytes), as Stepgate's StepUp takes it. */
  subject: string;
  /** The user's primary session id (1 to 256 printable bytes); elevations belong to it. */
  sessionId: string;
  /**
   * The user's primary-session token (OIDC ID token or JWT access token), sent with StepUp as
   * `stepgate-subject-token` for callers whose policy says `subject_proof: required`.
   */
  subjectToken?: string;
}

/**
 * The details of the transaction a call executes, for actions whose policy binds grants to one
 * (PSD2 dynamic linking; Stepgate's TransactionDetails): a decimal `amount` string such as
 * "120.00", an ISO 4217 `currency`, the `payee` as the user sees it, an optional `resource` id.
 */
export interface TransactionInput {
  amount: string;
  currency: string;
  payee: string;
  resource?: string;
}

/**
 * What one protected method needs, read from its request. `Req` is the decoded request message
 * (a protobuf-es message with Connect, whatever the service's deserializer makes with grpc-js).
 */
export interface MethodRule<Req> {
  /** The action in Stepgate's policy, or a function choosing it per request (e.g. by amount). */
  action: string | ((request: Req) => string);
  /**
   * The user session the call acts for: from the service's own authentication (a verified token
   * in `headers`, usually), never trusted from the message alone. Throwing refuses the call: a
   * ConnectError as it is, anything else as UNAUTHENTICATED.
   */
  session(request: Req, headers: Headers): CallSession;
  /**
   * The transaction the call executes. Sent to StepUp and checked against a grant bound to one
   * (its `txn` claim); ignored by Stepgate for actions that do not bind. Default: none.
   */
  transaction?(request: Req): TransactionInput | undefined;
  /** Facts for Stepgate's audit trail sent with StepUp (at most 16, values up to 256 bytes). */
  context?(request: Req, headers: Headers): Record<string, string>;
}

/** A method and its rule, keyed by the gRPC path `/package.Service/Method`. */
export interface ProtectedMethod {
  path: string;
  // biome-ignore lint/suspicious/noExplicitAny: the rule was typed against its method by `protect`.
  rule: MethodRule<any>;
}

/** The gRPC path of a protobuf-es method descriptor, `/package.Service/Method`. */
export function methodPath(method: { parent: { typeName: string }; name: string }): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/**
 * Protects a unary method described by protobuf-es (`Service.method.transfer`): its rule's
 * functions get the typed request message.
 */
export function protect<I extends DescMessage>(
  method: DescMethodUnary<I, DescMessage>,
  rule: MethodRule<MessageShape<I>>,
): ProtectedMethod {
  return { path: methodPath(method), rule };
}
