import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DeletionConfigurationError, definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { requestStates, scalar } from '../support/fault-checks.js';
import { waitForState, waitUntil } from '../support/wait.js';

/**
 * DESIGN 6: a queued cascade is enqueued once the transaction that wrote its request commits, also
 * when the deletion ran in a nested transaction (a savepoint), and never when an enclosing one
 * rolls back. The relay is off here, so only that enqueue can run the cascade.
 */
describe('deletions inside nested transactions', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_async_transactions',
      entities: ASYNC_ENTITIES,
      deletion: { policies: [definePolicy(Owner, { items: 'destroyAsync' })] },
    });
  });
  afterAll(() => app?.close());

  const itemsOf = (owner: number) => scalar(app, 'select count(*) from item where owner_id = ?', [owner]);
  const ownerExists = (owner: number) => scalar(app, 'select count(*) from owner where id = ?', [owner]);

  it('a removal flushed in a savepoint is enqueued when the outer transaction commits, and its cascade completes', async () => {
    const owner = await seedOwner(app.em(), { items: 4 });
    const bystander = await seedOwner(app.em(), { items: 2 }, 'bystander');
    await app.em().transactional(async (outer) => {
      await outer.transactional(async (inner) => {
        inner.remove(await inner.findOneOrFail(Owner, owner));
      });
    });
    await waitUntil(async () => (await requestStates(app)).completed === 1, 15_000, 'the request completed');
    expect(await ownerExists(owner)).toBe(0);
    expect(await itemsOf(owner)).toBe(0);
    expect(await itemsOf(bystander)).toBe(2);
  });

  it('an outer rollback after the savepoint was released leaves no request and no job, and every row', async () => {
    const owner = await seedOwner(app.em(), { items: 3 });
    const statesBefore = await requestStates(app);
    const jobsBefore = await app.queue.getJobCounts();
    await expect(
      app.em().transactional(async (outer) => {
        await outer.transactional(async (inner) => {
          inner.remove(await inner.findOneOrFail(Owner, owner));
        });
        throw new Error('the caller changes its mind');
      }),
    ).rejects.toThrow('the caller changes its mind');
    expect(await requestStates(app)).toEqual(statesBefore);
    expect(await app.queue.getJobCounts()).toEqual(jobsBefore);
    expect(await ownerExists(owner)).toBe(1);
    expect(await itemsOf(owner)).toBe(3);
  });

  it('a savepoint rolled back inside a committed transaction leaves no request and no job', async () => {
    const owner = await seedOwner(app.em(), { items: 3 });
    const statesBefore = await requestStates(app);
    const jobsBefore = await app.queue.getJobCounts();
    await app.em().transactional(async (outer) => {
      await outer
        .transactional(async (inner) => {
          inner.remove(await inner.findOneOrFail(Owner, owner));
          await inner.flush();
          throw new Error('undo the savepoint');
        })
        .catch(() => undefined);
    });
    expect(await requestStates(app)).toEqual(statesBefore);
    expect(await app.queue.getJobCounts()).toEqual(jobsBefore);
    expect(await ownerExists(owner)).toBe(1);
    expect(await itemsOf(owner)).toBe(3);
  });
});

describe('implicitTransactions: false', () => {
  it('fails the boot: a flush outside a transaction could write a request for a parent whose DELETE then fails', async () => {
    const error = await createDeletionTestApp({
      database: 'deletion_async_no_implicit_trx',
      entities: ASYNC_ENTITIES,
      orm: { implicitTransactions: false },
      deletion: { policies: [definePolicy(Owner, { items: 'destroyAsync' })] },
    }).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(DeletionConfigurationError);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_TRANSACTIONS', option: 'implicitTransactions' });
    expect((error as Error).message).toContain('implicitTransactions');
  });
});

/** Issue 12, "many parents": each queued batch names its request's parents, so a large flush is split. */
describe('a flush that removes thousands of parents', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_async_many_parents',
      entities: ASYNC_ENTITIES,
      deletion: { batchSize: 500, policies: [definePolicy(Owner, { items: 'destroyAsync' })] },
    });
  });
  afterAll(() => app?.close());

  it('writes one request per 1,000 parents under one root, and the root completes with every child deleted', async () => {
    await app.em().getConnection().execute(`insert into owner (name) select 'owner ' || g from generate_series(1, 2300) g`);
    await app.em().getConnection().execute(`insert into item (label, owner_id) select 'item', id from owner`);
    const bystander = await seedOwner(app.em(), { items: 3 }, 'bystander');
    const em = app.em();
    const owners = await em.find(Owner, { id: { $ne: bystander } });
    owners.forEach((owner) => em.remove(owner));
    await em.flush();

    const requests = await app
      .em()
      .getConnection()
      .execute<{ id: string; root_id: string; parent_id: string | null; n: number }[]>(
        'select id, root_id, parent_id, jsonb_array_length(parent_ids) as n from deletion_request order by parent_id nulls first, n desc',
      );
    expect(requests.map((r: { n: number }) => r.n)).toEqual([1000, 1000, 300]);
    const [root, ...rest] = requests;
    expect(root!.parent_id).toBeNull();
    expect(rest.every((r: { parent_id: string | null; root_id: string }) => r.parent_id === root!.id && r.root_id === root!.id)).toBe(true);

    const status = await waitForState(app.deletions, root!.id);
    expect(status.state).toBe('completed');
    expect(status.counts).toMatchObject({ requests: 3, completed: 3 });
    expect(status.progress).toEqual([{ path: 'Owner.items', entity: 'Item', policy: 'destroyAsync', processed: 2300, done: true }]);
    expect(await scalar(app, 'select count(*) from item')).toBe(3);
    expect(await scalar(app, 'select count(*) from owner')).toBe(1);
  });
});

/** DESIGN 3: `destroy(entity, id, { em })` joins the caller's transaction. */
describe('destroy() with the caller entity manager', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_async_destroy_em',
      entities: ASYNC_ENTITIES,
      deletion: { policies: [definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAll' })] },
    });
  });
  afterAll(() => app?.close());

  it('a rollback of the caller transaction leaves every row, no request and no job', async () => {
    const owner = await seedOwner(app.em(), { items: 3, logs: 2 });
    const jobsBefore = await app.queue.getJobCounts();
    await expect(
      app.em().transactional(async (em) => {
        const receipt = await app.deletions.destroy(Owner, owner, { em });
        expect(receipt.status).toBe('pending');
        throw new Error('the caller rolls back');
      }),
    ).rejects.toThrow('the caller rolls back');
    expect(await scalar(app, 'select count(*) from owner where id = ?', [owner])).toBe(1);
    expect(await scalar(app, 'select count(*) from item where owner_id = ?', [owner])).toBe(3);
    expect(await scalar(app, 'select count(*) from log where owner_id = ?', [owner])).toBe(2);
    expect(await scalar(app, 'select count(*) from deletion_request')).toBe(0);
    expect(await app.queue.getJobCounts()).toEqual(jobsBefore);
  });

  it('a commit of the caller transaction enqueues the cascade, which completes', async () => {
    const owner = await seedOwner(app.em(), { items: 3, logs: 2 });
    const receipt = await app.em().transactional((em) => app.deletions.destroy(Owner, owner, { em }));
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await scalar(app, 'select count(*) from item where owner_id = ?', [owner])).toBe(0);
    expect(await scalar(app, 'select count(*) from log where owner_id = ?', [owner])).toBe(0);
  });
});
