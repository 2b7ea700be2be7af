import { z } from "zod";

/** A calling service's (or an operator's) name in the policy: lowercase letters, digits, . _ - */
export const callerName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    "must be a calling service's name (lowercase letters, digits, . _ -)",
  );

/** A SPIFFE ID, as a client certificate's URI name carries it. */
export const spiffeId = z
  .string()
  .regex(/^spiffe:\/\/[a-z0-9.-]{1,255}(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/, "must be a SPIFFE ID")
  .max(2048);

/** A DNS name in lower case, as a client certificate's dNSName names compare. */
export const dnsName = z
  .string()
  .regex(
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
    "must be a DNS name",
  )
  .max(253);

/** The names a client certificate may be mapped by (`peers`): SPIFFE IDs or DNS names. */
export const peerName = z.union([spiffeId, dnsName]);
