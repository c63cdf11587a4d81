import type { DeletionNode } from './deletion-tree.js';

/** SQL with `?` placeholders and its parameters, as MikroORM's connection executes it. */
export interface SqlFragment {
  sql: string;
  params: unknown[];
}

/** A kept statement, with the place of the deleted rows' ids in its parameters. */
interface KeptStatement {
  sql: string;
  before: readonly unknown[];
  after: readonly unknown[];
}

/** Statements are kept for deletions of up to this many rows at once (requests delete one or a few). */
const MAX_KEPT_IDS = 8;

/** Statements kept per validator (or queued `restrict` relation), by purpose, shape and id count. */
export class KeptStatements {
  private readonly statements = new WeakMap<object, Map<string, KeptStatement>>();

  /** Whether statements for this many ids are kept (requests delete one or a few rows). */
  static keeps(ids: readonly unknown[]): boolean {
    return ids.length <= MAX_KEPT_IDS;
  }

  /**
   * A statement about the rows under `ids`, built by `build` through the query builder, or taken
   * from the one kept for as many ids under the same `owner` and `key`: building a statement costs
   * more than running it, on every request. A built statement is kept only when the ids appear in
   * its parameters exactly once, unchanged, as one run, so that putting other ids there yields what
   * the query builder would build for them.
   */
  get(owner: object, key: string, ids: readonly unknown[], build: () => SqlFragment): SqlFragment {
    const cacheKey = `${key}\0${ids.length}`;
    const kept = this.statements.get(owner)?.get(cacheKey);
    if (kept) {
      return { sql: kept.sql, params: [...kept.before, ...ids, ...kept.after] };
    }
    const built = build();
    if (ids.length <= MAX_KEPT_IDS) {
      const starts = [];
      for (let i = 0; i + ids.length <= built.params.length; i++) {
        if (ids.every((id, j) => built.params[i + j] === id)) {
          starts.push(i);
        }
      }
      if (starts.length === 1) {
        const start = starts[0]!;
        const byKey = this.statements.get(owner) ?? new Map<string, KeptStatement>();
        byKey.set(cacheKey, { sql: built.sql, before: built.params.slice(0, start), after: built.params.slice(start + ids.length) });
        this.statements.set(owner, byKey);
      }
    }
    return built;
  }
}

/**
 * What a statement about a node's rows depends on besides the validator: the entity and the chain
 * of many-to-one properties up to the deleted rows (one path can be reached with different chains:
 * from a parent in the request, by its own keys in the queue).
 */
export function shapeOf(node: DeletionNode): string {
  return `${node.meta.className}<${node.chain.join('<')}`;
}
