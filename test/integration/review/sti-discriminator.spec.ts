import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionBlockedError, DeletionRequest, OrphanSweeper, ValidateBeforeDestroy, definePolicy, type PolicyName } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { waitUntil } from '../../support/wait.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/** Discriminators that are integers, or strings with a quote, in a column whose name differs from its property. */

@Entity()
class Fleet {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @OneToMany(() => Truck, (t) => t.fleet) trucks = new Collection<Truck>(this);
  @OneToMany(() => Van, (v) => v.fleet) vans = new Collection<Van>(this);
}

@Entity({ discriminatorColumn: 'type', discriminatorMap: { 1: 'Truck', 2: 'Van' } })
class Vehicle {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ type: 'integer', fieldName: 'vehicle type', nullable: true }) type?: number;
  @Property({ default: false }) parked: Opt<boolean> = false;
  @ManyToOne(() => Fleet, { nullable: true, createForeignKeyConstraint: false, index: true }) fleet?: Rel<Fleet> | null;
}

@Entity({ discriminatorValue: '1' })
@ValidateBeforeDestroy<Truck>({ where: { parked: true }, message: 'parked trucks stay' })
class Truck extends Vehicle {}

@Entity({ discriminatorValue: '2' })
class Van extends Vehicle {}

@Entity()
class Yard {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @OneToMany(() => Dray, (d) => d.yard) drays = new Collection<Dray>(this);
}

@Entity({ discriminatorColumn: 'sort', discriminatorMap: { "o'dray": 'Dray', 'cart"x': 'Cart' } })
class Wagon {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ nullable: true }) sort?: string;
  @ManyToOne(() => Yard, { nullable: true, createForeignKeyConstraint: false, index: true }) yard?: Rel<Yard> | null;
}

@Entity({ discriminatorValue: "o'dray" })
class Dray extends Wagon {}

@Entity({ discriminatorValue: 'cart"x' })
class Cart extends Wagon {}

const POLICIES: PolicyName[] = ['destroy', 'deleteAll', 'nullify', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];

/**
 * Shape: single-table inheritance with integer discriminators in a column whose name differs from its
 * property, and string discriminators containing quotes, reached through relations typed to a
 * subclass. From the adversarial review of issue 11.
 */
describe.each(POLICIES)('relations typed to subclasses under %s', (policy) => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  const settled = () => waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 10_000);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_review_sti_disc_${policy.toLowerCase()}`,
      entities: [Fleet, Vehicle, Truck, Van, Yard, Wagon, Dray, Cart],
      deletion: { doctor: 'off', policies: [definePolicy(Fleet, { trucks: policy }), definePolicy(Yard, { drays: policy })] },
    });
  });
  afterAll(() => app?.close());

  it('integer discriminator: Fleet.trucks touches trucks only; a parked van does not refuse, a parked truck does', async () => {
    await sql(`insert into fleet (id) values (1), (2)`);
    await sql(`insert into vehicle (id, "vehicle type", fleet_id, parked) values (1, 1, 1, false), (2, 2, 1, true), (3, 1, 2, true)`);
    if (policy !== 'nullify') {
      await expect(app.deletions.destroy(Fleet, 2)).rejects.toBeInstanceOf(DeletionBlockedError);
    }
    await app.deletions.destroy(Fleet, 1);
    await settled();
    expect((await sql('select id, fleet_id from vehicle order by id')).map((r: Row) => `${r.id}@${r.fleet_id}`)).toEqual(
      policy === 'nullify' ? ['1@null', '2@1', '3@2'] : ['2@1', '3@2'],
    );
    expect((await app.module.get(OrphanSweeper).sweep()).relations.every((r) => r.missingParents === 0)).toBe(true);
  });

  it('quoted discriminators: Yard.drays touches drays only', async () => {
    await sql(`insert into yard (id) values (1)`);
    await sql(`insert into wagon (id, sort, yard_id) values (1, 'o''dray', 1), (2, 'cart"x', 1)`);
    await app.deletions.destroy(Yard, 1);
    await settled();
    expect(await app.em().count(DeletionRequest, { state: 'failed' })).toBe(0);
    expect((await sql('select id, yard_id from wagon order by id')).map((r: Row) => `${r.id}@${r.yard_id}`)).toEqual(policy === 'nullify' ? ['1@null', '2@1'] : ['2@1']);
  });
});
