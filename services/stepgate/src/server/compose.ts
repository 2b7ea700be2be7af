import { createAuditLog } from "../audit/audit-log.ts";
import type { Config } from "../config/config.ts";
import { ConfigError } from "../config/config-error.ts";
import { loadFingerprint } from "../crypto/fingerprint.ts";
import { parseKeyRing } from "../crypto/key-ring.ts";
import { type Clock, systemClock } from "../domain/clock.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import { createAssertPasskey } from "../factors/assert-passkey.ts";
import { createAuthorizeChange } from "../factors/authorize-change.ts";
import { createBeginPasskeyEnrollment } from "../factors/begin-passkey-enrollment.ts";
import { createCheckProof } from "../factors/check-proof.ts";
import { createConfirmTotp } from "../factors/confirm-totp.ts";
import { createCreateRecoveryCodes } from "../factors/create-recovery-codes.ts";
import { createEnrollTotp } from "../factors/enroll-totp.ts";
import { createEnrolledFactors } from "../factors/enrolled-factors.ts";
import { createFinishPasskeyEnrollment } from "../factors/finish-passkey-enrollment.ts";
import { createFlagCloned } from "../factors/flag-cloned.ts";
import { createListFactors } from "../factors/list-factors.ts";
import { createFactorRemoval, createRemoveFactor } from "../factors/remove-factor.ts";
import { createCheckGrant } from "../grants/check-grant.ts";
import { createGetJwks } from "../grants/get-jwks.ts";
import { createGrantIssuer } from "../grants/grant-issuer.ts";
import { currentKeyAgeMs, keyRetentionMs, scheduledKeyAgeMs } from "../grants/signing-key-lifecycle.ts";
import { startSigningKeyRotation } from "../grants/signing-key-rotation.ts";
import { loadSigningKeys, type SigningKeys } from "../grants/signing-keys.ts";
import { createProveSubject } from "../identity/prove-subject.ts";
import { createVerifySubjectToken, type VerifySubjectToken } from "../identity/subject-tokens.ts";
import { createAttempts } from "../limits/attempts.ts";
import { describeError } from "../log/describe-error.ts";
import { type Logger, lifecycle } from "../log/logger.ts";
import { createMetrics, type Metrics } from "../observability/metrics.ts";
import { longestGrantLifetimeMs } from "../policy/assurance.ts";
import { assertCallerMay, type CallerNeed } from "../policy/caller-scopes.ts";
import type { Policy } from "../policy/policy.ts";
import { loadPolicyFile, reloadActions } from "../policy/policy-reload.ts";
import { createPublishRevocations } from "../revocations/publish-revocation.ts";
import { keyRetired } from "../revocations/revocation-events.ts";
import { startRevocationFeed } from "../revocations/revocation-feed.ts";
import { createWatchRevocations, type WatchRevocations } from "../revocations/watch-revocations.ts";
import type { AdminUseCases } from "../rpc/admin-handlers.ts";
import { callerFromCertificate, callerFromHeader, type IdentifyCaller } from "../rpc/caller.ts";
import type { FactorUseCases } from "../rpc/factor-handlers.ts";
import { type IdentifyOperator, operatorFromCertificate, operatorFromHeader } from "../rpc/operator.ts";
import type { StepUpUseCases } from "../rpc/step-up-handlers.ts";
import type { TrafficShaping } from "../rpc/traffic-shaping.ts";
import { createEndSession } from "../stepup/end-session.ts";
import { createStepUp } from "../stepup/step-up.ts";
import { startFactPruning } from "../stepup/subject-facts.ts";
import { createVerify } from "../stepup/verify.ts";
import { openStores, type Stores } from "../store/stores.ts";
import { createAdmission } from "../traffic/admission.ts";
import { createBestEffortShare } from "../traffic/best-effort-share.ts";
import { watchEventLoop } from "../traffic/event-loop.ts";
import { createGradientLimit } from "../traffic/gradient-limit.ts";
import { createRateLimits } from "../traffic/rate-limits.ts";
import { composeAdmin } from "./compose-admin.ts";
import { crashAfterClaim } from "./crash-after-claim.ts";

/** The composed service: what the handlers serve, and what the server needs to run and stop it. */
export interface Composed {
  stepUpService: StepUpUseCases;
  factorService: FactorUseCases;
  /** AdminService's use cases; `serving` says what the replica's health service says now. */
  adminService: (serving: () => boolean) => AdminUseCases;
  /** Names each AdminService call's operator, and the policy's operators and their scopes. */
  operators: { identify: IdentifyOperator; policy: Policy["operators"] };
  stores: Stores;
  /** Names each call's calling service: from its client certificate, or its header in insecure development mode. */
  identifyCaller: IdentifyCaller;
  /** The revocation feed for offline verifiers; `stopping` aborts every stream as the replica closes. */
  revocationFeed: { watch: WatchRevocations; stopping: AbortSignal };
  /** Rate limits and admission control, applied to every call before its handler (rpc/traffic-shaping.ts). */
  traffic: TrafficShaping;
  /** Moves the audit events waiting in the outbox to PostgreSQL now. */
  flushAudit(): Promise<void>;
  /** Reloads the policy's actions and rules from its file (policy/policy-reload.ts); throws ConfigError, keeping the old. */
  reloadPolicy(): string[];
  /** Stops the audit drainer, then closes the stores. */
  close(): Promise<void>;
}

/**
 * The composition root: opens the stores, loads the policy and keys, and wires every use case
 * with exactly what it depends on. Fails with a ConfigError for a bad policy or key ring, or with
 * the store's error when PostgreSQL or Redis cannot be opened.
 */
export async function compose(config: Config, logger: Logger, clock: Clock = systemClock): Promise<Composed> {
  const dependencyOptions = (callTimeoutMs: number) => ({
    callTimeoutMs,
    failureThreshold: config.dependencies.breakerFailures,
    halfOpenAfterMs: config.dependencies.breakerHalfOpenMs,
  });
  const loaded = loadPolicyFile(config.policyFile);
  const { policy } = loaded;
  const identifyCaller = callerIdentityFor(config, policy);
  const identifyOperator =
    config.transport.kind === "insecure-dev"
      ? operatorFromHeader(policy.operators)
      : operatorFromCertificate(policy.operators, policy.callerPeers);
  const keyRing = parseKeyRing(config.encryptionKeys, config.encryptionKeyId);
  const stores = await openStores({
    databaseUrl: config.databaseUrl,
    databasePoolSize: config.databasePoolSize,
    redisTarget: config.redis,
    redisPrefix: config.redisPrefix,
    postgres: dependencyOptions(config.dependencies.postgresTimeoutMs),
    redis: dependencyOptions(config.dependencies.redisTimeoutMs),
    factorCacheTtlMs: config.dependencies.factorCacheTtlMs,
    hotSettleMs: config.dependencies.breakerHalfOpenMs + config.healthIntervalMs,
    rateLimitLocalShare: 1 / config.traffic.fleetSize,
    onMigrated: (migrations) => logger.info({ migrations }, "applied database migrations"),
    onStartWithoutPostgres: (error) =>
      lifecycle(logger).warn(
        { error: describeError(error) },
        "postgresql unreachable at start: starting degraded, without migrating",
      ),
    onHotSwitch: (active) => lifecycle(logger).warn({ hotStore: active }, "hot state moved"),
    onResyncError: (error) =>
      logger.error(
        { error: describeError(error), ...unavailability(error) },
        "security state not carried back into redis yet",
      ),
    onRedisReconnect: () => logger.info("redis connection made again"),
    onRedisRestart: () => lifecycle(logger).warn("redis client stopped reconnecting: connecting again"),
  });
  try {
    const signingKeys = await loadSigningKeys({
      store: stores.signingKeys,
      keyRing,
      copies: stores.startupCopies,
      clock,
      retentionMs: keyRetentionMs(policy),
      // Serving goes on with the keys already open; the ring needs the key that sealed this one.
      onUnopenable: (kid, error) =>
        logger.error(
          { kid, error: describeError(error) },
          "signing key cannot be opened: not signing with it",
        ),
    });
    const fingerprint = await loadFingerprint(keyRing, (candidate) =>
      stores.secrets.getOrCreate("fingerprint", candidate),
    );
    // Derived from the fleet's fingerprint key: every replica derives and checks the same WebAuthn challenges.
    const challengeKey = Buffer.from(fingerprint("passkey challenge key v1"), "base64url");
    const audit = createAuditLog({
      store: stores.audit,
      outbox: stores.auditOutbox,
      claimAfterMs: config.auditClaimAfterMs,
      replica: config.replicaId,
      onError: (error) => logger.error({ error: describeError(error) }, "audit events not written yet"),
    });
    const replicaId = config.replicaId;
    const metrics = createMetrics();
    observeState(metrics, { stores, signingKeys, clock, signing: config.signingKeys });
    const { traffic, stopTraffic } = shapeTrafficWith(config, policy, stores, metrics);
    const mayCall = (caller: string, need: CallerNeed) => assertCallerMay(policy, caller, need);
    const { factors, recoveryCodes, challenges, verifyResults, sessions, consumedGrants } = stores;
    const publishRevocations = createPublishRevocations({ log: stores.revocations, audit });
    const revocationFeed = startRevocationFeed({
      log: stores.revocations,
      pollMs: config.revocationFeed.pollMs,
      now: clock,
      onError: (error) => {
        if (!(error instanceof DependencyUnavailableError))
          logger.warn({ error: describeError(error) }, "revocation feed not read");
      },
    });
    const stopping = new AbortController();
    const issueGrant = createGrantIssuer({ signingKeys, issuer: config.issuer, clock, replicaId });
    const checkGrant = createCheckGrant({
      signingKeys,
      issuer: config.issuer,
      sessions,
      consumedGrants,
      fingerprint,
      clock,
      publishRevocations,
    });
    const authorizeChange = createAuthorizeChange({ factors, checkGrant, policy, clock });
    const proveSubject = createProveSubject({ policy, verifyToken: subjectTokensFor(config, policy, clock) });
    const attempts = createAttempts({ counters: stores.attempts, policy });
    const checked = createCheckProof({
      ...{ factors, recoveryCodes, stepClaims: stores.stepClaims, keyRing },
      ...{ passkeys: stores.passkeys, passkeyCounters: stores.passkeyCounters },
      endedFactors: sessions,
      deferCounter: (counter) =>
        stores.hotKind === "redis"
          ? audit.deferPasskeyCounter({ ...counter, caller: "stepgate" })
          : Promise.resolve(false),
      deferClaim: ({ subject, factorId, step, claim, at }) =>
        stores.hotKind === "redis"
          ? audit.deferTotpClaim({ subject, caller: "stepgate", factorId, step, claim, at })
          : Promise.resolve(false),
    });
    const checkProof = config.faultInjection ? crashAfterClaim(checked, stores.markers) : checked;
    const enrolled = createEnrolledFactors({
      factors,
      cache: stores.factorCache,
      keyRing,
      cacheTtlMs: config.dependencies.factorCacheTtlMs,
    });
    const refreshEnrolled = enrolled.refresh;
    const verify = createVerify({
      ...{ policy, clock, challenges, verifyResults, attempts, checkProof, sessions },
      ...{ issueGrant, audit, fingerprint, keyRing, replicaId, metrics },
      assertPasskey: createAssertPasskey({ policy, challengeKey }),
      flagCloned: createFlagCloned({ passkeys: stores.passkeys, passkeyCounters: stores.passkeyCounters }),
      facts: stores.subjectFacts,
    });
    const stopRotation = startSigningKeyRotation({
      keys: signingKeys,
      store: stores.signingKeys,
      ...{ keyRing, clock, audit },
      ...config.signingKeys,
      onChange: (kid, change) => {
        logger.info({ kid }, `signing key ${change}`);
        if (change !== "retired") return;
        // Verifiers drop the key at once instead of at their next key-set refresh.
        const event = keyRetired(kid, clock(), longestGrantLifetimeMs(policy) + 60_000);
        publishRevocations([event]).catch((error: unknown) =>
          logger.warn({ kid, error: describeError(error) }, "key retirement not in the revocation feed"),
        );
      },
      onError: (error) => logger.warn({ error: describeError(error) }, "signing keys not refreshed"),
    });
    // Facts past their retention count as unseen already; this keeps them from piling up.
    const stopFactPruning = startFactPruning({
      store: stores.subjectFacts,
      clock,
      retentionS: () => policy.factRetentionSeconds,
      onError: (error) => logger.warn({ error: describeError(error) }, "subject facts not pruned"),
    });
    const removal = {
      ...{ factors, sessions, policy, audit, clock, publishRevocations },
      refreshEnrolled,
    };
    const endSession = createEndSession({ sessions, policy, audit, clock, publishRevocations });
    const listFactors = createListFactors({ factors });
    return {
      stepUpService: {
        stepUp: createStepUp({
          ...{ policy, clock, sessions, challenges, issueGrant, audit, replicaId, challengeKey, fingerprint },
          factors: { enrolled: enrolled.read },
          facts: stores.subjectFacts,
        }),
        verify,
        checkGrant,
        endSession,
        getJwks: createGetJwks({ signingKeys }),
        metrics,
        isKnownAction: (action) => policy.actions.has(action),
        mayCall,
        proveSubject,
      },
      factorService: {
        enrollTotp: createEnrollTotp({
          ...{ factors, authorizeChange, keyRing, audit, clock },
          // The name authenticator apps show next to the account.
          issuerName: "Stepgate",
        }),
        confirmTotp: createConfirmTotp({
          ...{ factors, attempts: stores.attempts, stepClaims: stores.stepClaims, keyRing, audit, clock },
          ...{ authorizeChange, sessions },
          refreshEnrolled,
        }),
        beginPasskeyEnrollment: createBeginPasskeyEnrollment({
          ...{ factors, passkeys: stores.passkeys, authorizeChange, policy, audit, clock, challengeKey },
        }),
        finishPasskeyEnrollment: createFinishPasskeyEnrollment({
          ...{ factors, passkeys: stores.passkeys, authorizeChange, sessions, policy, audit, clock },
          ...{ refreshEnrolled, challengeKey },
        }),
        createRecoveryCodes: createCreateRecoveryCodes({
          ...{ recoveryCodes, sessions, policy, authorizeChange, audit, clock, publishRevocations },
          refreshEnrolled,
        }),
        listFactors,
        removeFactor: createRemoveFactor({ ...removal, authorizeChange }),
        mayCall,
        proveSubject,
      },
      adminService: (serving) =>
        composeAdmin(
          {
            ...{ replicaId, databaseUrl: config.databaseUrl, policy, stores, keyRing, signingKeys, clock },
            ...{ audit, publishRevocations, listFactors, endSession },
            removeFactor: createFactorRemoval(removal),
            publishLeadMs: config.signingKeys.publishLeadMs,
          },
          serving,
        ),
      operators: { identify: identifyOperator, policy: policy.operators },
      revocationFeed: {
        watch: createWatchRevocations({
          feed: revocationFeed,
          heartbeatMs: config.revocationFeed.heartbeatMs,
        }),
        stopping: stopping.signal,
      },
      stores,
      identifyCaller,
      traffic,
      flushAudit: () => audit.flush(),
      reloadPolicy: () => reloadActions(loaded),
      async close() {
        stopTraffic();
        stopRotation();
        stopFactPruning();
        stopping.abort();
        revocationFeed.stop();
        await audit.close();
        await stores.close();
      },
    };
  } catch (error) {
    await stores.close().catch(() => {});
    throw error;
  }
}

/**
 * The gauges alerts read (deploy/prometheus/alerts.yml): each dependency's circuit, the signing
 * key's age against its schedule, and the audit outbox's backlog, each read at collection time.
 */
function observeState(
  metrics: Metrics,
  state: {
    stores: Stores;
    signingKeys: SigningKeys;
    clock: Clock;
    signing: { rotateEveryMs: number; publishLeadMs: number };
  },
): void {
  const { stores, signingKeys, clock, signing } = state;
  metrics.observeDependencies(() =>
    stores.dependencies.map((d) => ({ dependency: d.name, up: d.available })),
  );
  const maxAgeSeconds = scheduledKeyAgeMs(signing.rotateEveryMs, signing.publishLeadMs) / 1000;
  metrics.observeSigningKeys(() => {
    const ageMs = currentKeyAgeMs(signingKeys.lives(), clock());
    return { ageSeconds: ageMs === undefined ? undefined : ageMs / 1000, maxAgeSeconds };
  });
  const outbox = stores.auditOutbox;
  if (!outbox) return;
  // Through Redis's breaker (store/stores.ts): unreadable while Redis is down, then nothing is observed.
  metrics.observeAuditOutbox(async () => {
    const backlog = await outbox.backlog().catch(() => undefined);
    if (backlog === undefined) return undefined;
    const waitedMs = backlog.oldestAt === undefined ? 0 : Math.max(0, clock() - backlog.oldestAt);
    return { entries: backlog.entries, oldestAgeSeconds: waitedMs / 1000 };
  });
}

/** For a DependencyUnavailableError, whether the circuit was open or the call failed, and why. */
function unavailability(error: unknown): Record<string, unknown> {
  if (!(error instanceof DependencyUnavailableError)) return {};
  return {
    reason: error.reason,
    ...(error.cause === undefined ? {} : { cause: describeError(error.cause) }),
  };
}

/**
 * Under mutual TLS callers are named by their certificates, so the policy must map some, and a first
 * factor needs a proven subject, so it must trust an issuer. Fails with a ConfigError otherwise.
 */
function callerIdentityFor(config: Config, policy: Policy): IdentifyCaller {
  if (config.transport.kind === "insecure-dev") return callerFromHeader;
  if (policy.callerPeers.size === 0)
    throw new ConfigError(
      `${config.policyFile}: callers.<name>.peers must map client certificates to callers under mutual TLS`,
    );
  if (policy.subjectProof === undefined)
    throw new ConfigError(
      `${config.policyFile}: subject_proof.issuers is required under mutual TLS: first factors need a proven subject`,
    );
  return callerFromCertificate(policy.callerPeers);
}

/** Verifies subject tokens against the policy's trusted issuers; undefined when it trusts none. */
function subjectTokensFor(config: Config, policy: Policy, clock: Clock): VerifySubjectToken | undefined {
  if (!policy.subjectProof) return undefined;
  return createVerifySubjectToken({
    issuers: policy.subjectProof.issuers,
    clockToleranceSeconds: 5,
    jwksTimeoutMs: config.subjectJwks.timeoutMs,
    jwksMaxAgeMs: config.subjectJwks.maxAgeMs,
    jwksCooldownMs: config.subjectJwks.cooldownMs,
    clock,
  });
}

/**
 * The replica's traffic shaping: the policy's rate limits over the stores' counters, and admission
 * control whose limit adapts to latency and backs off while the event loop is saturated.
 */
function shapeTrafficWith(config: Config, policy: Policy, stores: Stores, metrics: Metrics) {
  const t = config.traffic;
  const limit = createGradientLimit({ initial: t.initialLimit, min: t.minLimit, max: t.maxLimit });
  const bestEffort = createBestEffortShare({ busyAtMost: 1 - t.eventLoopReserve, max: () => limit.limit });
  const eventLoop = watchEventLoop({
    saturatedAt: t.eventLoopSaturatedAt,
    onSample: (utilization, saturated) => {
      bestEffort.sample(utilization);
      if (saturated) limit.backOff();
    },
  });
  const admission = createAdmission({
    limit,
    maxQueued: t.maxQueue,
    maxWaitMs: t.maxWaitMs,
    saturated: eventLoop.saturated,
    bestEffortSlots: () => bestEffort.slots,
  });
  metrics.observeAdmission(() => ({
    ...admission.snapshot(),
    eventLoopUtilization: eventLoop.utilization(),
  }));
  const traffic: TrafficShaping = {
    checkRateLimits: createRateLimits({ limits: policy.rateLimits, store: stores.rateLimits }),
    admission,
    actionPriority: (action) => policy.actions.get(action)?.priority,
    metrics,
  };
  return { traffic, stopTraffic: eventLoop.stop };
}
