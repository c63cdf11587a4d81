import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { OrphanSweeper, definePolicy } from '../../lib/index.js';
import { ASYNC_ENTITIES, Owner, Vault } from '../fixtures/async.entities.js';
import { CREATE_ITEM_AUDIT, ItemAuditSubscriber } from '../fixtures/audit.subscriber.js';
import { CREATE_VAULT_ITEM_AUDIT, VaultItemAuditSubscriber } from '../fixtures/vault-audit.subscriber.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { itemAudit, requestStates, scalar } from '../support/fault-checks.js';
import { waitForState } from '../support/wait.js';

let app: DeletionTestApp;

beforeAll(async () => {
  app = await createDeletionTestApp({
    database: 'deletion_fault_late_children',
    entities: ASYNC_ENTITIES,
    deletion: {
      batchSize: 50,
      queue: { attempts: 10, backoffMs: 50 },
      worker: { pauseBetweenBatchesMs: 40 },
      sweeper: { intervalMs: 0 }, // the tests run the sweep themselves
      policies: [
        definePolicy(Owner, { items: 'destroyAsync', logs: 'deleteAllAsync' }),
        definePolicy(Vault, { items: 'destroyAsync' }, { tombstone: 'deletedAt' }),
      ],
    },
  });
  const sql = app.em().getConnection();
  await sql.execute(CREATE_ITEM_AUDIT);
  await sql.execute(CREATE_VAULT_ITEM_AUDIT);
  app.orm.em.getEventManager().registerSubscriber(new ItemAuditSubscriber());
  app.orm.em.getEventManager().registerSubscriber(new VaultItemAuditSubscriber());
});
afterAll(() => app?.close());

const sql = <T = Record<string, unknown>>(query: string, params: unknown[] = []) => app.em().getConnection().execute<T[]>(query, params);
const BASE = 100_000;

/**
 * Children with even keys from BASE (so the odd keys between them stay free, to insert late
 * children *behind* the cascade's keyset cursor), and the key sequence moved past them.
 */
async function seedChildren(table: 'item' | 'vault_item', fk: 'owner_id' | 'vault_id', parent: number, count: number, offset: number): Promise<void> {
  const label = table === 'item' ? `, label` : '';
  const value = table === 'item' ? `, 'item'` : '';
  await sql(`insert into ${table} (id, ${fk}${label}) select ? + g * 2, ?${value} from generate_series(1, ?) g`, [BASE + offset, parent, count]);
  await sql(`select setval(pg_get_serial_sequence('${table}', 'id'), 1000000)`);
}

/** The keyset cursor the request has stored for one relation. */
async function cursorOf(requestId: string, relation: string): Promise<number | null> {
  const [row] = await sql<{ cursor: string | null }>(`select progress -> ? ->> 'cursor' as cursor from deletion_request where id = ?`, [relation, requestId]);
  return row?.cursor == null ? null : Number(row.cursor);
}

/** A free odd key just behind the cursor (the cascade has walked past it), or undefined if there is none yet. */
function behind(cursor: number | null, used: Set<number>, offset: number): number | undefined {
  if (cursor === null) {
    return undefined;
  }
  for (let key = cursor - 1; key > BASE + offset; key -= 2) {
    if (key % 2 === 1 && !used.has(key)) {
      used.add(key);
      return key;
    }
  }
  return undefined;
}

describe('children inserted for a parent while its cascade runs', () => {
  it('no foreign key (orphan window): late children behind the cursor or after the end are left orphaned, and the sweeper removes them; each deleted once', async () => {
    const [{ id: bystander }] = await sql<{ id: number }>(`insert into owner (name) values ('bystander') returning id`);
    const [{ id: owner }] = await sql<{ id: number }>(`insert into owner (name) values ('doomed') returning id`);
    await seedChildren('item', 'owner_id', bystander, 5, 10_000);
    await seedChildren('item', 'owner_id', owner, 600, 0);
    let doomedItems = 600;
    let bystanderItems = 5;

    const receipt = await app.deletions.destroy(Owner, owner);
    const requestId = receipt.requestId!;
    const used = new Set<number>();
    let behindCursor = 0;
    let sweptWhileRunning: Awaited<ReturnType<OrphanSweeper['sweep']>> | undefined;
    // While it runs: late children behind the cursor (odd keys) and ahead of it (fresh keys), and new children of a live parent.
    for (let i = 0; i < 30 && (await app.deletions.status(requestId)).state !== 'completed'; i++) {
      const key = i % 2 === 0 ? behind(await cursorOf(requestId, 'items'), used, 0) : undefined;
      if (key !== undefined) {
        await sql(`insert into item (id, label, owner_id) values (?, 'late, behind the cursor', ?)`, [key, owner]);
        behindCursor += 1;
      } else {
        await sql(`insert into item (label, owner_id) values ('late, fresh key', ?)`, [owner]);
      }
      doomedItems += 1;
      await sql(`insert into item (label, owner_id) values ('new child of a live parent', ?)`, [bystander]);
      bystanderItems += 1;
      if (i === 10) {
        sweptWhileRunning = await app.module.get(OrphanSweeper).sweep();
      }
      await sleep(20);
    }
    expect(behindCursor).toBeGreaterThan(0);
    // The sweeper leaves a parent alone while an open request covers it.
    expect(sweptWhileRunning?.relations).toEqual([
      { relation: 'Owner.items', missingParents: 0 },
      { relation: 'Owner.logs', missingParents: 0 },
    ]);

    expect((await waitForState(app.deletions, requestId, ['completed', 'failed'], 20_000)).state).toBe('completed');
    const orphaned = await scalar(app, 'select count(*) from item where owner_id = ?', [owner]);
    // Behind the cursor is behind it for good: at least those are orphaned by design.
    expect(orphaned).toBeGreaterThanOrEqual(behindCursor);
    // And after the cascade ended, the orphan window stays open until the sweeper passes.
    await sql(`insert into item (label, owner_id) select 'after the end', ? from generate_series(1, 7)`, [owner]);
    doomedItems += 7;

    const report = await app.module.get(OrphanSweeper).sweep();
    expect(report.relations).toEqual([
      { relation: 'Owner.items', missingParents: 1, requestId: expect.any(String) },
      { relation: 'Owner.logs', missingParents: 0 },
    ]);
    const swept = await waitForState(app.deletions, report.relations[0]!.requestId!, ['completed', 'failed'], 20_000);
    expect(swept).toMatchObject({ state: 'completed', origin: 'sweeper' });

    expect(await scalar(app, 'select count(*) from item where owner_id = ?', [owner])).toBe(0);
    expect(await itemAudit(app)).toEqual({ rows: doomedItems, distinct: doomedItems });
    expect(await scalar(app, 'select count(*) from item where owner_id = ?', [bystander])).toBe(bystanderItems);
    expect(await requestStates(app)).toEqual({ completed: 2 });
  });

  it('tombstone mode: children inserted during the run, behind the cursor or ahead, are removed by the cascade itself before the parent goes; none orphaned, each deleted once', async () => {
    const [{ id: kept }] = await sql<{ id: number }>(`insert into vault (name) values ('kept') returning id`);
    const [{ id: vault }] = await sql<{ id: number }>(`insert into vault (name) values ('doomed') returning id`);
    await seedChildren('vault_item', 'vault_id', kept, 4, 10_000);
    await seedChildren('vault_item', 'vault_id', vault, 600, 0);
    let doomedItems = 600;

    const receipt = await app.deletions.destroy(Vault, vault);
    const requestId = receipt.requestId!;
    const used = new Set<number>();
    let behindCursor = 0;
    let refused: unknown;
    for (let i = 0; i < 30; i++) {
      const key = i % 2 === 0 ? behind(await cursorOf(requestId, 'items'), used, 0) : undefined;
      try {
        if (key !== undefined) {
          await sql(`insert into vault_item (id, vault_id) values (?, ?)`, [key, vault]);
          behindCursor += 1;
        } else {
          await sql(`insert into vault_item (vault_id) values (?)`, [vault]);
        }
        doomedItems += 1;
      } catch (error) {
        // The parent is gone: the foreign key refuses any later child.
        refused = error;
        break;
      }
      await sleep(20);
    }
    expect(behindCursor).toBeGreaterThan(0);

    const status = await waitForState(app.deletions, requestId, ['completed', 'failed'], 20_000);
    expect(status.state).toBe('completed');
    expect(status.progress).toEqual([{ path: 'Vault.items', entity: 'VaultItem', policy: 'destroyAsync', processed: doomedItems, done: true }]);
    expect(await scalar(app, 'select count(*) from vault where id = ?', [vault])).toBe(0);
    expect(await scalar(app, 'select count(*) from vault_item where vault_id = ?', [vault])).toBe(0);
    expect(await scalar(app, 'select count(*) from vault_item_audit')).toBe(doomedItems);
    expect(await scalar(app, 'select count(distinct vault_item_id) from vault_item_audit')).toBe(doomedItems);
    expect(await scalar(app, 'select count(*) from vault_item where vault_id = ?', [kept])).toBe(4);
    expect(await scalar(app, 'select count(*) from vault where id = ? and deleted_at is null', [kept])).toBe(1);
    // Once the parent is gone, no child can be inserted for it.
    const late = await sql(`insert into vault_item (vault_id) values (?)`, [vault]).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(late ?? refused).toMatchObject({ code: '23503' });
    expect(await requestStates(app)).toEqual({ completed: expect.any(Number) });
  });
});
