import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionBlockedError, DeletionRequest, ValidateBeforeDestroy, definePolicy, type PolicyName } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { waitUntil } from '../../support/wait.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/**
 * Set-based validators whose `where` joins a relation (the fallback form), uses `$or`/`$not`,
 * and the request guard with 8 and 9 parents in one flush.
 */

@Entity({ tableName: 'vendor' })
class Vendor {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ default: false }) blocked: Opt<boolean> = false;
}

@Entity({ tableName: 'shop' })
class Shop {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @OneToMany(() => Ware, (w) => w.shop) wares = new Collection<Ware>(this);
}

@Entity({ tableName: 'ware' })
@ValidateBeforeDestroy<Ware>({ where: { $or: [{ hold: true }, { vendor: { blocked: true } }] }, message: 'held or blocked-vendor ware' })
@ValidateBeforeDestroy<Ware>({ where: { $not: { note: { $ne: 'keep' } } }, message: 'note says keep' })
class Ware {
  @PrimaryKey({ autoincrement: false, fieldName: 'ware_no' }) id!: number;
  @Property({ default: false }) hold: Opt<boolean> = false;
  @Property({ nullable: true }) note?: string | null;
  @ManyToOne(() => Vendor, { nullable: true, createForeignKeyConstraint: false }) vendor?: Rel<Vendor> | null;
  @ManyToOne(() => Shop, { nullable: true, createForeignKeyConstraint: false, index: true, fieldName: 'owning_shop' }) shop?: Rel<Shop> | null;
}

const POLICIES: PolicyName[] = ['destroy', 'deleteAll', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];

/**
 * Shape: set-based validators whose `where` joins a relation (the fallback form) or uses `$or`/`$not`,
 * on a child with renamed key and foreign-key columns, with 1, 8 and 9 parents in one flush. From
 * the adversarial review of issue 11.
 */
describe.each(POLICIES)('Shop.wares under %s', (policy) => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  const settled = () => waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 15_000, 'settled');
  const tables = async () => ({
    shop: (await sql('select id from shop order by id')).map((r: Row) => r.id),
    ware: (await sql('select ware_no, owning_shop from ware order by ware_no')).map((r: Row) => `${r.ware_no}@${r.owning_shop}`),
  });
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_review_validators_${policy.toLowerCase()}`,
      entities: [Vendor, Shop, Ware],
      deletion: { doctor: 'off', batchSize: 2, queue: { attempts: 1, backoffMs: 10 }, policies: [definePolicy(Shop, { wares: policy })] },
    });
    await sql(`insert into vendor (id, blocked) values (1, false), (2, true)`);
  });
  afterAll(() => app?.close());

  it.each([
    ['a ware of a blocked vendor (joined $or branch)', `vendor_id = 2`],
    ['a held ware ($or column branch)', `hold = true`],
    ['a ware noted keep ($not)', `note = 'keep'`],
  ])('refuses when %s is among the children, for 1, 8 and 9 shops flushed at once', async (_label, set) => {
    for (const n of [1, 8, 9]) {
      await sql('delete from ware; delete from shop');
      const ids = Array.from({ length: n }, (_, i) => i + 1);
      await sql(`insert into shop (id) values ${ids.map((i) => `(${i})`).join(', ')}`);
      await sql(`insert into ware (ware_no, owning_shop, vendor_id) values ${ids.map((i) => `(${i * 10}, ${i}, 1), (${i * 10 + 1}, ${i}, 1)`).join(', ')}`);
      // the last shop's second ware refuses
      await sql(`update ware set ${set} where ware_no = ${n * 10 + 1}`);
      // a bystander that would refuse, under no shop being deleted
      await sql(`insert into shop (id) values (100); insert into ware (ware_no, owning_shop, hold, vendor_id, note) values (1000, 100, true, 2, 'keep')`);
      const before = await tables();
      const em = app.em();
      for (const shop of await em.find(Shop, { id: { $in: ids } })) {
        em.remove(shop);
      }
      const error = await em.flush().then(
        () => undefined,
        (e: unknown) => e,
      );
      await settled();
      expect({ n, error: (error as Error | undefined)?.constructor.name, tables: await tables() }).toEqual({ n, error: 'DeletionBlockedError', tables: before });
    }
  });

  it('deletes 9 shops flushed at once when no ware refuses; the bystander stays', async () => {
    await sql('delete from ware; delete from shop');
    const ids = Array.from({ length: 9 }, (_, i) => i + 1);
    await sql(`insert into shop (id) values ${ids.map((i) => `(${i})`).join(', ')}, (100)`);
    await sql(`insert into ware (ware_no, owning_shop, vendor_id, note) values ${ids.map((i) => `(${i * 10}, ${i}, 1, 'x'), (${i * 10 + 1}, ${i}, null, null)`).join(', ')}, (1000, 100, 2, 'keep')`);
    const em = app.em();
    for (const shop of await em.find(Shop, { id: { $in: ids } })) {
      em.remove(shop);
    }
    await em.flush();
    await settled();
    expect(await app.em().count(DeletionRequest, { state: 'failed' })).toBe(0);
    expect(await tables()).toEqual({ shop: [100], ware: ['1000@100'] });
  });
});

describe('destroy() of a single ware through the fallback form', () => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  beforeAll(async () => {
    app = await createDeletionTestApp({ database: 'deletion_review_validators_root', entities: [Vendor, Shop, Ware], deletion: { doctor: 'off' } });
    await sql(`insert into vendor (id, blocked) values (1, false), (2, true)`);
  });
  afterAll(() => app?.close());
  it('refuses a ware of a blocked vendor, deletes one of a good vendor', async () => {
    await sql(`insert into ware (ware_no, vendor_id) values (1, 2), (2, 1)`);
    await expect(app.deletions.destroy(Ware, 1)).rejects.toBeInstanceOf(DeletionBlockedError);
    await app.deletions.destroy(Ware, 2);
    expect((await sql('select ware_no from ware order by 1')).map((r: Row) => r.ware_no)).toEqual([1]);
  });
});
