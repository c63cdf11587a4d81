import { describe, expect, it } from '@jest/globals';
import { HttpException } from '@nestjs/common';
import { DeletionConfigurationError, DeletionError, DeletionRestrictedError, DeletionTargetNotFoundError } from '../../lib/index.js';

describe('deletion errors', () => {
  it('DeletionRestrictedError is a 409 HttpException whose body carries the restriction', () => {
    const error = DeletionRestrictedError.create({ entity: 'Author', id: 7, relation: 'books', childEntity: 'Book', count: 3 });

    expect(error).toBeInstanceOf(DeletionError);
    expect(error).toBeInstanceOf(HttpException);
    expect(error.name).toBe('DeletionRestrictedError');
    expect(error.getStatus()).toBe(409);
    expect(error).toMatchObject({ code: 'DELETION_RESTRICTED', entity: 'Author', id: 7, relation: 'books', childEntity: 'Book', count: 3 });
    expect(error.message).toBe('Cannot delete Author 7: its relation "books" is restricted and still has 3 Book rows. Delete or reassign them first.');
    expect(error.getResponse()).toEqual({
      statusCode: 409,
      error: 'Conflict',
      code: 'DELETION_RESTRICTED',
      message: error.message,
      entity: 'Author',
      id: 7,
      relation: 'books',
      childEntity: 'Book',
      count: 3,
    });
  });

  it('DeletionRestrictedError says "row" for a single child', () => {
    expect(DeletionRestrictedError.create({ entity: 'Author', id: 'a-1', relation: 'profile', childEntity: 'Profile', count: 1 }).message).toContain(
      'Author "a-1": its relation "profile" is restricted and still has 1 Profile row.',
    );
  });

  it('DeletionTargetNotFoundError is a 404 naming the entity and id', () => {
    const error = DeletionTargetNotFoundError.create('Author', 42);

    expect(error.getStatus()).toBe(404);
    expect(error).toMatchObject({ code: 'DELETION_TARGET_NOT_FOUND', entity: 'Author', id: 42, message: 'Author 42 does not exist.' });
    expect(error.getResponse()).toMatchObject({ statusCode: 404, code: 'DELETION_TARGET_NOT_FOUND', entity: 'Author', id: 42 });
  });

  it('DeletionConfigurationError names where, what and the fix', () => {
    const error = DeletionConfigurationError.create('DELETION_CONFIG_X', { entity: 'Author', relation: 'books' }, 'it is wrong.', 'do it right.');

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_X', entity: 'Author', relation: 'books', message: 'Author.books: it is wrong. Fix: do it right.' });
    expect(DeletionConfigurationError.create('C', { option: 'batchSize' }, 'p.', 'f.').message).toBe('batchSize: p. Fix: f.');
    expect(DeletionConfigurationError.create('C', {}, 'p.', 'f.').message).toBe('DeletionModule: p. Fix: f.');
  });

  it('DeletionConfigurationError.many returns a single error as it is, and lists several', () => {
    const one = DeletionConfigurationError.create('A', { entity: 'Author' }, 'a.', 'fa.');
    const two = DeletionConfigurationError.create('B', { entity: 'Book', relation: 'reviews' }, 'b.', 'fb.');

    expect(DeletionConfigurationError.many([one])).toBe(one);
    const both = DeletionConfigurationError.many([one, two]);
    expect(both.code).toBe('DELETION_CONFIG_INVALID');
    expect(both.message).toBe('2 deletion policy errors:\n  - [A] Author: a. Fix: fa.\n  - [B] Book.reviews: b. Fix: fb.');
  });
});
