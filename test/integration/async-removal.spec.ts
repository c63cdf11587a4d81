import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { ChangeSetType, type EventArgs, type EventSubscriber, type FlushEventArgs } from '@mikro-orm/core';
import { definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Item, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { QueryLog } from '../support/query-log.js';
import { waitForState } from '../support/wait.js';

/**
 * How a queued batch removes its page of children: with no flush listener in the application, in
 * one DELETE per page with every row's hooks dispatched as a flush would; with one, through a real
 * flush, so that listener sees every removal.
 */

/** Records what an entity subscriber is given for Item's delete events. */
class ItemDeleteEvents implements EventSubscriber<Item> {
  readonly seen: { event: string; id: number; changeSetType?: ChangeSetType; sameEntity: boolean; hasEm: boolean }[] = [];

  getSubscribedEntities() {
    return [Item];
  }

  beforeDelete(args: EventArgs<Item>): void {
    this.record('beforeDelete', args);
  }

  afterDelete(args: EventArgs<Item>): void {
    this.record('afterDelete', args);
  }

  private record(event: string, args: EventArgs<Item>): void {
    this.seen.push({ event, id: args.entity.id, changeSetType: args.changeSet?.type, sameEntity: args.changeSet?.entity === args.entity, hasEm: !!args.em });
  }
}

/** An application subscriber that audits deletions from the flush's change sets. */
class FlushAudit implements EventSubscriber {
  readonly deletedItems: number[] = [];

  onFlush({ uow }: FlushEventArgs): void {
    for (const changeSet of uow.getChangeSets()) {
      if (changeSet.meta.className === 'Item' && changeSet.type === ChangeSetType.DELETE) {
        this.deletedItems.push((changeSet.entity as Item).id);
      }
    }
  }
}

const itemIdsOf = async (app: DeletionTestApp, owner: number) =>
  (await app.em().getConnection().execute<{ id: number }[]>('select id from item where owner_id = ? order by id', [owner])).map((r: { id: number }) => r.id);

describe('a queued page with no flush listener in the application', () => {
  let app: DeletionTestApp;
  const events = new ItemDeleteEvents();

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_async_removal',
      entities: ASYNC_ENTITIES,
      // Pages larger than MikroORM's own delete chunk (batchSize 300): a flush would take two statements per page.
      deletion: { batchSize: 400, queue: { attempts: 1 }, policies: [definePolicy(Owner, { items: 'destroyAsync' })] },
    });
    app.orm.em.getEventManager().registerSubscriber(events);
  });
  afterAll(() => app?.close());
  beforeEach(() => HookJournal.clear());

  it('deletes each page in one statement and gives every row its hooks and subscribers, with a DELETE change set, before and after', async () => {
    const bystander = await seedOwner(app.em(), { items: 5 }, 'bystander');
    const id = await seedOwner(app.em(), { items: 1000 });
    const ids = await itemIdsOf(app, id);
    events.seen.length = 0;

    const { statements } = await app.queries.record(async () => {
      const receipt = await app.deletions.destroy(Owner, id);
      expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    });

    // 1,000 rows in pages of 400: three DELETEs, each naming exactly its page's keys.
    const deletes = QueryLog.matching(statements, /^delete from ("public"\.)?"item"/i);
    expect(deletes).toHaveLength(3);
    expect(deletes.map((sql) => (sql.match(/\?/g) ?? []).length)).toEqual([400, 400, 200]);
    expect(await itemIdsOf(app, id)).toEqual([]);
    expect(await itemIdsOf(app, bystander)).toHaveLength(5);

    // The entity's own hook ran once per row; the subscriber got both events for every row.
    expect(HookJournal.entries.filter((e) => e.hook === 'Item.afterDelete').map((e) => e.id).sort((a, b) => Number(a) - Number(b))).toEqual(ids);
    for (const event of ['beforeDelete', 'afterDelete']) {
      const seen = events.seen.filter((e) => e.event === event);
      expect(seen.map((e) => e.id).sort((a, b) => a - b)).toEqual(ids);
      expect(seen.every((e) => e.changeSetType === ChangeSetType.DELETE && e.sameEntity && e.hasEm)).toBe(true);
    }
    // Per page, every beforeDelete comes before the page's first afterDelete.
    const order = events.seen.map((e) => e.event);
    expect(order.slice(0, 400).every((e) => e === 'beforeDelete')).toBe(true);
    expect(order.slice(400, 800).every((e) => e === 'afterDelete')).toBe(true);
  });

  it('a hook that throws rolls its page back whole: no row of that page is deleted', async () => {
    const id = await seedOwner(app.em(), { items: 600 });
    const ids = await itemIdsOf(app, id);
    // Item refuses in beforeDelete when its label is 'refuse' (second page).
    await app.em().getConnection().execute(`update item set label = 'refuse' where id = ?`, [ids[500]]);

    const receipt = await app.deletions.destroy(Owner, id);
    const status = await waitForState(app.deletions, receipt.requestId!, ['failed'], 20_000);
    expect(status.state).toBe('failed');
    expect(JSON.stringify(status.errors)).toContain(`item ${ids[500]} refuses to be deleted`);
    // The first page went; the second page is whole.
    expect(await itemIdsOf(app, id)).toEqual(ids.slice(400));
  });
});

describe('a queued page when the application listens to flushes', () => {
  let app: DeletionTestApp;
  const audit = new FlushAudit();

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_async_removal_flush',
      entities: ASYNC_ENTITIES,
      deletion: { batchSize: 100, queue: { attempts: 1 }, policies: [definePolicy(Owner, { items: 'destroyAsync' })] },
    });
    app.orm.em.getEventManager().registerSubscriber(audit);
  });
  afterAll(() => app?.close());

  it('removes through a flush, so the application subscriber sees every removed row in its change sets', async () => {
    const id = await seedOwner(app.em(), { items: 250 });
    const ids = await itemIdsOf(app, id);

    const receipt = await app.deletions.destroy(Owner, id);
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');

    expect(await itemIdsOf(app, id)).toEqual([]);
    expect([...audit.deletedItems].sort((a, b) => a - b)).toEqual(ids);
  });
});
