// The CAM policy rules of the gateway (src/gateway/pipeline.ts checkPolicy) as a yes/no question, for console
// views that show a part only when the credential could read it through the public API.
import type { Credential } from "../../catalog/types";

export function policyAllows(c: Credential, action: string, instanceId?: string): boolean {
  const p = c.policy;
  if (!p) return true;
  if (p.Actions && !p.Actions.includes(action) && !p.Actions.includes("*")) return false;
  if (instanceId !== undefined && p.Instances && !p.Instances.includes(instanceId) && !p.Instances.includes("*")) return false;
  return true;
}
