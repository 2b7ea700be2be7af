import type { MethodName } from "./method.ts";

/** What a session proved with a second factor, and when. */
export interface Elevation {
  /** The assurance level reached (RFC 9470 acr, e.g. "aal2"). */
  acr: string;
  /** RFC 8176 authentication method references, e.g. ["otp"]. */
  amr: string[];
  method: MethodName;
  /** Epoch seconds (RFC 9470 auth_time). */
  authTime: number;
  /** The factor whose proof produced it: removing that factor ends the elevation. */
  factorId?: string;
}
