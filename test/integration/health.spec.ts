import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { MikroORM } from '@mikro-orm/core';
import { BullModule } from '@nestjs/bullmq';
import { Controller, Get, Inject, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import request from 'supertest';
import { DeletionHealthIndicator, DeletionHealthModule } from '../../lib/health/index.js';
import {
  DELETION_ENTITIES,
  DeletionModule,
  DeletionRequest,
  type DeletionModuleOptions,
  type RequestState,
} from '../../lib/index.js';
import { ASYNC_ENTITIES } from '../fixtures/async.entities.js';
import { createDeletionTestApp, redisConnection, type DeletionTestApp } from '../support/deletion-test-app.js';
import { createTestDatabase, databaseUrl } from '../support/services.js';
import { waitUntil } from '../support/wait.js';

const DATABASE = 'deletion_health';
/** No worker and no relay: requests written by a test stay as the test left them. */
const QUIET: DeletionModuleOptions = { worker: false, relay: { intervalMs: 0 } };

/** Writes a request row directly, as the outbox would have left it. */
async function insertRequest(orm: MikroORM, state: RequestState, ageMs = 0): Promise<void> {
  const id = randomUUID();
  const createdAt = new Date(Date.now() - ageMs);
  await orm.em.fork().insert(DeletionRequest, { id, rootId: id, entity: 'Owner', parentIds: [1], path: 'Owner', state, progress: {}, ownWorkDone: false, tombstone: false, attempts: 0, createdAt, updatedAt: createdAt });
}

/** A TCP port on 127.0.0.1 where nothing listens (taken from the OS, then released). */
async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') {
    throw new Error('no TCP address');
  }
  return address.port;
}

// One app at a time (MikroORM binds entity classes to the last ORM that discovered them): each
// describe boots its own and closes it before the next one starts.

describe('DeletionHealthIndicator', () => {
  let app: DeletionTestApp;
  let indicator: DeletionHealthIndicator;

  beforeAll(async () => {
    app = await createDeletionTestApp({ database: DATABASE, entities: ASYNC_ENTITIES, deletion: QUIET, imports: [DeletionHealthModule] });
    indicator = app.module.get(DeletionHealthIndicator);
  });
  afterAll(() => app?.close());
  beforeEach(async () => {
    await app.em().nativeDelete(DeletionRequest, {});
  });

  it('is up at rest, with every detail', async () => {
    expect(await indicator.isHealthy()).toEqual({
      deletion: { status: 'up', waiting: 0, active: 0, delayed: 0, failed: 0, failedRequests: 0, oldestPendingMs: null, sweeperRequests: 0 },
    });
  });

  it('reports the queue job counts and uses the key it is given', async () => {
    const waiting = await app.queue.add('health-probe', {}, { jobId: 'health-waiting' });
    const delayed = await app.queue.add('health-probe', {}, { jobId: 'health-delayed', delay: 60_000 });
    try {
      const result = await indicator.isHealthy('cascades');
      expect(result).toEqual({ cascades: expect.objectContaining({ status: 'up', waiting: 1, delayed: 1, active: 0, failed: 0 }) });
    } finally {
      await waiting.remove();
      await delayed.remove();
    }
  });

  it('is down when a request has failed, and says why', async () => {
    await insertRequest(app.orm, 'failed');
    await insertRequest(app.orm, 'completed');

    const { deletion } = await indicator.isHealthy();

    expect(deletion).toEqual({
      status: 'down',
      reason: '1 failed deletion request(s), more than maxFailed 0',
      waiting: 0,
      active: 0,
      delayed: 0,
      failed: 0,
      failedRequests: 1,
      oldestPendingMs: null,
      sweeperRequests: 0,
    });
  });

  it('tolerates failed requests up to maxFailed', async () => {
    await insertRequest(app.orm, 'failed');

    const { deletion } = await indicator.isHealthy('deletion', { maxFailed: 1 });

    expect(deletion).toMatchObject({ status: 'up', failedRequests: 1 });
  });

  it('is down when the oldest pending request is older than maxLagMs (60 s by default)', async () => {
    await insertRequest(app.orm, 'pending', 5_000);
    await insertRequest(app.orm, 'running', 90_000);
    await insertRequest(app.orm, 'completed', 600_000);

    const { deletion } = await indicator.isHealthy();

    expect(deletion.status).toBe('down');
    expect(deletion.failedRequests).toBe(0);
    expect(deletion.oldestPendingMs).toBeGreaterThanOrEqual(90_000);
    expect(deletion.oldestPendingMs).toBeLessThan(90_000 + 30_000);
    expect(deletion.reason).toMatch(/^oldest pending deletion request is \d+ ms old, more than maxLagMs 60000$/);
  });

  it('is up while the oldest pending request is within maxLagMs, and reports its age', async () => {
    await insertRequest(app.orm, 'pending', 90_000);

    const { deletion } = await indicator.isHealthy('deletion', { maxLagMs: 300_000 });

    expect(deletion.status).toBe('up');
    expect(deletion.oldestPendingMs).toBeGreaterThanOrEqual(90_000);
  });

  it('names every cause at once', async () => {
    await insertRequest(app.orm, 'failed');
    await insertRequest(app.orm, 'pending', 120_000);

    const { deletion } = await indicator.isHealthy();

    expect(deletion.reason).toMatch(/^1 failed deletion request\(s\), more than maxFailed 0; oldest pending deletion request is \d+ ms old, more than maxLagMs 60000$/);
  });
});

describe('DeletionHealthIndicator thresholds from DeletionModule options', () => {
  let app: DeletionTestApp;

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: DATABASE,
      keepSchema: true,
      entities: ASYNC_ENTITIES,
      deletion: { ...QUIET, health: { maxFailed: 2, maxLagMs: 1_000 } },
      imports: [DeletionHealthModule],
    });
    await app.em().nativeDelete(DeletionRequest, {});
  });
  afterAll(() => app?.close());

  it('applies the module health options, and a call overrides them', async () => {
    const indicator = app.module.get(DeletionHealthIndicator);
    await insertRequest(app.orm, 'failed');
    await insertRequest(app.orm, 'failed');
    await insertRequest(app.orm, 'pending', 5_000);

    const fromModule = await indicator.isHealthy();
    expect(fromModule.deletion.status).toBe('down');
    expect(fromModule.deletion.reason).toMatch(/^oldest pending deletion request is \d+ ms old, more than maxLagMs 1000$/);

    const overridden = await indicator.isHealthy('deletion', { maxLagMs: 60_000 });
    expect(overridden.deletion).toMatchObject({ status: 'up', failedRequests: 2 });
  });
});

describe('DeletionHealthIndicator with an unreachable queue', () => {
  let app: DeletionTestApp;

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: DATABASE,
      keepSchema: true,
      redisUrl: `redis://127.0.0.1:${await unusedPort()}`,
      entities: ASYNC_ENTITIES,
      deletion: QUIET,
      imports: [DeletionHealthModule],
    });
    await app.em().nativeDelete(DeletionRequest, {});
  });
  afterAll(() => app?.close());

  it('is down within its timeout, with the details it could still measure', async () => {
    const indicator = app.module.get(DeletionHealthIndicator);

    const started = Date.now();
    const { deletion } = await indicator.isHealthy('deletion', { timeoutMs: 500 });
    const elapsed = Date.now() - started;

    // A bound (the probe gives up at 500 ms), not a benchmark.
    expect(elapsed).toBeLessThan(3_000);
    expect(deletion).toEqual({
      status: 'down',
      reason: 'queue unreachable: the deletion queue did not answer within 500 ms',
      failedRequests: 0,
      oldestPendingMs: null,
      sweeperRequests: 0,
    });
  });
});

describe('DeletionHealthIndicator with a database that does not answer in time', () => {
  let app: DeletionTestApp;

  beforeAll(async () => {
    app = await createDeletionTestApp({ database: DATABASE, keepSchema: true, entities: ASYNC_ENTITIES, deletion: QUIET, imports: [DeletionHealthModule] });
  });
  afterAll(() => app?.close());

  it('is down within its timeout, and its late query is cancelled on the server (Terminus timeout and AbortSignal)', async () => {
    // One probe first, unhindered: the queue's connections are open before the database stops
    // answering (on the PostgreSQL backend, opening them can take the probe's 500 ms by itself).
    await app.module.get(DeletionHealthIndicator).isHealthy('deletion', { timeoutMs: 10_000 });
    const blocker = new pg.Client({ connectionString: databaseUrl(DATABASE) });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table deletion_request in access exclusive mode');
      const { deletion } = await app.module.get(DeletionHealthIndicator).isHealthy('deletion', { timeoutMs: 500 });
      expect(deletion).toMatchObject({ status: 'down', reason: 'deletion requests unreadable: the database did not answer within 500 ms' });
      // Cancelled, not left waiting for the lock: no query of the probe is still there.
      await waitUntil(
        async () => {
          const { rows } = await blocker.query(`select count(*)::int as n from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'`, [DATABASE]);
          return rows[0].n === 0;
        },
        5_000,
        'the probe query cancelled',
      );
    } finally {
      await blocker.query('rollback').catch(() => undefined);
      await blocker.end();
    }
  });
});

@Controller('health')
class HealthController {
  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(DeletionHealthIndicator) private readonly deletion: DeletionHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.deletion.isHealthy()]);
  }
}

describe('GET /health with DeletionHealthIndicator', () => {
  const database = 'deletion_health_http';
  let http: INestApplication;
  let orm: MikroORM;

  beforeAll(async () => {
    await createTestDatabase(database);
    const module = await Test.createTestingModule({
      imports: [
        MikroOrmModule.forRoot({
          driver: PostgreSqlDriver,
          clientUrl: databaseUrl(database),
          entities: [...DELETION_ENTITIES],
          metadataProvider: ReflectMetadataProvider,
          allowGlobalContext: true,
        }),
        BullModule.forRoot({ connection: redisConnection(), prefix: database }),
        DeletionModule.forRoot(QUIET),
        TerminusModule.forRoot({ logger: false }),
        DeletionHealthModule,
      ],
      controllers: [HealthController],
    }).compile();
    orm = module.get(MikroORM);
    await orm.schema.refresh();
    http = module.createNestApplication();
    await http.init();
  });
  afterAll(() => http?.close());

  it('answers 200 with status ok at rest', async () => {
    const response = await request(http.getHttpServer()).get('/health');

    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ status: 'ok', info: { deletion: { status: 'up', failedRequests: 0 } } });
  });

  it('answers 503 with the reason once a request has failed', async () => {
    await insertRequest(orm, 'failed');

    const response = await request(http.getHttpServer()).get('/health');

    expect(response.status).toBe(503);
    expect(response.body).toMatchObject({
      status: 'error',
      error: { deletion: { status: 'down', reason: '1 failed deletion request(s), more than maxFailed 0', failedRequests: 1 } },
    });
  });
});
