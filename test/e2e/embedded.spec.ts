import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MikroORM } from '@mikro-orm/core';
import { getQueueToken } from '@nestjs/bullmq';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import type { Queue } from 'bullmq';
import { DELETION_QUEUE, type DeletionStatus } from '../../lib/index.js';
import { createSampleApp } from '../../sample-app/src/app.factory.js';
import { IN_MEMORY } from '../../sample-app/src/embedded/embedded-postgres.js';

/**
 * `npm start` with neither DATABASE_URL nor REDIS_URL: the sample app on an embedded PostgreSQL
 * (PGlite, in memory here) with its deletion queue on BullMQ's PostgreSQL backend in that same
 * database, listening on a random port. No PostgreSQL server and no Redis are involved.
 */
let app: INestApplication;
let baseUrl: string;
let bootMs: number;

beforeAll(async () => {
  const started = Date.now();
  app = await createSampleApp({ queuePrefix: 'deletion_e2e_embedded', embedded: { dataDir: IN_MEMORY } }, { logLevels: ['error', 'warn'] });
  await app.listen(0, '127.0.0.1');
  baseUrl = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  bootMs = Date.now() - started;
}, 60_000);
afterAll(() => app?.close());

const http = () => request(baseUrl);

describe('the sample app with no DATABASE_URL and no REDIS_URL', () => {
  it('boots on the embedded PostgreSQL, its queue in the same database, with no Redis connection', () => {
    const databaseUrl = app.get(MikroORM).config.get('clientUrl')!;
    const clientUrl = new URL(databaseUrl);
    expect(clientUrl.hostname).toBe('127.0.0.1');
    expect(clientUrl.port).not.toBe('5432');
    const queue = app.get<Queue>(getQueueToken(DELETION_QUEUE), { strict: false });
    expect(queue.opts.connection).toMatchObject({ connectionString: databaseUrl, schema: 'bullmq' });
    process.stdout.write(`embedded sample app up in ${bootMs} ms on ${baseUrl} (database ${clientUrl.host})\n`);
  });

  it('creates an author, answers 202 to its deletion, and the queue completes it', async () => {
    const created = await http().post('/authors').send({ name: 'Ann', books: 1200, reviewsPerBook: 2, followers: 50, articles: 1 }).expect(201);
    const id = (created.body as { id: number }).id;
    expect(created.body).toEqual({ id, name: 'Ann', books: 1200, reviews: 2400, followers: 50, articles: 1 });

    const accepted = await http().delete(`/authors/${id}`).expect(202);
    const { statusUrl } = accepted.body as { statusUrl: string };
    const deletedAt = Date.now();
    await http().get(`/authors/${id}`).expect(404);

    // No LISTEN/NOTIFY through PGlite's socket: an idle worker sees the job when its wait times out (seconds).
    let status: DeletionStatus;
    for (;;) {
      status = (await http().get(statusUrl).expect(200)).body as DeletionStatus;
      if (status.state === 'completed' || status.state === 'failed' || Date.now() - deletedAt > 20_000) {
        break;
      }
      await sleep(100);
    }
    expect(status).toMatchObject({ entity: 'Author', ids: [id], state: 'completed', errors: [] });
    expect(status.progress).toEqual(
      expect.arrayContaining([
        { path: 'Author.books', entity: 'Book', policy: 'destroyAsync', processed: 1200, done: true },
        { path: 'Author.followers', entity: 'Follower', policy: 'deleteAllAsync', processed: 50, done: true },
      ]),
    );
    process.stdout.write(`embedded deletion completed ${Date.now() - deletedAt} ms after the 202\n`);

    const rows = await app.get(MikroORM).em.fork().getConnection().execute<{ n: string }[]>(
      'select (select count(*) from author where id = ?) + (select count(*) from book where author_id = ?) + (select count(*) from follower where author_id = ?) as n',
      [id, id, id],
    );
    expect(Number(rows[0]!.n)).toBe(0);
  }, 30_000);

  it('deletes a book synchronously (204)', async () => {
    const created = await http().post('/authors').send({ name: 'Bea', books: 2, reviewsPerBook: 3 }).expect(201);
    const books = (await http().get(`/authors/${(created.body as { id: number }).id}/books?limit=1`).expect(200)).body as { id: number }[];
    await http().delete(`/books/${books[0]!.id}`).expect(204);
    await http().get(`/books/${books[0]!.id}`).expect(404);
  });

  it('is healthy: database ping and the PostgreSQL-backed queue', async () => {
    const response = await http().get('/health').expect(200);
    expect(response.body).toMatchObject({ status: 'ok', info: { database: { status: 'up' }, deletion: { status: 'up', failed: 0, failedRequests: 0 } } });
  });
});
