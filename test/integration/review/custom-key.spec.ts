import { afterAll, describe, expect, it } from '@jest/globals';
import { Collection, Type, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey } from '@mikro-orm/decorators/legacy';
import { DeletionConfigurationError, DeletionRestrictedError, definePolicy, type PolicyName } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/** A primary key with a custom type (stored upper-case): refused at boot where keys are walked, working where only foreign keys are. */

class UpperType extends Type<string, string> {
  override convertToDatabaseValue(value: string) {
    return value.toUpperCase();
  }
  override convertToJSValue(value: string) {
    return value.toLowerCase();
  }
  override getColumnType() {
    return 'varchar(20)';
  }
}

@Entity()
class Depot {
  @PrimaryKey({ type: UpperType }) code!: string;
  @OneToMany(() => Parcel, (p) => p.depot) parcels = new Collection<Parcel>(this);
}

@Entity()
class Parcel {
  @PrimaryKey({ type: UpperType }) code!: string;
  @ManyToOne(() => Depot, { nullable: true, createForeignKeyConstraint: false, index: true }) depot?: Rel<Depot> | null;
}

@Entity()
class Hub {
  @PrimaryKey({ autoincrement: false }) id!: number;
  @OneToMany(() => Crate, (c) => c.hub) crates = new Collection<Crate>(this);
}

@Entity()
class Crate {
  @PrimaryKey({ type: UpperType }) code!: string;
  @ManyToOne(() => Hub, { nullable: true, createForeignKeyConstraint: false, index: true }) hub?: Rel<Hub> | null;
}

/**
 * Shape: primary keys with a custom MikroORM type (stored upper-case): refused at boot where a policy
 * walks those keys, working where only the foreign key is touched. From the adversarial review of
 * issue 11.
 */
describe('custom-typed primary keys', () => {
  let app: DeletionTestApp | undefined;
  afterAll(() => app?.close());

  it('a policy on a parent with a custom-typed key is refused at boot with DELETION_CONFIG_KEY_TYPE', async () => {
    const error = await createDeletionTestApp({
      database: 'deletion_review_custom_key',
      entities: [Depot, Parcel, Hub, Crate],
      deletion: { doctor: 'off', policies: [definePolicy(Depot, { parcels: 'deleteAll' })] },
    }).then(
      (a) => {
        app = a;
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeletionConfigurationError);
    expect(error).toMatchObject({ code: 'DELETION_CONFIG_KEY_TYPE' });
  });

  it.each(['destroyAsync', 'destroy'] as PolicyName[])('%s over children with a custom-typed key is refused at boot', async (policy) => {
    const error = await createDeletionTestApp({
      database: 'deletion_review_custom_key',
      entities: [Depot, Parcel, Hub, Crate],
      deletion: { doctor: 'off', policies: [definePolicy(Hub, { crates: policy })] },
    }).then(
      async (a) => {
        await a.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeletionConfigurationError);
  });

  it.each(['deleteAll', 'nullify', 'restrict'] as PolicyName[])('%s over children with a custom-typed key works', async (policy) => {
    const a = await createDeletionTestApp({
      database: 'deletion_review_custom_key',
      entities: [Depot, Parcel, Hub, Crate],
      deletion: { doctor: 'off', policies: [definePolicy(Hub, { crates: policy })] },
    });
    try {
      const sql = (q: string): Promise<Row[]> => a.em().getConnection().execute(q);
      await sql(`insert into hub (id) values (1), (2)`);
      await sql(`insert into crate (code, hub_id) values ('A', 1), ('B', 2)`);
      const result = await a.deletions.destroy(Hub, 1).then(
        () => undefined,
        (e: unknown) => e,
      );
      const crates = (await sql('select code, hub_id from crate order by code')).map((r: Row) => `${r.code}@${r.hub_id}`);
      if (policy === 'restrict') {
        expect(result).toBeInstanceOf(DeletionRestrictedError);
        expect(crates).toEqual(['A@1', 'B@2']);
      } else {
        expect(result).toBeUndefined();
        expect(crates).toEqual(policy === 'nullify' ? ['A@null', 'B@2'] : ['B@2']);
      }
    } finally {
      await a.close();
    }
  });
});
