import type { EntityMetadata } from '@mikro-orm/core';
import { ownValidatorsOf, validatorsOf, type SetValidatorOptions } from '../decorators/validate-before-destroy.decorator.js';
import { semanticsOf } from '../policies/policy-semantics.js';
import type { PolicyRegistry, RelationPolicy } from '../registry/policy-registry.js';
import type { Hop } from '../sql/rows-under.js';

/**
 * A cycle in the policy graph through other entities (A destroys B, B destroys A) is unrolled this
 * many levels deep; a self-referencing relation is not unrolled but checked at every depth at once.
 */
export const MAX_TREE_DEPTH = 12;

/** Set-based validators that apply to some of a node's rows: those of `meta` (a subclass, or the node's entity). */
export interface NodeValidators {
  readonly meta: EntityMetadata;
  readonly sets: readonly SetValidatorOptions[];
}

/** One relation path of a deletion: which rows it reaches and what happens to them. */
export interface DeletionNode {
  /** `Author.books.reviews` */
  readonly path: string;
  readonly meta: EntityMetadata;
  /** How these rows are reached; `undefined` for the rows deleted directly. */
  readonly relation?: RelationPolicy;
  /**
   * From these rows up to the deleted rows, nearest first (none for the deleted rows). For a
   * many-to-many relation, from the rows that own the pivot rows (`owner`).
   */
  readonly hops: readonly Hop[];
  /** For a many-to-many relation: the entity whose rows own the pivot rows. */
  readonly owner?: EntityMetadata;
  /** Whether the rows on this path are deleted (rather than detached, or counted by `restrict`). */
  readonly deleted: boolean;
  /** `now`: in the request's transaction; `later`: in the queue. */
  readonly timing: 'now' | 'later';
  /** When the rows above this path are handled: a `nullifyThenPurge` detaches its rows then. */
  readonly parentTiming: 'now' | 'later';
  /** Set-based validators of these rows: the entity's own and inherited ones, then each subclass's own. */
  readonly sets: readonly NodeValidators[];
  /** Whether some of these rows (of the entity or a subclass) have instance validators. */
  readonly instanceValidators: boolean;
  /**
   * The tree stops here (`MAX_TREE_DEPTH`) although these rows' policies go on: a deletion that
   * reaches rows on this path cannot be validated whole, and is refused.
   */
  readonly truncated?: boolean;
}

/** A relation that destroys rows of its own parent's table (a tree of categories), walked as one closure. */
function isSelfReference(relation: RelationPolicy, parent: EntityMetadata): boolean {
  return semanticsOf(relation.policy).recurses && relation.kind !== 'm:n' && relation.childMeta.root.class === parent.root.class;
}

/**
 * Unrolls the registry into the relation paths a deletion of `meta` rows reaches. Rows of a
 * single-table-inheritance entity may be rows of its subclasses: their own policies and validators
 * apply to those rows, on paths restricted to them. Pure: the same tree serves validation in the
 * request, re-validation in the queue, and the plan.
 */
export function deletionTree(registry: PolicyRegistry, meta: EntityMetadata, basePath = meta.className): DeletionNode[] {
  const nodes: DeletionNode[] = [];
  const add = (path: string, nodeMeta: EntityMetadata, hops: readonly Hop[], relation: RelationPolicy | undefined, timing: 'now' | 'later', owner?: EntityMetadata, parentTiming: 'now' | 'later' = 'now') => {
    const node: DeletionNode = {
      path,
      meta: nodeMeta,
      relation,
      hops,
      parentTiming,
      ...(owner ? { owner } : {}),
      deleted: relation === undefined || semanticsOf(relation.policy).deletes,
      timing,
      ...validatorsOfRows(registry, nodeMeta),
    };
    nodes.push(node);
    return node;
  };
  const walk = (parent: DeletionNode, depth: number, closed: ReadonlySet<RelationPolicy>) => {
    // The relations of every row of the parent path, then those only rows of a subclass have.
    const sources: [EntityMetadata, readonly RelationPolicy[]][] = [
      [parent.meta, registry.forMeta(parent.meta)?.relations ?? []],
      ...registry.subclassesWithOwnRules(parent.meta).map((sub): [EntityMetadata, RelationPolicy[]] => [sub, registry.ownRelations(sub)]),
    ];
    const open = sources.map(([upper, relations]) => [upper, relations.filter((r) => !closed.has(r))] as const);
    if (depth >= MAX_TREE_DEPTH) {
      // A cycle through other entities: past this depth the tree is not unrolled, and a deletion
      // that reaches rows here is refused rather than validated in part (see `truncated`).
      if (open.some(([, relations]) => relations.some((r) => semanticsOf(r.policy).recurses))) {
        nodes[nodes.indexOf(parent)] = { ...parent, truncated: true };
      }
      return;
    }
    // A self-referencing relation (a category's sub-categories) is one node for all its levels.
    const selfRelations = open.flatMap(([, relations]) => relations).filter((r) => isSelfReference(r, parent.meta));
    for (const [upper, relations] of open) {
      for (const relation of relations.filter((r) => !selfRelations.includes(r))) {
        const semantics = semanticsOf(relation.policy);
        const timing = parent.timing === 'later' || semantics.queued ? 'later' : 'now';
        const manyToMany = relation.kind === 'm:n';
        const hops: Hop[] = manyToMany ? [...parent.hops] : [{ property: relation.childProperty, lower: relation.childMeta, upper }, ...parent.hops];
        const node = add(`${parent.path}.${relation.relation}`, relation.childMeta, hops, relation, timing, manyToMany ? upper : undefined, parent.timing);
        if (semantics.recurses && !manyToMany) {
          walk(node, depth + 1, closed);
        }
      }
    }
    if (selfRelations.length > 0) {
      const [first] = selfRelations;
      const childMeta = selfRelations.every((r) => r.childMeta.class === first!.childMeta.class) ? first!.childMeta : parent.meta.root;
      const timing = parent.timing === 'later' || selfRelations.some((r) => semanticsOf(r.policy).queued) ? 'later' : 'now';
      const hop: Hop = { kind: 'closure', properties: selfRelations.map((r) => r.childProperty), lower: childMeta, upper: parent.meta };
      const node = add(`${parent.path}.${selfRelations.map((r) => r.relation).join('|')}`, childMeta, [hop, ...parent.hops], first, timing, undefined, parent.timing);
      walk(node, depth + 1, new Set([...closed, ...selfRelations]));
    }
  };
  walk(add(basePath, meta, [], undefined, 'now'), 0, new Set());
  return nodes;
}

function validatorsOfRows(registry: PolicyRegistry, meta: EntityMetadata): Pick<DeletionNode, 'sets' | 'instanceValidators'> {
  const own = validatorsOf(meta.class);
  const subclasses = registry.subclassesWithOwnRules(meta).map((sub) => ({ meta: sub, ...ownValidatorsOf(sub.class) }));
  const sets = [{ meta, sets: own.sets }, ...subclasses].filter((v) => v.sets.length > 0);
  return {
    sets: sets.map(({ meta: m, sets: s }) => ({ meta: m, sets: s })),
    instanceValidators: own.methods.length > 0 || subclasses.some((sub) => sub.methods.length > 0),
  };
}
