import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Collection, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionBlockedError, DeletionRequest, ValidateBeforeDestroy, definePolicy, type PolicyName } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';
import { waitUntil } from '../../support/wait.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/**
 * A row of a single-table-inheritance subclass removed through an entity typed to its base (a
 * reference, `em.getReference(Pet, id)`, as MikroORM gives when only the id is known): the
 * subclass's own policy must still apply to its rows, as its validators do.
 */

@Entity({ discriminatorColumn: 'kind', discriminatorMap: { hound: 'Hound', kitten: 'Kitten' } })
class Pet {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ nullable: true }) kind?: string;
}

@Entity({ discriminatorValue: 'hound' })
class Hound extends Pet {
  @OneToMany(() => Treat, (t) => t.hound) treats = new Collection<Treat>(this);
}

@Entity({ discriminatorValue: 'kitten' })
class Kitten extends Pet {}

@Entity()
@ValidateBeforeDestroy<Treat>({ where: { sealed: true }, message: 'sealed treats stay' })
class Treat {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ default: false }) sealed: Opt<boolean> = false;
  @ManyToOne(() => Hound, { nullable: true, createForeignKeyConstraint: false, index: true }) hound?: Rel<Hound> | null;
}

const POLICIES: PolicyName[] = ['destroy', 'deleteAll', 'nullify', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];

/**
 * Shape: a single-table-inheritance subclass row removed through a reference typed to its base
 * (`em.getReference(Pet, id)`); the subclass's own policy and validators must still apply. From the
 * adversarial review of issue 11.
 */
describe.each(POLICIES)('Hound.treats under %s, the hound removed as a Pet reference', (policy) => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  const treats = async () => (await sql('select id, hound_id from treat order by id')).map((r: Row) => `${r.id}@${r.hound_id}`);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_review_sti_ref_${policy.toLowerCase()}`,
      entities: [Pet, Hound, Kitten, Treat],
      deletion: { doctor: 'off', policies: [definePolicy(Hound, { treats: policy })] },
    });
  });
  afterAll(() => app?.close());

  it('applies the policy to the hound’s treats, and only to them', async () => {
    await sql(`insert into pet (id, kind) values (1, 'hound'), (2, 'hound')`);
    await sql(`insert into treat (id, hound_id) values (1, 1), (2, 1), (3, 2)`);
    const em = app.em();
    em.remove(em.getReference(Pet, 1));
    await em.flush();
    await waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 10_000);
    const expected = policy === 'nullify' ? ['1@null', '2@null', '3@2'] : ['3@2'];
    expect({ pets: (await sql('select id from pet order by id')).map((r: Row) => r.id), treats: await treats() }).toEqual({ pets: [2], treats: expected });
  });

  if (policy !== 'nullify') {
    it('refuses when a treat of the hound is sealed (validator reached through the subclass relation)', async () => {
      await sql(`insert into pet (id, kind) values (5, 'hound')`);
      await sql(`insert into treat (id, hound_id, sealed) values (5, 5, true)`);
      const em = app.em();
      em.remove(em.getReference(Pet, 5));
      await expect(em.flush()).rejects.toBeInstanceOf(DeletionBlockedError);
    });
  }
});

/** The same, with a validator on the base: the base is now registered, so its subscriber runs. */
@Entity({ discriminatorColumn: 'kind', discriminatorMap: { wolf: 'Wolf', lynx: 'Lynx' } })
@ValidateBeforeDestroy<Wild>({ where: { protected: true }, message: 'protected' })
class Wild {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @Property({ nullable: true }) kind?: string;
  @Property({ default: false }) protected: Opt<boolean> = false;
}

@Entity({ discriminatorValue: 'wolf' })
class Wolf extends Wild {
  @OneToMany(() => Bone2, (b) => b.wolf) bones = new Collection<Bone2>(this);
}

@Entity({ discriminatorValue: 'lynx' })
class Lynx extends Wild {}

@Entity({ tableName: 'bone2' })
class Bone2 {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @ManyToOne(() => Wolf, { nullable: true, createForeignKeyConstraint: false, index: true }) wolf?: Rel<Wolf> | null;
}

describe.each(['destroy', 'deleteAll', 'destroyAsync'] as PolicyName[])('Wolf.bones under %s, the base Wild registered (validator), the wolf removed as a Wild reference', (policy) => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: `deletion_review_sti_ref2_${policy.toLowerCase()}`,
      entities: [Wild, Wolf, Lynx, Bone2],
      deletion: { doctor: 'off', policies: [definePolicy(Wolf, { bones: policy })] },
    });
  });
  afterAll(() => app?.close());

  it('applies the policy to the wolf’s bones', async () => {
    await sql(`insert into wild (id, kind) values (1, 'wolf'), (2, 'wolf')`);
    await sql(`insert into bone2 (id, wolf_id) values (1, 1), (2, 1), (3, 2)`);
    const em = app.em();
    em.remove(em.getReference(Wild, 1));
    await em.flush();
    await waitUntil(async () => (await app.em().count(DeletionRequest, { state: { $in: ['pending', 'running'] } })) === 0, 10_000);
    expect({
      wild: (await sql('select id from wild order by id')).map((r: Row) => r.id),
      bones: (await sql('select id, wolf_id from bone2 order by id')).map((r: Row) => `${r.id}@${r.wolf_id}`),
    }).toEqual({ wild: [2], bones: ['3@2'] });
  });
});
