import type { EntityMetadata } from '@mikro-orm/core';
import type { ValidatorDeclarations } from '../decorators/validate-before-destroy.decorator.js';
import type { PolicyName } from '../policies/policy-names.js';

/** One relation's policy, resolved against MikroORM's metadata at bootstrap. */
export interface RelationPolicy {
  /** The parent entity's class name and the relation property that carries the policy. */
  readonly entity: string;
  readonly relation: string;
  readonly policy: PolicyName;
  readonly batchSize: number;
  readonly kind: '1:m' | '1:1' | 'm:n';
  readonly parentMeta: EntityMetadata;
  readonly childMeta: EntityMetadata;
  /** The child's many-to-one (or owning one-to-one) property that points back at the parent. */
  readonly childProperty: string;
}

/** All declared policies of one entity. */
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
 * policy are absent, and the module leaves them to MikroORM's own behaviour.
 */
export class PolicyRegistry {
  private readonly byClass = new Map<unknown, EntityPolicy>();
  private readonly byName = new Map<string, EntityPolicy>();
  private readonly recursive = new Set<EntityPolicy>();

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
      if (relation.policy !== 'destroy' && relation.policy !== 'destroyAsync' && relation.policy !== 'nullifyThenPurge') {
        continue;
      }
      const next = this.forMeta(relation.childMeta);
      if (next === target) {
        return true;
      }
      if (next && !seen.has(next)) {
        seen.add(next);
        if (this.reaches(next, target, seen)) {
          return true;
        }
      }
    }
    return false;
  }

  /** The policy of the entity with this class name (as stored in deletion requests). */
  forEntityName(className: string): EntityPolicy | undefined {
    return this.byName.get(className);
  }

  /** The policy of the entity described by `meta` (or of its inheritance root), if any. */
  forMeta(meta: EntityMetadata): EntityPolicy | undefined {
    return this.byClass.get(meta.class) ?? this.byClass.get(meta.root.class);
  }

  /** Whether `meta`'s entity has any declared policy. */
  has(meta: EntityMetadata): boolean {
    return this.forMeta(meta) !== undefined;
  }

  /** Whether rows of `meta`'s entity have `@ValidateBeforeDestroy()` validators. */
  hasValidators(meta: EntityMetadata): boolean {
    const validators = this.forMeta(meta)?.validators;
    return (validators?.methods.length ?? 0) + (validators?.sets.length ?? 0) > 0;
  }

  /** The entity classes that carry policies: what the deletion subscriber listens to. */
  entityClasses(): unknown[] {
    return [...this.byClass.keys()];
  }

  all(): readonly EntityPolicy[] {
    return [...this.byClass.values()];
  }
}
