export * from "./gen/stepgate/v1/admin_service_pb.ts";
export * from "./gen/stepgate/v1/conditions_pb.ts";
export * from "./gen/stepgate/v1/factor_service_pb.ts";
export * from "./gen/stepgate/v1/revocation_feed_service_pb.ts";
export * from "./gen/stepgate/v1/step_up_required_pb.ts";
export * from "./gen/stepgate/v1/step_up_service_pb.ts";
export * from "./gen/stepgate/v1/types_pb.ts";

/** The `google.rpc.ErrorInfo` domain of every Stepgate error. */
export const errorDomain = "stepgate.v1";

/** The header in which a calling service names itself. */
export const callerHeader = "stepgate-caller";

/**
 * The header that names the operator of an AdminService call in insecure development mode only
 * (under mutual TLS the client certificate names the operator, and the header is ignored).
 */
export const operatorHeader = "stepgate-operator";

/**
 * The header in which a calling service may pass the user's primary-session token (an OIDC ID
 * token or a JWT access token of a trusted issuer) to prove the subject is present.
 */
export const subjectTokenHeader = "stepgate-subject-token";

/**
 * The trailer in which a replica names itself on every call it answers, OK or not. A failed call
 * without it was not answered by a replica: it was lost on the way (connection, proxy).
 */
export const replicaTrailer = "stepgate-replica";

/**
 * The request header in which a call to a service protected by @stepgate/guard carries the grant
 * (the compact JWT of a Stepgate Grant) for the action the call needs.
 */
export const grantHeader = "stepgate-grant";

/** The ErrorInfo reason of a call @stepgate/guard refused for want of a step-up (StepUpRequired). */
export const stepUpRequiredReason = "STEP_UP_REQUIRED";
