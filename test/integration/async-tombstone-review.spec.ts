import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, type Rel } from '@mikro-orm/core';
import { BeforeDelete, Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionRequest, definePolicy } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/**
 * Found by the review of issue 11. Tombstone mode at two levels: the natural setup when every foreign key keeps its NO ACTION
 * constraint (DESIGN 2.2): Safe (tombstone) -destroyAsync-> Box (tombstone) -destroyAsync-> Coin.
 */

export const hooks: string[] = [];

@Entity()
class Safe {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ type: 'datetime', nullable: true }) deletedAt?: Date | null;
  @OneToMany(() => Box, (b) => b.safe) boxes = new Collection<Box>(this);
}

@Entity()
class Box {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ type: 'datetime', nullable: true }) deletedAt?: Date | null;
  @ManyToOne(() => Safe) safe!: Rel<Safe>;
  @OneToMany(() => Coin, (c) => c.box) coins = new Collection<Coin>(this);
  @BeforeDelete() before() {
    hooks.push(`box ${this.id}`);
  }
}

@Entity()
class Coin {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Box) box!: Rel<Box>;
}

@Entity()
class Till {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ type: 'datetime', nullable: true }) deletedAt?: Date | null;
  @OneToMany(() => Receipt, (r) => r.till) receipts = new Collection<Receipt>(this);
  @OneToMany(() => Stub, (s) => s.till) stubs = new Collection<Stub>(this);
}

@Entity()
class Receipt {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Till) till!: Rel<Till>;
}

@Entity()
class Stub {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Till) till!: Rel<Till>;
}

describe('tombstone mode: a child inserted under a synchronous policy while the cascade is queued', () => {
  let app: DeletionTestApp;
  const sql = (q: string) => app.em().getConnection().execute(q);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_review_tombstone_late',
      entities: [Till, Receipt, Stub],
      deletion: {
        queue: { attempts: 2, backoffMs: 10 },
        policies: [definePolicy(Till, { receipts: 'destroyAsync', stubs: 'deleteAll' }, { tombstone: 'deletedAt' })],
      },
    });
  });
  afterAll(() => app?.close());

  it('the late stub goes as deleteAll says (FK NO ACTION kept), and the request completes', async () => {
    await sql(`insert into till (id) values (1)`);
    await sql(`insert into receipt (id, till_id) values (1, 1)`);
    await sql(`insert into stub (id, till_id) values (1, 1)`);
    const receipt = await whilePaused(app, async () => {
      const r = await app.deletions.destroy(Till, 1);
      // The till is hidden but its row is still there: the application can still reference it.
      await sql(`insert into stub (id, till_id) values (2, 1)`);
      return r;
    });
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 15_000);
    expect({
      state: status.state,
      error: status.errors[0]?.error?.message?.slice(0, 120),
      tills: (await sql('select id from till')).length,
      stubs: (await sql('select id from stub')).length,
      receipts: (await sql('select id from receipt')).length,
    }).toEqual({ state: 'completed', error: undefined, tills: 0, stubs: 0, receipts: 0 });
  });
});

describe('tombstone mode on a parent and on its queued children', () => {
  let app: DeletionTestApp;
  const sql = (q: string) => app.em().getConnection().execute(q);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_review_tombstone',
      entities: [Safe, Box, Coin],
      deletion: {
        batchSize: 10,
        policies: [definePolicy(Safe, { boxes: 'destroyAsync' }, { tombstone: 'deletedAt' }), definePolicy(Box, { coins: 'destroyAsync' }, { tombstone: 'deletedAt' })],
      },
    });
  });
  afterAll(() => app?.close());

  it('completes, deletes everything, and files one request for the boxes', async () => {
    await sql(`insert into safe (id) values (1)`);
    await sql(`insert into box (id, safe_id) values (1, 1), (2, 1)`);
    await sql(`insert into coin (id, box_id) values (1, 1), (2, 1), (3, 2)`);
    const receipt = await app.deletions.destroy(Safe, 1);
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 15_000);
    const boxRequests = await app.em().count(DeletionRequest, { entity: 'Box' });
    expect({
      status: status.state,
      safes: (await sql('select id from safe')).length,
      boxes: (await sql('select id from box')).length,
      coins: (await sql('select id from coin')).length,
      boxRequests,
    }).toEqual({ status: 'completed', safes: 0, boxes: 0, coins: 0, boxRequests: 1 });
  }, 40_000);
});
