import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RequestRetention, definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { scalar } from '../support/fault-checks.js';
import { waitForState, waitUntil } from '../support/wait.js';

/** Issue 13, "retention": completed deletions are pruned after `retention.completedMs`; failed and open ones stay. */
describe('pruning completed deletions', () => {
  let app: DeletionTestApp;
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_retention',
      entities: ASYNC_ENTITIES,
      deletion: {
        queue: { attempts: 1 },
        retention: { completedMs: 60_000, intervalMs: 0 },
        policies: [definePolicy(Owner, { items: 'destroyAsync', notes: 'nullifyThenPurge' })],
      },
    });
  });
  afterAll(() => app?.close());
  const sql = (query: string, params: unknown[] = []) => app.em().getConnection().execute(query, params);

  it('prune() removes the completed deletions older than completedMs with their orphan records, and keeps recent, failed and open ones', async () => {
    const finished = async () => {
      const receipt = await app.deletions.destroy(Owner, await seedOwner(app.em(), { items: 2, notes: 2 }));
      expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
      return receipt.requestId!;
    };
    const old = await finished();
    const recent = await finished();
    // A failed one: an item refuses in its hook.
    const refusing = await seedOwner(app.em(), { items: 2 });
    await sql(`update item set label = 'refuse' where owner_id = ?`, [refusing]);
    const failed = (await app.deletions.destroy(Owner, refusing)).requestId!;
    expect((await waitForState(app.deletions, failed)).state).toBe('failed');
    // Recorded orphans of the old deletion, as a purge interrupted before its cleanup would leave them.
    await sql(`insert into deletion_orphan (request_id, relation, row_id) values (?, 'notes', '1'), (?, 'notes', '2')`, [old, old]);
    await sql(`update deletion_request set completed_at = now() - interval '2 minutes' where root_id in (?, ?)`, [old, failed]);

    const report = await app.module.get(RequestRetention).prune();

    expect(report).toEqual({ deletions: 1, requests: 1, orphans: 2 });
    expect(await scalar(app, 'select count(*) from deletion_request where root_id = ?', [old])).toBe(0);
    expect(await scalar(app, 'select count(*) from deletion_orphan where request_id = ?', [old])).toBe(0);
    expect(await scalar(app, 'select count(*) from deletion_request where root_id = ?', [recent])).toBe(1);
    expect(await scalar(app, 'select count(*) from deletion_request where root_id = ?', [failed])).toBe(1);
    await expect(app.deletions.status(old)).rejects.toMatchObject({ code: 'DELETION_REQUEST_NOT_FOUND' });
    expect((await app.deletions.status(failed)).state).toBe('failed');
  });
});

describe('the pruning job scheduler, and completedMs: 0', () => {
  it('prunes on its own schedule', async () => {
    const app = await createDeletionTestApp({
      database: 'deletion_retention_scheduled',
      entities: ASYNC_ENTITIES,
      deletion: { retention: { completedMs: 1, intervalMs: 300 }, policies: [definePolicy(Owner, { items: 'destroyAsync' })] },
    });
    try {
      const receipt = await app.deletions.destroy(Owner, await seedOwner(app.em(), { items: 2 }));
      await waitUntil(async () => (await scalar(app, 'select count(*) from deletion_request where root_id = ?', [receipt.requestId])) === 0, 15_000, 'the completed request pruned');
      expect(await scalar(app, 'select count(*) from item')).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('keeps every request with completedMs: 0', async () => {
    const app = await createDeletionTestApp({
      database: 'deletion_retention_keep',
      entities: ASYNC_ENTITIES,
      deletion: { retention: { completedMs: 0 }, policies: [definePolicy(Owner, { items: 'destroyAsync' })] },
    });
    try {
      const receipt = await app.deletions.destroy(Owner, await seedOwner(app.em(), { items: 2 }));
      expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
      await app.em().getConnection().execute(`update deletion_request set completed_at = now() - interval '400 days'`);
      expect(await app.module.get(RequestRetention).prune()).toEqual({ deletions: 0, requests: 0, orphans: 0 });
      expect(await scalar(app, 'select count(*) from deletion_request')).toBe(1);
    } finally {
      await app.close();
    }
  });
});
