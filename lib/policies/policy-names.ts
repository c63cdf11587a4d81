/**
 * Every deletion policy a relation can declare, in the order the README's policy table lists them.
 * The type and the runtime check come from this one array.
 */
export const POLICY_NAMES = [
  'destroy',
  'deleteAll',
  'nullify',
  'restrict',
  'destroyAsync',
  'deleteAllAsync',
  'nullifyThenPurge',
] as const;

export type PolicyName = (typeof POLICY_NAMES)[number];

/** Policies whose cascade runs later, in the queue, from a durable deletion request. */
export const ASYNC_POLICIES = ['destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'] as const satisfies readonly PolicyName[];

/** Policies that need the child's foreign key to accept NULL. */
export const NULLIFYING_POLICIES = ['nullify', 'nullifyThenPurge'] as const satisfies readonly PolicyName[];

export function isPolicyName(value: unknown): value is PolicyName {
  return typeof value === 'string' && (POLICY_NAMES as readonly string[]).includes(value);
}

export function isAsyncPolicy(policy: PolicyName): policy is (typeof ASYNC_POLICIES)[number] {
  return (ASYNC_POLICIES as readonly string[]).includes(policy);
}
