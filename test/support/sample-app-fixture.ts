import { setTimeout as sleep } from 'node:timers/promises';
import { MikroORM } from '@mikro-orm/core';
import type { INestApplication } from '@nestjs/common';
import { Queue } from 'bullmq';
import request from 'supertest';
import { DELETION_QUEUE, type DeletionStatus, type RequestState } from '../../lib/index.js';
import { redisConnection } from '../../sample-app/src/app.config.js';
import { createSampleApp } from '../../sample-app/src/app.factory.js';
import { REDIS_URL, createTestDatabase, databaseUrl } from './services.js';

export interface SampleAppFixture {
  app: INestApplication;
  /** A supertest agent on the app's HTTP server. */
  http(): ReturnType<typeof request>;
  /** Raw SQL on the app's database, to look behind the HTTP API. */
  sql<T = Record<string, unknown>>(query: string, params?: unknown[]): Promise<T[]>;
  /** `select count(*)` as a number. */
  count(table: string, where?: string, params?: unknown[]): Promise<number>;
  close(): Promise<void>;
}

/**
 * Boots the sample app as `npm start` does (database ensured, schema updated, worker running) on
 * a fresh database named `database` and a BullMQ prefix of the same name. Close it in `afterAll`.
 */
export async function startSampleApp(database: string): Promise<SampleAppFixture> {
  await createTestDatabase(database);
  const config = { databaseUrl: databaseUrl(database), redisUrl: REDIS_URL, queuePrefix: database };
  // Jobs left by an earlier, interrupted run would name requests of the database just dropped.
  const stale = new Queue(DELETION_QUEUE, { connection: redisConnection(REDIS_URL), prefix: config.queuePrefix });
  try {
    await stale.obliterate({ force: true });
  } finally {
    await stale.close();
  }
  const app = await createSampleApp(config, { logLevels: ['error', 'warn'] });
  const orm = app.get(MikroORM);
  const sql = <T>(query: string, params: unknown[] = []) => orm.em.fork().getConnection().execute<T[]>(query, params);
  return {
    app,
    http: () => request(app.getHttpServer()),
    sql,
    count: async (table, where = 'true', params = []) => Number((await sql<{ n: string }>(`select count(*) as n from ${table} where ${where}`, params))[0]!.n),
    close: () => app.close(),
  };
}

/** Polls a 202's `statusUrl` until the deletion is `completed` or `failed`; fails with the last status after `timeoutMs`. */
export async function pollDeletion(fixture: SampleAppFixture, statusUrl: string, timeoutMs = 30_000): Promise<DeletionStatus> {
  const done: RequestState[] = ['completed', 'failed'];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await fixture.http().get(statusUrl).expect(200);
    const status = response.body as DeletionStatus;
    if (done.includes(status.state)) {
      return status;
    }
    if (Date.now() > deadline) {
      throw new Error(`${statusUrl} did not complete within ${timeoutMs} ms: ${JSON.stringify(status)}`);
    }
    await sleep(100);
  }
}
