import { encodeStrings, grpcFrame, grpcHeaders, probeGrpc } from "../latency/grpc-body.ts";
import { type H2loadResult, type H2loadRun, runH2load } from "../latency/h2load.ts";
import type { FloodName } from "./flood-options.ts";

/** The flooding caller of `one-caller`, and the callers `many-callers` spreads over. */
export const oneCaller = "reports-flood";
export const manyCallers = Array.from({ length: 50 }, (_, i) => `flood-${String(i + 1).padStart(2, "0")}`);
/** The service that also sends the critical flows (its StepUp flood is `same-service`). */
export const criticalCaller = "payments";
/** A normal-priority action of the example policy, for the same service's StepUp flood. */
const normalAction = "stepgate.enroll_totp";

/** One flood: h2load processes in a closed loop (no rate, no retries), each on one replica. */
export interface Flood {
  name: FloodName;
  /** The method every request of the flood calls. */
  path: string;
  runs: Omit<H2loadRun, "seconds" | "cpuList">[];
  /** Bytes of a served answer's body (a refused call is answered with trailers only). */
  answerBytes: number;
}

const listFactors = "/stepgate.v1.FactorService/ListFactors";
const stepUp = "/stepgate.v1.StepUpService/StepUp";

/**
 * Connections over `replicas` for `streams` in flight: 64 streams a connection, at most 16
 * connections (the issue's ~1,000 streams over 16 connections), at least one per replica.
 */
export function spread(streams: number, replicas: number): { perReplica: number; streams: number } {
  const connections = Math.min(16, Math.max(1, Math.round(streams / 64)));
  const perReplica = Math.max(1, Math.round(connections / replicas));
  return { perReplica, streams: Math.max(1, Math.ceil(streams / (perReplica * replicas))) };
}

/**
 * The flood `name` of `streams` in flight against `addresses` about `subject` (a seeded user
 * with a factor, none of the critical flows' users). Probes its request once: it must be answered OK.
 */
export async function prepareFlood(
  name: FloodName,
  streams: number,
  addresses: string[],
  subject: string,
): Promise<Flood> {
  const path = name === "same-service" ? stepUp : listFactors;
  const body =
    name === "same-service"
      ? grpcFrame(encodeStrings({ 1: subject, 2: `flood-session-${Date.now()}`, 3: normalAction }))
      : grpcFrame(encodeStrings({ 1: subject }));
  const caller = name === "same-service" ? criticalCaller : oneCaller;
  const probe = await probeGrpc(addresses[0] ?? "", path, body, grpcHeaders(caller));
  if (probe.grpcStatus !== "0")
    throw new Error(`${name}: the flood's request is answered ${probe.grpcStatus}`);
  const base = { path, body };
  if (name === "many-callers") {
    const each = Math.max(1, Math.round(streams / manyCallers.length));
    const runs = manyCallers.map((c, i) => ({
      ...base,
      address: addresses[i % addresses.length] ?? "",
      headers: grpcHeaders(c),
      clients: 1,
      streams: each,
    }));
    return { name, path, runs, answerBytes: probe.bodyBytes };
  }
  const shape = spread(streams, addresses.length);
  const runs = addresses.map((address) => ({
    ...base,
    address,
    headers: grpcHeaders(caller),
    clients: shape.perReplica,
    streams: shape.streams,
  }));
  return { name, path, runs, answerBytes: probe.bodyBytes };
}

/** What a flood's h2load processes did together. */
export interface FloodTotals {
  /** Streams in flight at most (connections x streams, summed). */
  streams: number;
  processes: number;
  /** Answers per second, served (with a body) and refused (gRPC errors, trailers only). */
  answeredPerSecond: number;
  servedPerSecond: number;
  refusedPerSecond: number;
  /** Requests h2load counted failed, errored or timed out (connection-level trouble). */
  failed: number;
  seconds: number;
  commands: string[];
}

/** Runs every h2load process of `flood` at once for `seconds`, pinned to `cpuList`. */
export async function runFlood(flood: Flood, seconds: number, cpuList: string): Promise<FloodTotals> {
  const results: H2loadResult[] = await Promise.all(
    flood.runs.map((r) => runH2load({ ...r, seconds, cpuList, perRequestLog: false })),
  );
  const sum = (f: (r: H2loadResult) => number) => results.reduce((n, r) => n + f(r), 0);
  const took = Math.max(...results.map((r) => r.seconds), seconds);
  const served = Math.min(
    sum((r) => r.status2xx),
    Math.round(sum((r) => r.dataBytes) / flood.answerBytes),
  );
  return {
    streams: flood.runs.reduce((n, r) => n + r.clients * r.streams, 0),
    processes: flood.runs.length,
    answeredPerSecond: sum((r) => r.done) / took,
    servedPerSecond: served / took,
    refusedPerSecond: Math.max(0, sum((r) => r.status2xx) - served) / took,
    failed: sum((r) => r.failed),
    seconds: took,
    commands: results.slice(0, 3).map((r) => r.command),
  };
}
