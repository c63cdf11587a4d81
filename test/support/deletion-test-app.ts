import { MikroORM, type EntityManager, type Options } from '@mikro-orm/core';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { BullModule, getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { ModuleMetadata } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { DELETION_ENTITIES, DELETION_QUEUE, DeletionModule, DeletionService, type DeletionModuleOptions } from '../../lib/index.js';
import { QueryLog } from './query-log.js';
import { REDIS_URL, createTestDatabase, databaseUrl } from './services.js';

export interface DeletionTestApp {
  module: TestingModule;
  orm: MikroORM;
  /** A fresh fork of the ORM's entity manager for each call. */
  em(): EntityManager;
  deletions: DeletionService;
  queries: QueryLog;
  /** The module's BullMQ queue. */
  queue: Queue;
  close(): Promise<void>;
}

export interface DeletionTestAppOptions {
  /** Name of this test file's own database. */
  database: string;
  entities: NonNullable<Options['entities']>;
  deletion?: DeletionModuleOptions;
  /** BullMQ key prefix; defaults to the database name, so files never share a queue. */
  queuePrefix?: string;
  /** Keep the existing schema and rows (a second app on the same database). */
  keepSchema?: boolean;
  /** The Redis the queue connects to; defaults to the test Redis. */
  redisUrl?: string;
  /** More MikroORM options (e.g. `implicitTransactions`), over the fixture's. */
  orm?: Partial<Options>;
  /** More modules for the testing module (e.g. `DeletionHealthModule`). */
  imports?: NonNullable<ModuleMetadata['imports']>;
}

/**
 * Builds a Nest testing module with MikroORM on a fresh database of its own and the
 * DeletionModule, then creates the schema. Close it in `afterAll`.
 */
export async function createDeletionTestApp(options: DeletionTestAppOptions): Promise<DeletionTestApp> {
  if (!options.keepSchema) {
    await createTestDatabase(options.database);
  }
  const queries = new QueryLog();
  // One Redis connection owned by the fixture: BullMQ shares it and duplicates it for workers, and
  // the fixture closes it even when the boot fails (a failed compile never reaches module.close()).
  const redis = new Redis(options.redisUrl ?? REDIS_URL, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  let module: TestingModule | undefined;
  try {
    module = await Test.createTestingModule({
    imports: [
      MikroOrmModule.forRoot({
        driver: PostgreSqlDriver,
        clientUrl: databaseUrl(options.database),
        entities: [...options.entities, ...DELETION_ENTITIES],
        metadataProvider: ReflectMetadataProvider,
        debug: ['query'],
        colors: false,
        logger: queries.logger,
        allowGlobalContext: true,
        ...options.orm,
      }),
      BullModule.forRoot({ connection: redis, prefix: options.queuePrefix ?? options.database }),
      // The relay, the sweeper and the pruning are off unless a test asks: their periodic queries and jobs would land in counts.
      DeletionModule.forRoot({
        relay: { intervalMs: 0 },
        sweeper: { intervalMs: 0 },
        retention: { intervalMs: 0 },
        ...options.deletion,
        queue: { backend: queueBackend(options), ...options.deletion?.queue },
      }),
      ...(options.imports ?? []),
    ],
    }).compile();
    // The schema exists before the worker and the relay start with init().
    if (!options.keepSchema) {
      await module.get(MikroORM).schema.refresh();
      if (!options.redisUrl) {
        // Jobs left by an earlier run of this file would name requests of a dropped database.
        await module.get<Queue>(getQueueToken(DELETION_QUEUE)).obliterate({ force: true });
      }
    }
    await module.init();
  } catch (error) {
    await module?.close().catch(() => undefined);
    redis.disconnect();
    throw error;
  }
  const ready = module;
  const orm: MikroORM = ready.get(MikroORM);
  return {
    module: ready,
    orm,
    em: () => orm.em.fork(),
    deletions: ready.get(DeletionService),
    queries,
    queue: ready.get<Queue>(getQueueToken(DELETION_QUEUE)),
    close: async () => {
      await ready.close();
      redis.disconnect();
    },
  };
}

/**
 * `DELETION_QUEUE_BACKEND=postgres` runs the suites on BullMQ's PostgreSQL backend (CI does both);
 * a test that names a Redis server keeps Redis.
 */
function queueBackend(options: DeletionTestAppOptions): 'redis' | 'postgres' {
  return !options.redisUrl && process.env.DELETION_QUEUE_BACKEND === 'postgres' ? 'postgres' : 'redis';
}

/** BullMQ connection options for the test Redis. */
export function redisConnection(url: string = REDIS_URL): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 6379) };
}
