import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { DeletionEvents, definePolicy, type DeletionCompletedEvent } from '../../lib/index.js';
import { ASYNC_ENTITIES, Item, Owner } from '../fixtures/async.entities.js';
import { countRows, seedOwner } from '../fixtures/async.seed.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { QueryLog } from '../support/query-log.js';
import { waitForState } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

let app: DeletionTestApp;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_async_policies',
    entities: ASYNC_ENTITIES,
    deletion: {
      batchSize: 50,
      policies: [
        definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync', notes: 'nullifyThenPurge', badge: 'destroyAsync' }),
        definePolicy(Item, { parts: 'deleteAll' }),
      ],
    },
  });
});
afterAll(() => app?.close());
beforeEach(() => HookJournal.clear());

const rowsOf = async (table: string, where = 'true') => {
  const [row] = await app.em().getConnection().execute<{ n: string }[]>(`select count(*) as n from ${table} where ${where}`);
  return Number(row!.n);
};

describe('each queued policy, end to end', () => {
  it('leaves the children in place in the request, then the queue removes them and the status completes', async () => {
    const other = await seedOwner(app.em(), { items: 3, partsPerItem: 1, logs: 3, notes: 3, badge: true }, 'bystander');
    const id = await seedOwner(app.em(), { items: 120, partsPerItem: 2, logs: 130, notes: 70, badge: true });
    const before = await countRows(app.em());

    const receipt = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(Owner, id);
      expect(receipt).toEqual({ entity: 'Owner', id, status: 'pending', requestId: expect.any(String) });
      const status = await app.deletions.status(receipt.requestId!);
      expect(['pending', 'running']).toContain(status.state);
      // The parent is gone at once; its children are still there, only the notes are detached.
      expect(await rowsOf('owner', `id = ${id}`)).toBe(0);
      expect(await rowsOf('item', `owner_id = ${id}`)).toBe(120);
      expect(await rowsOf('part')).toBe(before.part);
      expect(await rowsOf('log', `owner_id = ${id}`)).toBe(130);
      expect(await rowsOf('badge', `owner_id = ${id}`)).toBe(1);
      expect(await rowsOf('note', 'owner_id is null')).toBe(70);
      expect(await rowsOf('deletion_orphan')).toBe(70);
      return receipt;
    });

    const status = await waitForState(app.deletions, receipt.requestId!);
    expect(status.state).toBe('completed');
    expect(await rowsOf('item', `owner_id = ${id}`)).toBe(0);
    expect(await rowsOf('part')).toBe(3);
    expect(await rowsOf('log', `owner_id = ${id}`)).toBe(0);
    expect(await rowsOf('badge', `owner_id = ${id}`)).toBe(0);
    expect(await rowsOf('note', 'owner_id is null')).toBe(0);
    expect(await rowsOf('deletion_orphan')).toBe(0);
    // The bystander owner and its children are untouched.
    expect(await rowsOf('owner', `id = ${other}`)).toBe(1);
    expect(await rowsOf('item', `owner_id = ${other}`)).toBe(3);
    expect(await rowsOf('log', `owner_id = ${other}`)).toBe(3);
    expect(await rowsOf('note', `owner_id = ${other}`)).toBe(3);
    expect(await rowsOf('badge', `owner_id = ${other}`)).toBe(1);
    // destroyAsync removed the items through the ORM: one afterDelete hook per item; the notes too.
    expect(HookJournal.count('Item.afterDelete')).toBe(120);
    expect(HookJournal.count('Note.afterDelete')).toBe(70);
    expect(status.progress).toEqual([
      { path: 'Owner.badge', entity: 'Badge', policy: 'destroyAsync', processed: 1, done: true },
      { path: 'Owner.items', entity: 'Item', policy: 'destroyAsync', processed: 120, done: true },
      // Item.parts (deleteAll) ran inside the items' batches: its path is listed with its rows.
      { path: 'Owner.items.parts', entity: 'Part', policy: 'deleteAll', processed: 240, done: true },
      { path: 'Owner.logs', entity: 'Log', policy: 'deleteAllAsync', processed: 130, done: true },
      { path: 'Owner.notes', entity: 'Note', policy: 'nullifyThenPurge', processed: 70, done: true },
    ]);
    expect(status.counts).toMatchObject({ requests: 1, completed: 1, failed: 0, processed: 561 });
    expect(status.completedAt).toBeInstanceOf(Date);
  });

  it('emits a completed event for the root request', async () => {
    const events = app.module.get(DeletionEvents);
    const seen: DeletionCompletedEvent[] = [];
    const listener = (event: DeletionCompletedEvent) => seen.push(event);
    events.on('completed', listener);
    try {
      const id = await seedOwner(app.em(), { items: 5 });
      const receipt = await app.deletions.destroy(Owner, id);
      await waitForState(app.deletions, receipt.requestId!);
      expect(seen).toContainEqual({ requestId: receipt.requestId, rootId: receipt.requestId, root: true, entity: 'Owner', path: 'Owner' });
    } finally {
      events.off('completed', listener);
    }
  });
});

describe('the request path', () => {
  const deleteAndCount = async (items: number) => {
    const id = await seedOwner(app.em(), { items, logs: items, notes: 2 });
    return whilePaused(app, async () => {
      const { result, statements } = await app.queries.record(() => app.deletions.destroy(Owner, id));
      return { receipt: result, statements };
    });
  };

  it('issues the same statements for 10 children as for 10,000: it neither loads nor counts them', async () => {
    const small = await deleteAndCount(10);
    const large = await deleteAndCount(10_000);
    expect(large.statements.length).toBe(small.statements.length);
    // begin, load the owner, the request row, nullifyThenPurge's detach-and-record, the delete, commit.
    expect(small.statements).toHaveLength(6);
    expect(QueryLog.matching(large.statements, /from "item"|from "log"|"item"|"log"/)).toEqual([]);
    await waitForState(app.deletions, large.receipt.requestId!);
    await waitForState(app.deletions, small.receipt.requestId!);
    expect(await rowsOf('item')).toBe(await rowsOf('item', 'owner_id in (select id from owner)'));
  });

  it('writes no request and adds no job when the transaction rolls back after em.remove()', async () => {
    const id = await seedOwner(app.em(), { items: 4, notes: 2 });
    const requestsBefore = await rowsOf('deletion_request');
    await whilePaused(app, async () => {
      const jobsBefore = await app.queue.getJobCountByTypes('waiting', 'active', 'delayed', 'prioritized');
      await expect(
        app.em().transactional(async (em) => {
          em.remove(await em.findOneOrFail(Owner, id));
          await em.flush();
          throw new Error('abort after the flush');
        }),
      ).rejects.toThrow('abort after the flush');
      expect(await rowsOf('deletion_request')).toBe(requestsBefore);
      expect(await app.queue.getJobCountByTypes('waiting', 'active', 'delayed', 'prioritized')).toBe(jobsBefore);
    });
    expect(await rowsOf('owner', `id = ${id}`)).toBe(1);
    expect(await rowsOf('note', `owner_id = ${id}`)).toBe(2);
    expect(await rowsOf('deletion_orphan')).toBe(0);
  });

  it('applies the policies when the entity is removed with em.remove() and flushed', async () => {
    const id = await seedOwner(app.em(), { items: 3, logs: 2 });
    const em = app.em();
    em.remove(await em.findOneOrFail(Owner, id));
    await em.flush();
    const [request] = await app.em().getConnection().execute<{ id: string }[]>(
      `select id from deletion_request where entity = 'Owner' and parent_ids = ?::jsonb`,
      [JSON.stringify([id])],
    );
    expect(request).toBeDefined();
    const status = await waitForState(app.deletions, request!.id);
    expect(status.state).toBe('completed');
    expect(await rowsOf('item', `owner_id = ${id}`)).toBe(0);
    expect(await rowsOf('log', `owner_id = ${id}`)).toBe(0);
  });
});

describe('nullifyThenPurge', () => {
  it('purges exactly the rows it detached and leaves rows whose foreign key was already NULL', async () => {
    const id = await seedOwner(app.em(), { notes: 30 });
    await app.em().getConnection().execute(`insert into note (text, owner_id) select 'free ' || g, null from generate_series(1, 5) g`);
    const freeBefore = await rowsOf('note', `owner_id is null and text like 'free %'`);
    const receipt = await app.deletions.destroy(Owner, id);
    await waitForState(app.deletions, receipt.requestId!);
    expect(await rowsOf('note', `text like 'note %' and owner_id is null`)).toBe(0);
    expect(await rowsOf('note', `owner_id is null and text like 'free %'`)).toBe(freeBefore);
    expect(freeBefore).toBeGreaterThanOrEqual(5);
  });

  it('does not purge a detached row that was re-attached to another parent before the queue ran', async () => {
    const keeper = await seedOwner(app.em(), {}, 'keeper');
    const id = await seedOwner(app.em(), { notes: 4 });
    const receipt = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(Owner, id);
      await app.em().getConnection().execute(`update note set owner_id = ? where id = (select min(id) from note where text like 'note %' and owner_id is null)`, [keeper]);
      return receipt;
    });
    await waitForState(app.deletions, receipt.requestId!);
    expect(await rowsOf('note', `owner_id = ${keeper}`)).toBe(1);
  });
});
