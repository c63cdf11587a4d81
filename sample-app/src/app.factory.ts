import { MikroORM } from '@mikro-orm/core';
import { Logger, type INestApplication, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import { DEFAULT_EMBEDDED_DATA_DIR, QUEUE_SCHEMA, type SampleAppConfig } from './app.config.js';
import { AppModule } from './app.module.js';
import { EmbeddedPostgres } from './embedded/embedded-postgres.js';

export interface SampleAppOptions {
  /** Nest log levels; all by default. */
  logLevels?: LogLevel[];
}

/**
 * Builds the sample application on `config` and readies it: the database is created if missing
 * and its schema brought up to date *before* the modules initialise, because the deletion
 * module's worker, outbox relay and schema doctor read those tables at startup. The caller
 * listens (or hands `getHttpServer()` to supertest) and closes it.
 *
 * With no `databaseUrl`, an embedded PostgreSQL (PGlite) is started first and stopped when the
 * app closes (or shuts down on a signal, with `enableShutdownHooks()`).
 */
export async function createSampleApp(config: SampleAppConfig, options: SampleAppOptions = {}): Promise<INestApplication> {
  const startedAt = Date.now();
  if (config.databaseUrl) {
    await createDatabaseIfMissing(config.databaseUrl);
  }
  const embedded = config.databaseUrl
    ? undefined
    : await EmbeddedPostgres.start({
        dataDir: config.embedded?.dataDir ?? DEFAULT_EMBEDDED_DATA_DIR,
        // BullMQ's PostgreSQL backend finds its tables through the search path, which PGlite
        // takes only from the session; not needed (and not set) when the queue is on Redis.
        queueSchema: config.redisUrl ? undefined : QUEUE_SCHEMA,
      });
  const databaseUrl = config.databaseUrl ?? embedded!.url;
  let app: INestApplication;
  try {
    // abortOnError: false: an invalid policy declaration rejects here instead of aborting the process.
    app = await NestFactory.create(AppModule.forRoot({ ...config, databaseUrl }, embedded), {
      abortOnError: false,
      ...(options.logLevels ? { logger: options.logLevels } : {}),
    });
  } catch (error) {
    await embedded?.stop().catch(() => undefined);
    throw error;
  }
  const logger = new Logger('SampleApp');
  if (embedded) {
    logger.log(`Embedded PostgreSQL (PGlite) on ${embedded.url}, data in ${embedded.dataDir}, started in ${Date.now() - startedAt} ms`);
  }
  logger.log(config.redisUrl ? 'Deletion queue on Redis' : `Deletion queue on PostgreSQL (schema ${QUEUE_SCHEMA}), no Redis`);
  try {
    const orm = app.get(MikroORM);
    await orm.schema.ensureDatabase();
    await orm.schema.update();
    await app.init();
  } catch (error) {
    // Also stops the embedded PostgreSQL (EmbeddedPostgresModule shuts down last).
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}

/**
 * Creates the database of `databaseUrl` when missing, before any module connects to it. MikroORM's
 * `ensureDatabase()` alone comes too late for a queue on PostgreSQL: BullMQ's PostgreSQL worker,
 * built with the module, tries its connection at once, keeps that first failure ("database ...
 * does not exist") after the database is created, and its `run()` then retries it without pause.
 */
async function createDatabaseIfMissing(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name || name === 'postgres') {
    return;
  }
  url.pathname = '/postgres';
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`create database "${name.replaceAll('"', '""')}"`);
    }
  } finally {
    await client.end();
  }
}
