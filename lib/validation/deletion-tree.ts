import type { EntityMetadata, FilterQuery } from '@mikro-orm/core';
import { isAsyncPolicy, type PolicyName } from '../policies/policy-names.js';
import type { PolicyRegistry, RelationPolicy } from '../registry/policy-registry.js';

/** Policies under which the child rows are deleted (so their validators apply). */
const DELETING: readonly PolicyName[] = ['destroy', 'deleteAll', 'destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'];
/** Policies under which the child rows are deleted through the ORM, so their own policies apply too. */
const RECURSING: readonly PolicyName[] = ['destroy', 'destroyAsync', 'nullifyThenPurge'];

/**
 * Self-referencing policies (a category's sub-categories) make the policy graph cyclic; the tree is
 * unrolled this many levels deep.
 */
export const MAX_TREE_DEPTH = 12;

/** One relation path of a deletion: which rows it reaches and what happens to them. */
export interface DeletionNode {
  /** `Author.books.reviews` */
  readonly path: string;
  readonly meta: EntityMetadata;
  /** How these rows are reached; `undefined` for the rows deleted directly. */
  readonly relation?: RelationPolicy;
  /** Many-to-one property names from these rows up to the deleted rows, nearest first. */
  readonly chain: readonly string[];
  /** Whether the rows on this path are deleted (rather than detached, or counted by `restrict`). */
  readonly deleted: boolean;
  /** `now`: in the request's transaction; `later`: in the queue. */
  readonly timing: 'now' | 'later';
}

/**
 * Unrolls the registry into the relation paths a deletion of `meta` rows reaches. Pure: the same
 * tree serves validation in the request, re-validation in the queue, and the plan.
 */
export function deletionTree(registry: PolicyRegistry, meta: EntityMetadata, basePath = meta.className): DeletionNode[] {
  const root: DeletionNode = { path: basePath, meta, chain: [], deleted: true, timing: 'now' };
  const nodes = [root];
  const walk = (parent: DeletionNode, depth: number, later: boolean) => {
    if (depth >= MAX_TREE_DEPTH) {
      return;
    }
    for (const relation of registry.forMeta(parent.meta)?.relations ?? []) {
      if (relation.kind === 'm:n') {
        continue; // only `restrict`, checked by the policy itself
      }
      const timing = later || isAsyncPolicy(relation.policy) ? 'later' : 'now';
      const node: DeletionNode = {
        path: `${parent.path}.${relation.relation}`,
        meta: relation.childMeta,
        relation,
        chain: [relation.childProperty, ...parent.chain],
        deleted: DELETING.includes(relation.policy),
        timing,
      };
      nodes.push(node);
      if (RECURSING.includes(relation.policy)) {
        walk(node, depth + 1, timing === 'later');
      }
    }
  };
  walk(root, 0, false);
  return nodes;
}

/** The rows of `node` under the deleted rows `ids`: nested many-to-one conditions MikroORM joins. */
export function rowsUnder(node: DeletionNode, ids: readonly unknown[]): FilterQuery<object> {
  if (node.chain.length === 0) {
    return { [node.meta.primaryKeys[0]!]: { $in: [...ids] } } as FilterQuery<object>;
  }
  let condition: unknown = { $in: [...ids] };
  for (const property of [...node.chain].reverse()) {
    condition = { [property]: condition };
  }
  return condition as FilterQuery<object>;
}
