import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BigIntType, Collection, PrimaryKeyProp, type Opt, type Rel } from '@mikro-orm/core';
import { Entity, ManyToOne, OneToMany, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { DeletionBlockedError, DeletionRestrictedError, ValidateBeforeDestroy, definePolicy } from '../../../lib/index.js';
import { createDeletionTestApp, type DeletionTestApp } from '../../support/deletion-test-app.js';

/** A row as `execute()` returns it, untyped. */
type Row = Record<string, unknown>;

/** Composite keys of a uuid and a bigint, and composite children whose key includes a bigint foreign key. */

const MAX = 9223372036854775807n;
const MIN = -9223372036854775808n;
const U1 = 'a0000000-0000-4000-8000-000000000001';
const U2 = 'a0000000-0000-4000-8000-000000000002';

@Entity()
@ValidateBeforeDestroy<Token>({ where: { frozen: true }, message: 'frozen token' })
class Token {
  [PrimaryKeyProp]?: ['ref', 'seq'];
  @PrimaryKey({ type: 'uuid' }) ref!: string;
  @PrimaryKey({ type: new BigIntType('bigint'), autoincrement: false }) seq!: bigint;
  @Property({ default: false }) frozen: Opt<boolean> = false;
  @Property({ default: false }) vetoed: Opt<boolean> = false;
  @ValidateBeforeDestroy() check() {
    return this.vetoed ? 'vetoed token' : undefined;
  }
}

@Entity()
class Wallet {
  @PrimaryKey({ type: new BigIntType('bigint'), autoincrement: false }) id!: bigint;
  @OneToMany(() => Coin, (c) => c.wallet) coins = new Collection<Coin>(this);
  @OneToMany(() => Chip, (c) => c.wallet) chips = new Collection<Chip>(this);
  @OneToMany(() => Lien, (c) => c.wallet) liens = new Collection<Lien>(this);
}

@Entity()
@ValidateBeforeDestroy<Coin>({ where: { frozen: true }, message: 'frozen coin' })
class Coin {
  [PrimaryKeyProp]?: ['wallet', 'serial'];
  @ManyToOne(() => Wallet, { primary: true }) wallet!: Rel<Wallet>;
  @PrimaryKey({ type: 'uuid' }) serial!: string;
  @Property({ default: false }) frozen: Opt<boolean> = false;
  @Property({ default: false }) vetoed: Opt<boolean> = false;
  @ValidateBeforeDestroy() check() {
    return this.vetoed ? 'vetoed coin' : undefined;
  }
}

@Entity()
class Chip {
  [PrimaryKeyProp]?: ['ref', 'seq'];
  @PrimaryKey({ type: 'uuid' }) ref!: string;
  @PrimaryKey({ type: new BigIntType('string'), autoincrement: false }) seq!: string;
  @ManyToOne(() => Wallet, { nullable: true }) wallet?: Rel<Wallet> | null;
}

@Entity()
class Lien {
  [PrimaryKeyProp]?: ['ref', 'seq'];
  @PrimaryKey({ type: 'uuid' }) ref!: string;
  @PrimaryKey({ type: new BigIntType('number'), autoincrement: false }) seq!: number;
  @ManyToOne(() => Wallet) wallet!: Rel<Wallet>;
}

/**
 * Shape: composite primary keys of a uuid and an int8 (bigint), addressed with upper-case uuids and
 * string or bigint halves, and composite children whose key includes a bigint foreign key, under
 * deleteAll, nullify and restrict. From the adversarial review of issue 11.
 */
describe('composite keys of uuid and bigint', () => {
  let app: DeletionTestApp;
  const sql = (q: string): Promise<Row[]> => app.em().getConnection().execute(q);
  beforeAll(async () => {
    app = await createDeletionTestApp({
      database: 'deletion_review_composite',
      entities: [Token, Wallet, Coin, Chip, Lien],
      deletion: { policies: [definePolicy(Wallet, { coins: 'deleteAll', chips: 'nullify', liens: 'restrict' })] },
    });
  });
  afterAll(() => app?.close());

  it('destroy(Token, [UPPER-CASE uuid, int8 max]) deletes exactly that row; validators of both forms refuse their rows', async () => {
    await sql(`insert into token (ref, seq, frozen, vetoed) values ('${U1}', ${MAX}, false, false), ('${U1}', ${MIN}, true, false), ('${U2}', ${MAX}, false, true), ('${U2}', ${MIN}, false, false)`);
    const receipt = await app.deletions.destroy(Token, [U1.toUpperCase(), MAX] as never);
    expect(receipt.status).toBe('completed');
    await expect(app.deletions.destroy(Token, [U1, MIN] as never)).rejects.toBeInstanceOf(DeletionBlockedError);
    await expect(app.deletions.destroy(Token, [U2, MAX.toString()] as never)).rejects.toBeInstanceOf(DeletionBlockedError);
    const plan = await app.deletions.plan(Token, [U2.toUpperCase(), MAX] as never);
    expect(plan.allowed).toBe(false);
    expect((await sql('select ref, seq::text from token order by ref, seq')).map((r: Row) => `${r.ref}/${r.seq}`)).toEqual([
      `${U1}/${MIN}`,
      `${U2}/${MIN}`,
      `${U2}/${MAX}`,
    ]);
  });

  it('a wallet at int8 max: deleteAll of composite coins (validators of both forms), nullify of chips, restrict of liens', async () => {
    await sql(`insert into wallet (id) values (${MAX}), (${MIN})`);
    for (const w of [MAX, MIN]) {
      await sql(`insert into coin (wallet_id, serial) values (${w}, '${U1}'), (${w}, '${U2}')`);
      await sql(`insert into chip (ref, seq, wallet_id) values ('${U1}', ${w}, ${w})`);
    }
    await sql(`insert into lien (ref, seq, wallet_id) values ('${U1}', 1, ${MAX})`);
    await expect(app.deletions.destroy(Wallet, MAX as never)).rejects.toBeInstanceOf(DeletionRestrictedError);
    await sql(`delete from lien`);
    await sql(`update coin set vetoed = true where wallet_id = ${MIN} and serial = '${U2}'`);
    await expect(app.deletions.destroy(Wallet, MAX as never)).resolves.toMatchObject({ status: 'completed' });
    expect((await sql('select wallet_id::text as w from coin order by 1')).map((r: Row) => r.w)).toEqual([`${MIN}`, `${MIN}`]);
    expect((await sql('select wallet_id::text as w from chip order by 1')).map((r: Row) => r.w)).toEqual([`${MIN}`, null]);
    await expect(app.deletions.destroy(Wallet, MIN.toString() as never)).rejects.toBeInstanceOf(DeletionBlockedError);
    await sql(`update coin set vetoed = false, frozen = true where wallet_id = ${MIN} and serial = '${U1}'`);
    await expect(app.deletions.destroy(Wallet, MIN as never)).rejects.toBeInstanceOf(DeletionBlockedError);
  });
});
