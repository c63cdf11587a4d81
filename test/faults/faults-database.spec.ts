import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import { definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../fixtures/async.entities.js';
import { countRows, seedOwner } from '../fixtures/async.seed.js';
import { CREATE_ITEM_AUDIT, ItemAuditSubscriber } from '../fixtures/audit.subscriber.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { itemAudit, requestStates, scalar } from '../support/fault-checks.js';
import { PgAdmin, RowLock } from '../support/pg-admin.js';
import { pooledConnections, releaseLeakedConnections } from '../support/pg-pool.js';
import { waitForState, waitUntil } from '../support/wait.js';

const database = 'deletion_fault_database';
let app: DeletionTestApp;
let admin: PgAdmin;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database,
    entities: ASYNC_ENTITIES,
    deletion: {
      batchSize: 50,
      queue: { attempts: 10, backoffMs: 50 },
      worker: { pauseBetweenBatchesMs: 10 },
      policies: [definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync', notes: 'nullifyThenPurge' })],
    },
  });
  await app.em().getConnection().execute(CREATE_ITEM_AUDIT);
  app.orm.em.getEventManager().registerSubscriber(new ItemAuditSubscriber());
  admin = await PgAdmin.connect(database);
});
afterEach(async () => {
  jest.restoreAllMocks();
  // Once the queue is idle, hand back the connections the dropped transactions never released
  // (see the last test): otherwise they would count in the next test, and app.close() would wait
  // for them forever.
  await waitUntil(async () => (await app.queue.getActiveCount()) === 0, 20_000, 'queue idle').catch(() => undefined);
  await releaseLeakedConnections(app);
});
afterAll(async () => {
  await admin?.close();
  await app?.close();
});

/**
 * Drops every connection of the database up to `times` times while the request runs, each time at
 * a moment when a batch transaction has written and not committed, letting the cascade move on a
 * little in between. Returns how many drops happened.
 */
async function dropConnectionsDuringCascade(requestId: string, times: number): Promise<number> {
  let drops = 0;
  const deadline = Date.now() + 20_000;
  while (drops < times && Date.now() < deadline && (await app.deletions.status(requestId).catch(() => undefined))?.state !== 'completed') {
    if ((await admin.terminateAllMidTransaction()) > 0) {
      drops += 1;
      await sleep(150);
    }
  }
  return drops;
}

const itemsOf = (owner: number) => scalar(app, 'select count(*) from item where owner_id = ?', [owner]);
const logsOf = (owner: number) => scalar(app, 'select count(*) from log where owner_id = ?', [owner]);

describe('the database connection dropped in the middle of a batch', () => {
  it('the batch rolls back whole, the job retries with backoff and resumes from the stored cursor: every child deleted exactly once', async () => {
    const items = 1500;
    const logs = 600;
    const bystander = await seedOwner(app.em(), { items: 7, logs: 5 }, 'bystander');
    const id = await seedOwner(app.em(), { items, logs });
    const warnings = jest.spyOn(Logger.prototype, 'warn');

    const receipt = await app.deletions.destroy(Owner, id);
    const requestId = receipt.requestId!;
    // Three drops, not more: each one also leaks a pooled connection or two (last test), and the pool has ten.
    expect(await dropConnectionsDuringCascade(requestId, 3)).toBe(3);

    const status = await waitForState(app.deletions, requestId, ['completed', 'failed'], 30_000);
    expect(status.state).toBe('completed');
    expect(status.progress).toEqual([
      { path: 'Owner.items', entity: 'Item', policy: 'destroyAsync', processed: items, done: true },
      { path: 'Owner.logs', entity: 'Log', policy: 'deleteAllAsync', processed: logs, done: true },
      { path: 'Owner.notes', entity: 'Note', policy: 'nullifyThenPurge', processed: 0, done: true },
    ]);
    expect(await itemsOf(id)).toBe(0);
    expect(await logsOf(id)).toBe(0);
    expect(await itemAudit(app)).toEqual({ rows: items, distinct: items });
    expect(await itemsOf(bystander)).toBe(7);
    expect(await logsOf(bystander)).toBe(5);
    expect(await requestStates(app)).toEqual({ completed: 1 });
    // The dropped attempts were visible: logged as failed attempts that will be retried.
    expect(warnings.mock.calls.some(([message]) => String(message).includes(`${requestId} attempt`) && String(message).includes('will retry'))).toBe(true);
  });
});

describe('the database connection dropped inside the deletion request’s own transaction', () => {
  it('rolls the whole deletion back: parent and children stay, no request row, no job', async () => {
    const id = await seedOwner(app.em(), { items: 20, logs: 4, notes: 1 });
    const before = await countRows(app.em());
    const jobsBefore = await app.queue.getJobCounts();

    // Hold its note, so the deletion stops at nullifyThenPurge's UPDATE, after writing its request
    // row (destroy() locks the parent itself first, so holding the parent would stop it earlier);
    // then drop that connection.
    const noteId = await scalar(app, 'select id from note where owner_id = ?', [id]);
    const lock = await RowLock.hold(database, 'note', noteId);
    let destroying: Promise<unknown>;
    try {
      destroying = app.deletions.destroy(Owner, id).then(
        () => undefined,
        (error: unknown) => error,
      );
      let waiters: number[] = [];
      await waitUntil(async () => (waiters = await admin.lockWaiters()).length === 1, 10_000, 'deletion waiting at its UPDATE');
      const [{ written }] = await admin.query<{ written: boolean }>(
        `select backend_xid is not null as written from pg_stat_activity where pid = $1`,
        waiters,
      );
      expect(written).toBe(true);
      await admin.terminate(waiters);
    } finally {
      await lock.release();
    }
    const error = await destroying;

    expect(error).toBeInstanceOf(Error);
    expect(await countRows(app.em())).toEqual(before);
    expect(await scalar(app, 'select count(*) from owner where id = ?', [id])).toBe(1);
    expect(await app.queue.getJobCounts()).toEqual(jobsBefore);

    // The application goes on working: the same deletion now goes through.
    const receipt = await app.deletions.destroy(Owner, id);
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await itemsOf(id)).toBe(0);
    expect(await requestStates(app)).toEqual({ completed: 2 });
  });
});

/*
 * A transaction whose connection is dropped must give that connection back to the pool. Kysely
 * 0.29.6 (pinned by MikroORM 7.2.x) sent ROLLBACK on the dead connection and never released it:
 * a handful of dropped connections (a failover, a pgbouncer restart) exhausted the pool, and
 * app.close() waited forever. Kysely 0.29.7 releases it in a `finally`; this repository overrides
 * kysely to 0.29.7 (package.json `overrides`), and the README tells applications to do the same.
 */
describe('pooled connections after dropped transactions', () => {
  it('every connection a dropped batch transaction held is given back to the pool (no leak)', async () => {
    expect(await pooledConnections(app)).toMatchObject({ checkedOut: 0 });
    const id = await seedOwner(app.em(), { items: 600 });
    const receipt = await app.deletions.destroy(Owner, id);
    expect(await dropConnectionsDuringCascade(receipt.requestId!, 2)).toBe(2);
    expect((await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 30_000)).state).toBe('completed');

    await waitUntil(async () => (await pooledConnections(app)).checkedOut === 0, 3_000, 'every connection back in the pool').catch(() => undefined);
    expect(await pooledConnections(app)).toMatchObject({ checkedOut: 0 });
  });
});
