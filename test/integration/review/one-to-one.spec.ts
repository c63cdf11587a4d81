import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, OneToOne, PrimaryKey } from '@mikro-orm/decorators/legacy';
import { DeletionRequest, definePolicy, type PolicyName } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { waitUntil } from '../../support/wait.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/**
 * The inverse side of a nullable one-to-one, loaded when the parent is removed (MikroORM nulls a
 * loaded child's foreign key for a nullable relation): the policy must still decide its fate, as it
 * does for a loaded one-to-many collection.
 */

@Entity()
class Person {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @OneToOne(() => Passport, (p) => p.person) passport?: Rel<Passport> | null;
  @OneToMany(() => Visa, (v) => v.person) visas = new Collection<Visa>(this);
}

@Entity()
class Passport {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @OneToOne(() => Person, (p) => p.passport, { owner: true, nullable: true, createForeignKeyConstraint: false, index: true }) person?: Rel<Person> | null;
}

@Entity()
class Visa {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Person, { nullable: true, createForeignKeyConstraint: false, index: true }) person?: Rel<Person> | null;
}

const POLICIES: PolicyName[] = ['destroy', 'deleteAll', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];

/**
 * Shape: the inverse side of a nullable one-to-one, loaded alongside a one-to-many collection when
 * the parent is removed through the entity manager; the policy decides both children's fate. From
 * the adversarial review of issue 11.
 */
describe.each(POLICIES)('Person.passport (1:1 inverse) and Person.visas (1:m) under %s, children loaded', (policy) => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_review_one_to_one_${policy.toLowerCase()}`,
      entities: [Person, Passport, Visa],
      deletion: { doctor: 'off', policies: [definePolicy(Person, { passport: policy, visas: policy })] },
    });
  });
  afterAll(() => app?.close());

  it('deletes the passport and the visa of the removed person', async () => {
    await sql(`insert into person (id) values (1), (2)`);
    await sql(`insert into passport (id, person_id) values (1, 1), (2, 2)`);
    await sql(`insert into visa (id, person_id) values (1, 1), (2, 2)`);
    const em = app.em();
    const person = await em.findOneOrFail(Person, 1, { populate: ['passport', 'visas'] });
    expect(person.passport?.id).toBe(1);
    em.remove(person);
    await em.flush();
    await waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 10_000);
    expect({
      passports: (await sql('select id, person_id from passport order by id')).map((r: Row) => `${r.id}@${r.person_id}`),
      visas: (await sql('select id, person_id from visa order by id')).map((r: Row) => `${r.id}@${r.person_id}`),
    }).toEqual({ passports: ['2@2'], visas: ['2@2'] });
  });
});
