import { describe, expect, it } from '@jest/globals';
import { EntitySchema } from '@mikro-orm/core';
import { DeletionConfigurationError, ValidateBeforeDestroy, type DoctorMode } from '../../lib/index.js';
import { createDeletionTestApp } from '../support/deletion-test-app.js';

class Memo {
  id!: number;
  pinned!: boolean;
  shelf?: Shelf | null;
}
class Shelf {
  id!: number;
  label!: string;
}
// A typo ("pined") and a property of a relation's target that does not exist ("shelf.colour").
ValidateBeforeDestroy<Memo>({ where: { pined: true } as never, message: 'pinned memos are kept' })(Memo);
ValidateBeforeDestroy<Memo>({ where: { $or: [{ pinned: true }, { shelf: { colour: 'red' } }] } as never, message: 'red shelves are kept' })(Memo);

const ENTITIES = [
  new EntitySchema<Memo>({
    class: Memo,
    properties: {
      id: { type: 'integer', primary: true },
      pinned: { type: 'boolean' },
      shelf: { kind: 'm:1', entity: () => Shelf, nullable: true },
    },
  }),
  new EntitySchema<Shelf>({ class: Shelf, properties: { id: { type: 'integer', primary: true }, label: { type: 'string' } } }),
];

/** A validator that names a missing property would never refuse: the boot stops, whatever the doctor's mode. */
describe('a set-based validator whose where names a missing property', () => {
  it.each<DoctorMode>(['error', 'warn', 'off'])('fails the boot with DELETION_CONFIG_VALIDATOR, doctor "%s"', async (doctor) => {
    const error = await createDeletionTestApp({ database: `deletion_validator_config_${doctor}`, entities: ENTITIES, deletion: { doctor } }).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(DeletionConfigurationError);
    const message = (error as Error).message;
    expect(message).toContain('[DELETION_CONFIG_VALIDATOR] Memo: the set-based validator "pinned memos are kept" names "pined"');
    expect(message).toContain('[DELETION_CONFIG_VALIDATOR] Memo: the set-based validator "red shelves are kept" names "shelf.colour"');
  });
});
