import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionBlockedError, DeletionRequest, OrphanSweeper, ValidateBeforeDestroy, definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { waitForState, waitUntil } from '../../support/wait.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/**
 * Three levels of single-table inheritance (Creature > Bird > Parrot, and Fish), a tombstone
 * declared on the base, a queued policy declared on the intermediate class Bird, reached through
 * a queued relation typed to the base: request rows for subclasses, their runner, completion,
 * tombstone purge and the sweeper.
 */

@Entity()
class Zoo {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @OneToMany(() => Creature, (c) => c.zoo) creatures = new Collection<Creature>(this);
}

@Entity({ discriminatorColumn: 'type', discriminatorMap: { bird: 'Bird', parrot: 'Parrot', fish: 'Fish' } })
class Creature {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ nullable: true }) type?: string;
  @Property({ type: 'datetime', nullable: true }) deletedAt?: Date | null;
  @ManyToOne(() => Zoo, { nullable: true, createForeignKeyConstraint: false, index: true }) zoo?: Rel<Zoo> | null;
}

@Entity({ discriminatorValue: 'bird' })
class Bird extends Creature {
  @OneToMany(() => Feather, (f) => f.bird) feathers = new Collection<Feather>(this);
}

@Entity({ discriminatorValue: 'parrot' })
class Parrot extends Bird {
  @Property({ default: false }) talking: Opt<boolean> = false;
  @ValidateBeforeDestroy() quiet() {
    return this.talking ? 'talking parrots stay' : undefined;
  }
}

@Entity({ discriminatorValue: 'fish' })
class Fish extends Creature {}

@Entity()
@ValidateBeforeDestroy<Feather>({ where: { golden: true }, message: 'golden feathers stay' })
class Feather {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ default: false }) golden: Opt<boolean> = false;
  // The FK references Bird, a subclass; the column lives in the creature table's key space.
  @ManyToOne(() => Bird, { nullable: true, createForeignKeyConstraint: false, index: true }) bird?: Rel<Bird> | null;
}

/**
 * Shape: three levels of single-table inheritance with a tombstone on the base and a queued policy on
 * the intermediate class, reached through a queued relation typed to the base. From the adversarial
 * review of issue 11.
 */
describe('STI, three levels, tombstone on the base, queued policy on the intermediate class', () => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  const settled = () => waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 15_000, 'settled');
  const table = async () => ({
    zoo: (await sql('select id from zoo order by id')).map((r: Row) => r.id),
    creature: (await sql('select id, type, deleted_at is not null as dead from creature order by id')).map((r: Row) => `${r.id}:${r.type}${r.dead ? ':tomb' : ''}`),
    feather: (await sql('select id from feather order by id')).map((r: Row) => r.id as number),
  });
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_review_sti_queued',
      entities: [Zoo, Creature, Bird, Parrot, Fish, Feather],
      deletion: {
        batchSize: 2,
        doctor: 'off',
        queue: { attempts: 1, backoffMs: 10 },
        policies: [definePolicy(Zoo, { creatures: 'destroyAsync' }), definePolicy(Creature, {}, { tombstone: 'deletedAt' }), definePolicy(Bird, { feathers: 'destroyAsync' })],
      },
    });
  });
  afterAll(() => app?.close());

  it('deleting a zoo removes its creatures of every kind and their feathers; a bystander zoo keeps everything', async () => {
    await sql(`insert into zoo (id) values (1), (2)`);
    await sql(`insert into creature (id, type, zoo_id) values (1, 'bird', 1), (2, 'parrot', 1), (3, 'fish', 1), (4, 'parrot', 1), (5, 'fish', 1), (6, 'parrot', 2), (7, 'bird', 2)`);
    // feather 9 belongs to a fish id (corrupt FK typed to Bird): never reached through Bird.feathers
    await sql(`insert into feather (id, bird_id) values (1, 1), (2, 1), (3, 2), (4, 4), (5, 4), (6, 6), (7, 7), (9, 3)`);
    const receipt = await app.deletions.destroy(Zoo, 1);
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 15_000);
    await settled();
    expect({ state: status.state, failed: await app.em().count(DeletionRequest, { state: 'failed' }), ...(await table()) }).toEqual({
      state: 'completed',
      failed: 0,
      zoo: [2],
      creature: ['6:parrot', '7:bird'],
      feather: [6, 7, 9],
    });
    const report = await app.module.get(OrphanSweeper).sweep();
    expect(report.relations.filter((r) => r.missingParents > 0)).toEqual([]);
  });

  it('a golden feather of a parrot reached through Zoo.creatures refuses in the request', async () => {
    await sql(`insert into zoo (id) values (10)`);
    await sql(`insert into creature (id, type, zoo_id) values (10, 'parrot', 10), (11, 'fish', 10)`);
    await sql(`insert into feather (id, bird_id, golden) values (10, 10, true)`);
    const before = await table();
    await expect(app.deletions.destroy(Zoo, 10)).rejects.toBeInstanceOf(DeletionBlockedError);
    expect(await table()).toEqual(before);
  });

  it('a talking parrot reached through Zoo.creatures refuses in the request', async () => {
    await sql(`insert into zoo (id) values (20)`);
    await sql(`insert into creature (id, type, zoo_id, talking) values (20, 'parrot', 20, true), (21, 'bird', 20, false)`);
    const before = await table();
    await expect(app.deletions.destroy(Zoo, 20)).rejects.toBeInstanceOf(DeletionBlockedError);
    expect(await table()).toEqual(before);
  });

  it('deleting a parrot directly (as Creature) tombstones it, removes its feathers, then purges it', async () => {
    await sql(`insert into creature (id, type) values (30, 'parrot'), (31, 'fish')`);
    await sql(`insert into feather (id, bird_id) values (30, 30), (31, 30), (32, 31)`);
    const receipt = await app.deletions.destroy(Creature, 30);
    expect(receipt.status).toBe('pending');
    const status = await waitForState(app.deletions, receipt.requestId!, ['completed', 'failed'], 15_000);
    expect(status.state).toBe('completed');
    const t = await table();
    expect({ creature: t.creature.filter((c: string) => /^3\d:/.test(c)), feather: t.feather.filter((f: number) => f >= 30) }).toEqual({ creature: ['31:fish'], feather: [32] });
  });
});
