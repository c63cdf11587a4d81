import { MikroORM, type EntityManager, type Options } from '@mikro-orm/core';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { Test, type TestingModule } from '@nestjs/testing';
import { DeletionModule, DeletionService, type DeletionModuleOptions } from '../../lib/index.js';
import { QueryLog } from './query-log.js';
import { createTestDatabase, databaseUrl } from './services.js';

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
  entities: Options['entities'];
  deletion?: DeletionModuleOptions;
}

/**
 * Builds a Nest testing module with MikroORM on a fresh database of its own and the
 * DeletionModule, then creates the schema. Close it in `afterAll`.
 */
export async function createDeletionTestApp(options: DeletionTestAppOptions): Promise<DeletionTestApp> {
  await createTestDatabase(options.database);
  const queries = new QueryLog();
  const module = await Test.createTestingModule({
    imports: [
      MikroOrmModule.forRoot({
        driver: PostgreSqlDriver,
        clientUrl: databaseUrl(options.database),
        entities: options.entities,
        metadataProvider: ReflectMetadataProvider,
        debug: ['query'],
        colors: false,
        logger: queries.logger,
        allowGlobalContext: true,
      }),
      DeletionModule.forRoot(options.deletion ?? {}),
    ],
  }).compile();
  await module.init();
  const orm: MikroORM = module.get(MikroORM);
  await orm.schema.refresh();
  return {
    module,
    orm,
    em: () => orm.em.fork(),
    deletions: module.get(DeletionService),
    queries,
    close: () => module.close(),
  };
}
