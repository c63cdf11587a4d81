import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, RequestContext, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { TOMBSTONE_FILTER } from '../../lib/registry/registry.factory.js';
import { definePolicy } from '../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../support/deletion-test-app.js';
import { waitForState } from '../support/wait.js';
import { whilePaused } from '../support/worker-control.js';

/**
 * The tombstone filter, registered with `em.addFilter()`: single-table inheritance with the
 * tombstone declared on the base (`Creature`), so its subclasses `Bird` and `Fish` are tombstoned
 * too; `Egg` rows are the queued work. `Logbook` has a `deletedAt` column but no tombstone policy.
 */
@Entity({ discriminatorColumn: 'type', discriminatorMap: { bird: 'Bird', fish: 'Fish' } })
class Creature {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ nullable: true }) type?: string;
  @Property({ type: 'datetime', nullable: true }) deletedAt?: Date | null;
  @OneToMany(() => Egg, (egg) => egg.creature) eggs = new Collection<Egg>(this);
}

@Entity({ discriminatorValue: 'bird' })
class Bird extends Creature {}

@Entity({ discriminatorValue: 'fish' })
class Fish extends Creature {}

@Entity()
class Egg {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Creature, { nullable: true, createForeignKeyConstraint: false, index: true }) creature?: Rel<Creature> | null;
}

@Entity()
class Logbook {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ type: 'datetime', nullable: true }) deletedAt?: Date | null;
}

type Row = Record<string, unknown>;

describe('the tombstone filter', () => {
  let app: DeletionTestApp;
  const sql = (query: string, params: unknown[] = []): Promise<Row[]> => app.em().getConnection().execute<Row[]>(query, params);
  const ids = (rows: readonly { id: number }[]) => rows.map((row) => row.id).sort((a, b) => a - b);
  const stored = async (from: number, to: number) => ({
    creature: (await sql(`select id, type, deleted_at is not null as marked from creature where id between ? and ? order by id`, [from, to])).map(
      (r) => `${String(r.id)}:${String(r.type)}${r.marked ? ':marked' : ''}`,
    ),
    egg: (await sql(`select id from egg where id between ? and ? order by id`, [from * 10, to * 10 + 9])).map((r) => r.id as number),
  });

  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_tombstone_filter',
      entities: [Creature, Bird, Fish, Egg, Logbook],
      deletion: { doctor: 'off', policies: [definePolicy(Creature, { eggs: 'destroyAsync' }, { tombstone: 'deletedAt' })] },
    });
  });
  afterAll(() => app?.close());

  it('hides a marked bird from fresh forks, as Creature and as Bird, shows it with the filter off, and the queue purges it', async () => {
    await sql(`insert into creature (id, type) values (1, 'bird'), (2, 'fish'), (3, 'bird')`);
    await sql(`insert into egg (id, creature_id) values (10, 1), (11, 1), (12, 1), (30, 3)`);

    const receipt = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(Creature, 1);
      expect(receipt.status).toBe('pending');
      // Marked, not purged: the row and its eggs are still there.
      expect(await stored(1, 3)).toEqual({ creature: ['1:bird:marked', '2:fish', '3:bird'], egg: [10, 11, 12, 30] });

      const em = app.em();
      expect(await em.findOne(Creature, 1)).toBeNull();
      expect(await em.findOne(Bird, 1)).toBeNull();
      expect(ids(await em.find(Creature, {}))).toEqual([2, 3]);
      expect(ids(await em.find(Bird, {}))).toEqual([3]);
      expect(ids(await em.find(Fish, {}))).toEqual([2]);
      expect(await em.count(Bird, {})).toBe(1);
      // A fork of a fork, and a request context's fork (what @mikro-orm/nestjs makes per request).
      expect(await app.em().fork().findOne(Bird, { id: 1 })).toBeNull();
      expect(await RequestContext.create(app.orm.em, () => app.orm.em.findOne(Creature, 1))).toBeNull();

      // Disabled by name, or all filters off: the marked row is there, as the base and as the subclass.
      const byName = { filters: { [TOMBSTONE_FILTER]: false } };
      expect(TOMBSTONE_FILTER).toBe('deletion:tombstone');
      const marked = await app.em().findOne(Bird, 1, byName);
      expect(marked).toBeInstanceOf(Bird);
      expect(marked!.deletedAt).toBeInstanceOf(Date);
      expect(ids(await app.em().find(Creature, {}, byName))).toEqual([1, 2, 3]);
      expect(ids(await app.em().find(Bird, {}, { filters: false }))).toEqual([1, 3]);
      return receipt;
    });

    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await stored(1, 3)).toEqual({ creature: ['2:fish', '3:bird'], egg: [30] });
    expect(await app.em().findOne(Creature, 1, { filters: false })).toBeNull();
    expect(ids(await app.em().find(Creature, {}))).toEqual([2, 3]);
  });

  it('hides a marked fish deleted through its subclass, and leaves the other subclass alone', async () => {
    await sql(`insert into creature (id, type) values (4, 'fish'), (5, 'bird')`);
    await sql(`insert into egg (id, creature_id) values (40, 4), (41, 4), (50, 5)`);

    const receipt = await whilePaused(app, async () => {
      const receipt = await app.deletions.destroy(Fish, 4);
      expect(receipt.status).toBe('pending');
      expect(await stored(4, 5)).toEqual({ creature: ['4:fish:marked', '5:bird'], egg: [40, 41, 50] });
      expect(await app.em().findOne(Fish, 4)).toBeNull();
      expect(await app.em().findOne(Creature, { id: 4 })).toBeNull();
      expect(ids(await app.em().find(Creature, { id: { $in: [4, 5] } }))).toEqual([5]);
      expect(ids(await app.em().find(Fish, { id: 4 }, { filters: { [TOMBSTONE_FILTER]: false } }))).toEqual([4]);
      // A second deletion of the marked row finds nothing.
      await expect(app.deletions.destroy(Fish, 4)).rejects.toMatchObject({ code: 'DELETION_TARGET_NOT_FOUND' });
      return receipt;
    });

    expect((await waitForState(app.deletions, receipt.requestId!)).state).toBe('completed');
    expect(await stored(4, 5)).toEqual({ creature: ['5:bird'], egg: [50] });
  });

  it('does not filter an entity outside tombstone mode, even with a deletedAt column', async () => {
    await sql(`insert into logbook (id, deleted_at) values (1, now()), (2, null)`);
    expect(ids(await app.em().find(Logbook, {}))).toEqual([1, 2]);
    expect(await app.em().findOne(Logbook, 1)).not.toBeNull();
  });
});
