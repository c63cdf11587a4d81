import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DeletionEvents, DeletionTargetNotFoundError, definePolicy, type DeletionCompletedEvent, type DeletionReceipt } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner, Vault } from '../fixtures/async.entities.js';
import { seedOwner } from '../fixtures/async.seed.js';
import { CREATE_ITEM_AUDIT, ItemAuditSubscriber } from '../fixtures/audit.subscriber.js';
import { REMOVE_AND_FLUSH } from '../fixtures/triggers.js';
import { CREATE_VAULT_ITEM_AUDIT, VaultItemAuditSubscriber } from '../fixtures/vault-audit.subscriber.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { itemAudit, requestStates, scalar } from '../support/fault-checks.js';
import { PgAdmin, RowLock } from '../support/pg-admin.js';
import { waitForState, waitUntil } from '../support/wait.js';

const database = 'deletion_fault_concurrency';
let app: DeletionTestApp;
let admin: PgAdmin;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database,
    entities: ASYNC_ENTITIES,
    deletion: {
      batchSize: 40,
      queue: { attempts: 10, backoffMs: 50 },
      worker: { concurrency: 2, pauseBetweenBatchesMs: 15 },
      policies: [
        definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync' }),
        definePolicy(Vault, { items: 'destroyAsync' }, { tombstone: 'deletedAt' }),
      ],
    },
  });
  await app.em().getConnection().execute(CREATE_ITEM_AUDIT);
  await app.em().getConnection().execute(CREATE_VAULT_ITEM_AUDIT);
  app.orm.em.getEventManager().registerSubscriber(new ItemAuditSubscriber());
  app.orm.em.getEventManager().registerSubscriber(new VaultItemAuditSubscriber());
  admin = await PgAdmin.connect(database);
});
afterAll(async () => {
  await admin?.close();
  await app?.close();
});

const itemsOf = (owner: number) => scalar(app, 'select count(*) from item where owner_id = ?', [owner]);
const logsOf = (owner: number) => scalar(app, 'select count(*) from log where owner_id = ?', [owner]);
const auditOf = (owner: number) => itemAudit(app, `item_id in (select id from audit_scope where owner_id = ${owner})`);

/** Remembers which items belonged to which owner, so audit rows can be attributed after the items are gone. */
async function recordScope(owner: number): Promise<void> {
  await app.em().getConnection().execute('create table if not exists audit_scope (id int primary key, owner_id int not null)');
  await app.em().getConnection().execute('insert into audit_scope (id, owner_id) select id, owner_id from item where owner_id = ?', [owner]);
}

/** The same for a vault's items, audited by `VaultItemAuditSubscriber`. */
async function recordVaultScope(vault: number): Promise<void> {
  await app.em().getConnection().execute('create table if not exists vault_audit_scope (id int primary key, vault_id int not null)');
  await app.em().getConnection().execute('insert into vault_audit_scope (id, vault_id) select id, vault_id from vault_item where vault_id = ?', [vault]);
}

async function vaultAuditOf(vault: number): Promise<{ rows: number; distinct: number }> {
  const [row] = await app
    .em()
    .getConnection()
    .execute<{ rows: string; distinct: string }[]>(
      'select count(*) as rows, count(distinct vault_item_id) as distinct from vault_item_audit where vault_item_id in (select id from vault_audit_scope where vault_id = ?)',
      [vault],
    );
  return { rows: Number(row!.rows), distinct: Number(row!.distinct) };
}

/** The deletion requests written for this parent (a deletion's root request names it in parent_ids). */
async function requestsFor(entity: string, id: number): Promise<string[]> {
  const rows = await app
    .em()
    .getConnection()
    .execute<{ id: string }[]>(`select id from deletion_request where entity = ? and parent_ids @> ?::jsonb`, [entity, JSON.stringify([id])]);
  return rows.map((row: { id: string }) => row.id);
}

async function seedVault(items: number): Promise<number> {
  const sql = app.em().getConnection();
  const [{ id }] = await sql.execute<{ id: number }[]>(`insert into vault (name) values ('vault') returning id`);
  await sql.execute('insert into vault_item (vault_id) select ? from generate_series(1, ?)', [id, items]);
  return id;
}

/** Both settled results of two racing calls, split into fulfilled values and rejection reasons. */
function split<T>(results: PromiseSettledResult<T>[]): { receipts: T[]; errors: unknown[] } {
  return {
    receipts: results.filter((r): r is PromiseFulfilledResult<T> => r.status === 'fulfilled').map((r) => r.value),
    errors: results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason),
  };
}

/** A losing racer either finds the row gone (404) or gets a clean serialization failure from PostgreSQL. */
const LOSER = expect.objectContaining({ code: expect.stringMatching(/^(DELETION_TARGET_NOT_FOUND|40001|40P01)$/) });

describe('the same job delivered twice', () => {
  it('runs the cascade exactly once when a duplicate job for a running request is delivered to a second worker slot', async () => {
    const bystander = await seedOwner(app.em(), { items: 5, logs: 3 }, 'bystander');
    const id = await seedOwner(app.em(), { items: 600, logs: 150 });
    await recordScope(id);
    const completed: DeletionCompletedEvent[] = [];
    const events = app.module.get(DeletionEvents);
    const listener = (event: DeletionCompletedEvent) => completed.push(event);
    events.on('completed', listener);
    try {
      const receipt = await app.deletions.destroy(Owner, id);
      const requestId = receipt.requestId!;
      await waitUntil(async () => (await auditOf(id)).rows >= 80, 20_000, 'cascade under way');

      // The same payload under another job id: BullMQ delivers it at once to the second slot.
      const duplicate = await app.queue.add('cascade', { requestId }, { jobId: `dup-${requestId}` });
      await waitUntil(async () => (await duplicate.getState()) !== 'waiting', 10_000, 'duplicate picked up');
      // Both deliveries are in a worker slot at once, while the request still has work left.
      const overlapped =
        (await duplicate.getState()) === 'active' &&
        (await (await app.queue.getJob(requestId))?.getState()) === 'active' &&
        (await app.deletions.status(requestId)).state === 'running';

      const status = await waitForState(app.deletions, requestId, ['completed', 'failed'], 30_000);
      await waitUntil(async () => ['completed', 'failed'].includes(await duplicate.getState()), 10_000, 'duplicate finished');
      const finished = await app.queue.getJob(duplicate.id!);

      expect(overlapped).toBe(true);
      expect(finished!.failedReason).toBeFalsy();
      expect(await finished!.getState()).toBe('completed');
      expect(status.state).toBe('completed');
      expect(status.progress).toEqual([
        { path: 'Owner.items', entity: 'Item', policy: 'destroyAsync', processed: 600, done: true },
        { path: 'Owner.logs', entity: 'Log', policy: 'deleteAllAsync', processed: 150, done: true },
      ]);
      expect(await auditOf(id)).toEqual({ rows: 600, distinct: 600 });
      expect(await itemsOf(id)).toBe(0);
      expect(await logsOf(id)).toBe(0);
      expect(await itemsOf(bystander)).toBe(5);
      expect(await logsOf(bystander)).toBe(3);
      // Announced once, by whichever delivery completed it.
      expect(completed.filter((e) => e.requestId === requestId)).toHaveLength(1);
      expect(await requestStates(app)).toEqual({ completed: expect.any(Number) });
    } finally {
      events.off('completed', listener);
    }
  });

  it('a duplicate delivered after the request completed is a no-op', async () => {
    const id = await seedOwner(app.em(), { items: 30 });
    const receipt = await app.deletions.destroy(Owner, id);
    await waitForState(app.deletions, receipt.requestId!);
    const before = await itemAudit(app);

    const late = await app.queue.add('cascade', { requestId: receipt.requestId }, { jobId: `late-${receipt.requestId}` });
    await waitUntil(async () => ['completed', 'failed'].includes(await late.getState()), 10_000, 'late duplicate finished');

    expect((await app.queue.getJob(late.id!))!.returnvalue).toEqual({ outcome: 'finished-before' });
    expect(await itemAudit(app)).toEqual(before);
    expect((await app.deletions.status(receipt.requestId!)).state).toBe('completed');
  });
});

/*
 * Found by this suite and fixed for both triggers: two deletions of the same parent that both read
 * it before either commits used to both succeed.
 */
describe('the same parent deleted twice at once', () => {
  /*
   * What used to happen: DeletionService.destroy() (lib/deletion.service.ts) read the target with a
   * plain SELECT, then removed it, and em.remove() + flush() had read it too; the subscriber
   * (lib/cascade/deletion.subscriber.ts, apply()) writes the deletion_request row in beforeDelete,
   * before the parent's own DELETE (or tombstone UPDATE). Two transactions that both read the row
   * both wrote a request; the second one's DELETE waited on the first's row lock and then deleted
   * 0 rows (MikroORM does not check the affected-row count of a DELETE), and it committed anyway.
   * Result: two 'pending' receipts (or two successful flushes), two request rows, two jobs walking
   * the same children. With worker concurrency 2 the two cascades overlap and a page loaded by both
   * is removed through the ORM twice: afterDelete hooks and subscribers run twice for the same
   * child (in a probe, 5 rounds of 400 items: 4 rounds raced, item_audit had 1.4-1.7x rows).
   * The fix: lock the parent rows before anything is written, and refuse rows already gone.
   * - destroy(): `em.findOne(entity, { pk: id }, { lockMode: LockMode.PESSIMISTIC_WRITE })` (READ
   *   COMMITTED re-checks the row after the lock wait: a deleted row, or a tombstoned one excluded
   *   by the filter, is then not found -> DeletionTargetNotFoundError).
   * - em.remove() + flush(): at a deletion's entry the subscriber runs `SELECT pk FROM parent WHERE
   *   pk IN (...) [AND tombstone IS NULL] ORDER BY pk FOR UPDATE` for the group of removed rows,
   *   before the validators and any write, and throws DeletionTargetNotFoundError for the rows that
   *   did not come back: the flush rolls back. It skips the row destroy() already locked, so the
   *   service's path still takes one lock statement.
   * The barrier (a FOR SHARE lock held by the test) only makes the losing interleaving certain:
   * without it the plain Promise.all races the same way in most runs.
   */
  it.each([
    ['Owner (orphan-window mode)', 'owner'],
    ['Vault (tombstone mode)', 'vault'],
  ])('%s: two concurrent destroy() calls give one receipt, one clean error, one request, children deleted once', async (_label, table) => {
    const bystander = await seedOwner(app.em(), { items: 4 }, 'bystander');
    const id = table === 'owner' ? await seedOwner(app.em(), { items: 90, logs: 10 }) : await seedVault(90);
    await (table === 'owner' ? recordScope(id) : recordVaultScope(id));
    const entity = table === 'owner' ? Owner : Vault;
    const destroy = () => (table === 'owner' ? app.deletions.destroy(Owner, id) : app.deletions.destroy(Vault, id));
    const lock = await RowLock.hold(database, table, id);
    let racing: Promise<PromiseSettledResult<DeletionReceipt>[]>;
    try {
      racing = Promise.allSettled([destroy(), destroy()]);
      // Both transactions have read the row and wait on its lock: the losing interleaving, made certain.
      await waitUntil(async () => (await admin.lockWaiters()).length === 2, 10_000, 'both deletions waiting on the row lock');
    } finally {
      await lock.release();
    }
    const { receipts, errors } = split(await racing);

    expect(receipts).toHaveLength(1);
    expect(errors).toEqual([LOSER]);
    const requests = await scalar(app, `select count(*) from deletion_request where entity = ? and parent_ids @> ?::jsonb`, [entity.name, JSON.stringify([id])]);
    expect(requests).toBe(1);
    await waitForState(app.deletions, receipts[0]!.requestId!, ['completed', 'failed'], 20_000);
    await waitUntil(async () => Object.keys(await requestStates(app)).every((state) => state === 'completed' || state === 'failed'), 20_000, 'no open request');
    if (table === 'owner') {
      expect(await auditOf(id)).toEqual({ rows: 90, distinct: 90 });
      expect(await itemsOf(id)).toBe(0);
      expect(await logsOf(id)).toBe(0);
    } else {
      expect(await vaultAuditOf(id)).toEqual({ rows: 90, distinct: 90 });
      expect(await scalar(app, 'select count(*) from vault_item where vault_id = ?', [id])).toBe(0);
      expect(await scalar(app, 'select count(*) from vault where id = ?', [id])).toBe(0);
    }
    expect(await itemsOf(bystander)).toBe(4);
    expect(await requestStates(app)).toEqual({ completed: expect.any(Number) });
  });
  it.each([
    ['Owner (orphan-window mode)', 'owner'],
    ['Vault (tombstone mode)', 'vault'],
  ])('%s: two concurrent em.remove() + flush() give one commit, one DeletionTargetNotFoundError, one request, children deleted once', async (_label, table) => {
    const bystander = await seedOwner(app.em(), { items: 4 }, 'bystander');
    const bystanderVault = await seedVault(4);
    const id = table === 'owner' ? await seedOwner(app.em(), { items: 90, logs: 10 }) : await seedVault(90);
    await (table === 'owner' ? recordScope(id) : recordVaultScope(id));
    const entity = table === 'owner' ? Owner : Vault;
    // Each call loads the parent in an entity manager of its own, removes it and flushes.
    const removeAndFlush = () => (table === 'owner' ? REMOVE_AND_FLUSH.run(app, Owner, id) : REMOVE_AND_FLUSH.run(app, Vault, id));
    const lock = await RowLock.hold(database, table, id);
    let racing: Promise<PromiseSettledResult<unknown>[]>;
    try {
      racing = Promise.allSettled([removeAndFlush(), removeAndFlush()]);
      // Both flushes have loaded the row and wait on its lock: the losing interleaving, made certain.
      await waitUntil(async () => (await admin.lockWaiters()).length === 2, 10_000, 'both flushes waiting on the row lock');
    } finally {
      await lock.release();
    }
    const { receipts: flushed, errors } = split(await racing);

    expect(flushed).toHaveLength(1);
    expect(errors).toEqual([expect.objectContaining({ code: DeletionTargetNotFoundError.CODE, entity: entity.name, id })]);
    expect(errors[0]).toBeInstanceOf(DeletionTargetNotFoundError);
    const requests = await requestsFor(entity.name, id);
    expect(requests).toHaveLength(1);
    expect((await waitForState(app.deletions, requests[0]!, ['completed', 'failed'], 20_000)).state).toBe('completed');
    await waitUntil(async () => Object.keys(await requestStates(app)).every((state) => state === 'completed' || state === 'failed'), 20_000, 'no open request');
    if (table === 'owner') {
      expect(await auditOf(id)).toEqual({ rows: 90, distinct: 90 });
      expect(await itemsOf(id)).toBe(0);
      expect(await logsOf(id)).toBe(0);
      expect(await scalar(app, 'select count(*) from owner where id = ?', [id])).toBe(0);
    } else {
      expect(await vaultAuditOf(id)).toEqual({ rows: 90, distinct: 90 });
      expect(await scalar(app, 'select count(*) from vault_item where vault_id = ?', [id])).toBe(0);
      expect(await scalar(app, 'select count(*) from vault where id = ?', [id])).toBe(0);
    }
    expect(await itemsOf(bystander)).toBe(4);
    expect(await scalar(app, 'select count(*) from vault_item where vault_id = ?', [bystanderVault])).toBe(4);
    expect(await scalar(app, 'select count(*) from vault where id = ? and deleted_at is null', [bystanderVault])).toBe(1);
    expect(await requestStates(app)).toEqual({ completed: expect.any(Number) });
  });
  it('a flush whose removed parents were partly deleted or tombstoned meanwhile fails for those rows only, and writes nothing', async () => {
    const kept = await seedOwner(app.em(), { items: 3 });
    const gone = await seedOwner(app.em(), { items: 3 });
    const vault = await seedVault(3);
    const em = app.em();
    const owners = await em.find(Owner, { id: { $in: [kept, gone] } });
    const vaultEm = app.em();
    const loadedVault = await vaultEm.findOneOrFail(Vault, vault);
    // Behind the entity manager's back, as a concurrent deletion would have done by now.
    await app.em().getConnection().execute('delete from owner where id = ?', [gone]);
    await app.em().getConnection().execute('update vault set deleted_at = now() where id = ?', [vault]);

    owners.forEach((owner) => em.remove(owner));
    const ownersError = await em.flush().catch((error: unknown) => error);
    expect(ownersError).toBeInstanceOf(DeletionTargetNotFoundError);
    expect(ownersError).toMatchObject({ entity: 'Owner', id: gone });

    vaultEm.remove(loadedVault);
    const vaultError = await vaultEm.flush().catch((error: unknown) => error);
    expect(vaultError).toMatchObject({ code: DeletionTargetNotFoundError.CODE, entity: 'Vault', id: vault });

    expect(await requestsFor('Owner', kept)).toEqual([]);
    expect(await requestsFor('Vault', vault)).toEqual([]);
    expect(await scalar(app, 'select count(*) from owner where id = ?', [kept])).toBe(1);
    expect(await itemsOf(kept)).toBe(3);
    expect(await scalar(app, 'select count(*) from vault_item where vault_id = ?', [vault])).toBe(3);
  });
});
