import type { EntityMetadata } from '@mikro-orm/core';
import { ownValidatorsOf, type ValidatorDeclarations } from '../decorators/validate-before-destroy.decorator.js';
import { semanticsOf } from '../policies/policy-semantics.js';
import type { PolicyName } from '../policies/policy-names.js';
import { isSameOrSubclass } from '../sql/entity-table.js';

/** One relation's policy, resolved against MikroORM's metadata at bootstrap. */
export interface RelationPolicy {
  /** The class name of the entity that declares the policy, and the relation property that carries it. */
  readonly entity: string;
  readonly relation: string;
  readonly policy: PolicyName;
  readonly batchSize: number;
  readonly kind: '1:m' | '1:1' | 'm:n';
  readonly parentMeta: EntityMetadata;
  /** The relation's target: a subclass when the relation is typed to one (only its rows are reached). */
  readonly childMeta: EntityMetadata;
  /** The child's many-to-one (or owning one-to-one) property that points back at the parent. */
  readonly childProperty: string;
  /**
   * The children's tombstone property, when they are in tombstone mode: a marked child's own
   * deletion is under way, and the relation's walk never takes it again.
   */
  readonly childTombstone?: string;
}

/** All declared policies of one entity, its own and those it inherits from its base classes. */
export interface EntityPolicy {
  readonly meta: EntityMetadata;
  readonly relations: readonly RelationPolicy[];
  /** Tombstone property: the request marks the parent instead of deleting it (DESIGN 2.2). */
  readonly tombstone?: string;
  /** `@ValidateBeforeDestroy()` validators of this entity (and its base classes). */
  readonly validators: ValidatorDeclarations;
}

/**
 * The resolved, frozen set of deletion policies, keyed by entity. Entities without a declared
 * policy or validator are absent, and the module leaves them to MikroORM's own behaviour.
 */
export class PolicyRegistry {
  private readonly byClass = new Map<unknown, EntityPolicy>();
  private readonly byName = new Map<string, EntityPolicy>();
  private readonly recursive = new Set<EntityPolicy>();
  private readonly subclasses = new Map<EntityMetadata, EntityMetadata[]>();
  private readonly children = new Map<EntityMetadata, boolean>();

  constructor(policies: readonly EntityPolicy[]) {
    for (const policy of policies) {
      this.byClass.set(policy.meta.class, Object.freeze(policy));
      this.byName.set(policy.meta.className, policy);
    }
    for (const policy of policies) {
      if (this.reaches(policy, policy, new Set())) {
        this.recursive.add(policy);
      }
    }
    Object.freeze(this);
  }

  /**
   * Whether destroying a row of `meta` can reach rows of the same entity again through the
   * policies (a tree of categories): such rows may form cycles in the data, which a cascade must
   * not walk forever.
   */
  isRecursive(meta: EntityMetadata): boolean {
    const policy = this.forMeta(meta);
    return policy !== undefined && this.recursive.has(policy);
  }

  private reaches(from: EntityPolicy, target: EntityPolicy, seen: Set<EntityPolicy>): boolean {
    for (const relation of from.relations) {
      if (!semanticsOf(relation.policy).recurses) {
        continue;
      }
      for (const next of this.familyBelow(relation.childMeta)) {
        if (next === target) {
          return true;
        }
        if (!seen.has(next)) {
          seen.add(next);
          if (this.reaches(next, target, seen)) {
            return true;
          }
        }
      }
    }
    return false;
  }

  /** The policies of `meta`'s entity and of every entity that extends it (rows a relation to `meta` can reach). */
  private familyBelow(meta: EntityMetadata): EntityPolicy[] {
    return [...this.byClass.values()].filter((policy) => isSameOrSubclass(policy.meta.class, meta.class));
  }

  /** The policy of the entity with this class name (as stored in deletion requests). */
  forEntityName(className: string): EntityPolicy | undefined {
    return this.byName.get(className);
  }

  /** The policy of the entity described by `meta`, with what it inherits, if any. */
  forMeta(meta: EntityMetadata): EntityPolicy | undefined {
    return this.byClass.get(meta.class);
  }

  /** Whether removing rows of `meta` can involve rules: its own, or a subclass's (a base-class reference to a subclass row). */
  watches(meta: EntityMetadata): boolean {
    return this.has(meta) || this.subclassesWithOwnRules(meta).length > 0;
  }

  /**
   * Whether a cascade may remove rows of `meta` through the ORM, or walk them from the queue: it is
   * in the single-table family of the child of a relation whose policy recurses or is queued (the
   * policies whose children's keys are checked at boot). A direct removal of such a row may meet a
   * cascade that holds it, so a flush locks those rows first (`DeletionSubscriber`). The whole
   * family counts (a base-class reference may name a child's row), as MikroORM's metadata says,
   * whether or not the classes extend each other in JavaScript.
   */
  isPolicyChild(meta: EntityMetadata): boolean {
    let found = this.children.get(meta);
    if (found === undefined) {
      found = [...this.byClass.values()].some((policy) =>
        policy.relations.some((r) => (semanticsOf(r.policy).recurses || semanticsOf(r.policy).queued) && r.childMeta.root.class === meta.root.class),
      );
      this.children.set(meta, found);
    }
    return found;
  }

  /** Whether `meta`'s entity has any declared policy or validator. */
  has(meta: EntityMetadata): boolean {
    return this.forMeta(meta) !== undefined;
  }

  /**
   * The single-table-inheritance subclasses of `meta` (at any depth) that declare policies or
   * validators of their own: rows of `meta` may be rows of theirs, to which those also apply.
   */
  subclassesWithOwnRules(meta: EntityMetadata): EntityMetadata[] {
    let found = this.subclasses.get(meta);
    if (!found) {
      const inherited = new Set(this.forMeta(meta)?.relations ?? []);
      found = [...this.byClass.values()]
        .filter((policy) => policy.meta.class !== meta.class && isSameOrSubclass(policy.meta.class, meta.class))
        .filter((policy) => policy.relations.some((r) => !inherited.has(r)) || hasAny(ownValidatorsOf(policy.meta.class)))
        .map((policy) => policy.meta);
      this.subclasses.set(meta, found);
    }
    return found;
  }

  /**
   * The relations `meta` declares itself, not those it inherits: what a row of this subclass adds
   * to the rows of its base classes.
   */
  ownRelations(meta: EntityMetadata): RelationPolicy[] {
    const inherited = new Set(
      [...this.byClass.values()].filter((p) => p.meta.class !== meta.class && isSameOrSubclass(meta.class, p.meta.class)).flatMap((p) => p.relations),
    );
    return (this.forMeta(meta)?.relations ?? []).filter((r) => !inherited.has(r));
  }

  /** Every declared relation once (a relation a base class declares is shared by its subclasses). */
  relations(): RelationPolicy[] {
    return [...new Set([...this.byClass.values()].flatMap((policy) => policy.relations))];
  }

  /** Whether rows reached as `meta` can have `@ValidateBeforeDestroy()` validators (theirs or a subclass's). */
  hasValidators(meta: EntityMetadata): boolean {
    return hasAny(this.forMeta(meta)?.validators) || this.subclassesWithOwnRules(meta).some((sub) => hasAny(ownValidatorsOf(sub.class)));
  }

  /** The entity classes that carry policies: what the deletion subscriber listens to. */
  entityClasses(): unknown[] {
    return [...this.byClass.keys()];
  }

  all(): readonly EntityPolicy[] {
    return [...this.byClass.values()];
  }
}

function hasAny(validators: ValidatorDeclarations | undefined): boolean {
  return (validators?.methods.length ?? 0) + (validators?.sets.length ?? 0) > 0;
}
