export {
  type AuditDrainOptions,
  type AuditFigures,
  auditAfterRecovery,
  auditOutboxKey,
  grantEventTypes,
} from "./degraded-audit.ts";
export {
  type CallFigures,
  type CallWindow,
  callFigures,
  expectedFailureRuns,
  firstFailureAfter,
  flowRpcs,
  grantClaims,
  grantsWithoutCheck,
  lastFailureAfter,
  receivedGrantIds,
  stepUpVerifySuccess,
  subjectsAnsweredLocked,
} from "./degraded-figures.ts";
export { formatGoals, type Goal, scenarioGoals, successGoalPct } from "./degraded-goals.ts";
export {
  type DegradedLab,
  type DegradedLabOptions,
  type LabReplica,
  labDetection,
  labLockoutMaxFailures,
  labPolicy,
  labRedisPrefix,
  startDegradedLab,
} from "./degraded-lab.ts";
export {
  type ExpectedRun,
  type FailureCounts,
  type FailureRuns,
  failureRuns,
  failuresKey,
  readFailureCounts,
} from "./degraded-lockouts.ts";
export {
  firstChange,
  type LoggedChange,
  type LoggedState,
  lastingUp,
  loggedState,
  type ReplicaLogFigures,
  replicaLogFigures,
} from "./degraded-logs.ts";
export { formatScenarioResult } from "./degraded-report.ts";
export {
  type RunScenarioOptions,
  runScenario,
  type ScenarioResult,
  type Success,
  settled,
} from "./degraded-run.ts";
export {
  type FaultMarks,
  type FaultOutcome,
  type Scenario,
  type ScenarioName,
  scenarioNames,
  scenarios,
} from "./degraded-scenarios.ts";
export { failureKey, failureReason, grpcCodeName } from "./failure-key.ts";
export {
  type FlowCall,
  type FlowLoad,
  type FlowLoadOptions,
  type FlowLoadReport,
  type FlowRpc,
  failedCalls,
  formatFlowLoadReport,
  printFlowLoadReport,
  type RpcStats,
  replicaTrailer,
  runFlowLoad,
  startFlowLoad,
} from "./flow-load.ts";
export {
  createTimelineRecorder,
  type FlowTimeline,
  type TimelineBucket,
  type TimelineRecorder,
  timelineStrip,
  timeToDetect,
  timeToRecover,
} from "./flow-timeline.ts";
export { freePort } from "./free-port.ts";
export {
  startTestIdentityProvider,
  type TestIdentityProvider,
  type TokenClaims,
} from "./identity-provider.ts";
export {
  childPids,
  isAlive,
  keepAliveUntil,
  killTree,
  type OrphanReaper,
  type OrphanReaperOptions,
  pidFromFile,
  processName,
  type ReapedProcess,
  startOrphanReaper,
  waitGone,
} from "./orphan-reaper.ts";
export {
  type OwnPostgres,
  type OwnPostgresOptions,
  type PostgresStopSignal,
  startOwnPostgres,
} from "./own-postgres.ts";
export { type OwnRedis, type OwnRedisOptions, startOwnRedis } from "./own-redis.ts";
export { clockTicks, cpuSeconds, residentMemory } from "./process-stats.ts";
export {
  type ReplicaExit,
  type ReplicaProcess,
  type ReplicaProcessOptions,
  replicaProcess,
  startReplicaProcess,
} from "./replica-process.ts";
export { type FlowSubject, type SeedSubjectsOptions, seedSubjects } from "./seed-subjects.ts";
export {
  createTcpProxy,
  type TcpProxy,
  type TcpProxyCounters,
  type TcpProxyMode,
  type TcpProxyOptions,
} from "./tcp-proxy.ts";
export {
  adminUrl,
  createTestDatabase,
  type TestDatabase,
  type TestDatabaseOptions,
} from "./test-database.ts";
export {
  createTestRedisPrefix,
  redisUrl,
  type TestRedisPrefix,
  type TestRedisPrefixOptions,
} from "./test-redis-prefix.ts";
export {
  type CertificateFiles,
  createTestPki,
  type IssueOptions,
  type TestCertificateAuthority,
  type TestPki,
} from "./tls-certificates.ts";
export { codeForStep, totpCode, totpStep, totpStepSeconds } from "./totp-code.ts";
