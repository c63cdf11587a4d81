import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionBlockedError, DeletionRequest, ValidateBeforeDestroy, definePolicy, type PolicyName } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { waitUntil } from '../../support/wait.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/**
 * Single-table inheritance with a plain (non-entity) class between the root and a subclass: a
 * common mixin pattern. The plain class carries a set-based validator; rows of the subclass must
 * be checked however they are reached.
 */

@Entity()
class Barn {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @OneToMany(() => Beast, (b) => b.barn) beasts = new Collection<Beast>(this);
}

@Entity({ discriminatorColumn: 'kind', discriminatorMap: { horse: 'Horse', goat: 'Goat' } })
class Beast {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ default: false }) locked: Opt<boolean> = false;
  @Property({ nullable: true }) kind?: string;
  @ManyToOne(() => Barn, { nullable: true, createForeignKeyConstraint: false, index: true }) barn?: Rel<Barn> | null;
}

/** Not an entity: a reusable guard for some kinds of beasts. */
@ValidateBeforeDestroy<Beast>({ where: { locked: true }, message: 'locked beasts stay' })
class Guarded extends Beast {}

@Entity({ discriminatorValue: 'horse' })
class Horse extends Guarded {}

@Entity({ discriminatorValue: 'goat' })
class Goat extends Beast {}

const POLICIES: PolicyName[] = ['destroy', 'deleteAll', 'destroyAsync', 'deleteAllAsync'];

/**
 * Shape: single-table inheritance with a plain (non-entity) class between the root and a subclass,
 * carrying a set-based validator that must hold however the subclass rows are reached. From the
 * adversarial review of issue 11.
 */
describe.each(POLICIES)('Barn.beasts under %s, a validator declared on a plain class between Beast and Horse', (policy) => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_review_sti_${policy.toLowerCase()}`,
      entities: [Barn, Beast, Horse, Goat],
      deletion: { doctor: 'off', policies: [definePolicy(Barn, { beasts: policy })] },
    });
  });
  afterAll(() => app?.close());

  it('the plain-class validator applies to Horse rows on their own (sanity)', async () => {
    await sql(`insert into beast (id, kind, locked) values (100, 'horse', true)`);
    await expect(app.deletions.destroy(Horse, 100)).rejects.toBeInstanceOf(DeletionBlockedError);
    await expect(app.deletions.destroy(Beast, 100)).rejects.toBeInstanceOf(DeletionBlockedError);
  });

  it('refuses to delete a barn holding a locked horse, and deletes nothing', async () => {
    await sql(`insert into barn (id) values (1)`);
    await sql(`insert into beast (id, kind, locked, barn_id) values (1, 'horse', true, 1), (2, 'goat', false, 1)`);
    const error = await app.deletions.destroy(Barn, 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    await waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 10_000).catch(() => undefined);
    expect({
      error: error?.constructor.name,
      barns: (await sql('select id from barn')).map((r: Row) => r.id),
      beasts: (await sql('select id from beast where id < 100 order by id')).map((r: Row) => r.id),
    }).toEqual({ error: 'DeletionBlockedError', barns: [1], beasts: [1, 2] });
  });

  it('deletes a barn whose only locked beast is a goat (goats have no validator)', async () => {
    await sql(`insert into barn (id) values (3)`);
    await sql(`insert into beast (id, kind, locked, barn_id) values (5, 'goat', true, 3), (6, 'horse', false, 3)`);
    const error = await app.deletions.destroy(Barn, 3).then(
      () => undefined,
      (e: unknown) => e,
    );
    await waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 10_000).catch(() => undefined);
    expect({
      error: (error as Error | undefined)?.message,
      barns: (await sql('select id from barn where id = 3')).map((r: Row) => r.id),
      beasts: (await sql('select id from beast where id in (5, 6) order by id')).map((r: Row) => r.id),
    }).toEqual({ error: undefined, barns: [], beasts: [] });
  });
});
