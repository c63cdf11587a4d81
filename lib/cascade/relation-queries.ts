import type { EntityManager, EntityProperty, FilterQuery } from '@mikro-orm/core';
import type { RelationPolicy } from '../registry/policy-registry.js';

/**
 * The set-based statements a policy issues for one relation and a set of parent ids. Filters are
 * off: a deletion must see every child that references the parent, whatever the application hides.
 */
export class RelationQueries {
  constructor(private readonly relation: RelationPolicy) {}

  /** Children of these parents, as a MikroORM condition on the child entity. */
  childrenOf(parentIds: readonly unknown[]): FilterQuery<object> {
    return { [this.relation.childProperty]: { $in: [...parentIds] } } as FilterQuery<object>;
  }

  async count(em: EntityManager, parentIds: readonly unknown[]): Promise<number> {
    if (this.relation.kind === 'm:n') {
      return this.countPivotRows(em, parentIds);
    }
    return em.count(this.relation.childMeta.class, this.childrenOf(parentIds), { filters: false });
  }

  async deleteAll(em: EntityManager, parentIds: readonly unknown[]): Promise<number> {
    return em.nativeDelete(this.relation.childMeta.class, this.childrenOf(parentIds), { filters: false });
  }

  async nullify(em: EntityManager, parentIds: readonly unknown[]): Promise<number> {
    return em.nativeUpdate(this.relation.childMeta.class, this.childrenOf(parentIds), { [this.relation.childProperty]: null }, { filters: false });
  }

  /** One keyset page of children, ordered by primary key, after `cursor` (exclusive). */
  async page<T extends object>(em: EntityManager, parentIds: readonly unknown[], cursor: unknown, limit: number): Promise<T[]> {
    const pk = this.relation.childMeta.primaryKeys[0]!;
    const where = cursor === undefined ? this.childrenOf(parentIds) : { $and: [this.childrenOf(parentIds), { [pk]: { $gt: cursor } }] };
    return em.find(this.relation.childMeta.class as new () => T, where as FilterQuery<T>, {
      orderBy: { [pk]: 'asc' } as never,
      limit,
      filters: false,
    });
  }

  /** Rows linking these parents in a many-to-many pivot table (the targets themselves are shared). */
  private async countPivotRows(em: EntityManager, parentIds: readonly unknown[]): Promise<number> {
    const { parentMeta } = this.relation;
    const prop = parentMeta.properties[this.relation.relation as never] as EntityProperty;
    const owner = prop.owner ? prop : (this.relation.childMeta.properties[prop.mappedBy as never] as EntityProperty);
    const columns = prop.owner ? owner.joinColumns : owner.inverseJoinColumns;
    const platform = em.getPlatform();
    const table = owner.pivotTable.split('.').map((part) => platform.quoteIdentifier(part)).join('.');
    const rows = await em
      .getConnection()
      .execute<{ count: string }[]>(
        `select count(*) as count from ${table} where ${platform.quoteIdentifier(columns[0]!)} in (${parentIds.map(() => '?').join(', ')})`,
        [...parentIds],
        'all',
        em.getTransactionContext(),
      );
    return Number(rows[0]?.count ?? 0);
  }
}
