import type { EntityClass } from '@mikro-orm/core';
import type { EntityPolicyOptions, RelationPolicyInput } from '../interfaces/policy-options.interface.js';

type Scalar = string | number | boolean | bigint | symbol | Date | Uint8Array;

/**
 * The property names of `T` that can hold a relation: collections and entity references.
 * Scalars and methods are excluded, so a typo or a column name fails to compile.
 */
export type RelationKeys<T> = {
  [K in keyof T]-?: NonNullable<T[K]> extends Scalar
    ? never
    : NonNullable<T[K]> extends (...args: never[]) => unknown
      ? never
      : K;
}[keyof T] &
  string;

/** A policy declaration for one entity, built by {@link definePolicy} and passed to `DeletionModule`. */
export interface PolicyDefinition<T extends object = object> {
  readonly entity: EntityClass<T>;
  readonly relations: Readonly<Record<string, RelationPolicyInput>>;
  readonly options: Readonly<{ tombstone?: string }>;
}

/**
 * Declares the deletion policy of some of an entity's relations. Relation names are checked by the
 * type system; everything else (relation kind, nullability, conflicts) is checked at bootstrap.
 *
 * @example
 * DeletionModule.forRoot({
 *   policies: [
 *     definePolicy(Author, { books: 'destroyAsync', profile: 'destroy' }),
 *     definePolicy(Book, { reviews: { policy: 'deleteAllAsync', batchSize: 5000 } }),
 *   ],
 * });
 */
export function definePolicy<T extends object>(
  entity: EntityClass<T>,
  relations: Partial<Record<RelationKeys<T>, RelationPolicyInput>>,
  options: EntityPolicyOptions<T> = {},
): PolicyDefinition<T> {
  return Object.freeze({
    entity,
    relations: Object.freeze({ ...relations }) as Record<string, RelationPolicyInput>,
    options: Object.freeze({ ...options }),
  });
}
