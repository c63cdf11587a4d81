/**
 * Every deletion policy a relation can declare, in the order the README's policy table lists them.
 * The type and the runtime check come from this one array; what each one means is in
 * `policy-semantics.ts`.
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

/** Policies whose cascade runs later, in the queue (the `queued` policies of `POLICY_SEMANTICS`). */
export const ASYNC_POLICIES = ['destroyAsync', 'deleteAllAsync', 'nullifyThenPurge'] as const satisfies readonly PolicyName[];

export function isPolicyName(value: unknown): value is PolicyName {
  return typeof value === 'string' && (POLICY_NAMES as readonly string[]).includes(value);
}
