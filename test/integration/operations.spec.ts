import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { DeletionConfigurationError, DeletionEvents, DeletionModule, Dependent, definePolicy, type DeletionCompletedEvent } from '../../lib/index.js';
import { RELAY_JOB } from '../../lib/queue/deletion-queue.constants.js';
import { ASYNC_ENTITIES, Item, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { Post, TAGGING_ENTITIES } from '../fixtures/tagging.entities.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState, waitUntil } from '../support/wait.js';

/** A class the ORM does not use, carrying @Dependent(): imported code the application never registered. */
class DraftOwner {
  @Dependent('destroy')
  drafts: unknown[] = [];
}

/** Issue 13: failures are visible and isolation is real. */
describe('operating the module', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_operations',
      entities: ASYNC_ENTITIES,
      deletion: { policies: [definePolicy(Owner, { items: 'destroyAsync' })] },
    });
  });
  afterAll(() => app?.close());

  it('a DeletionEvents listener that throws changes nothing: the request stays completed and the other listeners run', async () => {
    const events = app.module.get(DeletionEvents);
    const seen: DeletionCompletedEvent[] = [];
    const throwing = () => {
      throw new Error('the listener is broken');
    };
    const rejecting = async () => {
      throw new Error('the async listener is broken');
    };
    const recording = (event: DeletionCompletedEvent) => seen.push(event);
    const errors = jest.spyOn(Logger.prototype, 'error');
    events.on('completed', throwing);
    events.on('completed', rejecting);
    events.on('completed', recording);
    try {
      const owner = await seedOwner(app.em(), { items: 3 });
      const receipt = await app.deletions.destroy(Owner, owner);
      await waitUntil(async () => seen.length > 0, 10_000, 'the recording listener called');
      expect(seen).toEqual([expect.objectContaining({ requestId: receipt.requestId, root: true })]);
      // The event is emitted from inside the job, which ends when its processor returns, just after:
      // wait for it to leave 'active', then it must have completed (a throwing listener fails nothing).
      const settled = async () => {
        const job = await app.queue.getJob(receipt.requestId!);
        return job === undefined || (await job.getState()) !== 'active';
      };
      await waitUntil(settled, 5_000, 'the job settled');
      const job = await app.queue.getJob(receipt.requestId!);
      expect(job === undefined || (await job.getState()) === 'completed').toBe(true);
      expect((await app.deletions.status(receipt.requestId!)).state).toBe('completed');
      await waitUntil(async () => errors.mock.calls.filter(([m]) => String(m).includes('listener of DeletionEvents threw')).length === 2, 5_000, 'both failures logged');
    } finally {
      events.off('completed', throwing);
      events.off('completed', rejecting);
      events.off('completed', recording);
      errors.mockRestore();
    }
  });

  it('a relay job that fails is logged with its cause', async () => {
    const errors = jest.spyOn(Logger.prototype, 'error');
    const sql = app.em().getConnection();
    await sql.execute('alter table deletion_request rename to deletion_request_away');
    try {
      await app.queue.add(RELAY_JOB, {}, { removeOnFail: true });
      await waitUntil(
        async () => errors.mock.calls.some(([m]) => String(m).includes('Deletion relay job') && String(m).includes('deletion_request')),
        10_000,
        'the relay failure logged',
      );
    } finally {
      await sql.execute('alter table deletion_request_away rename to deletion_request');
      errors.mockRestore();
    }
    // And the module goes on working.
    const receipt = await app.deletions.destroy(Owner, await seedOwner(app.em(), { items: 1 }));
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
  });
});

describe('configuring the module', () => {
  it('a second DeletionModule.forRoot() for the same ORM stops the boot with DELETION_CONFIG_DUPLICATE_MODULE', async () => {
    const error = await createDeletionTestApp({
      database: 'deletion_operations_twice',
      entities: ASYNC_ENTITIES,
      deletion: { policies: [definePolicy(Owner, { items: 'destroyAsync' })] },
      imports: [DeletionModule.forRoot({ relay: { intervalMs: 0 }, sweeper: { intervalMs: 0 } })],
    }).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(DeletionConfigurationError);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_DUPLICATE_MODULE' });
    expect((error as Error).message).toContain('imported twice for the same MikroORM instance');
  });

  it('@Dependent() on a class the ORM does not use is ignored, not a boot failure', async () => {
    const app = await createDeletionTestApp({ database: 'deletion_operations_unused_dependent', entities: ASYNC_ENTITIES });
    try {
      const owner = await seedOwner(app.em(), {});
      await expect(app.deletions.destroy(Owner, owner)).resolves.toMatchObject({ status: 'completed' });
      expect(new DraftOwner().drafts).toEqual([]);
    } finally {
      await app.close();
    }
  });
});

/** Issue 13, "status tells the truth": synchronous policies that run inside queued batches are listed with their counts. */
describe('status() of a cascade whose queued children have synchronous policies', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_operations_status',
      entities: ASYNC_ENTITIES,
      deletion: { batchSize: 4, policies: [definePolicy(Owner, { items: 'destroyAsync' }), definePolicy(Item, { parts: 'deleteAll' })] },
    });
  });
  afterAll(() => app?.close());

  it('lists Owner.items.parts beside Owner.items, with the rows each removed, as plan() lists them', async () => {
    const owner = await seedOwner(app.em(), { items: 10, partsPerItem: 3 });
    const plan = await app.deletions.plan(Owner, owner);
    expect(plan.paths.map((p) => [p.path, p.rows])).toEqual([
      ['Owner', 1],
      ['Owner.items', 10],
      ['Owner.items.parts', 30],
    ]);
    const receipt = await app.deletions.destroy(Owner, owner);
    const status = await waitForState(app.deletions, receipt.requestId!);
    expect(status.state).toBe('completed');
    expect(status.progress).toEqual([
      { path: 'Owner.items', entity: 'Item', policy: 'destroyAsync', processed: 10, done: true },
      { path: 'Owner.items.parts', entity: 'Part', policy: 'deleteAll', processed: 30, done: true },
    ]);
  });

  it('marks Owner.items.parts done when the last batch of Owner.items finds no row (a multiple of the batch size)', async () => {
    const owner = await seedOwner(app.em(), { items: 8, partsPerItem: 2 });
    const receipt = await app.deletions.destroy(Owner, owner);
    const status = await waitForState(app.deletions, receipt.requestId!);
    expect(status.state).toBe('completed');
    expect(status.progress).toEqual([
      { path: 'Owner.items', entity: 'Item', policy: 'destroyAsync', processed: 8, done: true },
      { path: 'Owner.items.parts', entity: 'Part', policy: 'deleteAll', processed: 16, done: true },
    ]);
  });
});

describe('status() of a deletion that runs synchronous policies in the request beside queued ones', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_operations_status_sync',
      entities: ASYNC_ENTITIES,
      deletion: { batchSize: 4, policies: [definePolicy(Owner, { items: 'destroy', logs: 'deleteAllAsync' }), definePolicy(Item, { parts: 'deleteAll' })] },
    });
  });
  afterAll(() => app?.close());

  it('lists Owner.items and Owner.items.parts, removed in the request, beside the queued Owner.logs, with their counts', async () => {
    const owner = await seedOwner(app.em(), { items: 5, partsPerItem: 2, logs: 7 });
    const bystander = await seedOwner(app.em(), { items: 2, partsPerItem: 2, logs: 1 }, 'bystander');
    const plan = await app.deletions.plan(Owner, owner);
    expect(plan.paths.map((p) => [p.path, p.rows])).toEqual([
      ['Owner', 1],
      ['Owner.items', 5],
      ['Owner.items.parts', 10],
      ['Owner.logs', 7],
    ]);
    const receipt = await app.deletions.destroy(Owner, owner);
    expect(receipt.status).toBe('pending');
    const status = await waitForState(app.deletions, receipt.requestId!);
    expect(status.state).toBe('completed');
    expect(status.progress).toEqual([
      { path: 'Owner.items', entity: 'Item', policy: 'destroy', processed: 5, done: true },
      { path: 'Owner.items.parts', entity: 'Part', policy: 'deleteAll', processed: 10, done: true },
      { path: 'Owner.logs', entity: 'Log', policy: 'deleteAllAsync', processed: 7, done: true },
    ]);
    const counts = await app.em().getConnection().execute<{ items: number; logs: number }[]>(
      'select (select count(*)::int from item) as items, (select count(*)::int from log) as logs',
    );
    expect(counts).toEqual([{ items: 2, logs: 1 }]);
    expect(bystander).toBeGreaterThan(owner);
  });
});

/** Issue 13, "plan tells the truth": rows the database removes with the deleted row are listed too. */
describe('plan() of a row with many-to-many links and no policy on them', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({ database: 'deletion_operations_plan_pivot', entities: TAGGING_ENTITIES });
  });
  afterAll(() => app?.close());

  it('lists the pivot rows it unlinks, with their count, and writes nothing', async () => {
    const sql = app.em().getConnection();
    const [{ id: post }] = await sql.execute<{ id: number }[]>(`insert into post (title) values ('tagged') returning id`);
    await sql.execute(`insert into tag (label) values ('a'), ('b'), ('c')`);
    await sql.execute(`insert into post_tags (post_id, tag_id) select ?, id from tag where label in ('a', 'b')`, [post]);
    const plan = await app.deletions.plan(Post, post!);
    expect(plan.allowed).toBe(true);
    expect(plan.paths).toEqual([
      { path: 'Post', entity: 'Post', policy: 'root', timing: 'now', rows: 1, effect: 'delete', blockers: [], blockedTotal: 0 },
      { path: 'Post.tags', entity: 'Tag', policy: 'none', timing: 'now', rows: 2, effect: 'unlink', blockers: [], blockedTotal: 0 },
    ]);
    expect(Number((await sql.execute<{ n: string }[]>('select count(*) as n from post_tags'))[0]!.n)).toBe(2);
  });
});
