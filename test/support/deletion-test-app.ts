import { MikroORM, type EntityManager, type Options } from '@mikro-orm/core';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { BullModule } from '@nestjs/bullmq';
import { Test, type TestingModule } from '@nestjs/testing';
import { DELETION_ENTITIES, DeletionModule, DeletionService, type DeletionModuleOptions } from '../../lib/index.js';
import { QueryLog } from './query-log.js';
import { REDIS_URL, createTestDatabase, databaseUrl } from './services.js';

export interface DeletionTestApp {
  module: TestingModule;
  orm: MikroORM;
  /** A fresh fork of the ORM's entity manager for each call. */
  em(): EntityManager;
  deletions: DeletionService;
  queries: QueryLog;
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
  const module = await Test.createTestingModule({
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
      }),
      BullModule.forRoot({ connection: redisConnection(), prefix: options.queuePrefix ?? options.database }),
      DeletionModule.forRoot(options.deletion ?? {}),
    ],
  }).compile();
  // The schema exists before the worker and the relay start with init().
  const orm: MikroORM = module.get(MikroORM);
  if (!options.keepSchema) {
    await orm.schema.refresh();
  }
  await module.init();
  return {
    module,
    orm,
    em: () => orm.em.fork(),
    deletions: module.get(DeletionService),
    queries,
    close: () => module.close(),
  };
}

/** BullMQ connection options for the test Redis. */
export function redisConnection(url = REDIS_URL): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 6379) };
}
