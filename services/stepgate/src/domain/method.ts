/** The second-factor methods Stepgate verifies; policy files and the API name them the same way. */
export const methodNames = ["totp", "recovery_code", "passkey"] as const;

/** One of `methodNames`. */
export type MethodName = (typeof methodNames)[number];
