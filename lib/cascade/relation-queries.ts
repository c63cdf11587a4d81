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
    const where = cursor === undefined || cursor === null ? this.childrenOf(parentIds) : { $and: [this.childrenOf(parentIds), { [pk]: { $gt: cursor } }] };
    return em.find(this.relation.childMeta.class as new () => T, where as FilterQuery<T>, {
      orderBy: { [pk]: 'asc' } as never,
      limit,
      filters: false,
    });
  }

  /**
   * `destroy`: loads the children one keyset page at a time and removes them (`remove`, the
   * EntityRemover) through a fork of the ORM that shares the transaction, so their lifecycle hooks
   * and subscribers fire and their own policies apply. Memory holds one page, whatever the child
   * count. Returns the rows destroyed.
   */
  async destroyPages(
    em: EntityManager,
    parentIds: readonly unknown[],
    pageSize: number,
    remove: (fork: EntityManager, entities: readonly object[]) => Promise<number>,
    skip?: (key: unknown) => boolean,
  ): Promise<number> {
    const pk = this.relation.childMeta.primaryKeys[0]!;
    let cursor: unknown;
    let destroyed = 0;
    for (;;) {
      const fork = em.fork({ clear: true, keepTransactionContext: true });
      const page = await this.page<Record<string, unknown>>(fork, parentIds, cursor, pageSize);
      destroyed += await remove(fork, skip ? page.filter((row) => !skip(row[pk])) : page);
      if (page.length < pageSize) {
        return destroyed;
      }
      cursor = page.at(-1)![pk];
    }
  }

  /** The keys of the next `limit` children, in key order: the rows `deleteBatch` would delete. */
  async nextKeys(em: EntityManager, parentIds: readonly unknown[], limit: number): Promise<unknown[]> {
    const pk = this.relation.childMeta.primaryKeys[0]!;
    const rows = await em.find(this.relation.childMeta.class as new () => Record<string, unknown>, this.childrenOf(parentIds) as never, {
      fields: [pk] as never,
      orderBy: { [pk]: 'asc' } as never,
      limit,
      filters: false,
    });
    return rows.map((row) => row[pk]);
  }

  /** `deleteAllAsync`: deletes one bounded batch of children with a single statement. */
  async deleteBatch(em: EntityManager, parentIds: readonly unknown[], limit: number): Promise<number> {
    const { childMeta, childProperty } = this.relation;
    const platform = em.getPlatform();
    const q = (name: string) => platform.quoteIdentifier(name);
    const pk = q(fieldOf(childMeta.properties[childMeta.primaryKeys[0] as never]));
    const fk = q(fieldOf(childMeta.properties[childProperty as never]));
    const table = qualifiedTable(em, childMeta.tableName, childMeta.schema);
    const sql =
      `delete from ${table} where ${pk} in (select ${pk} from ${table} where ${fk} in (${parentIds.map(() => '?').join(', ')}) ` +
      `order by ${pk} limit ?)`;
    const result = await em.getConnection().execute<{ affectedRows: number }>(sql, [...parentIds, limit], 'run', em.getTransactionContext());
    return result.affectedRows;
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

export function fieldOf(prop: unknown): string {
  return (prop as { fieldNames: string[] }).fieldNames[0]!;
}

export function qualifiedTable(em: EntityManager, name: string, schema: string | undefined): string {
  const q = (part: string) => em.getPlatform().quoteIdentifier(part);
  return schema && schema !== '*' ? `${q(schema)}.${q(name)}` : q(name);
}
