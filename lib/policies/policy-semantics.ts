import { POLICY_NAMES, type PolicyName } from './policy-names.js';

/**
 * What a policy does to the children of a deleted row. Every part of the library (registry,
 * deletion tree, planner, hoister, executor, queue, sweeper, doctor) reads this table instead of
 * keeping its own list of policies.
 */
export interface PolicySemantics {
  /** The children are deleted, so their `@ValidateBeforeDestroy()` validators apply. */
  readonly deletes: boolean;
  /** The children are removed one by one through the ORM: their hooks run and their own policies apply. */
  readonly recurses: boolean;
  /** The children's foreign key is set to NULL in the request (needs a nullable foreign key). */
  readonly detaches: boolean;
  /** The deletion is refused while children exist. */
  readonly refuses: boolean;
  /** One set-based statement: the children's hooks and own policies do not run. */
  readonly setBased: boolean;
  /** The work on the children runs later, in the queue, from a durable deletion request. */
  readonly queued: boolean;
  /**
   * The children are deleted after the parent row is gone: a foreign key that acts on the parent's
   * DELETE defeats or blocks the policy, and children left behind are the sweeper's to find.
   */
  readonly deletedAfterParent: boolean;
  /** Children with a composite primary key: set-based statements by foreign key work on them. */
  readonly compositeChildren: boolean;
  /** Allowed on a many-to-many relation (whose targets are shared with other owners). */
  readonly manyToMany: boolean;
  /** The synchronous policy that ends in the same rows (DESIGN 2). */
  readonly synchronous: PolicyName;
}

export const POLICY_SEMANTICS: Readonly<Record<PolicyName, PolicySemantics>> = Object.freeze({
  destroy: semantics({ deletes: true, recurses: true, synchronous: 'destroy' }),
  deleteAll: semantics({ deletes: true, setBased: true, compositeChildren: true, synchronous: 'deleteAll' }),
  nullify: semantics({ detaches: true, setBased: true, compositeChildren: true, synchronous: 'nullify' }),
  restrict: semantics({ refuses: true, compositeChildren: true, manyToMany: true, synchronous: 'restrict' }),
  destroyAsync: semantics({ deletes: true, recurses: true, queued: true, deletedAfterParent: true, synchronous: 'destroy' }),
  deleteAllAsync: semantics({ deletes: true, setBased: true, queued: true, deletedAfterParent: true, synchronous: 'deleteAll' }),
  // Detaches in the request (before the parent's DELETE), then destroys exactly those rows in the queue.
  nullifyThenPurge: semantics({ deletes: true, recurses: true, detaches: true, queued: true, synchronous: 'destroy' }),
});

function semantics(given: Partial<PolicySemantics> & Pick<PolicySemantics, 'synchronous'>): PolicySemantics {
  return Object.freeze({
    deletes: false,
    recurses: false,
    detaches: false,
    refuses: false,
    setBased: false,
    queued: false,
    deletedAfterParent: false,
    compositeChildren: false,
    manyToMany: false,
    ...given,
  });
}

/** The meaning of `policy`. */
export function semanticsOf(policy: PolicyName): PolicySemantics {
  return POLICY_SEMANTICS[policy];
}

/** The policies for which `trait` holds, in the README's order (for messages and checks). */
export function policiesWhere(trait: (semantics: PolicySemantics) => boolean): PolicyName[] {
  return POLICY_NAMES.filter((policy) => trait(POLICY_SEMANTICS[policy]));
}
