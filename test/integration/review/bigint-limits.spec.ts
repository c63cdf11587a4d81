import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BigIntType, Collection, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionBlockedError, DeletionRequest, OrphanSweeper, ValidateBeforeDestroy, definePolicy, type PolicyName } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { waitForState, waitUntil } from '../../support/wait.js';
import { whilePaused } from '../../support/worker-control.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/** bigint keys at the int8 limits (negative included), parents as JS bigint, children as string, through queued policies and the sweeper. */

const MAX = 9223372036854775807n;
const MIN = -9223372036854775808n;

@Entity()
class Ledger {
  @PrimaryKey({ type: new BigIntType('bigint'), autoincrement: false }) id!: bigint;
  @OneToMany(() => Entry, (e) => e.ledger) entries = new Collection<Entry>(this);
}

@Entity()
@ValidateBeforeDestroy<Entry>({ where: { locked: true }, message: 'locked' })
class Entry {
  @PrimaryKey({ type: new BigIntType('string'), autoincrement: false }) id!: string;
  @Property({ default: false }) locked: Opt<boolean> = false;
  @Property({ default: false }) vetoed: Opt<boolean> = false;
  @ManyToOne(() => Ledger, { nullable: true, createForeignKeyConstraint: false, index: true }) ledger?: Rel<Ledger> | null;
  @ValidateBeforeDestroy() check() {
    return this.vetoed ? 'vetoed' : undefined;
  }
}

/**
 * Shape: bigint primary keys at the int8 limits (MIN, -1, MAX), the parent mapped to a JS bigint and the
 * child to a string, under each queued policy, with set-based and instance validators and the orphan
 * sweeper. From the adversarial review of issue 11.
 */
describe.each(['destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'] as PolicyName[])('Ledger.entries under %s at the int8 limits', (policy) => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  const entries = async () => (await sql('select id::text as id, ledger_id::text as l from entry order by id')).map((r: Row) => `${r.id}@${r.l}`);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_review_bigint_${policy.toLowerCase()}`,
      entities: [Ledger, Entry],
      deletion: { doctor: 'off', batchSize: 1, queue: { attempts: 1, backoffMs: 10 }, policies: [definePolicy(Ledger, { entries: policy })] },
    });
  });
  afterAll(() => app?.close());

  it('deletes the MIN ledger’s entries (keys MIN, -1, MAX), keeps the MAX ledger’s; validators refuse in the request', async () => {
    await sql(`insert into ledger (id) values (${MIN}), (${MAX})`);
    await sql(`insert into entry (id, ledger_id) values (${MIN}, ${MIN}), (-1, ${MIN}), (${MAX}, ${MIN}), (${MAX - 1n}, ${MAX}), (0, ${MAX})`);
    await sql(`update entry set locked = true where id = 0`);
    await expect(app.deletions.destroy(Ledger, MAX)).rejects.toBeInstanceOf(DeletionBlockedError);
    await sql(`update entry set locked = false, vetoed = true where id = 0`);
    await expect(app.deletions.destroy(Ledger, MAX.toString() as never)).rejects.toBeInstanceOf(DeletionBlockedError);
    const receipt = await whilePaused(app, async () => {
      const r = await app.deletions.destroy(Ledger, MIN);
      const report = await app.module.get(OrphanSweeper).sweep();
      expect(report.relations.map((x) => x.missingParents)).toEqual(policy === 'nullifyThenPurge' ? [] : [0]);
      return r;
    });
    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await entries()).toEqual([`0@${MAX}`, `${MAX - 1n}@${MAX}`]);
    // behind the module's back: the MAX ledger vanishes; the sweeper files a request for its entries
    await sql(`update entry set vetoed = false`);
    await sql(`delete from ledger where id = ${MAX}`);
    const report = await app.module.get(OrphanSweeper).sweep();
    expect(report.relations.map((x) => x.missingParents)).toEqual(policy === 'nullifyThenPurge' ? [] : [1]);
    await waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 10_000);
    expect(await app.em().count(DeletionRequest, { state: 'failed' })).toBe(0);
    expect(await entries()).toEqual(policy === 'nullifyThenPurge' ? [`0@${MAX}`, `${MAX - 1n}@${MAX}`] : []);
  });
});
