export {
  type ReplicaExit,
  type ReplicaProcess,
  type ReplicaProcessOptions,
  replicaProcess,
  startReplicaProcess,
} from "./replica-process.ts";
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
