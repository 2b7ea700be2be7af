export * from "./gen/stepgate/v1/factor_service_pb.ts";
export * from "./gen/stepgate/v1/step_up_service_pb.ts";
export * from "./gen/stepgate/v1/types_pb.ts";

/** The `google.rpc.ErrorInfo` domain of every Stepgate error. */
export const errorDomain = "stepgate.v1";

/** The header in which a calling service names itself. */
export const callerHeader = "stepgate-caller";
