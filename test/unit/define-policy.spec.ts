import { describe, expect, it } from '@jest/globals';
import { definePolicy } from '../../lib/index.js';

class Book {
  id!: number;
}

class Author {
  id!: number;
  name!: string;
  createdAt?: Date;
  books: Book[] = [];
  profile?: Book;
  greet(): string {
    return this.name;
  }
}

describe('definePolicy', () => {
  it('records the entity, the relations and the options', () => {
    const definition = definePolicy(Author, { books: 'destroy', profile: { policy: 'deleteAll', batchSize: 5 } }, { tombstone: 'createdAt' });

    expect(definition.entity).toBe(Author);
    expect(definition.relations).toEqual({ books: 'destroy', profile: { policy: 'deleteAll', batchSize: 5 } });
    expect(definition.options).toEqual({ tombstone: 'createdAt' });
  });

  it('returns a frozen definition whose relations and options are frozen too', () => {
    const definition = definePolicy(Author, { books: 'destroy' });

    expect(Object.isFrozen(definition)).toBe(true);
    expect(Object.isFrozen(definition.relations)).toBe(true);
    expect(Object.isFrozen(definition.options)).toBe(true);
    expect(() => {
      (definition.relations as Record<string, string>).books = 'nullify';
    }).toThrow(TypeError);
    expect(definition.relations.books).toBe('destroy');
  });

  it('copies its arguments: changing them afterwards changes nothing', () => {
    const relations: { books?: 'destroy' | 'nullify'; profile?: 'destroy' } = { books: 'destroy' };
    const options: { tombstone?: 'createdAt' } = {};
    const definition = definePolicy(Author, relations, options);

    relations.books = 'nullify';
    relations.profile = 'destroy';
    options.tombstone = 'createdAt';

    expect(definition.relations).toEqual({ books: 'destroy' });
    expect(definition.options).toEqual({});
  });

  it('defaults the options to an empty frozen object', () => {
    const definition = definePolicy(Author, {});

    expect(definition.options).toEqual({});
    expect(Object.isFrozen(definition.options)).toBe(true);
  });

  it('accepts relation keys only (checked by `npm run typecheck`)', () => {
    // @ts-expect-error an unknown property
    definePolicy(Author, { chapters: 'destroy' });
    // @ts-expect-error a scalar column
    definePolicy(Author, { name: 'destroy' });
    // @ts-expect-error a Date column
    definePolicy(Author, { createdAt: 'destroy' });
    // @ts-expect-error a method
    definePolicy(Author, { greet: 'destroy' });
    // @ts-expect-error not a policy name
    definePolicy(Author, { books: 'cascade' });

    expect(definePolicy(Author, { books: 'restrict', profile: 'destroy' }).relations).toEqual({ books: 'restrict', profile: 'destroy' });
  });
});
