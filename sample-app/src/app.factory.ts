import { MikroORM } from '@mikro-orm/core';
import type { INestApplication, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { SampleAppConfig } from './app.config.js';
import { AppModule } from './app.module.js';

export interface SampleAppOptions {
  /** Nest log levels; all by default. */
  logLevels?: LogLevel[];
}

/**
 * Builds the sample application on `config` and readies it: the database is created if missing
 * and its schema brought up to date *before* the modules initialise, because the deletion
 * module's worker, outbox relay and schema doctor read those tables at startup. The caller
 * listens (or hands `getHttpServer()` to supertest) and closes it.
 */
export async function createSampleApp(config: SampleAppConfig, options: SampleAppOptions = {}): Promise<INestApplication> {
  // abortOnError: false: an invalid policy declaration rejects here instead of aborting the process.
  const app = await NestFactory.create(AppModule.forRoot(config), { abortOnError: false, ...(options.logLevels ? { logger: options.logLevels } : {}) });
  try {
    const orm = app.get(MikroORM);
    await orm.schema.ensureDatabase();
    await orm.schema.update();
    await app.init();
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}
