import type { RelationPolicyInput, RelationPolicyOptions } from '../interfaces/policy-options.interface.js';

/** What `@Dependent()` recorded on one class: relation name to its policy. */
const declarations = new Map<object, Map<string, RelationPolicyInput>>();

/**
 * Declares the deletion policy of a relation on the parent side (a `@OneToMany` collection or the
 * inverse side of a `@OneToOne`). Checked at bootstrap together with `definePolicy()` declarations.
 *
 * @example
 * @OneToMany(() => Book, (b) => b.author)
 * @Dependent('destroyAsync')
 * books = new Collection<Book>(this);
 */
export function Dependent(
  policy: RelationPolicyInput,
  options: Omit<RelationPolicyOptions, 'policy'> = {},
): PropertyDecorator {
  return (target, propertyKey) => {
    if (typeof propertyKey !== 'string') {
      throw new TypeError(`@Dependent() must decorate a named property, not the symbol ${String(propertyKey)}.`);
    }
    const cls = target.constructor;
    const perClass = declarations.get(cls) ?? new Map<string, RelationPolicyInput>();
    const input: RelationPolicyInput =
      typeof policy === 'string' ? (Object.keys(options).length ? { policy, ...options } : policy) : { ...policy, ...options };
    perClass.set(propertyKey, input);
    declarations.set(cls, perClass);
  };
}

/** The `@Dependent()` declarations of `cls` itself (not inherited), by relation name. */
export function dependentDeclarationsOf(cls: unknown): ReadonlyMap<string, RelationPolicyInput> {
  return declarations.get(cls as object) ?? new Map();
}
