import type { ReplicaMemory } from "./bench-cluster.ts";
import type { CodeRevision } from "./code-revision.ts";
import type { Machine } from "./machine.ts";
import type { ScenarioResult } from "./measure-scenario.ts";
import type { OverloadResult } from "./overload.ts";

/** One cluster size's figures. */
export interface ClusterResult {
  replicas: number;
  seeding: { users: number; seconds: number };
  /** Elevated sessions prepared for stepup-elevated and checkgrant. */
  sessions: number;
  scenarios: ScenarioResult[];
  /** Noop's saturation measured again after the other scenarios: the baseline is the mean of the
   * two, and their difference shows how much the machine's speed moved during the run. */
  noopAgain: ScenarioResult | undefined;
  /** Per replica at the end of the cluster's run: VmHWM (peak over the whole run; the overload
   * scenario resets it per phase, and the highest reading is kept) and VmRSS. */
  memory: ReplicaMemory[];
  /** The overload scenario, when it ran (after the others). */
  overload?: OverloadResult;
  /** Lines the replicas logged at warn or above while serving (the first few). */
  replicaWarnings: string[];
}

/** Per second of one core's CPU: best round and median round, with the per-round figures. */
export interface RateFigures {
  bestPerSecond: number;
  medianPerSecond: number;
  microsPerRound: number[];
}

export interface OfflineVerifySummary {
  grants: number;
  tokenChars: number;
  rounds: number;
  raw: RateFigures;
  firstSeen: RateFigures;
  cached: RateFigures;
  /** First-seen rate over raw rate: the median of per-round ratios, and best round over best round. */
  firstSeenOverRaw: { median: number; best: number };
}

export interface TargetResult {
  name: string;
  /** The cluster size it was measured with; undefined for the offline ones. */
  replicas?: number;
  target: string;
  measured: string;
  met: boolean;
}

export interface KeycloakComparison {
  replicas: number;
  /** Verify calls per second per core of replica CPU alone. */
  verifyPerReplicaCore: number;
  /** Per core of replica plus PostgreSQL and Redis CPU. */
  verifyPerServiceCore: number;
  /** Saturation throughput over every core of the machine (stores and generators share them). */
  verifyPerMachineCore: number;
}

export interface BenchResult {
  command: string;
  quick: boolean;
  code: CodeRevision;
  machine: Machine;
  notes: string[];
  options: Record<string, unknown>;
  /** Cores other processes kept busy in the second before the run started. */
  busyCoresBeforeRun: number;
  clusters: ClusterResult[];
  offlineVerify: OfflineVerifySummary | undefined;
  targets: TargetResult[];
  keycloak: { referencePerVcpu: [number, number]; stepgate: KeycloakComparison[] };
  failures: number;
  seconds: number;
}
