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
    const error = DeletionConfigurationError.create('DELETION_CONFIG_NOT_NULLABLE', { entity: 'Author', relation: 'books' }, 'it is wrong.', 'do it right.');

    expect(error).toMatchObject({ code: 'DELETION_CONFIG_NOT_NULLABLE', entity: 'Author', relation: 'books', message: 'Author.books: it is wrong. Fix: do it right.' });
    expect(DeletionConfigurationError.create('DELETION_CONFIG_INVALID_OPTION', { option: 'batchSize' }, 'p.', 'f.').message).toBe('batchSize: p. Fix: f.');
    expect(DeletionConfigurationError.create('DELETION_CONFIG_INVALID_OPTION', {}, 'p.', 'f.').message).toBe('DeletionModule: p. Fix: f.');
  });

  it('DeletionConfigurationError.many returns a single error as it is, and lists several', () => {
    const one = DeletionConfigurationError.create('DELETION_CONFIG_TOMBSTONE', { entity: 'Author' }, 'a.', 'fa.');
    const two = DeletionConfigurationError.create('DELETION_CONFIG_CONFLICT', { entity: 'Book', relation: 'reviews' }, 'b.', 'fb.');

    expect(DeletionConfigurationError.many([one])).toBe(one);
    const both = DeletionConfigurationError.many([one, two]);
    expect(both.code).toBe('DELETION_CONFIG_INVALID');
    expect(both.message).toBe('2 deletion policy errors:\n  - [DELETION_CONFIG_TOMBSTONE] Author: a. Fix: fa.\n  - [DELETION_CONFIG_CONFLICT] Book.reviews: b. Fix: fb.');
    expect(both.errors).toEqual([one, two]);
  });
});

describe('error codes', () => {
  it('every error class carries a code of the exported constants, and no code means two conditions', async () => {
    const errors = await import('../../lib/index.js');
    const classes = [
      errors.DeletionBlockedError,
      errors.DeletionRestrictedError,
      errors.DeletionValidationBudgetError,
      errors.DeletionValidationDepthError,
      errors.DeletionTargetNotFoundError,
      errors.DeletionInvalidIdError,
      errors.DeletionRequestNotFoundError,
      errors.DeletionStalledError,
    ];
    const codes = Object.values(errors.DELETION_ERROR_CODES) as string[];
    expect(classes.map((cls) => cls.CODE).every((code) => codes.includes(code))).toBe(true);
    const all = [...codes, ...Object.values(errors.DELETION_CONFIG_CODES)];
    expect(new Set(all).size).toBe(all.length);
  });

  it('a DeletionError body carries a bigint key as its decimal string, so it serializes', () => {
    const error = DeletionTargetNotFoundError.create('Ledger', 9007199254740993n);
    expect(JSON.parse(JSON.stringify(error.getResponse()))).toMatchObject({ id: '9007199254740993', message: 'Ledger 9007199254740993 does not exist.' });
  });
});
