import type { PolicyName } from '../policies/policy-names.js';

/** A relation's policy with its options, as `definePolicy()` and `@Dependent()` accept it. */
export interface RelationPolicyOptions {
  policy: PolicyName;
  /** Rows per batch when this relation's children are walked; defaults to the module's `batchSize`. */
  batchSize?: number;
}

/** A policy given by name alone, or with options. */
export type RelationPolicyInput = PolicyName | RelationPolicyOptions;

/** Options that apply to the parent entity as a whole. */
export interface EntityPolicyOptions<T = unknown> {
  /**
   * Tombstone mode: the request only sets this property (a nullable date) on the parent, which a
   * filter hides at once; the cascade removes the children and hard-deletes the parent last, so
   * foreign-key constraints can stay in place.
   */
  tombstone?: Extract<keyof T, string>;
}
