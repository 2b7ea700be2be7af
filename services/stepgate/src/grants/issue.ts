import { inSpanSync } from "../observability/tracing.ts";
import type { Stepgate } from "../stepgate.ts";
import type { GrantRequest, IssuedGrant } from "./grant-issuer.ts";

/** Issues a grant inside a `stepgate.grant.sign` span. */
export function issue(sg: Stepgate, request: GrantRequest): IssuedGrant {
  const attributes = {
    "stepgate.action": request.action.name,
    "stepgate.acr": request.elevation.acr,
    "stepgate.replica": sg.config.replicaId,
  };
  return inSpanSync("stepgate.grant.sign", attributes, () => sg.issueGrant(request));
}
