import type { FilterQuery } from '@mikro-orm/core';

/** A set-based validator: rows matching `where` may not be deleted, for the reason `message`. */
export interface SetValidatorOptions<T = object> {
  where: FilterQuery<T>;
  message: string;
}

/** What `@ValidateBeforeDestroy()` recorded on one class. */
export interface ValidatorDeclarations {
  /** Names of instance validator methods. */
  readonly methods: string[];
  readonly sets: SetValidatorOptions[];
}

const declarations = new Map<object, ValidatorDeclarations>();

/**
 * Declares a validation that must pass before rows of this entity are deleted, however the
 * deletion reaches them (directly, or through any policy at any depth). It runs in the request,
 * before anything is written; a failure rejects the whole deletion with `DeletionBlockedError`.
 *
 * - On a method (instance validator): it may throw, or return a reason string (sync or async),
 *   when this row may not be deleted. Rows are loaded up to `validation.maxInstances`.
 * - On the class, with `{ where, message }` (set-based validator): rows matching `where` may not be
 *   deleted. One query per relation path, whatever the number of rows: prefer it for large sets.
 *
 * @example
 * @Entity()
 * @ValidateBeforeDestroy({ where: { legalHold: true }, message: 'book is under legal hold' })
 * class Book {
 *   @ValidateBeforeDestroy()
 *   notPublished() { if (this.published) return 'published books cannot be deleted'; }
 * }
 */
export function ValidateBeforeDestroy(): MethodDecorator;
export function ValidateBeforeDestroy<T = object>(options: SetValidatorOptions<T>): ClassDecorator;
export function ValidateBeforeDestroy<T = object>(options?: SetValidatorOptions<T>): MethodDecorator & ClassDecorator {
  return ((target: object, propertyKey?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (propertyKey === undefined) {
      const cls = target as { name: string };
      if (!options || options.where === undefined || typeof options.message !== 'string' || options.message === '') {
        throw new TypeError(`@ValidateBeforeDestroy() on the class ${cls.name} needs { where, message }: the rows that may not be deleted and why.`);
      }
      entry(target).sets.push({ where: options.where as FilterQuery<object>, message: options.message });
      return;
    }
    const cls = (target as { constructor: { name: string } }).constructor;
    if (options !== undefined) {
      throw new TypeError(`@ValidateBeforeDestroy() on the method ${cls.name}.${String(propertyKey)} takes no options: the method returns the reason.`);
    }
    if (typeof propertyKey !== 'string' || typeof descriptor?.value !== 'function') {
      throw new TypeError(`@ValidateBeforeDestroy() must decorate a named method, not ${cls.name}.${String(propertyKey)}.`);
    }
    entry(cls).methods.push(propertyKey);
  }) as MethodDecorator & ClassDecorator;
}

function entry(cls: object): ValidatorDeclarations {
  let found = declarations.get(cls);
  if (!found) {
    found = { methods: [], sets: [] };
    declarations.set(cls, found);
  }
  return found;
}

/** The validators declared on `cls` and its base classes. */
export function validatorsOf(cls: unknown): ValidatorDeclarations {
  const methods: string[] = [];
  const sets: SetValidatorOptions[] = [];
  for (let c = cls; typeof c === 'function' && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    const own = declarations.get(c);
    if (own) {
      methods.push(...own.methods.filter((m) => !methods.includes(m)));
      sets.push(...own.sets);
    }
  }
  return { methods, sets };
}

/** The validators declared on `cls` itself, not inherited (a subclass's own rules). */
export function ownValidatorsOf(cls: unknown): ValidatorDeclarations {
  const own = declarations.get(cls as object);
  return { methods: [...(own?.methods ?? [])], sets: [...(own?.sets ?? [])] };
}
