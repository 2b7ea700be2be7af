import { totpStepSeconds } from "@stepgate/testkit/totp-code";

/**
 * How many subjects a flow load of `ratePerSecond` flows a second for `seconds` seconds needs: a
 * subject verifies at most once per 30 s TOTP step, so at most `ratePerSecond * 30` flows come due in
 * any one step; 15% more, and ten, so a start never finds every subject busy.
 */
export function subjectsFor(ratePerSecond: number, seconds: number): number {
  return Math.ceil(ratePerSecond * Math.min(seconds, totpStepSeconds) * 1.15) + 10;
}
